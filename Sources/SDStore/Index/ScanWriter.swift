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
                rootID = try Self.insert(
                    rootEntry,
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
    public func apply(_ listings: [FolderListing]) throws {
        try library.database.write { db in
            for listing in listings { try apply(listing, db) }
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
        var childKey: [Int: Int] = [:]
        for (index, key) in listing.childKeys { childKey[index] = key }
        for (index, entry) in listing.entries.enumerated() {
            counts.listed += 1
            let name = Data(entry.name)
            var id: Int64
            if let old = existing.removeValue(forKey: name) {
                id = old.id
                try update(old, with: entry, db)
            } else {
                id = try Self.insert(
                    entry,
                    parent: folderID,
                    location: location.id,
                    device: deviceRow,
                    epoch: epoch,
                    db
                )
                counts.inserted += 1
                if entry.type == .directory { freshFolders.insert(id) }
            }
            if let key = childKey[index] { folderIDs[key] = id }
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

    static func insert(_ entry: RawEntry, parent: Int64?, location: Int64, device: Int64, epoch: Int64, _ db: Database)
        throws -> Int64
    {
        let category: String?
        switch entry.type {
        case .directory: category = FileCategory.folder.rawValue
        case .regular: category = entry.name.withUnsafeBytes { FileKinds.kind(forName: $0).kind?.category.rawValue }
        default: category = nil
        }
        try db.cachedStatement(
            sql: """
                INSERT INTO entries (uuid, device_id, location_id, parent_id, name, type, category, size, inode,
                    device_number, mode, link_count, mtime_ns, ctime_ns, symlink_target, added_epoch, error)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            newEntryUUID(), device, location, parent, Data(entry.name), Int64(entry.type.rawValue), category,
            entry.type == .directory ? 0 : Int64(entry.size), Int64(bitPattern: entry.inode),
            Int64(bitPattern: entry.device), Int64(entry.mode), Int64(entry.linkCount), entry.mtimeNanoseconds,
            entry.ctimeNanoseconds, entry.symlinkTarget.map { Data($0) }, epoch, entry.error?.description,
        ])
        return db.lastInsertedRowID
    }

    /// 16 random bytes, shaped as a version 4 UUID.
    static func newEntryUUID() -> Data {
        var rng = SystemRandomNumberGenerator()
        var bytes = withUnsafeBytes(of: (rng.next() as UInt64, rng.next() as UInt64)) { Array($0) }
        bytes[6] = (bytes[6] & 0x0F) | 0x40  // version 4
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 4122 variant
        return Data(bytes)
    }

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
            // Moves: the same file (device, inode, type) appearing as a new entry of this scan.
            let candidates = try db.cachedStatement(
                sql: """
                    SELECT id FROM entries WHERE inode = ? AND device_number = ? AND type = ? AND location_id = ?
                    AND added_epoch = ?
                    """
            )
            var transfers: [(to: Int64, uuid: Data, content: Int64?, epoch: Int64)] = []
            var taken: Set<Int64> = []
            for row in gone {
                let matches = try Int64.fetchAll(
                    candidates,
                    arguments: [row["inode"], row["device_number"], row["type"], location.id, epoch]
                ).filter { !goneIDs.contains($0) && !taken.contains($0) }
                guard matches.count == 1, let target = matches.first else { continue }
                let sameContent =
                    try Row.fetchOne(
                        db,
                        sql: "SELECT size, mtime_ns FROM entries WHERE id = ?",
                        arguments: [target]
                    ).map {
                        ($0["size"] as Int64) == (row["size"] as Int64)
                            && ($0["mtime_ns"] as Int64?) == (row["mtime_ns"] as Int64?)
                    } ?? false
                // A rename keeps a file's size and mtime; a new file that got a freed inode does not.
                let isFile = (row["type"] as Int64) == Int64(FileType.regular.rawValue)
                if isFile && !sameContent { continue }
                taken.insert(target)
                transfers.append((target, row["uuid"], sameContent ? row["content_id"] : nil, row["added_epoch"]))
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
