import Foundation
import GRDB
import SDCore
import SDSystem

/// A folder of the index as offline recovery compares it with the disk.
public struct IndexedFolder: Sendable {
    public var id: Int64
    public var path: [UInt8]
    public var mtimeNanoseconds: Int64
    public var inode: Int64
}

extension Library {
    // MARK: - Targeted work for live updates (watcher, offline recovery)

    /// Every folder of the location with its path and recorded mtime and inode, in id order.
    public func fetchFolders(location: Location) throws -> [IndexedFolder] {
        let paths = try fetchFolderPaths(location: location)
        return try database.read { db in
            var folders: [IndexedFolder] = []
            let rows = RawQuery(
                try db.cachedStatement(
                    sql: "SELECT id, mtime_ns, inode FROM entries WHERE location_id = ? AND type = 1 ORDER BY id"
                ),
                db,
                arguments: [location.id]
            )
            while try rows.next() {
                let id = rows.int64(0)
                guard let path = paths[id] else { continue }
                folders.append(
                    IndexedFolder(
                        id: id,
                        path: path,
                        mtimeNanoseconds: rows.isNull(1) ? ScanWriter.unlistedMtime : rows.int64(1),
                        inode: rows.isNull(2) ? 0 : rows.int64(2)
                    )
                )
            }
            return folders
        }
    }

    /// The files among `ids` still waiting for a content id, with their folders' paths.
    public func fetchPendingFiles(ids: some Sequence<Int64>) throws -> [(file: PendingFile, folder: [UInt8])] {
        let wanted = Array(ids)
        guard !wanted.isEmpty else { return [] }
        return try database.read { db in
            let one = try db.cachedStatement(
                sql: """
                    SELECT id, parent_id, name, size FROM entries
                    WHERE id = ? AND type = 0 AND content_id IS NULL AND error IS NULL AND size > 0
                    """
            )
            var result: [(PendingFile, [UInt8])] = []
            var paths: [Int64: [UInt8]] = [:]
            for id in wanted {
                guard let row = try Row.fetchOne(one, arguments: [id]) else { continue }
                let name = [UInt8](row[2] as Data)
                let needsKind = name.withUnsafeBytes { FileKinds.kind(forName: $0).needsContent }
                let file = PendingFile(id: row[0], parentID: row[1], name: name, size: row[3], needsKind: needsKind)
                if paths[file.parentID] == nil { paths[file.parentID] = try Self.entryPath(id: file.parentID, db) }
                if let folder = paths[file.parentID] { result.append((file, folder)) }
            }
            return result
        }
    }

    /// The absolute path bytes of an entry, from its chain of parents.
    public func entryPath(id: Int64) throws -> [UInt8]? {
        try database.read { db in try Self.entryPath(id: id, db) }
    }

    static func entryPath(id: Int64, _ db: Database) throws -> [UInt8]? {
        var components: [[UInt8]] = []
        var current: Int64? = id
        let step = try db.cachedStatement(
            sql: """
                SELECT e.parent_id, e.name, l.path FROM entries e JOIN locations l ON l.id = e.location_id
                WHERE e.id = ?
                """
        )
        while let at = current {
            guard let row = try Row.fetchOne(step, arguments: [at]) else { return nil }
            current = row[0]
            // The root's name is its location's path.
            components.append([UInt8]((current == nil ? row[2] : row[1]) as Data))
        }
        return Array(components.reversed().joined(separator: [0x2F]))
    }

    /// Makes the `content_identities` rows that these entries name and that do not exist yet.
    public func linkContentIdentities(entryIDs: some Sequence<Int64>) throws {
        let ids = Array(entryIDs)
        guard !ids.isEmpty else { return }
        try database.write { db in
            let link = try db.cachedStatement(
                sql: """
                    INSERT OR IGNORE INTO content_identities (id, size, first_seen_at)
                    SELECT content_id, size, ? FROM entries WHERE id = ? AND content_id IS NOT NULL
                    """
            )
            let now = Self.nowMilliseconds()
            for id in ids { try link.execute(arguments: [now, id]) }
        }
    }

