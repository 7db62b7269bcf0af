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
    /// The folder's own metadata, read just before its listing (so a change after the listing shows as a newer
    /// mtime, never an older one).
    public var selfStat: RawEntry?

    public init(
        key: Int,
        path: [UInt8],
        entries: [RawEntry],
        childKeys: [(index: Int, key: Int)],
        error: SystemError?,
        selfStat: RawEntry? = nil
    ) {
        self.key = key
        self.path = path
        self.entries = entries.filter { !Self.isPrivate($0.name) }
        self.childKeys = childKeys
        self.error = error
        self.selfStat = selfStat
    }

    /// sd's own files among the user's, never indexed: a copy's hidden temporaries (`.sd-part-...`) and the
    /// trash folders on other filesystems (`.sd-trash-UID`), library folders (`NAME.sdlibrary`).
    public static func isPrivate(_ name: [UInt8]) -> Bool {
        name.starts(with: partPrefix) || name.starts(with: trashPrefix) || isLibraryFolder(name)
    }

    /// A library's folder (`NAME.sdlibrary`), or one being made, backed up, restored or kept aside by a restore
    /// (`.NAME.sdlibrary.creating-...`, `.backup-`, `.restoring-`, `NAME.sdlibrary.before-restore-...`): sd's
    /// own, never indexed nor acted on.
    public static func isLibraryFolder(_ name: [UInt8]) -> Bool {
        name.count > libraryExtension.count
            && (name.suffix(libraryExtension.count).elementsEqual(libraryExtension)
                || name.firstRange(of: libraryExtension + [0x2E]) != nil)
    }

    static let libraryExtension = Array(".sdlibrary".utf8)

    public static let partPrefix = Array(".sd-part-".utf8)
    public static let trashPrefix = Array(".sd-trash-".utf8)
}

/// A change to apply to a watched location, as the watcher or offline recovery saw it.
public enum FolderChange: Sendable {
    /// Read the folder's whole listing again and compare it with the index.
    case relist(folder: Int64)
    /// Look at these children of the folder again (stat each: present, changed, or gone).
    case names(folder: Int64, [[UInt8]])
    /// A rename seen as a pair of events (same cookie): the entry keeps its id, UUID, content id and subtree.
    case rename(fromFolder: Int64, fromName: [UInt8], toFolder: Int64, toName: [UInt8])
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
///
/// In live mode (`init(live:location:)`, for the watcher and offline recovery) it also applies targeted
/// changes (`FolderChange`), and remembers what it touched: the entries it inserted (move candidates), the
/// files whose content must be identified, the folders whose aggregates must be recomputed, and the new
/// folders to walk and watch.
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
    /// Live mode: tracks what it touches (below) and refreshes folders' own rows from their `selfStat`.
    public let live: Bool
    /// Live mode: entries inserted (candidates for move detection in `finish`).
    public private(set) var inserted: [Int64] = []
    /// Live mode: files inserted or changed, whose content id is to be computed.
    public private(set) var contentPending: Set<Int64> = []
    /// Live mode: folders whose children changed (their aggregates, and their ancestors', need recomputing).
    public private(set) var touchedFolders: Set<Int64> = []
    /// Live mode: folders inserted (or turned into folders) with their paths: to watch.
    public private(set) var newFolders: [(id: Int64, path: [UInt8])] = []
    /// Live mode: folders found by `applyChanges` whose contents are not in the index yet: to walk.
    public private(set) var foldersToWalk: [(id: Int64, path: [UInt8])] = []

    /// An mtime recorded for a folder whose own listing has not been applied yet: offline recovery then lists it
    /// again, whatever its real mtime (a crash between inserting a folder and listing it loses nothing).
    static let unlistedMtime: Int64 = -1

