import Foundation
import GRDB
import SDCore

// Device-owned data for sync: what a device sends of its own rows (after a peer's cursor), and how a peer
// applies them. Only the owner writes its rows; a replica takes them as they are.

public struct OwnedDevice: Sendable, Equatable, Codable {
    public var id: DeviceID
    public var seq: Int64
    public var name: String
    public var os: String
    public var createdAt: Int64
    public var lastSeenAt: Int64

    public init(id: DeviceID, seq: Int64, name: String, os: String, createdAt: Int64, lastSeenAt: Int64) {
        self.id = id
        self.seq = seq
        self.name = name
        self.os = os
        self.createdAt = createdAt
        self.lastSeenAt = lastSeenAt
    }
}

public struct OwnedVolume: Sendable, Equatable, Codable {
    public var uuid: String
    public var seq: Int64
    public var identity: String
    public var name: String
    public var mountPoint: [UInt8]
    public var filesystem: String
    public var readOnly: Bool
    public var totalBytes: Int64?
    public var freeBytes: Int64?
    public var speedClass: String?
    public var lastSeenAt: Int64

    public init(
        uuid: String,
        seq: Int64,
        identity: String,
        name: String,
        mountPoint: [UInt8],
        filesystem: String,
        readOnly: Bool,
        totalBytes: Int64?,
        freeBytes: Int64?,
        speedClass: String?,
        lastSeenAt: Int64
    ) {
        self.uuid = uuid
        self.seq = seq
        self.identity = identity
        self.name = name
        self.mountPoint = mountPoint
        self.filesystem = filesystem
        self.readOnly = readOnly
        self.totalBytes = totalBytes
        self.freeBytes = freeBytes
        self.speedClass = speedClass
        self.lastSeenAt = lastSeenAt
    }
}

public struct OwnedLocation: Sendable, Equatable, Codable {
    public var uuid: String
    public var seq: Int64
    public var volume: String?
    public var volumeIdentity: String?
    public var name: String
    public var path: [UInt8]
    public var indexContent: Bool
    public var state: String
    public var stateReason: String?
    public var lastIndexedAt: Int64?
    public var createdAt: Int64

    public init(
        uuid: String,
        seq: Int64,
        volume: String?,
        volumeIdentity: String?,
        name: String,
        path: [UInt8],
        indexContent: Bool,
        state: String,
        stateReason: String?,
        lastIndexedAt: Int64?,
        createdAt: Int64
    ) {
        self.uuid = uuid
        self.seq = seq
        self.volume = volume
        self.volumeIdentity = volumeIdentity
        self.name = name
        self.path = path
        self.indexContent = indexContent
        self.state = state
        self.stateReason = stateReason
        self.lastIndexedAt = lastIndexedAt
        self.createdAt = createdAt
    }
}

public struct OwnedEntry: Sendable, Equatable, Codable {
    /// The owner's row id (stable for the row's life; a replica finds the row and its children by it).
    public var id: Int64
    public var seq: Int64
    public var uuid: [UInt8]
    public var location: String
    public var parent: Int64?
    public var name: [UInt8]
    public var type: Int64
    public var category: String?
    public var mime: String?
    public var size: Int64
    public var inode: Int64?
    public var deviceNumber: Int64?
    public var mode: Int64?
    public var linkCount: Int64?
    public var mtime: Int64?
    public var ctime: Int64?
    public var symlinkTarget: [UInt8]?
    public var contentID: Int64?
    public var error: String?

    public init(
        id: Int64,
        seq: Int64,
        uuid: [UInt8],
        location: String,
        parent: Int64?,
        name: [UInt8],
        type: Int64,
        category: String?,
        mime: String?,
        size: Int64,
        inode: Int64?,
        deviceNumber: Int64?,
        mode: Int64?,
        linkCount: Int64?,
        mtime: Int64?,
        ctime: Int64?,
        symlinkTarget: [UInt8]?,
        contentID: Int64?,
        error: String?
    ) {
        self.id = id
        self.seq = seq
        self.uuid = uuid
        self.location = location
        self.parent = parent
        self.name = name
        self.type = type
        self.category = category
        self.mime = mime
        self.size = size
        self.inode = inode
        self.deviceNumber = deviceNumber
        self.mode = mode
        self.linkCount = linkCount
        self.mtime = mtime
        self.ctime = ctime
        self.symlinkTarget = symlinkTarget
        self.contentID = contentID
        self.error = error
    }
}

public struct OwnedTombstone: Sendable, Equatable, Codable {
    public var id: Int64
    public var seq: Int64
    /// 'entry' (ref: the owner's row id), 'location' or 'volume' (ref: the uuid).
    public var kind: String
    public var ref: String

    public init(id: Int64, seq: Int64, kind: String, ref: String) {
        self.id = id
        self.seq = seq
        self.kind = kind
        self.ref = ref
    }
}

