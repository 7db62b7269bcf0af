import Foundation
import GRDB
import SDCore
import SDSystem

/// One folder as the walker read it: its listing, or why it could not be read.
public struct FolderListing: Sendable {
    /// The walker's number for this folder (the root is 0); children folders get theirs in `childKeys`.
    public var key: Int
    public var path: [UInt8]
    public var entries: [RawEntry]
    /// For each entry that is a folder, its index in `entries` and the key the walker gave it.
    public var childKeys: [(index: Int, key: Int)]
    public var error: SystemError?

    public init(key: Int, path: [UInt8], entries: [RawEntry], childKeys: [(index: Int, key: Int)], error: SystemError?)
    {
        self.key = key
        self.path = path
        self.entries = entries
        self.childKeys = childKeys
        self.error = error
    }
}

/// What processing a scan found.
public struct ScanCounts: Sendable, Codable, Equatable {
    public var listed = 0
    public var inserted = 0
    public var updated = 0
    public var unchanged = 0
    public var unreadableFolders = 0
    public init() {}
}

/// The end of a scan's processing phase: what was removed or recognised as moved.
public struct RemovalSummary: Sendable, Codable, Equatable {
    public var removed = 0
    public var moved = 0
    public init() {}
}

/// Writes a scan's folder listings into the library: the processing phase. Used from one thread.
///
/// For each folder it compares the listing with the rows already there: unchanged rows are not written,
/// changed ones are updated (their content id cleared when the content may have changed), new ones inserted
/// with fresh UUIDs, and rows no longer listed are recorded in `scan_removals`, resolved by `finish` once the
/// whole walk is done (a file moved elsewhere in the location then keeps its UUID, tags and content id).
public final class ScanWriter {
    let library: Library
    public let location: Location
    public let epoch: Int64
    let deviceRow: Int64
    /// Walker folder key -> entry id.
    var folderIDs: [Int: Int64] = [:]
    /// Folders inserted by this process: they have no older children to compare with.
    var freshFolders: Set<Int64> = []
    public private(set) var counts = ScanCounts()

    /// Starts (or resumes) a scan of `location`: `resumeEpoch` continues an interrupted scan.
    public init(library: Library, location: Location, resumeEpoch: Int64?) throws {
        self.library = library
        let root = try Directory.stat(location.path)
        var location = location
        let (epoch, device, rootID) = try library.database.write { db -> (Int64, Int64, Int64) in
            let device = try library.deviceRowID(db)
            let epoch = resumeEpoch ?? location.scanEpoch + 1
            var rootID = location.rootEntryID
            if let id = rootID, try Int.fetchOne(db, sql: "SELECT 1 FROM entries WHERE id = ?", arguments: [id]) == nil
            {
                rootID = nil
            }
            if let id = rootID {
                try db.execute(
                    sql:
                        "UPDATE entries SET mtime_ns = ?, ctime_ns = ?, inode = ?, mode = ?, error = NULL WHERE id = ?",
                    arguments: [
                        root.mtimeNanoseconds, root.ctimeNanoseconds, Int64(bitPattern: root.inode), Int64(root.mode),
                        id,
                    ]
                )
            } else {
                var rootEntry = root
                rootEntry.name = location.path
                var generator = EntryUUIDGenerator()
                rootID = try Self.insert(
                    rootEntry,
                    uuid: generator.next(),
                    parent: nil,
                    location: location.id,
                    device: device,
                    epoch: epoch,
                    db
                )
            }
            try db.execute(
                sql: "UPDATE locations SET scan_epoch = ?, root_entry_id = ? WHERE id = ?",
                arguments: [epoch, rootID, location.id]
            )
            return (epoch, device, rootID!)
        }
        location.scanEpoch = epoch
        location.rootEntryID = rootID
        self.location = location
        self.epoch = epoch
        self.deviceRow = device
        folderIDs[0] = rootID
    }

    // MARK: - Processing

