import Foundation
import GRDB
import SDCore
import SDSystem

/// A folder the user asked sd to index.
public struct Location: Sendable, Codable, Equatable {
    public var id: Int64
    public var uuid: String
    public var name: String
    public var path: [UInt8]
    public var volumeID: Int64?
    public var volumeIdentity: String?
    public var indexContent: Bool
    /// 'new' (never scanned), 'online', 'offline'.
    public var state: String
    public var stateReason: String?
    public var rootEntryID: Int64?
    public var scanEpoch: Int64
    public var lastIndexedAt: Int64?

    public var pathString: String { PathText.string(path) }

    // JSON (the CLI's --json, the API): the path as text; a root whose name is not UTF-8 as `pathBytes`
    // (base64) instead, so that nothing is lost.
    enum CodingKeys: String, CodingKey {
        case id, uuid, name, path, pathBytes, volumeID, volumeIdentity, indexContent, state, stateReason
        case rootEntryID, scanEpoch, lastIndexedAt
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(Int64.self, forKey: .id)
        uuid = try c.decode(String.self, forKey: .uuid)
        name = try c.decode(String.self, forKey: .name)
        if let text = try c.decodeIfPresent(String.self, forKey: .path) {
            path = PathText.bytes(text)
        } else {
            let data = try c.decode(Data.self, forKey: .pathBytes)
            path = Array(data)
        }
        volumeID = try c.decodeIfPresent(Int64.self, forKey: .volumeID)
        volumeIdentity = try c.decodeIfPresent(String.self, forKey: .volumeIdentity)
        indexContent = try c.decode(Bool.self, forKey: .indexContent)
        state = try c.decode(String.self, forKey: .state)
        stateReason = try c.decodeIfPresent(String.self, forKey: .stateReason)
        rootEntryID = try c.decodeIfPresent(Int64.self, forKey: .rootEntryID)
        scanEpoch = try c.decode(Int64.self, forKey: .scanEpoch)
        lastIndexedAt = try c.decodeIfPresent(Int64.self, forKey: .lastIndexedAt)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(uuid, forKey: .uuid)
        try c.encode(name, forKey: .name)
        if let text = String(validating: path, as: UTF8.self) {
            try c.encode(text, forKey: .path)
        } else {
            try c.encode(Data(path), forKey: .pathBytes)
        }
        try c.encodeIfPresent(volumeID, forKey: .volumeID)
        try c.encodeIfPresent(volumeIdentity, forKey: .volumeIdentity)
        try c.encode(indexContent, forKey: .indexContent)
        try c.encode(state, forKey: .state)
        try c.encodeIfPresent(stateReason, forKey: .stateReason)
        try c.encodeIfPresent(rootEntryID, forKey: .rootEntryID)
        try c.encode(scanEpoch, forKey: .scanEpoch)
        try c.encodeIfPresent(lastIndexedAt, forKey: .lastIndexedAt)
    }

    init(row: Row) {
        id = row["id"]
        uuid = row["uuid"]
        name = row["name"]
        path = [UInt8](row["path"] as Data)
        volumeID = row["volume_id"]
        volumeIdentity = row["volume_identity"]
        indexContent = row["index_content"]
        state = row["state"]
        stateReason = row["state_reason"]
        rootEntryID = row["root_entry_id"]
        scanEpoch = row["scan_epoch"]
        lastIndexedAt = row["last_indexed_at"]
    }
}

/// A volume as recorded in the library.
public struct VolumeRecord: Sendable, Codable {
    public var id: Int64
    public var uuid: String
    public var identity: String
    public var name: String
    public var mountPoint: String
    public var filesystem: String
    public var readOnly: Bool
    public var totalBytes: Int64?
    public var freeBytes: Int64?
    public var lastSeenAt: Int64
}

extension Library {
    public static func nowMilliseconds() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// This device's local row id.
    func deviceRowID(_ db: Database) throws -> Int64 {
        guard
            let id = try Int64.fetchOne(
                db,
                sql: "SELECT id FROM devices WHERE uuid = ?",
                arguments: [device.id.description]
            )
        else { throw LibraryError(.corrupt, "this device is not registered in '\(path)'") }
        return id
    }

    /// Records (or refreshes) a mounted volume; returns its row id.
    public func recordVolume(_ volume: MountedVolume) throws -> Int64 {
        try database.write { db in try Self.recordVolume(volume, db, device: try deviceRowID(db)) }
    }