    /// Starts a scan of `location` at `epoch`; `resuming` continues an interrupted scan of that epoch (whose
    /// recorded removals are kept), otherwise removals left by an earlier, refused or failed scan are dropped.
    public init(library: Library, location: Location, epoch: Int64, resuming: Bool) throws {
        self.library = library
        self.live = false
        let root = try Directory.stat(location.path)
        var location = location
        let (epoch, device, rootID) = try library.database.write { db -> (Int64, Int64, Int64) in
            let device = try library.deviceRowID(db)
            let seq = try Library.takeSyncSeq(db)
            if !resuming {
                try db.execute(sql: "DELETE FROM scan_removals WHERE location_id = ?", arguments: [location.id])
            }
            var rootID = location.rootEntryID
            if let id = rootID, try Int.fetchOne(db, sql: "SELECT 1 FROM entries WHERE id = ?", arguments: [id]) == nil
            {
                rootID = nil
            }
            if let id = rootID {
                try db.execute(
                    sql:
                        "UPDATE entries SET mtime_ns = ?, ctime_ns = ?, inode = ?, mode = ?, error = NULL, sync_seq = (SELECT seq FROM sync_state WHERE id = 1) WHERE id = ?",
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
                    seq: seq,
                    db
                )
            }
            try db.execute(
                sql:
                    "UPDATE locations SET scan_epoch = ?, root_entry_id = ?, sync_seq = (SELECT seq FROM sync_state WHERE id = 1) WHERE id = ?",
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

    /// A writer for targeted changes to an indexed location, at its current epoch.
    ///
    /// #### Errors
    /// `IndexError.notIndexed` when the location has no root entry yet (index it first).
    public init(live library: Library, location: Location) throws {
        self.library = library
        self.live = true
        guard let current = try library.fetchLocation(id: location.id), current.rootEntryID != nil else {
            throw IndexError(.notIndexed, "location '\(location.name)' has not been indexed yet; run `sd index`")
        }
        self.location = current
        self.epoch = current.scanEpoch
        self.deviceRow = try library.database.write { db in
            // Removals left by a batch that was interrupted are stale: what is gone will be seen gone again.
            try db.execute(sql: "DELETE FROM scan_removals WHERE location_id = ?", arguments: [current.id])
            return try library.deviceRowID(db)
        }
    }

    /// Applies targeted changes in one transaction (live mode), in order: renames first move entries (with
    /// their subtrees), then named children are looked at again and folders relisted. Folders found whose
    /// contents are not indexed yet are left in `foldersToWalk`; removals wait for `finish`.
    ///
    /// A change naming a folder that is no longer in the index is skipped (its parent's change covers it).
    public func applyChanges(_ changes: [FolderChange]) throws {
        precondition(live, "applyChanges is for live writers")
        try library.database.write { db in
            seq = try Library.takeSyncSeq(db)
            var paths: [Int64: [UInt8]] = [:]
            func path(_ id: Int64) throws -> [UInt8]? {
                if let known = paths[id] { return known }
                guard
                    let row = try Row.fetchOne(
                        db,
                        sql: "SELECT parent_id, name, location_id, type FROM entries WHERE id = ?",
                        arguments: [id]
                    ), (row[2] as Int64) == location.id, (row[3] as Int64) == Int64(FileType.directory.rawValue)
                else { return nil }
                let result: [UInt8]
                if let parent: Int64 = row[0] {
                    guard let up = try path(parent) else { return nil }
                    result = up + [0x2F] + [UInt8](row[1] as Data)
                } else {
                    result = location.path
                }
                paths[id] = result
                return result
            }
            for change in changes {
                switch change {
                case .rename(let fromFolder, let fromName, let toFolder, let toName):
                    guard let toPath = try path(toFolder) else { continue }
                    if try path(fromFolder) != nil,
                        let moving = try Int64.fetchOne(
                            db,
                            sql: "SELECT id FROM entries WHERE parent_id = ? AND name = ?",
                            arguments: [fromFolder, Data(fromName)]
                        )
                    {
                        // A rename over an existing entry replaces it (and everything below it).
                        try db.execute(
                            sql: "DELETE FROM entries WHERE parent_id = ? AND name = ? AND id != ?",
                            arguments: [toFolder, Data(toName), moving]
                        )
                        try db.execute(
                            sql:
                                "UPDATE entries SET parent_id = ?, name = ?, sync_seq = (SELECT seq FROM sync_state WHERE id = 1) WHERE id = ?",
                            arguments: [toFolder, Data(toName), moving]
                        )
                        counts.updated += 1
                        touchedFolders.insert(fromFolder)
                        touchedFolders.insert(toFolder)
                        // Folder paths below the moved entry changed.
                        paths = [:]
                    }
                    try refreshNames([toName], in: toFolder, path: toPath, db)
                case .names(let folder, let names):
                    guard let folderPath = try path(folder) else { continue }
                    try refreshNames(names, in: folder, path: folderPath, db)
                case .relist(let folder):
                    guard let folderPath = try path(folder) else { continue }
                    try relist(folder, path: folderPath, db)
                }
            }
            try Library.catchUpSearchIfSmall(db)
        }
    }

    /// Looks at some children of a folder again: each one present is merged, each one gone is recorded as a
    /// removal. The folder's own row is refreshed first (its stat read before its children's).
    private func refreshNames(_ names: [[UInt8]], in folder: Int64, path: [UInt8], _ db: Database) throws {
        guard let selfStat = try? Directory.stat(path), selfStat.type == .directory else { return }
        var present: [RawEntry] = []
        var gone: [[UInt8]] = []
        for name in Set(names) where !FolderListing.isPrivate(name) {
            do {
                var entry = try Directory.stat(path + [0x2F] + name)
                entry.name = name
                present.append(entry)
            } catch {
                if error.isNotFound {
                    gone.append(name)
                } else {
                    present.append(RawEntry(name: name, type: .unknown, error: error))
                }
            }
        }
        try refreshFolder(folder, with: selfStat, db)
        _ = try merge(folderID: folder, path: path, entries: present, complete: false, walkNewFolders: true, db)
        if !gone.isEmpty {
            let known = try existingChildren(of: folder, named: gone, db)
            try recordRemovals(known.values.map(\.id), parent: folder, db)
        }
    }

    /// Reads a folder's whole listing again and merges it (live mode).
    private func relist(_ folder: Int64, path: [UInt8], _ db: Database) throws {
        guard let selfStat = try? Directory.stat(path), selfStat.type == .directory else { return }
        let entries: [RawEntry]
        do {
            entries = try Directory.list(path).filter { !FolderListing.isPrivate($0.name) }
        } catch {
            if error.isNotFound { return }
            counts.unreadableFolders += 1
            try db.cachedStatement(
                sql: "UPDATE entries SET error = ?, sync_seq = (SELECT seq FROM sync_state WHERE id = 1) WHERE id = ?"
            )
            .execute(arguments: [error.description, folder])
            return
        }
        try refreshFolder(folder, with: selfStat, db)
        try db.cachedStatement(
            sql:
                "UPDATE entries SET error = NULL, sync_seq = (SELECT seq FROM sync_state WHERE id = 1) WHERE id = ? AND error IS NOT NULL"
        )
        .execute(arguments: [folder])
        _ = try merge(folderID: folder, path: path, entries: entries, complete: true, walkNewFolders: true, db)
    }

    /// Anchors walker key `key` at an existing folder entry (the roots of a walk of new folders).
    public func seed(key: Int, folderID: Int64) {
        folderIDs[key] = folderID
        freshFolders.insert(folderID)
    }

    /// Forgets the folders to walk and watch (the caller has taken them).
    public func takeNewFolders() -> (walk: [(id: Int64, path: [UInt8])], watch: [(id: Int64, path: [UInt8])]) {
        defer {
            foldersToWalk = []
            newFolders = []
        }
        return (foldersToWalk, newFolders)
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
                seq = try Library.takeSyncSeq(db)
                for listing in listings { try apply(listing, db) }
                // Live changes are searchable in the transaction that makes them.
                if live { try Library.catchUpSearchIfSmall(db) }
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
            try db.cachedStatement(
                sql: "UPDATE entries SET error = ?, sync_seq = (SELECT seq FROM sync_state WHERE id = 1) WHERE id = ?"
            )
            .execute(arguments: [error.description, folderID])
            return
        }
        let ids = try merge(
            folderID: folderID,
            path: listing.path,
            entries: listing.entries,
            complete: true,
            walkNewFolders: false,
            db
        )
        for (index, key) in listing.childKeys { folderIDs[key] = ids[index] }
        if live, let selfStat = listing.selfStat { try refreshFolder(folderID, with: selfStat, db) }
    }

    /// The index's rows for a folder's children: all of them, or only those named.
    private func existingChildren(of folderID: Int64, named names: [[UInt8]]?, _ db: Database) throws -> [Data:
        Existing]
    {
        var existing: [Data: Existing] = [:]
        func add(_ row: Row) {
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
        let columns = "id, name, type, size, inode, mtime_ns, ctime_ns, mode, link_count, device_number, error"
        if let names {
            let one = try db.cachedStatement(sql: "SELECT \(columns) FROM entries WHERE parent_id = ? AND name = ?")
            for name in names {
                if let row = try Row.fetchOne(one, arguments: [folderID, Data(name)]) { add(row) }
            }
        } else {
            let rows = try db.cachedStatement(sql: "SELECT \(columns) FROM entries WHERE parent_id = ?")
            for row in try Row.fetchAll(rows, arguments: [folderID]) { add(row) }
        }
        return existing
    }

    /// Compares `entries` (children of the folder at `path`) with the index: unchanged rows are left alone,
    /// changed ones updated, new ones inserted. When `complete`, children the listing lacks are recorded as
    /// removals. Returns each entry's id, in order.
    private func merge(
        folderID: Int64,
        path: [UInt8],
        entries: [RawEntry],
        complete: Bool,
        walkNewFolders: Bool,
        _ db: Database
    ) throws -> [Int64] {
        var existing: [Data: Existing] = [:]
        if !complete {
            existing = try existingChildren(of: folderID, named: entries.map(\.name), db)
        } else if !freshFolders.contains(folderID) {
            existing = try existingChildren(of: folderID, named: nil, db)
            try db.cachedStatement(
                sql:
                    "UPDATE entries SET error = NULL, sync_seq = (SELECT seq FROM sync_state WHERE id = 1) WHERE id = ? AND error IS NOT NULL"
            )
            .execute(arguments: [folderID])
        }
        // The insert statement is looked up once per folder: GRDB's statement cache hashes the SQL text,
        // which per row was a measurable share of the writer's time.
        let insertStatement = try db.cachedStatement(sql: Self.insertSQL)
        var ids: [Int64] = []
        ids.reserveCapacity(entries.count)
        for entry in entries {
            counts.listed += 1
            let id: Int64
            if !existing.isEmpty, let old = existing.removeValue(forKey: Data(entry.name)) {
                id = old.id
                if try update(old, with: entry, db) {
                    if live { touchedFolders.insert(folderID) }
                    if live && entry.type == .directory && old.type != Int64(FileType.directory.rawValue) {
                        // A file turned into a folder: its contents are new.
                        newFolders.append((id, path + [0x2F] + entry.name))
                        if walkNewFolders { foldersToWalk.append((id, path + [0x2F] + entry.name)) }
                    }
                }
            } else {
                id = try Self.insert(
                    entry,
                    uuid: uuids.next(),
                    parent: folderID,
                    location: location.id,
                    device: deviceRow,
                    epoch: epoch,
                    seq: seq,
                    unlisted: live,
                    statement: insertStatement,
                    db
                )
                counts.inserted += 1
                if entry.type == .directory { freshFolders.insert(id) }
                if live {
                    inserted.append(id)
                    touchedFolders.insert(folderID)
                    if entry.type == .regular { contentPending.insert(id) }
                    if entry.type == .directory {
                        newFolders.append((id, path + [0x2F] + entry.name))
                        if walkNewFolders { foldersToWalk.append((id, path + [0x2F] + entry.name)) }
                    }
                }
            }
            ids.append(id)
        }
        if complete && !existing.isEmpty {
            try recordRemovals(existing.values.map(\.id), parent: folderID, db)
        }
        return ids
    }

    private func recordRemovals(_ ids: [Int64], parent: Int64, _ db: Database) throws {
        let record = try db.cachedStatement(
            sql: "INSERT OR IGNORE INTO scan_removals (entry_id, location_id) VALUES (?, ?)"
        )
        for id in ids { try record.execute(arguments: [id, location.id]) }
        if live && !ids.isEmpty { touchedFolders.insert(parent) }
    }

    /// Updates a folder's own row from its stat taken before its listing (live mode).
    private func refreshFolder(_ folderID: Int64, with stat: RawEntry, _ db: Database) throws {
        try db.cachedStatement(
            sql: """
                UPDATE entries SET inode = ?, device_number = ?, mode = ?, link_count = ?, mtime_ns = ?, ctime_ns = ?,
                    sync_seq = (SELECT seq FROM sync_state WHERE id = 1)
                WHERE id = ?
                """
        ).execute(arguments: [
            Int64(bitPattern: stat.inode), Int64(bitPattern: stat.device), Int64(stat.mode), Int64(stat.linkCount),
            stat.mtimeNanoseconds, stat.ctimeNanoseconds, folderID,
        ])
    }

    /// Returns whether the row changed.
    @discardableResult
    private func update(_ old: Existing, with entry: RawEntry, _ db: Database) throws -> Bool {
        let size = entry.type == .directory ? 0 : Int64(entry.size)
        let inode = Int64(bitPattern: entry.inode)
        let same =
            old.type == Int64(entry.type.rawValue) && old.size == size && old.inode == inode
            && old.mtime == entry.mtimeNanoseconds && old.ctime == entry.ctimeNanoseconds
            && old.mode == Int64(entry.mode) && old.links == Int64(entry.linkCount)
            && old.deviceNumber == Int64(bitPattern: entry.device) && !old.hadError && entry.error == nil
        if same {
            counts.unchanged += 1
            return false
        }
        counts.updated += 1
        if old.type == Int64(FileType.directory.rawValue) && entry.type != .directory {
            // A folder replaced by a file: what was below it is gone.
            let children = try Int64.fetchAll(
                db,
                sql: "SELECT id FROM entries WHERE parent_id = ?",
                arguments: [old.id]
            )
            try recordRemovals(children, parent: old.id, db)
            try db.execute(sql: "DELETE FROM folder_aggregates WHERE entry_id = ?", arguments: [old.id])
        }
        // The content may have changed only if these did; a chmod or a new hard link keeps the content id.
        let contentMayHaveChanged =
            old.type != Int64(entry.type.rawValue) || old.size != size || old.inode != inode
            || old.mtime != entry.mtimeNanoseconds || entry.error != nil || old.hadError
        let sql =
            contentMayHaveChanged
            ? """
            UPDATE entries SET type = ?, size = ?, inode = ?, device_number = ?, mode = ?, link_count = ?, mtime_ns = ?,
                ctime_ns = ?, symlink_target = ?, error = ?, content_id = NULL, mime = NULL,
                sync_seq = (SELECT seq FROM sync_state WHERE id = 1) WHERE id = ?
            """
            : """
            UPDATE entries SET type = ?, size = ?, inode = ?, device_number = ?, mode = ?, link_count = ?, mtime_ns = ?,
                ctime_ns = ?, symlink_target = ?, error = ?, sync_seq = (SELECT seq FROM sync_state WHERE id = 1) WHERE id = ?
            """
        try db.cachedStatement(sql: sql).execute(arguments: [
            Int64(entry.type.rawValue), size, inode, Int64(bitPattern: entry.device), Int64(entry.mode),
            Int64(entry.linkCount), entry.mtimeNanoseconds, entry.ctimeNanoseconds,
            entry.symlinkTarget.map { Data($0) },
            entry.error?.description, old.id,
        ])
        if live && entry.type == .regular && contentMayHaveChanged { contentPending.insert(old.id) }
        return true
    }

    static let insertSQL = """
        INSERT INTO entries (uuid, device_id, location_id, parent_id, name, type, category, size, inode,
            device_number, mode, link_count, mtime_ns, ctime_ns, symlink_target, added_epoch, error, sync_seq)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """

    static func insert(
        _ entry: RawEntry,
        uuid: [UInt8],
        parent: Int64?,
        location: Int64,
        device: Int64,
        epoch: Int64,
        seq: Int64,
        unlisted: Bool = false,
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
        insert.bind(13, unlisted && entry.type == .directory ? unlistedMtime : entry.mtimeNanoseconds)
        insert.bind(14, entry.ctimeNanoseconds)
        insert.bind(15, bytes: entry.symlinkTarget)
        insert.bind(16, epoch)
        insert.bind(17, text: entry.error?.description)
        insert.bind(18, seq)
        try insert.run()
        return db.lastInsertedRowID
    }

    var uuids = EntryUUIDGenerator()
    /// The sync sequence of the current write transaction (rows it writes carry it).
    var seq: Int64 = 0

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
            seq = try Library.takeSyncSeq(db)
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
                allowMassDelete
                ? 0
                : try Int.fetchOne(
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
            func consider(_ row: Row) {
                let id: Int64 = row[0]
                guard !goneIDs.contains(id), let inode: Int64 = row[1], let dev: Int64 = row[2] else { return }
                fresh["\(dev):\(inode)", default: []].append(
                    Candidate(id: id, type: row[3], size: row[4], mtime: row[5])
                )
            }
            if live {
                // A live batch knows the few entries it inserted.
                let one = try db.cachedStatement(
                    sql: "SELECT id, inode, device_number, type, size, mtime_ns FROM entries WHERE id = ?"
                )
                for id in inserted { if let row = try Row.fetchOne(one, arguments: [id]) { consider(row) } }
            } else {
                let newRows = try Row.fetchCursor(
                    db,
                    sql: """
                        SELECT id, inode, device_number, type, size, mtime_ns FROM entries
                        WHERE location_id = ? AND added_epoch = ?
                        """,
                    arguments: [location.id, epoch]
                )
                while let row = try newRows.next() { consider(row) }
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
                sql: """
                    UPDATE entries SET uuid = ?, content_id = coalesce(?, content_id), added_epoch = ?,
                        sync_seq = (SELECT seq FROM sync_state WHERE id = 1) WHERE id = ?
                    """
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
