import Foundation
import GRDB
import SDCore

/// How far this library follows one peer device, kept in `sync_peers`.
public struct SyncPeerState: Sendable, Equatable, Codable {
    public var device: DeviceID
    /// The peer's shared change log is merged through this seq.
    public var sharedSeq: Int64 = 0
    /// The peer's own rows are applied through this cursor.
    public var owned = OwnedCursor()
    /// Whole-state pulls of its rows so far (rows of the current one are marked with it).
    public var pass: Int64 = 0
    /// A whole-state pull of its rows is under way (ends with a sweep of what it did not bring).
    public var fullResync = false
    public var lastSyncAt: Date?
    public var lastError: String?
    public var addedAt = Date()

    public init(device: DeviceID) { self.device = device }
}

extension Library {
    /// The peers this library syncs with.
    public func syncPeers() throws -> [SyncPeerState] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM sync_peers ORDER BY added_at").compactMap(Self.peerState)
        }
    }

    /// What is known of following `device` (a fresh state if nothing).
    public func syncPeer(_ device: DeviceID) throws -> SyncPeerState {
        try database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM sync_peers WHERE device = ?", arguments: [device.description])
                .flatMap(Self.peerState) ?? SyncPeerState(device: device)
        }
    }

    static func peerState(_ row: Row) -> SyncPeerState? {
        guard let device = DeviceID(row["device"] as String) else { return nil }
        var s = SyncPeerState(device: device)
        s.sharedSeq = row["shared_seq"]
        if let text = row["owned_cursor"] as String?,
            let cursor = try? JSONDecoder().decode(OwnedCursor.self, from: Data(text.utf8))
        {
            s.owned = cursor
        }
        s.pass = row["resync_pass"]
        s.fullResync = (row["full_resync"] as Int64) != 0
        s.lastSyncAt = (row["last_sync_at"] as Int64?).map { Date(timeIntervalSince1970: Double($0) / 1000) }
        s.lastError = row["last_error"]
        s.addedAt = Date(timeIntervalSince1970: Double(row["added_at"] as Int64) / 1000)
        return s
    }

    /// Records how far `state.device` is followed (adds the peer if new).
    public func saveSyncPeer(_ state: SyncPeerState) throws {
        try database.write { db in try Self.saveSyncPeer(db, state) }
    }

    static func saveSyncPeer(_ db: Database, _ state: SyncPeerState) throws {
        try db.execute(
            sql: """
                INSERT INTO sync_peers (device, shared_seq, owned_cursor, full_resync, resync_pass, last_sync_at,
                    last_error, added_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (device) DO UPDATE SET shared_seq = excluded.shared_seq,
                    owned_cursor = excluded.owned_cursor, full_resync = excluded.full_resync,
                    resync_pass = excluded.resync_pass, last_sync_at = excluded.last_sync_at,
                    last_error = excluded.last_error
                """,
            arguments: [
                state.device.description, state.sharedSeq, try Self.jsonText(state.owned), state.fullResync ? 1 : 0,
                state.pass, state.lastSyncAt.map { Int64($0.timeIntervalSince1970 * 1000) }, state.lastError,
                Int64(state.addedAt.timeIntervalSince1970 * 1000),
            ]
        )
    }

    /// Stops syncing with a device (its rows stay until removed otherwise). Whether it was a peer.
    @discardableResult
    public func removeSyncPeer(_ device: DeviceID) throws -> Bool {
        try database.write { db in
            try db.execute(sql: "DELETE FROM sync_peers WHERE device = ?", arguments: [device.description])
            return db.changesCount > 0
        }
    }

    /// What a peer asking for this library's shared log after `after` needs to know: the seq compacted through
    /// (a peer behind it must take the whole state instead), the newest seq, and the compaction horizon.
    public func sharedLogBounds() throws -> (compacted: Int64, newest: Int64, horizon: String) {
        try database.read { db in
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT shared_compacted, coalesce(shared_horizon, ''),
                        max(shared_compacted, (SELECT coalesce(max(seq), 0) FROM shared_changes))
                    FROM sync_state WHERE id = 1
                    """
            )
            return (row?[0] ?? 0, row?[2] ?? 0, row?[1] ?? "")
        }
    }

    /// Days of sync history kept (the `sync-retention-days` setting, default 90): a device away longer pulls
    /// whole states instead of the changes it missed.
    public func syncRetentionDays() throws -> Int {
        Int(try setting("sync-retention-days") ?? "").flatMap { $0 >= 1 ? $0 : nil } ?? 90
    }

    /// Compacts the sync history older than the retention (`nowMilliseconds`: the time to count back from).
    @discardableResult
    public func compactSyncHistory(nowMilliseconds: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) throws
        -> (changes: Int, tombstones: Int)
    {
        try compactSync(before: nowMilliseconds - Int64(try syncRetentionDays()) * 86_400_000)
    }

    /// Forgets sync history older than `cutoff` (ms since 1970): shared changes and deleted shared records
    /// (their registers and live rows), own rows' tombstones, resolved conflicts. A peer that last synced
    /// before it then pulls a whole state instead of changes. What went: (changes, tombstones).
    @discardableResult
    public func compactSync(before cutoff: Int64) throws -> (changes: Int, tombstones: Int) {
        try database.write { db in
            let horizon = HLCTimestamp(
                physical: UInt64(max(0, cutoff)),
                logical: 0,
                device: DeviceID(UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)))
            ).description
            let lastChange = try Int64.fetchOne(
                db,
                sql: "SELECT max(seq) FROM shared_changes WHERE hlc < ?",
                arguments: [horizon]
            )
            var changes = 0
            if let lastChange {
                try db.execute(sql: "DELETE FROM shared_changes WHERE seq <= ?", arguments: [lastChange])
                changes = db.changesCount
                try db.execute(
                    sql: "UPDATE sync_state SET shared_compacted = max(shared_compacted, ?) WHERE id = 1",
                    arguments: [lastChange]
                )
            }
            try db.execute(
                sql: "UPDATE sync_state SET shared_horizon = max(coalesce(shared_horizon, ''), ?) WHERE id = 1",
                arguments: [horizon]
            )
            // Deleted shared records whose deletion is older than the horizon shrink to their deletion mark (one
            // small row, kept: it is what stops an old edit from a device that was away from bringing the record
            // back); their fields and their live rows go.
            try db.execute(
                sql: """
                    DELETE FROM shared_state WHERE field != '' AND (record, key) IN (
                        SELECT record, key FROM shared_state WHERE field = '' AND value IS NULL AND hlc < ?)
                    """,
                arguments: [horizon]
            )
            try db.execute(sql: "DELETE FROM tags WHERE deleted = 1 AND hlc < ?", arguments: [horizon])
            try db.execute(sql: "DELETE FROM entry_tags WHERE deleted = 1 AND hlc < ?", arguments: [horizon])
            try db.execute(sql: "DELETE FROM content_tags WHERE deleted = 1 AND hlc < ?", arguments: [horizon])
            let lastTombstone = try Int64.fetchOne(
                db,
                sql: "SELECT max(id) FROM owned_tombstones WHERE at < ?",
                arguments: [cutoff]
            )
            var tombstones = 0
            if let lastTombstone {
                try db.execute(sql: "DELETE FROM owned_tombstones WHERE id <= ?", arguments: [lastTombstone])
                tombstones = db.changesCount
                try db.execute(
                    sql: "UPDATE sync_state SET owned_compacted = max(owned_compacted, ?) WHERE id = 1",
                    arguments: [lastTombstone]
                )
            }
            try db.execute(
                sql: "DELETE FROM sync_conflicts WHERE resolved_at IS NOT NULL AND resolved_at < ?",
                arguments: [cutoff]
            )
            return (changes, tombstones)
        }
    }
}

extension Library {
    /// What moves when anything a peer would pull changed here: this device's change sequence and the newest
    /// shared change.
    public func syncMarker() throws -> [Int64] {
        try database.read { db in
            let row = try Row.fetchOne(
                db,
                sql: "SELECT seq, (SELECT coalesce(max(seq), 0) FROM shared_changes) FROM sync_state WHERE id = 1"
            )
            return [row?[0] ?? 0, row?[1] ?? 0]
        }
    }
}

/// A file another device is sending here: where its temporary is.
public struct PeerIncoming: Sendable, Equatable {
    public var folder: [UInt8]
    public var part: String
    public var device: String?
    public var size: Int64
    public var startedAt: Date
}

extension Library {
    /// Notes a temporary another device's file is received into (again: its time is kept).
    public func notePeerIncoming(folder: [UInt8], part: String, device: String?, size: Int64) throws {
        try database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO peer_incoming (folder, part, device, size, started_at) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (folder, part) DO UPDATE SET device = excluded.device, size = excluded.size
                    """,
                arguments: [Data(folder), part, device, size, Int64(Date().timeIntervalSince1970 * 1000)]
            )
        }
    }

    /// Forgets a temporary (its file was committed, abandoned or removed).
    public func forgetPeerIncoming(folder: [UInt8], part: String) throws {
        try database.write { db in
            try db.execute(
                sql: "DELETE FROM peer_incoming WHERE folder = ? AND part = ?",
                arguments: [Data(folder), part]
            )
        }
    }

    /// Every temporary noted, oldest first.
    public func peerIncoming() throws -> [PeerIncoming] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT folder, part, device, size, started_at FROM peer_incoming ORDER BY id")
                .map {
                    PeerIncoming(
                        folder: [UInt8]($0[0] as Data),
                        part: $0[1],
                        device: $0[2],
                        size: $0[3],
                        startedAt: Date(timeIntervalSince1970: Double($0[4] as Int64) / 1000)
                    )
                }
        }
    }
}