    static func recordVolume(_ v: MountedVolume, _ db: Database, device: Int64) throws -> Int64 {
        let now = nowMilliseconds()
        let seq = try takeSyncSeq(db)
        try db.execute(
            sql: """
                INSERT INTO volumes (uuid, device_id, identity, name, mount_point, filesystem, read_only, total_bytes,
                                     free_bytes, last_seen_at, sync_seq)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(device_id, identity) DO UPDATE SET mount_point = excluded.mount_point,
                    filesystem = excluded.filesystem, read_only = excluded.read_only, total_bytes = excluded.total_bytes,
                    free_bytes = excluded.free_bytes, last_seen_at = excluded.last_seen_at, sync_seq = excluded.sync_seq
                """,
            arguments: [
                UUID().lowercased, device, v.identity,
                v.mountPoint == "/" ? "/" : (v.mountPoint as NSString).lastPathComponent,
                Data(v.mountPoint.utf8), v.filesystem, v.readOnly, Int64(v.totalBytes), Int64(v.freeBytes), now, seq,
            ]
        )
        return try Int64.fetchOne(
            db,
            sql: "SELECT id FROM volumes WHERE device_id = ? AND identity = ?",
            arguments: [device, v.identity]
        )!
    }

    public func fetchVolumes() throws -> [VolumeRecord] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM volumes ORDER BY mount_point").map { row in
                VolumeRecord(
                    id: row["id"],
                    uuid: row["uuid"],
                    identity: row["identity"],
                    name: row["name"],
                    mountPoint: String(decoding: [UInt8](row["mount_point"] as Data), as: UTF8.self),
                    filesystem: row["filesystem"],
                    readOnly: row["read_only"],
                    totalBytes: row["total_bytes"],
                    freeBytes: row["free_bytes"],
                    lastSeenAt: row["last_seen_at"]
                )
            }
        }
    }

    // MARK: - Locations

    /// Adds a folder to index. Nothing is read beyond the folder's own metadata until it is indexed.
    ///
    /// #### Errors
    /// `IndexError` `.badLocation` when the path is not a folder, is already a location, or lies inside
    /// (or contains) another location of this device.
    public func addLocation(path: [UInt8], name: String?, volume: MountedVolume?, indexContent: Bool = true) throws
        -> Location
    {
        let text = PathText.string(path)
        guard (try? Directory.stat(path))?.type == .directory else {
            throw IndexError(.badLocation, "'\(text)' is not a folder; give the path of a folder to index")
        }
        return try database.write { db in
            let device = try deviceRowID(db)
            for row in try Row.fetchAll(
                db,
                sql: "SELECT name, path FROM locations WHERE device_id = ?",
                arguments: [device]
            ) {
                let other = [UInt8](row["path"] as Data)
                let otherName: String = row["name"]
                if other == path {
                    throw IndexError(.badLocation, "'\(text)' is already location '\(otherName)'")
                }
                if Self.isInside(path, other) || Self.isInside(other, path) {
                    throw IndexError(
                        .badLocation,
                        "'\(text)' overlaps location '\(otherName)' (\(PathText.string(other))); locations must not nest"
                    )
                }
            }
            let volumeID = try volume.map { try Self.recordVolume($0, db, device: device) }
            let uuid = UUID().lowercased
            let locationName =
                name ?? ((text as NSString).lastPathComponent.isEmpty ? text : (text as NSString).lastPathComponent)
            try db.execute(
                sql: """
                    INSERT INTO locations (uuid, device_id, volume_id, volume_identity, name, path, index_content, created_at,
                        sync_seq)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    uuid, device, volumeID, volume?.identity, locationName, Data(path), indexContent,
                    Self.nowMilliseconds(), try Self.takeSyncSeq(db),
                ]
            )
            return try Location(
                row: Row.fetchOne(db, sql: "SELECT * FROM locations WHERE uuid = ?", arguments: [uuid])!
            )
        }
    }

    public static func isInside(_ path: [UInt8], _ folder: [UInt8]) -> Bool {
        let prefix = folder.last == 0x2F ? folder : folder + [0x2F]
        return path.count > prefix.count && Array(path[..<prefix.count]) == prefix
    }

    public func fetchLocations() throws -> [Location] {
        try database.read { db in
            // This device's own: other devices' locations (synced) are never indexed, watched or resolved as
            // local paths here.
            try Row.fetchAll(
                db,
                sql:
                    "SELECT * FROM locations WHERE device_id IS (SELECT self_device FROM sync_state WHERE id = 1) ORDER BY id"
            ).map(Location.init(row:))
        }
    }

    /// The locations of `device`: this device's own, or another's as synced from it (the library is shared with
    /// it), which are only browsed and searched here, never indexed or watched.
    public func fetchLocations(of device: DeviceID) throws -> [Location] {
        if device == self.device.id { return try fetchLocations() }
        return try database.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT l.* FROM locations l JOIN devices d ON d.id = l.device_id WHERE d.uuid = ? ORDER BY l.id",
                arguments: [device.description]
            ).map(Location.init(row:))
        }
    }

    /// The location named by its number, uuid, name or path.
    public func fetchLocation(_ key: String) throws -> Location? {
        try fetchLocations().first { "\($0.id)" == key || $0.uuid == key || $0.name == key || $0.pathString == key }
    }

    public func fetchLocation(id: Int64) throws -> Location? {
        try database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM locations WHERE id = ?", arguments: [id]).map(Location.init(row:))
        }
    }

    /// Removes a location and its index data (entries, queued analysis). Files on disk are not touched.
    /// Returns the number of entries removed.
    @discardableResult
    public func removeLocation(id: Int64) throws -> Int {
        let removed = try database.write { db in
            let count =
                try Int.fetchOne(db, sql: "SELECT count(*) FROM entries WHERE location_id = ?", arguments: [id]) ?? 0
            try db.execute(sql: "DELETE FROM scan_removals WHERE location_id = ?", arguments: [id])
            _ = try Self.takeSyncSeq(db)
            // Children first keeps the cascade shallow; one statement removes them all. The location's tombstone
            // stands for its entries (no tombstone each).
            try db.execute(sql: "UPDATE sync_state SET quiet = 1 WHERE id = 1")
            try db.execute(sql: "DELETE FROM entries WHERE location_id = ?", arguments: [id])
            try db.execute(sql: "UPDATE sync_state SET quiet = 0 WHERE id = 1")
            try db.execute(sql: "DELETE FROM locations WHERE id = ?", arguments: [id])
            try Self.removeOrphans(db)
            return count
        }
        try giveBackSpace()
        return removed
    }

    /// Removes what no entry uses any more: content identities whose last copy left the index (their tags,
    /// kept by content id, stay), and analysis tasks of entries gone.
    static func removeOrphans(_ db: Database) throws {
        // Only with the content index in place (an index run killed midway may have left it dropped): without
        // it each row would scan every entry.
        guard try Bool.fetchOne(db, sql: "SELECT 1 FROM sqlite_master WHERE name = 'entries_content'") == true
        else { return }
        try db.execute(
            sql: """
                DELETE FROM content_identities
                WHERE NOT EXISTS (SELECT 1 FROM entries e WHERE e.content_id = content_identities.id)
                """
        )
        try db.execute(
            sql:
                "DELETE FROM analysis_queue WHERE NOT EXISTS (SELECT 1 FROM entries e WHERE e.id = analysis_queue.entry_id)"
        )
    }

    /// Gives free pages back to the disk once they are over a quarter of the file: an incremental vacuum
    /// (libraries made since schema 11), or a full one that also turns incremental vacuuming on (older ones).
    func giveBackSpace() throws {
        let (mode, pages, free) = try database.read { db in
            (
                try Int.fetchOne(db, sql: "PRAGMA auto_vacuum") ?? 0,
                try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0,
                try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0
            )
        }
        guard free >= 64 && free * 4 > pages else { return }
        try database.writeWithoutTransaction { db in
            if mode == 2 {
                try db.execute(sql: "PRAGMA incremental_vacuum")
            } else {
                try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
                try db.execute(sql: "VACUUM")
            }
            try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
    }

    /// What removing a location forgets besides its entries: the shared metadata kept on them (by entry), and
    /// the tags kept on their contents, which stay (and come back when the location is added again).
    public func locationRemoval(id: Int64) throws -> LocationRemoval {
        try database.read { db in
            func one(_ sql: String) throws -> Int { try Int.fetchOne(db, sql: sql, arguments: [id]) ?? 0 }
            let inLocation = "JOIN entries e ON e.uuid = m.entry_uuid WHERE e.location_id = ?"
            let liveTags =
                "AND m.deleted = 0 AND EXISTS (SELECT 1 FROM tags t WHERE t.uuid = m.tag_uuid AND t.deleted = 0)"
            var removal = LocationRemoval(
                location: try String.fetchOne(db, sql: "SELECT name FROM locations WHERE id = ?", arguments: [id])
                    ?? "",
                entries: try one("SELECT count(*) FROM entries WHERE location_id = ?"),
                ratings: try one("SELECT count(*) FROM user_metadata m \(inLocation) AND m.rating IS NOT NULL"),
                favorites: try one("SELECT count(*) FROM user_metadata m \(inLocation) AND m.favorite = 1"),
                notes: try one("SELECT count(*) FROM user_metadata m \(inLocation) AND coalesce(m.note, '') != ''"),
                entryTags: try one("SELECT count(*) FROM entry_tags m \(inLocation) \(liveTags)"),
                contentTagged: try one(
                    """
                    SELECT count(DISTINCT e.id) FROM entries e JOIN content_tags m ON m.content_id = e.content_id
                    WHERE e.location_id = ? \(liveTags)
                    """
                ),
                examples: []
            )
            let ids = try Int64.fetchAll(
                db,
                sql: """
                    SELECT e.id FROM entries e WHERE e.location_id = ? AND (
                        EXISTS (SELECT 1 FROM user_metadata m WHERE m.entry_uuid = e.uuid
                            AND (m.rating IS NOT NULL OR m.favorite = 1 OR coalesce(m.note, '') != ''))
                        OR EXISTS (SELECT 1 FROM entry_tags m WHERE m.entry_uuid = e.uuid \(liveTags)))
                    ORDER BY e.id LIMIT 10
                    """,
                arguments: [id]
            )
            removal.examples = try ids.compactMap { try Self.entryPath(id: $0, db) }.map {
                PathText.string($0)
            }
            return removal
        }
    }
}

/// What removing a location forgets (`sd location remove` shows it and asks when metadata goes).
public struct LocationRemoval: Codable, Sendable, Equatable {
    public var location: String
    /// Index entries that go (files on disk are never touched).
    public var entries: Int
    /// Shared metadata kept on those entries, which goes with them.
    public var ratings: Int
    public var favorites: Int
    public var notes: Int
    /// Tags put on files and folders themselves (folder tags, and files not identified by content).
    public var entryTags: Int
    /// Files whose content carries tags: those stay, on the content, and are back when it is indexed again.
    public var contentTagged: Int
    /// Up to 10 paths whose metadata goes.
    public var examples: [String]

    /// Whether any metadata goes.
    public var losesMetadata: Bool { ratings + favorites + notes + entryTags > 0 }
}

extension Library {
    /// Marks a location online or offline (with the reason), without touching its entries.
    public func setLocationState(id: Int64, state: String, reason: String?) throws {
        try database.write { db in
            _ = try Self.takeSyncSeq(db)
            try db.execute(
                sql:
                    "UPDATE locations SET state = ?, state_reason = ?, sync_seq = (SELECT seq FROM sync_state WHERE id = 1) WHERE id = ?",
                arguments: [state, reason, id]
            )
        }
    }
}

/// Why indexing could not go on, with what to do.
public struct IndexError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable {
        let name: String
        public static let badLocation = Code(name: "badLocation")
        public static let offline = Code(name: "offline")
        public static let massDelete = Code(name: "massDelete")
        public static let notFound = Code(name: "notFound")
        public static let notIndexed = Code(name: "notIndexed")
        public static let busy = Code(name: "busy")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// A location held for writing by one process (an index run, or a watcher): released when this object goes.
public final class LocationLock {
    let lock: FileLock
    init(_ lock: consuming FileLock) { self.lock = lock }
}

extension Library {
    /// Takes the location's writer lock without waiting: one process at a time indexes or watches a location.
    ///
    /// #### Errors
    /// `IndexError.busy` when another process holds it.
    public func lockLocation(_ location: Location) throws -> LocationLock {
        let folder = "\(path)/locks"
        try FileSystem.makeDirectories(folder, mode: 0o700)
        do {
            return LocationLock(
                try FileLock(path: "\(folder)/location-\(location.uuid).lock", mode: .exclusive, wait: false)
            )
        } catch {
            if error.isWouldBlock {
                throw IndexError(
                    .busy,
                    "location '\(location.name)' is being indexed or watched by another sd process (`sd watch` keeps it current; stop it to run `sd index`)"
                )
            }
            throw error
        }
    }
}