    /// Applies listings in one transaction. A folder's listing must come after its parent's (the walker
    /// guarantees it: a folder is only found by listing its parent).
    ///
    /// #### Implementation details
    /// Foreign-key enforcement is off for these transactions only (the pragma cannot change inside a
    /// transaction, so it is set around each one on the writer connection): every row's parent is inserted
    /// before it by construction, and the checks were a fifth of SQLite's time per inserted row.
    public func apply(_ listings: [FolderListing]) throws {
        try library.database.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA foreign_keys = OFF")
            defer { try? db.execute(sql: "PRAGMA foreign_keys = ON") }
            try db.inTransaction {
                for listing in listings { try apply(listing, db) }
                return .commit
            }
        }
    }

    struct Existing {
        var id: Int64
        var type: Int64
        var size: Int64
        var inode: Int64
        var mtime: Int64
        var ctime: Int64
        var mode: Int64
        var links: Int64
        var deviceNumber: Int64
        var hadError: Bool
    }

    private func apply(_ listing: FolderListing, _ db: Database) throws {
        guard let folderID = folderIDs[listing.key] else {
            preconditionFailure("BUG: listing of folder \(listing.key) arrived before its parent's")
        }
        folderIDs[listing.key] = nil
        if let error = listing.error {
            // Unreadable is not empty: keep what is known below it, and say why it is stale.
            counts.unreadableFolders += 1
            try db.cachedStatement(sql: "UPDATE entries SET error = ? WHERE id = ?")
                .execute(arguments: [error.description, folderID])
            return
        }
        var existing: [Data: Existing] = [:]
        if !freshFolders.contains(folderID) {
            let rows = try db.cachedStatement(
                sql: """
                    SELECT id, name, type, size, inode, mtime_ns, ctime_ns, mode, link_count, device_number, error
                    FROM entries WHERE parent_id = ?
                    """
            )
            for row in try Row.fetchAll(rows, arguments: [folderID]) {
                existing[row[1]] = Existing(
                    id: row[0],
                    type: row[2],
                    size: row[3],
                    inode: row[4] ?? 0,
                    mtime: row[5] ?? 0,
                    ctime: row[6] ?? 0,
                    mode: row[7] ?? 0,
                    links: row[8] ?? 0,
                    deviceNumber: row[9] ?? 0,
                    hadError: row[10] != nil
                )
            }
            try db.cachedStatement(sql: "UPDATE entries SET error = NULL WHERE id = ? AND error IS NOT NULL")
                .execute(arguments: [folderID])
        }
        // The insert statement is looked up once per folder: GRDB's statement cache hashes the SQL text,
        // which per row was a measurable share of the writer's time.
        let insertStatement = try db.cachedStatement(sql: Self.insertSQL)
        var nextChild = 0
        for (index, entry) in listing.entries.enumerated() {
            counts.listed += 1
            var id: Int64
            if !existing.isEmpty, let old = existing.removeValue(forKey: Data(entry.name)) {
                id = old.id
                try update(old, with: entry, db)
            } else {
                id = try Self.insert(
                    entry,
                    uuid: uuids.next(),
                    parent: folderID,
                    location: location.id,
                    device: deviceRow,
                    epoch: epoch,
                    statement: insertStatement,
                    db
                )
                counts.inserted += 1
                if entry.type == .directory { freshFolders.insert(id) }
            }
            // childKeys are in listing order.
            if nextChild < listing.childKeys.count && listing.childKeys[nextChild].index == index {
                folderIDs[listing.childKeys[nextChild].key] = id
                nextChild += 1
            }
        }
        if !existing.isEmpty {
            let record = try db.cachedStatement(
                sql: "INSERT OR IGNORE INTO scan_removals (entry_id, location_id) VALUES (?, ?)"
            )
            for old in existing.values { try record.execute(arguments: [old.id, location.id]) }
        }
    }

    private func update(_ old: Existing, with entry: RawEntry, _ db: Database) throws {
        let size = entry.type == .directory ? 0 : Int64(entry.size)
        let inode = Int64(bitPattern: entry.inode)
        let same =
            old.type == Int64(entry.type.rawValue) && old.size == size && old.inode == inode
            && old.mtime == entry.mtimeNanoseconds && old.ctime == entry.ctimeNanoseconds
            && old.mode == Int64(entry.mode) && old.links == Int64(entry.linkCount)
            && old.deviceNumber == Int64(bitPattern: entry.device) && !old.hadError && entry.error == nil
        if same {
            counts.unchanged += 1
            return
        }
        counts.updated += 1
        // The content may have changed only if these did; a chmod or a new hard link keeps the content id.
        let contentMayHaveChanged =
            old.type != Int64(entry.type.rawValue) || old.size != size || old.inode != inode
            || old.mtime != entry.mtimeNanoseconds || entry.error != nil || old.hadError
        let sql =
            contentMayHaveChanged
            ? """
            UPDATE entries SET type = ?, size = ?, inode = ?, device_number = ?, mode = ?, link_count = ?, mtime_ns = ?,
                ctime_ns = ?, symlink_target = ?, error = ?, content_id = NULL, mime = NULL WHERE id = ?
            """
            : """
            UPDATE entries SET type = ?, size = ?, inode = ?, device_number = ?, mode = ?, link_count = ?, mtime_ns = ?,
                ctime_ns = ?, symlink_target = ?, error = ? WHERE id = ?
            """
        try db.cachedStatement(sql: sql).execute(arguments: [
            Int64(entry.type.rawValue), size, inode, Int64(bitPattern: entry.device), Int64(entry.mode),
            Int64(entry.linkCount), entry.mtimeNanoseconds, entry.ctimeNanoseconds,
            entry.symlinkTarget.map { Data($0) },
            entry.error?.description, old.id,
        ])
    }

    static let insertSQL = """
        INSERT INTO entries (uuid, device_id, location_id, parent_id, name, type, category, size, inode,
            device_number, mode, link_count, mtime_ns, ctime_ns, symlink_target, added_epoch, error)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """

    static func insert(
        _ entry: RawEntry,
        uuid: [UInt8],
        parent: Int64?,
        location: Int64,
        device: Int64,
        epoch: Int64,
        statement: Statement? = nil,
        _ db: Database
    ) throws -> Int64 {
        let category: String?
        switch entry.type {
        case .directory: category = FileCategory.folder.rawValue
        case .regular: category = entry.name.withUnsafeBytes { FileKinds.kind(forName: $0).kind?.category.rawValue }
        default: category = nil
        }
        let insert = RawStatement(try statement ?? db.cachedStatement(sql: insertSQL), db)
        insert.bind(1, bytes: uuid)
        insert.bind(2, device)
        insert.bind(3, location)
        insert.bind(4, parent)
        insert.bind(5, bytes: entry.name)
        insert.bind(6, Int64(entry.type.rawValue))
        insert.bind(7, text: category)
        insert.bind(8, entry.type == .directory ? 0 : Int64(entry.size))
        insert.bind(9, Int64(bitPattern: entry.inode))
        insert.bind(10, Int64(bitPattern: entry.device))
        insert.bind(11, Int64(entry.mode))
        insert.bind(12, Int64(entry.linkCount))
        insert.bind(13, entry.mtimeNanoseconds)
        insert.bind(14, entry.ctimeNanoseconds)
        insert.bind(15, bytes: entry.symlinkTarget)
        insert.bind(16, epoch)
        insert.bind(17, text: entry.error?.description)
        try insert.run()
        return db.lastInsertedRowID
    }

    var uuids = EntryUUIDGenerator()

    // MARK: - End of processing

    /// Resolves the entries this scan did not find again: an entry whose (device, inode) now appears as a
    /// new entry elsewhere in the location was moved, and the new entry takes over its UUID, content id and
    /// first-seen epoch (tags follow the UUID); the rest are removed with everything below them.
    ///
    /// #### Errors
    /// `IndexError.massDelete` when more than half of the location's entries, or more than 10,000, would go,
    /// unless `allowMassDelete`: nothing is removed, and the next scan with the flag proceeds.
    public func finish(allowMassDelete: Bool) throws -> RemovalSummary {
        try library.database.write { db in
            var summary = RemovalSummary()
            let gone = try Row.fetchAll(
                db,
                sql: """
                    WITH RECURSIVE gone(id) AS (
                        SELECT entry_id FROM scan_removals WHERE location_id = ?
                        UNION SELECT e.id FROM entries e JOIN gone g ON e.parent_id = g.id)
                    SELECT e.id, e.uuid, e.inode, e.device_number, e.type, e.size, e.mtime_ns, e.content_id, e.added_epoch
                    FROM gone JOIN entries e ON e.id = gone.id
                    """,
                arguments: [location.id]
            )
            guard !gone.isEmpty else { return summary }
            let total =
                try Int.fetchOne(
                    db,
                    sql: "SELECT count(*) FROM entries WHERE location_id = ?",
                    arguments: [location.id]
                ) ?? 0
            if !allowMassDelete && (gone.count > 10_000 || gone.count * 2 > total) {
                throw IndexError(
                    .massDelete,
                    "this scan would remove \(gone.count) of \(total) entries of location '\(location.name)'. Nothing was removed: if the files really are gone, run again with --allow-mass-delete; if a disk is missing, reconnect it first"
                )
            }
            let goneIDs = Set(gone.map { $0["id"] as Int64 })
            // Moves: the same file (device, inode, type) appearing as a new entry of this scan. Load this scan's
            // new entries once, keyed by (device, inode), rather than keep an inode index for this rare step.
            struct Candidate {
                var id: Int64
                var type: Int64
                var size: Int64
                var mtime: Int64?
            }
            var fresh: [String: [Candidate]] = [:]
            let newRows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT id, inode, device_number, type, size, mtime_ns FROM entries
                    WHERE location_id = ? AND added_epoch = ?
                    """,
                arguments: [location.id, epoch]
            )
            while let row = try newRows.next() {
                let id: Int64 = row[0]
                guard !goneIDs.contains(id), let inode: Int64 = row[1], let dev: Int64 = row[2] else { continue }
                fresh["\(dev):\(inode)", default: []].append(
                    Candidate(id: id, type: row[3], size: row[4], mtime: row[5])
                )
            }
            var transfers: [(to: Int64, uuid: Data, content: Int64?, epoch: Int64)] = []
            var taken: Set<Int64> = []
            for row in gone {
                guard let inode: Int64 = row["inode"], let dev: Int64 = row["device_number"] else { continue }
                let type: Int64 = row["type"]
                let matches = (fresh["\(dev):\(inode)"] ?? []).filter { $0.type == type && !taken.contains($0.id) }
                guard matches.count == 1, let target = matches.first else { continue }
                let sameContent = target.size == (row["size"] as Int64) && target.mtime == (row["mtime_ns"] as Int64?)
                // A rename keeps a file's size and mtime; a new file that got a freed inode does not.
                if type == Int64(FileType.regular.rawValue) && !sameContent { continue }
                taken.insert(target.id)
                transfers.append((target.id, row["uuid"], sameContent ? row["content_id"] : nil, row["added_epoch"]))
            }
            // Remove first (freeing the UUIDs), then hand them to the moved entries.
            try db.execute(
                sql: """
                    DELETE FROM entries WHERE id IN (SELECT entry_id FROM scan_removals WHERE location_id = ?)
                    """,
                arguments: [location.id]
            )
            try db.execute(sql: "DELETE FROM scan_removals WHERE location_id = ?", arguments: [location.id])
            let move = try db.cachedStatement(
                sql: "UPDATE entries SET uuid = ?, content_id = coalesce(?, content_id), added_epoch = ? WHERE id = ?"
            )
            for t in transfers { try move.execute(arguments: [t.uuid, t.content, t.epoch, t.to]) }
            summary.moved = transfers.count
            summary.removed = gone.count - transfers.count
            return summary
        }
    }
}

/// Makes entry UUIDs in the version 7 layout: 48 bits of Unix milliseconds, then random bits. Time-ordered
/// keys go to the end of the UUID index instead of random places in it, which made random (v4) UUIDs the
/// costliest part of inserting a million entries. The random bits come from a xoshiro256** generator seeded
/// once from the system's random source: unique, not secret (a UUID is an identity, not a credential).
struct EntryUUIDGenerator {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    init() {
        var system = SystemRandomNumberGenerator()
        s = (system.next(), system.next(), system.next(), system.next() | 1)
    }

    private mutating func nextRandom() -> UInt64 {
        let result = rotl(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = rotl(s.3, 45)
        return result
    }

    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    mutating func next() -> [UInt8] {
        let millis = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
        let random = nextRandom(), random2 = nextRandom()
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<6 { bytes[i] = UInt8(truncatingIfNeeded: millis >> UInt64(40 - 8 * i)) }
        for i in 6..<8 { bytes[i] = UInt8(truncatingIfNeeded: random >> UInt64(8 * i)) }
        for i in 8..<16 { bytes[i] = UInt8(truncatingIfNeeded: random2 >> UInt64(8 * (i - 8))) }
        bytes[6] = (bytes[6] & 0x0F) | 0x70  // version 7
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 4122 variant
        return bytes
    }
}