    /// Queues follow-up work for these files (the same rules as `queueAnalysis(location:)`).
    @discardableResult
    public func queueAnalysis(entryIDs: some Sequence<Int64>) throws -> Int {
        let ids = Array(entryIDs)
        guard !ids.isEmpty else { return 0 }
        return try database.write { db in
            let queue = try db.cachedStatement(
                sql: """
                    INSERT OR IGNORE INTO analysis_queue (entry_id, task)
                    SELECT id, CASE WHEN category IN ('image', 'video') THEN 'thumbnail' ELSE 'text' END FROM entries
                    WHERE id = ? AND type = 0 AND content_id IS NOT NULL
                    AND category IN ('image', 'video', 'document', 'book', 'spreadsheet', 'presentation')
                    """
            )
            var added = 0
            for id in ids {
                try queue.execute(arguments: [id])
                added += db.changesCount
            }
            return added
        }
    }

    /// Recomputes the aggregates of these folders and of all their ancestors, deepest first, each from its
    /// direct children (files, and child folders' own aggregates). Gives the same figures as
    /// `aggregate(location:)` for the folders it touches.
    public func aggregate(folders: some Sequence<Int64>) throws {
        let start = Set(folders)
        guard !start.isEmpty else { return }
        try database.write { db in
            // Each folder's parent, walking up to the root; depth from the root.
            var parent: [Int64: Int64?] = [:]
            let parentOf = try db.cachedStatement(sql: "SELECT parent_id FROM entries WHERE id = ? AND type = 1")
            var pending = Array(start)
            while let id = pending.popLast() {
                guard parent[id] == nil else { continue }
                guard let row = try Row.fetchOne(parentOf, arguments: [id]) else { continue }
                let up: Int64? = row[0]
                parent[id] = .some(up)
                if let up, parent[up] == nil { pending.append(up) }
            }
            var depth: [Int64: Int] = [:]
            for id in parent.keys {
                var d = 0
                var current = id
                while let up = parent[current] ?? nil {
                    d += 1
                    current = up
                }
                depth[id] = d
            }
            let categories = FileCategory.allCases.map(\.rawValue)
            let categoryIndex = Dictionary(uniqueKeysWithValues: categories.enumerated().map { ($1, $0) })
            let unknown = categoryIndex["unknown"]!
            let children = try db.cachedStatement(
                sql: """
                    SELECT e.type, e.category, e.size, a.size, a.files, a.kinds FROM entries e
                    LEFT JOIN folder_aggregates a ON a.entry_id = e.id
                    WHERE e.parent_id = ? AND e.type IN (0, 1)
                    """
            )
            let write = try db.cachedStatement(
                sql: """
                    INSERT INTO folder_aggregates (entry_id, size, files, kinds) VALUES (?4, ?1, ?2, ?3)
                    ON CONFLICT (entry_id) DO UPDATE SET size = ?1, files = ?2, kinds = ?3
                    WHERE size IS NOT ?1 OR files IS NOT ?2 OR kinds IS NOT ?3
                    """
            )
            for id in parent.keys.sorted(by: { depth[$0]! > depth[$1]! }) {
                var size: Int64 = 0, files: Int64 = 0
                var kinds = [Int64](repeating: 0, count: categories.count)
                for row in try Row.fetchAll(children, arguments: [id]) {
                    if (row[0] as Int64) == 0 {
                        size += row[2] as Int64
                        files += 1
                        kinds[(row[1] as String?).flatMap { categoryIndex[$0] } ?? unknown] += 1
                    } else {
                        size += (row[3] as Int64?) ?? 0
                        files += (row[4] as Int64?) ?? 0
                        if let json: String = row[5] {
                            for (name, count) in Self.parseKinds(json) {
                                kinds[categoryIndex[name] ?? unknown] += count
                            }
                        }
                    }
                }
                let parts = kinds.indices.filter { kinds[$0] > 0 }.map { "\"\(categories[$0])\":\(kinds[$0])" }
                try write.execute(arguments: [size, files, "{" + parts.joined(separator: ",") + "}", id])
            }
        }
    }

    /// Reads a `folder_aggregates.kinds` object (`{"image":3,"video":1}`) as written by the aggregation.
    static func parseKinds(_ json: String) -> [(String, Int64)] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            return []
        }
        return object.compactMap { key, value in (value as? NSNumber).map { (key, $0.int64Value) } }
    }
}