/// How far a peer has followed a device's own rows: per table, the last (seq, id) received; tombstones by id.
public struct OwnedCursor: Sendable, Equatable, Codable {
    public var tombstone: Int64 = 0
    public var device: [Int64] = [0, 0]
    public var volume: [Int64] = [0, 0]
    public var location: [Int64] = [0, 0]
    public var entry: [Int64] = [0, 0]
    /// During a whole-state pull: [the change sequence when it began, the last entry id sent]. Entries then go
    /// in id order (parents nearly always before their children), and once all are sent the entry cursor
    /// becomes (that sequence, the largest id): whatever changed meanwhile comes after it.
    public var pass: [Int64]?

    public init() {}

    /// Nothing received yet: the first batch is a whole state (deletions before it do not matter).
    public var isStart: Bool { self == OwnedCursor() }
}

/// One batch of a device's own rows.
public struct OwnedBatch: Sendable, Equatable {
    public var device: OwnedDevice?
    public var volumes: [OwnedVolume] = []
    public var locations: [OwnedLocation] = []
    public var entries: [OwnedEntry] = []
    public var tombstones: [OwnedTombstone] = []
    /// Where the next batch starts.
    public var cursor: OwnedCursor
    /// Nothing more after this batch (for now).
    public var done: Bool
    /// The cursor is older than the tombstones kept: the peer must pull the whole state again.
    public var resyncNeeded: Bool = false

    public init(cursor: OwnedCursor, done: Bool) {
        self.cursor = cursor
        self.done = done
    }

    public var rowCount: Int {
        (device == nil ? 0 : 1) + volumes.count + locations.count + entries.count + tombstones.count
    }
}

/// What applying a batch did.
public struct OwnedApplied: Sendable, Equatable {
    public var rows = 0
    public var deleted = 0
    public init() {}
}

extension Library {
    /// About how many bytes of rows one batch carries at most.
    public static let batchBytes = 4 << 20

    /// Takes the next change sequence for this device's own rows (rows written in the transaction carry it).
    /// Taking more than one in a transaction is harmless.
    @discardableResult
    static func takeSyncSeq(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db, sql: "UPDATE sync_state SET seq = seq + 1 WHERE id = 1 RETURNING seq") ?? 0
    }

    /// This device's own rows after `cursor`, at most about `limit` of them: tombstones first, then the device,
    /// volumes, locations and entries, each in (seq, id) order.
    public func ownedBatch(after cursor: OwnedCursor, limit: Int) throws -> OwnedBatch {
        try database.read { db in
            guard let me = try Int64.fetchOne(db, sql: "SELECT self_device FROM sync_state WHERE id = 1") else {
                return OwnedBatch(cursor: cursor, done: true)
            }
            var next = cursor
            var batch = OwnedBatch(cursor: cursor, done: false)
            let compacted = try Int64.fetchOne(db, sql: "SELECT owned_compacted FROM sync_state WHERE id = 1") ?? 0
            if cursor.isStart {
                // A whole state: deletions so far are already reflected in it.
                next.tombstone = max(
                    compacted,
                    try Int64.fetchOne(db, sql: "SELECT coalesce(max(id), 0) FROM owned_tombstones") ?? 0
                )
                next.pass = [try Int64.fetchOne(db, sql: "SELECT seq FROM sync_state WHERE id = 1") ?? 0, 0]
            } else if cursor.tombstone < compacted {
                batch.resyncNeeded = true
                batch.done = true
                return batch
            } else {
                // A cursor past anything this copy has written was given by an earlier copy of the library (this one
                // is restored from a backup): the peer's view is not this copy's history, so it takes the whole state.
                let seq = try Int64.fetchOne(db, sql: "SELECT seq FROM sync_state WHERE id = 1") ?? 0
                let newest = max(
                    compacted,
                    try Int64.fetchOne(db, sql: "SELECT coalesce(max(id), 0) FROM owned_tombstones") ?? 0
                )
                let seqs = [
                    cursor.device[0], cursor.volume[0], cursor.location[0], cursor.entry[0], cursor.pass?[0] ?? 0,
                ]
                if cursor.tombstone > newest || seqs.contains(where: { $0 > seq }) {
                    batch.resyncNeeded = true
                    batch.done = true
                    return batch
                }
            }
            var budget = max(1, limit)
            var exhausted = true
            /// One table's rows after `after` (its `sync_seq`, `id`), within what is left of the budget: the
            /// rows, and the cursor after the last.
            func page<T>(_ sql: String, _ first: (any DatabaseValueConvertible)?, _ after: [Int64], _ make: (Row) -> T)
                throws -> (rows: [T], last: [Int64]?)
            {
                guard budget > 0 else {
                    exhausted = false
                    return ([], nil)
                }
                let rows = try Row.fetchAll(db, sql: sql, arguments: [first, after[0], after[1], budget])
                if rows.count >= budget { exhausted = false }
                budget -= rows.count
                return (rows.map(make), rows.last.map { [$0["sync_seq"], $0["id"]] })
            }
            let tombstones = try Row.fetchAll(
                db,
                sql: "SELECT id, seq, kind, ref FROM owned_tombstones WHERE id > ? ORDER BY id LIMIT ?",
                arguments: [next.tombstone, budget]
            )
            batch.tombstones = tombstones.map { OwnedTombstone(id: $0[0], seq: $0[1], kind: $0[2], ref: $0[3]) }
            if let last = batch.tombstones.last { next.tombstone = last.id }
            if tombstones.count >= budget { exhausted = false }
            budget -= tombstones.count
            let device = try page(
                "SELECT uuid, sync_seq, name, os, created_at, last_seen_at, id FROM devices WHERE id = ? AND (sync_seq, id) > (?, ?) LIMIT ?",
                me,
                next.device
            ) { row in
                DeviceID(row[0] as String).map {
                    OwnedDevice(id: $0, seq: row[1], name: row[2], os: row[3], createdAt: row[4], lastSeenAt: row[5])
                }
            }
            batch.device = device.rows.first ?? nil
            next.device = device.last ?? next.device
            let volumes = try page(
                """
                SELECT uuid, sync_seq, identity, name, mount_point, filesystem, read_only, total_bytes, free_bytes,
                    speed_class, last_seen_at, id
                FROM volumes WHERE device_id = ? AND (sync_seq, id) > (?, ?) ORDER BY sync_seq, id LIMIT ?
                """,
                me,
                next.volume
            ) {
                OwnedVolume(
                    uuid: $0[0],
                    seq: $0[1],
                    identity: $0[2],
                    name: $0[3],
                    mountPoint: [UInt8]($0[4] as Data),
                    filesystem: $0[5],
                    readOnly: $0[6],
                    totalBytes: $0[7],
                    freeBytes: $0[8],
                    speedClass: $0[9],
                    lastSeenAt: $0[10]
                )
            }
            batch.volumes = volumes.rows
            next.volume = volumes.last ?? next.volume
            let locations = try page(
                """
                SELECT l.uuid, l.sync_seq, v.uuid, l.volume_identity, l.name, l.path, l.index_content, l.state,
                    l.state_reason, l.last_indexed_at, l.created_at, l.id
                FROM locations l LEFT JOIN volumes v ON v.id = l.volume_id
                WHERE l.device_id = ? AND (l.sync_seq, l.id) > (?, ?) ORDER BY l.sync_seq, l.id LIMIT ?
                """,
                me,
                next.location
            ) {
                OwnedLocation(
                    uuid: $0[0],
                    seq: $0[1],
                    volume: $0[2],
                    volumeIdentity: $0[3],
                    name: $0[4],
                    path: [UInt8]($0[5] as Data),
                    indexContent: $0[6],
                    state: $0[7],
                    stateReason: $0[8],
                    lastIndexedAt: $0[9],
                    createdAt: $0[10]
                )
            }
            batch.locations = locations.rows
            next.location = locations.last ?? next.location
            let columns = """
                SELECT e.id, e.sync_seq, e.uuid, l.uuid, e.parent_id, e.name, e.type, e.category, e.mime, e.size,
                    e.inode, e.device_number, e.mode, e.link_count, e.mtime_ns, e.ctime_ns, e.symlink_target,
                    e.content_id, e.error
                FROM entries e JOIN locations l ON l.id = e.location_id
                """
            let room = budget
            func entryRow(_ row: Row) -> OwnedEntry {
                OwnedEntry(
                    id: row[0],
                    seq: row[1],
                    uuid: [UInt8](row[2] as Data),
                    location: row[3],
                    parent: row[4],
                    name: [UInt8](row[5] as Data),
                    type: row[6],
                    category: row[7],
                    mime: row[8],
                    size: row[9],
                    inode: row[10],
                    deviceNumber: row[11],
                    mode: row[12],
                    linkCount: row[13],
                    mtime: row[14],
                    ctime: row[15],
                    symlinkTarget: (row[16] as Data?).map { [UInt8]($0) },
                    contentID: row[17],
                    error: row[18]
                )
            }
            let entries: (rows: [OwnedEntry], last: [Int64]?)
            if let pass = next.pass {
                // `+e.device_id`: by the rowid range, not by `entries_sync`. Left to itself SQLite took every row
                // of the device through that index and sorted them, for every page (perf: the serving sdd was the
                // busier side of a 1M-entry backfill; with this it went from 72 s to 64.5 s).
                entries = try page(
                    columns + " WHERE +e.device_id = ? AND ? IS NOT NULL AND e.id > ? ORDER BY e.id LIMIT ?",
                    me,
                    pass,
                    entryRow
                )
            } else {
                // Two index ranges rather than one row-value comparison: SQLite's plan for `(sync_seq, id) > (?, ?)`
                // scans every row of the cursor's seq from its start, so a million rows of one seq (a library
                // indexed before sync) made each page read all of them again.
                let sameSeq = try page(
                    columns + " WHERE e.device_id = ? AND e.sync_seq = ? AND e.id > ? ORDER BY e.id LIMIT ?",
                    me,
                    next.entry,
                    entryRow
                )
                let later = try page(
                    columns
                        + " WHERE e.device_id = ? AND e.sync_seq > ? AND ? IS NOT NULL ORDER BY e.sync_seq, e.id LIMIT ?",
                    me,
                    next.entry,
                    entryRow
                )
                entries = (sameSeq.rows + later.rows, later.last ?? sameSeq.last)
            }
            // At most about 4 MiB of names and texts per batch, whatever the count (a frame is at most 8 MiB).
            var kept = 0
            var bytes = 0
            for e in entries.rows {
                bytes +=
                    80 + e.name.count + (e.symlinkTarget?.count ?? 0) + (e.error?.utf8.count ?? 0)
                    + e.location.utf8.count + (e.category?.utf8.count ?? 0) + (e.mime?.utf8.count ?? 0)
                if kept > 0 && bytes > Self.batchBytes { break }
                kept += 1
            }
            let trimmed = kept < entries.rows.count
            batch.entries = Array(entries.rows.prefix(kept))
            let lastKept = batch.entries.last.map { [$0.seq, $0.id] } ?? entries.last
            if trimmed { exhausted = false }
            if let pass = next.pass {
                next.pass = [pass[0], lastKept?[1] ?? pass[1]]
                if room > 0 && entries.rows.count < room && !trimmed {
                    next.entry = [pass[0], Int64.max]
                    next.pass = nil
                }
            } else {
                next.entry = lastKept ?? next.entry
            }
            batch.cursor = next
            batch.done = exhausted
            return batch
        }
    }

    /// Applies a batch of `owner`'s rows, in one transaction. `pass`: set during a whole-state pull; rows are
    /// marked with it, and `sweepOwned` then removes what the pass did not bring.
    ///
    /// #### Errors
    /// `SyncRefusal` (nothing applied) when the batch is another device's than `owner`'s, or `owner` is this
    /// device: nobody but a device itself writes its rows.
    /// `saving`: the follower's state after this batch, saved in the same transaction.
    @discardableResult
    public func applyOwned(
        _ batch: OwnedBatch,
        from owner: DeviceID,
        pass: Int64? = nil,
        saving state: SyncPeerState? = nil
    ) throws -> OwnedApplied {
        if let device = batch.device, device.id != owner {
            throw SyncRefusal("device \(owner) sent rows of device \(device.id); refused (a device only sends its own)")
        }
        guard owner != device.id else {
            throw SyncRefusal("a peer sent rows of this device (\(owner)); refused (only this device writes them)")
        }
        try Self.checkNames(batch, from: owner)
        // Foreign keys are off for this transaction (set around it on the writer connection): a deleted row must
        // not take its children with it here, since on the owner they may have moved elsewhere first (their
        // moves come after the deletion in this batch order); children really deleted come with tombstones of
        // their own.
        return try database.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA foreign_keys = OFF")
            defer { try? db.execute(sql: "PRAGMA foreign_keys = ON") }
            var applied = OwnedApplied()
            try db.inTransaction {
                applied = try applyOwnedBatch(db, batch, owner: owner, pass: pass)
                if let state { try Self.saveSyncPeer(db, state) }
                return .commit
            }
            return applied
        }
    }

    /// Names and paths from another device are checked before anything is applied: an entry's name is one
    /// name (no `/`, no NUL, not `.` or `..`, at most 255 bytes), a location's path, its root entry's name and a
    /// volume's mount point are plain absolute paths. A batch with one that is not is refused whole: a device whose names
    /// make `../x` could lead a copy here out of its destination.
    static func checkNames(_ batch: OwnedBatch, from owner: DeviceID) throws {
        for e in batch.entries {
            // A location's root entry is named by the location's whole path.
            if e.parent == nil {
                do { _ = try PlainPath.components(e.name, controlBytes: true) } catch {
                    throw SyncRefusal("device \(owner) sent a root entry whose path \(error.reason); refused")
                }
            } else if let problem = PlainPath.nameProblem(e.name, controlBytes: true) {
                throw SyncRefusal(
                    "device \(owner) sent an entry named '\(PlainPath.shown(e.name))' (\(problem)); refused (nothing of the batch was applied)"
                )
            }
        }
        for l in batch.locations {
            do { _ = try PlainPath.components(l.path, controlBytes: true) } catch {
                throw SyncRefusal("device \(owner) sent a location whose path \(error.reason); refused")
            }
        }
        for v in batch.volumes where !v.mountPoint.isEmpty {
            do { _ = try PlainPath.components(v.mountPoint, controlBytes: true) } catch {
                throw SyncRefusal("device \(owner) sent a volume whose mount point \(error.reason); refused")
            }
        }
    }

    private func applyOwnedBatch(_ db: Database, _ batch: OwnedBatch, owner: DeviceID, pass: Int64?) throws
        -> OwnedApplied
    {
        var applied = OwnedApplied()
        let deviceRow = try Self.remoteDeviceRow(db, owner, batch.device)
        for t in batch.tombstones {
            switch t.kind {
            case "entry":
                guard let ownerID = Int64(t.ref) else { continue }
                try db.execute(
                    sql: "DELETE FROM entries WHERE device_id = ? AND owner_id = ? AND sync_seq < ?",
                    arguments: [deviceRow, ownerID, t.seq]
                )
                applied.deleted += db.changesCount
                try db.execute(
                    sql: "DELETE FROM sync_pending WHERE device_id = ? AND owner_id = ? AND seq < ?",
                    arguments: [deviceRow, ownerID, t.seq]
                )
            case "location":
                guard
                    let id = try Int64.fetchOne(
                        db,
                        sql: "SELECT id FROM locations WHERE uuid = ? AND device_id = ? AND sync_seq < ?",
                        arguments: [t.ref, deviceRow, t.seq]
                    )
                else { continue }
                try db.execute(sql: "DELETE FROM entries WHERE location_id = ?", arguments: [id])
                try db.execute(sql: "DELETE FROM locations WHERE id = ?", arguments: [id])
                applied.deleted += 1
            case "volume":
                try db.execute(
                    sql: "DELETE FROM volumes WHERE uuid = ? AND device_id = ? AND sync_seq < ?",
                    arguments: [t.ref, deviceRow, t.seq]
                )
                applied.deleted += db.changesCount
            default:
                continue
            }
        }
        for v in batch.volumes {
            if let other = try Int64.fetchOne(
                db,
                sql: "SELECT device_id FROM volumes WHERE uuid = ?",
                arguments: [v.uuid]
            ),
                other != deviceRow
            {
                continue  // another device's volume: not this owner's to write
            }
            try db.execute(
                sql: """
                    INSERT INTO volumes (uuid, device_id, identity, name, mount_point, filesystem, read_only,
                        total_bytes, free_bytes, speed_class, last_seen_at, sync_seq)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (uuid) DO UPDATE SET identity = excluded.identity, name = excluded.name,
                        mount_point = excluded.mount_point, filesystem = excluded.filesystem,
                        read_only = excluded.read_only, total_bytes = excluded.total_bytes,
                        free_bytes = excluded.free_bytes, speed_class = excluded.speed_class,
                        last_seen_at = excluded.last_seen_at, sync_seq = excluded.sync_seq
                    WHERE excluded.sync_seq >= volumes.sync_seq OR ?
                    """,
                arguments: [
                    v.uuid, deviceRow, v.identity, v.name, Data(v.mountPoint), v.filesystem, v.readOnly,
                    v.totalBytes, v.freeBytes, v.speedClass, v.lastSeenAt, v.seq, pass != nil,
                ]
            )
            applied.rows += 1
        }
        for l in batch.locations {
            if let other = try Int64.fetchOne(
                db,
                sql: "SELECT device_id FROM locations WHERE uuid = ?",
                arguments: [l.uuid]
            ),
                other != deviceRow
            {
                continue
            }
            let volume = try l.volume.flatMap {
                try Int64.fetchOne(
                    db,
                    sql: "SELECT id FROM volumes WHERE uuid = ? AND device_id = ?",
                    arguments: [$0, deviceRow]
                )
            }
            try db.execute(
                sql: """
                    INSERT INTO locations (uuid, device_id, volume_id, volume_identity, name, path, index_content,
                        state, state_reason, last_indexed_at, created_at, sync_seq, scan_epoch)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (uuid) DO UPDATE SET volume_id = excluded.volume_id,
                        volume_identity = excluded.volume_identity, name = excluded.name, path = excluded.path,
                        index_content = excluded.index_content, state = excluded.state,
                        state_reason = excluded.state_reason, last_indexed_at = excluded.last_indexed_at,
                        sync_seq = max(locations.sync_seq, excluded.sync_seq),
                        scan_epoch = excluded.scan_epoch
                    """,
                arguments: [
                    l.uuid, deviceRow, volume, l.volumeIdentity, l.name, Data(l.path), l.indexContent, l.state,
                    l.stateReason, l.lastIndexedAt, l.createdAt, l.seq, pass ?? 0,
                ]
            )
            applied.rows += 1
        }
        var arrived: [Int64] = []
        var cache = try EntryApply(db, deviceRow: deviceRow, pass: pass)
        for e in batch.entries {
            if try Self.applyOwnedEntry(db, e, &cache) {
                applied.rows += 1
                arrived.append(e.id)
            } else {
                try db.cachedStatement(
                    sql: """
                        INSERT INTO sync_pending (device_id, owner_id, parent, seq, row) VALUES (?, ?, ?, ?, ?)
                        ON CONFLICT (device_id, owner_id) DO UPDATE SET parent = excluded.parent, seq = excluded.seq,
                            row = excluded.row
                        WHERE excluded.seq >= sync_pending.seq
                        """
                ).execute(arguments: [deviceRow, e.id, e.parent, e.seq, try Self.jsonText(e)])
                cache.pending = true
            }
        }
        // Entries that waited: all of them when a location came (rare), else those whose parent came, and then
        // theirs, and so on.
        cache.retrying = true
        func retry(_ rows: [Row]) throws -> [Int64] {
            var applied: [Int64] = []
            for row in rows {
                guard let e = try? JSONDecoder().decode(OwnedEntry.self, from: Data((row[0] as String).utf8))
                else { continue }
                if try Self.applyOwnedEntry(db, e, &cache) { applied.append(e.id) }
            }
            return applied
        }
        if !batch.locations.isEmpty {
            let came = try retry(
                Row.fetchAll(
                    db,
                    sql: "SELECT row FROM sync_pending WHERE device_id = ? ORDER BY seq, owner_id",
                    arguments: [deviceRow]
                )
            )
            applied.rows += came.count
            arrived += came
        }
        let waiting = try db.cachedStatement(sql: "SELECT row FROM sync_pending WHERE device_id = ? AND parent = ?")
        while !arrived.isEmpty {
            var next: [Int64] = []
            for parent in arrived {
                next += try retry(Row.fetchAll(waiting, arguments: [deviceRow, parent]))
            }
            applied.rows += next.count
            arrived = next
        }
        // Each location's root: its entry without a parent.
        try db.execute(
            sql: """
                UPDATE locations SET root_entry_id = (
                    SELECT e.id FROM entries e WHERE e.location_id = locations.id AND e.parent_id IS NULL LIMIT 1)
                WHERE device_id = ?
                """,
            arguments: [deviceRow]
        )
        try Self.catchUpSearchIfSmall(db)
        return applied
    }

    /// The local row of another device (made on first sight).
    static func remoteDeviceRow(_ db: Database, _ owner: DeviceID, _ device: OwnedDevice?) throws -> Int64 {
        if let device {
            try db.execute(
                sql: """
                    INSERT INTO devices (uuid, name, os, created_at, last_seen_at, sync_seq) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (uuid) DO UPDATE SET name = excluded.name, os = excluded.os,
                        created_at = excluded.created_at, last_seen_at = excluded.last_seen_at,
                        sync_seq = excluded.sync_seq
                    WHERE excluded.sync_seq >= devices.sync_seq
                    """,
                arguments: [owner.description, device.name, device.os, device.createdAt, device.lastSeenAt, device.seq]
            )
        } else {
            try db.execute(
                sql: """
                    INSERT OR IGNORE INTO devices (uuid, name, os, created_at, last_seen_at, sync_seq)
                    VALUES (?, '', '', 0, 0, 0)
                    """,
                arguments: [owner.description]
            )
        }
        return try Int64.fetchOne(db, sql: "SELECT id FROM devices WHERE uuid = ?", arguments: [owner.description])!
    }

    /// What one batch's entries look up again and again: locations by uuid, local ids by the owner's, and
    /// whether any of the owner's entries wait in `sync_pending`.
    struct EntryApply {
        let deviceRow: Int64
        let pass: Int64?
        var locations: [String: Int64] = [:]
        var local: [Int64: Int64] = [:]
        var pending: Bool
        /// Applying entries that waited (they may have come in an earlier batch, and again in this one).
        var retrying = false
        /// The owner's largest row id here when the batch began: a row of the batch with a larger one is new
        /// (a batch holds each row once), so it is not looked up (a backfill is all such rows).
        let newAfter: Int64

        init(_ db: Database, deviceRow: Int64, pass: Int64?) throws {
            self.deviceRow = deviceRow
            self.pass = pass
            newAfter =
                try Int64.fetchOne(
                    db,
                    sql: "SELECT max(owner_id) FROM entries WHERE device_id = ? AND owner_id IS NOT NULL",
                    arguments: [deviceRow]
                ) ?? Int64.min
            pending =
                try Int.fetchOne(
                    db,
                    sql: "SELECT 1 FROM sync_pending WHERE device_id = ? LIMIT 1",
                    arguments: [deviceRow]
                )
                != nil
        }

        mutating func location(_ db: Database, _ uuid: String) throws -> Int64? {
            if let id = locations[uuid] { return id }
            let id = try Int64.fetchOne(
                try db.cachedStatement(sql: "SELECT id FROM locations WHERE uuid = ? AND device_id = ?"),
                arguments: [uuid, deviceRow]
            )
            locations[uuid] = id
            return id
        }

        /// The local row of the owner's entry `owner` (cached only when found: a batch adds rows).
        mutating func row(_ db: Database, _ owner: Int64) throws -> Int64? {
            if let id = local[owner] { return id }
            let id = try Int64.fetchOne(
                try db.cachedStatement(sql: "SELECT id FROM entries WHERE device_id = ? AND owner_id = ?"),
                arguments: [deviceRow, owner]
            )
            if let id { local[owner] = id }
            return id
        }
    }

    /// Applies one entry of another device; false when its location or parent is not here yet.
    static func applyOwnedEntry(_ db: Database, _ e: OwnedEntry, _ batch: inout EntryApply) throws -> Bool {
        let deviceRow = batch.deviceRow
        let pass = batch.pass
        guard let location = try batch.location(db, e.location) else { return false }
        var parent: Int64?
        if let p = e.parent {
            guard let found = try batch.row(db, p) else { return false }
            parent = found
        }
        if batch.pending {
            try db.cachedStatement(sql: "DELETE FROM sync_pending WHERE device_id = ? AND owner_id = ? AND seq <= ?")
                .execute(arguments: [deviceRow, e.id, e.seq])
        }
        let existing =
            e.id > batch.newAfter && !batch.retrying
            ? nil
            : try Row.fetchOne(
                try db.cachedStatement(sql: "SELECT id, sync_seq FROM entries WHERE device_id = ? AND owner_id = ?"),
                arguments: [deviceRow, e.id]
            )
        // A newer version of the row is kept, but in a whole-state pass: the owner's rows as they are now win over
        // anything held (a row held with a higher sequence came from an earlier copy of the owner's library, before
        // it was restored from a backup; in one history a pass never brings a row older than one held).
        if let existing, pass == nil, (existing[1] as Int64) > e.seq { return true }
        if let content = e.contentID {
            let known = RawStatement(
                try db.cachedStatement(
                    sql: "INSERT OR IGNORE INTO content_identities (id, size, first_seen_at) VALUES (?, ?, ?)"
                ),
                db
            )
            known.bind(1, content)
            known.bind(2, e.size)
            known.bind(3, nowMilliseconds())
            try known.run()
        }
        let insert = """
            INSERT INTO entries (uuid, location_id, parent_id, name, type, category, mime, size, inode,
                device_number, mode, link_count, mtime_ns, ctime_ns, symlink_target, content_id, error, sync_seq,
                added_epoch, device_id, owner_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """
        let local: Int64? = existing?[0]
        if local == nil {
            // A new row takes its uuid and name when nothing holds them (nearly always: a backfill is all new
            // rows). The statement fails as a whole when something does, and the checks below decide.
            // (Bound directly: building GRDB's arguments was about a fifth of the joining side's CPU in perf; the
            // backfill of 1M entries went from 62 s to 46 s with this.)
            let row = RawStatement(try db.cachedStatement(sql: insert), db)
            row.bind(1, bytes: e.uuid)
            row.bind(2, location)
            row.bind(3, parent)
            row.bind(4, bytes: e.name)
            row.bind(5, e.type)
            row.bind(6, text: e.category)
            row.bind(7, text: e.mime)
            row.bind(8, e.size)
            row.bind(9, e.inode)
            row.bind(10, e.deviceNumber)
            row.bind(11, e.mode)
            row.bind(12, e.linkCount)
            row.bind(13, e.mtime)
            row.bind(14, e.ctime)
            row.bind(15, bytes: e.symlinkTarget)
            row.bind(16, e.contentID)
            row.bind(17, text: e.error)
            row.bind(18, e.seq)
            row.bind(19, pass ?? 0)
            row.bind(20, deviceRow)
            row.bind(21, e.id)
            do {
                try row.run()
                batch.local[e.id] = db.lastInsertedRowID
                return true
            } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {}
        }
        let values: [(any DatabaseValueConvertible)?] = [
            Data(e.uuid), location, parent, Data(e.name), e.type, e.category, e.mime, e.size, e.inode,
            e.deviceNumber, e.mode, e.linkCount, e.mtime, e.ctime, e.symlinkTarget.map { Data($0) }, e.contentID,
            e.error, e.seq,
        ]
        // Rows of this device that the owner no longer has under these names or this uuid (their deletions may
        // not have arrived yet: names and uuids are unique on the owner, so these are stale).
        // (Two statements, each on its unique index: with an OR, SQLite read the whole table for every row.)
        try db.cachedStatement(
            sql: "DELETE FROM entries WHERE uuid = ? AND device_id = ? AND owner_id IS NOT ?"
        ).execute(arguments: [Data(e.uuid), deviceRow, e.id])
        if let parent {
            try db.cachedStatement(
                sql: "DELETE FROM entries WHERE parent_id = ? AND name = ? AND device_id = ? AND owner_id IS NOT ?"
            ).execute(arguments: [parent, Data(e.name), deviceRow, e.id])
        } else {
            try db.cachedStatement(
                sql: """
                    DELETE FROM entries WHERE parent_id IS NULL AND location_id = ? AND name = ? AND device_id = ?
                    AND owner_id IS NOT ?
                    """
            ).execute(arguments: [location, Data(e.name), deviceRow, e.id])
        }
        // (A deleted stale row may be cached under its owner id: forget them all, the rare case.)
        batch.local.removeAll(keepingCapacity: true)
        if try Int.fetchOne(
            try db.cachedStatement(sql: "SELECT 1 FROM entries WHERE uuid = ? AND id IS NOT ?"),
            arguments: [Data(e.uuid), local]
        ) != nil {
            return true  // the uuid is another device's entry: not this owner's to write (skipped)
        }
        if let local {
            try db.cachedStatement(
                sql: """
                    UPDATE entries SET uuid = ?, location_id = ?, parent_id = ?, name = ?, type = ?, category = ?,
                        mime = ?, size = ?, inode = ?, device_number = ?, mode = ?, link_count = ?, mtime_ns = ?,
                        ctime_ns = ?, symlink_target = ?, content_id = ?, error = ?, sync_seq = ?,
                        added_epoch = coalesce(?, added_epoch)
                    WHERE id = ?
                    """
            ).execute(arguments: StatementArguments(values + [pass, local]))
        } else {
            try db.cachedStatement(sql: insert).execute(
                arguments: StatementArguments(values + [pass ?? 0, deviceRow, e.id])
            )
            batch.local[e.id] = db.lastInsertedRowID
        }
        return true
    }

    /// Forgets the rows of `owner` that wait for their parent (at the start of a whole-state pass: rows still
    /// waiting from before it, of a copy of its library since replaced, must not be applied by the pass).
    public func dropWaitingRows(of owner: DeviceID) throws {
        try database.write { db in
            try db.execute(
                sql: "DELETE FROM sync_pending WHERE device_id = (SELECT id FROM devices WHERE uuid = ?)",
                arguments: [owner.description]
            )
        }
    }

    /// After a whole-state pull of `owner` marked with `pass`: removes that device's rows the pass did not
    /// bring (deleted while this device was not following). How many entries went.
    @discardableResult
    public func sweepOwned(of owner: DeviceID, pass: Int64) throws -> Int {
        try database.write { db in
            guard
                let deviceRow = try Int64.fetchOne(
                    db,
                    sql: "SELECT id FROM devices WHERE uuid = ?",
                    arguments: [owner.description]
                )
            else { return 0 }
            try db.execute(
                sql: "DELETE FROM entries WHERE device_id = ? AND added_epoch < ?",
                arguments: [deviceRow, pass]
            )
            let removed = db.changesCount
            try db.execute(
                sql: "DELETE FROM locations WHERE device_id = ? AND scan_epoch < ?",
                arguments: [deviceRow, pass]
            )
            return removed
        }
    }

    /// A canonical text of the synced data (every device's own rows and the shared metadata), equal on every
    /// device that has received the same changes, whatever their order: for convergence tests and checks.
    public func syncDump() throws -> String {
        try database.read { db in
            var lines: [String] = []
            func add(_ prefix: String, _ sql: String) throws {
                for row in try Row.fetchAll(db, sql: sql) {
                    lines.append(
                        prefix + " "
                            + row.databaseValues.map { value -> String in
                                switch value.storage {
                                case .blob(let data): "x'\(Hex.encode([UInt8](data)))'"
                                case .null: "NULL"
                                case .int64(let i): "\(i)"
                                case .double(let d): "\(d)"
                                case .string(let s): "'\(s)'"
                                }
                            }.joined(separator: "|")
                    )
                }
            }
            try add("device", "SELECT uuid, name, os, created_at FROM devices WHERE name != '' ORDER BY uuid")
            try add(
                "volume",
                """
                SELECT d.uuid, v.uuid, v.identity, v.name, v.mount_point, v.filesystem, v.read_only, v.total_bytes,
                    v.speed_class
                FROM volumes v JOIN devices d ON d.id = v.device_id ORDER BY v.uuid
                """
            )
            try add(
                "location",
                """
                SELECT d.uuid, l.uuid, v.uuid, l.volume_identity, l.name, l.path, l.index_content, l.state,
                    l.state_reason, l.last_indexed_at, r.uuid
                FROM locations l JOIN devices d ON d.id = l.device_id LEFT JOIN volumes v ON v.id = l.volume_id
                LEFT JOIN entries r ON r.id = l.root_entry_id ORDER BY l.uuid
                """
            )
            try add(
                "entry",
                """
                SELECT d.uuid, e.uuid, l.uuid, p.uuid, e.name, e.type, e.category, e.mime, e.size, e.inode,
                    e.device_number, e.mode, e.link_count, e.mtime_ns, e.ctime_ns, e.symlink_target, e.content_id, e.error
                FROM entries e JOIN devices d ON d.id = e.device_id JOIN locations l ON l.id = e.location_id
                LEFT JOIN entries p ON p.id = e.parent_id ORDER BY e.uuid
                """
            )
            // Shared metadata as users see it: every register of live records, and the deletion marks of the
            // others (whose fields compaction may already have dropped on one device and not yet on another).
            try add(
                "register",
                """
                SELECT s.record, s.key, s.field, s.value, s.hlc FROM shared_state s
                WHERE s.field = '' OR NOT EXISTS (SELECT 1 FROM shared_state d
                    WHERE d.record = s.record AND d.key = s.key AND d.field = '' AND d.value IS NULL)
                ORDER BY s.record, s.key, s.field
                """
            )
            try add("tag", "SELECT uuid, name, color, parent_uuid FROM tags WHERE deleted = 0 ORDER BY uuid")
            try add(
                "entry_tag",
                "SELECT entry_uuid, tag_uuid FROM entry_tags WHERE deleted = 0 ORDER BY entry_uuid, tag_uuid"
            )
            try add(
                "content_tag",
                "SELECT content_id, tag_uuid FROM content_tags WHERE deleted = 0 ORDER BY content_id, tag_uuid"
            )
            try add(
                "meta",
                "SELECT entry_uuid, rating, favorite, note FROM user_metadata ORDER BY entry_uuid"
            )
            try add("setting", "SELECT key, scope, value FROM library_settings ORDER BY key, scope")
            return lines.joined(separator: "\n")
        }
    }
}
