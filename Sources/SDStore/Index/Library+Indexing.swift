import Foundation
import GRDB
import SDCore
import SDSystem

/// A file whose content id is still to be computed.
public struct PendingFile: Sendable {
    public var id: Int64
    public var parentID: Int64
    public var name: [UInt8]
    public var size: Int64
    /// The extension did not settle the kind: look at the bytes.
    public var needsKind: Bool
}

/// The outcome of hashing one file.
public struct ContentResult: Sendable {
    public var entryID: Int64
    public var contentID: ContentID?
    public var kind: FileKind?
    public var error: String?

    public init(entryID: Int64, contentID: ContentID?, kind: FileKind?, error: String?) {
        self.entryID = entryID
        self.contentID = contentID
        self.kind = kind
        self.error = error
    }
}

extension Library {
    // MARK: - Aggregation (phase 3)

    /// Computes each folder's total size, file count and per-kind counts, bubbled up to the location's root.
    /// Rows whose figures did not change are not written.
    public func aggregate(location: Location) throws {
        try database.write { db in
            // Folders: id -> parent (-1 for the root), and each folder's slot in `totals`.
            var parent: [Int64: Int64] = [:]
            var slot: [Int64: Int] = [:]
            var folders: [Int64] = []
            let folderRows = RawQuery(
                try db.cachedStatement(sql: "SELECT id, parent_id FROM entries WHERE location_id = ? AND type = 1"),
                db,
                arguments: [location.id]
            )
            while try folderRows.next() {
                let id = folderRows.int64(0)
                parent[id] = folderRows.isNull(1) ? -1 : folderRows.int64(1)
                slot[id] = folders.count
                folders.append(id)
            }
            // Per folder: bytes, files, and files per category (a fixed array indexed like FileCategory.allCases,
            // with "unknown" for files without one).
            let categories = FileCategory.allCases.map(\.rawValue)
            let categoryIndex = Dictionary(uniqueKeysWithValues: categories.enumerated().map { ($1, $0) })
            let unknown = categoryIndex["unknown"]!
            var size = [Int64](repeating: 0, count: folders.count)
            var files = [Int64](repeating: 0, count: folders.count)
            var kinds = [[Int64]](repeating: [], count: folders.count)
            // Direct children, in rowid order: a folder's files were inserted together, so the slot lookup is
            // usually the previous row's. Read through the C API: decoding a million GRDB rows took seconds.
            let fileRows = RawQuery(
                try db.cachedStatement(
                    sql: "SELECT parent_id, category, size FROM entries WHERE location_id = ? AND type = 0"
                ),
                db,
                arguments: [location.id]
            )
            var lastParent: Int64 = .min, lastSlot = -1
            var lastCategory: String? = nil, lastCategoryIndex = unknown
            while try fileRows.next() {
                guard !fileRows.isNull(0) else { continue }
                let p = fileRows.int64(0)
                if p != lastParent {
                    lastParent = p
                    lastSlot = slot[p] ?? -1
                }
                guard lastSlot >= 0 else { continue }
                let category = fileRows.text(1)
                if category != lastCategory {
                    lastCategory = category
                    lastCategoryIndex = category.flatMap { categoryIndex[$0] } ?? unknown
                }
                size[lastSlot] += fileRows.int64(2)
                files[lastSlot] += 1
                if kinds[lastSlot].isEmpty { kinds[lastSlot] = [Int64](repeating: 0, count: categories.count) }
                kinds[lastSlot][lastCategoryIndex] += 1
            }
            // Deepest folders first, so each adds a complete subtree to its parent.
            var depth = [Int](repeating: -1, count: folders.count)
            func depthOf(_ i: Int) -> Int {
                var chain: [Int] = []
                var current = i
                while depth[current] < 0 {
                    chain.append(current)
                    guard let p = parent[folders[current]], p != -1, let up = slot[p] else { break }
                    current = up
                }
                // Stopped at the root (unknown depth, in the chain) or at a folder of known depth (not in it).
                var d = depth[current] < 0 ? 0 : depth[current] + 1
                for c in chain.reversed() where depth[c] < 0 {
                    depth[c] = d
                    d += 1
                }
                return depth[i]
            }
            for i in folders.indices { _ = depthOf(i) }
            for i in folders.indices.sorted(by: { depth[$0] > depth[$1] }) {
                guard let p = parent[folders[i]], p != -1, let up = slot[p] else { continue }
                size[up] += size[i]
                files[up] += files[i]
                if !kinds[i].isEmpty {
                    if kinds[up].isEmpty { kinds[up] = [Int64](repeating: 0, count: categories.count) }
                    for k in kinds[i].indices { kinds[up][k] += kinds[i][k] }
                }
            }
            let write = try db.cachedStatement(
                sql: """
                    INSERT INTO folder_aggregates (entry_id, size, files, kinds) VALUES (?4, ?1, ?2, ?3)
                    ON CONFLICT (entry_id) DO UPDATE SET size = ?1, files = ?2, kinds = ?3
                    WHERE size IS NOT ?1 OR files IS NOT ?2 OR kinds IS NOT ?3
                    """
            )
            // In key order: the aggregates table is written front to back.
            for (i, id) in folders.enumerated().sorted(by: { $0.element < $1.element }) {
                // Categories in FileCategory order, only those present: a stable, compact JSON object.
                let parts = kinds[i].indices.filter { kinds[i][$0] > 0 }.map { "\"\(categories[$0])\":\(kinds[i][$0])" }
                try write.execute(arguments: [size[i], files[i], "{" + parts.joined(separator: ",") + "}", id])
            }
        }
    }

    // MARK: - Content identification (phase 4)

    /// Absolute path bytes of every folder of the location, by entry id.
    public func fetchFolderPaths(location: Location) throws -> [Int64: [UInt8]] {
        try database.read { db in
            var parent: [Int64: (Int64?, [UInt8])] = [:]
            let folders = try Row.fetchCursor(
                db,
                sql: "SELECT id, parent_id, name FROM entries WHERE location_id = ? AND type = 1",
                arguments: [location.id]
            )
            while let row = try folders.next() { parent[row[0]] = (row[1], [UInt8](row[2] as Data)) }
            var paths: [Int64: [UInt8]] = [:]
            func path(_ id: Int64) -> [UInt8] {
                if let p = paths[id] { return p }
                guard let (up, name) = parent[id] else { return [] }
                let result: [UInt8]
                if let up {
                    result = path(up) + [0x2F] + name
                } else {
                    result = location.path  // the root
                }
                paths[id] = result
                return result
            }
            for id in parent.keys { _ = path(id) }
            return paths
        }
    }

    /// Files of the location still without a content id (and without an error), after `afterID`, by id.
    public func fetchFilesNeedingContent(location: Location, after afterID: Int64, limit: Int) throws -> [PendingFile] {
        try database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT id, parent_id, name, size FROM entries
                    WHERE location_id = ? AND type = 0 AND id > ? AND content_id IS NULL AND error IS NULL AND size > 0
                    ORDER BY id LIMIT ?
                    """,
                arguments: [location.id, afterID, limit]
            ).map { row in
                let name = [UInt8](row[2] as Data)
                let needsKind = name.withUnsafeBytes { FileKinds.kind(forName: $0).needsContent }
                return PendingFile(id: row[0], parentID: row[1], name: name, size: row[3], needsKind: needsKind)
            }
        }
    }

    /// The number of files of the location still waiting for a content id.
    public func countFilesNeedingContent(location: Location) throws -> Int {
        try database.read { db in
            try Int.fetchOne(
                db,
                sql: """
                    SELECT count(*) FROM entries WHERE location_id = ? AND type = 0 AND content_id IS NULL
                    AND error IS NULL AND size > 0
                    """,
                arguments: [location.id]
            ) ?? 0
        }
    }

    /// Records hashing results in one transaction, with the job's checkpoint: only the entries' rows, updated in
    /// rowid order. The `content_identities` rows are made afterwards by `linkContentIdentities`, in key order:
    /// content ids are random keys, and inserting them as they came dirtied thousands of random B-tree pages per
    /// transaction (the 1M-file index spent most of its content phase writing those pages).
    ///
    /// #### Implementation details
    /// Foreign-key enforcement is off for this transaction (set around it on the writer connection), since
    /// `entries.content_id` may briefly name an identity not yet made; `linkContentIdentities` completes them, and
    /// an interrupted run does so when it resumes.
    public func recordContents(_ results: [ContentResult], job: String?, checkpoint: String?) throws {
        let now = Self.nowMilliseconds()
        try database.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA foreign_keys = OFF")
            defer { try? db.execute(sql: "PRAGMA foreign_keys = ON") }
            try db.inTransaction {
                _ = try Self.takeSyncSeq(db)
                let link = try db.cachedStatement(
                    sql: """
                        UPDATE entries SET content_id = ?, category = coalesce(?, category), mime = ?, error = ?,
                            sync_seq = (SELECT seq FROM sync_state WHERE id = 1)
                        WHERE id = ?
                        """
                )
                for r in results {
                    let decidedByBytes = r.kind.map { $0.method == .magic || $0.method == .content } ?? false
                    try link.execute(arguments: [
                        r.contentID?.int64, decidedByBytes ? r.kind?.category.rawValue : nil,
                        decidedByBytes ? r.kind?.mime : nil, r.error, r.entryID,
                    ])
                }
                if let job, let checkpoint {
                    try db.execute(
                        sql:
                            "UPDATE jobs SET checkpoint = ?, progress_done = progress_done + ?, updated_at = ? WHERE id = ?",
                        arguments: [checkpoint, results.count, now, job]
                    )
                }
                return .commit
            }
        }
    }

    /// Makes the `content_identities` rows that the location's entries name and that do not exist yet, in key
    /// order (one sorted insert). Idempotent.
    public func linkContentIdentities(location: Location) throws {
        try database.write { db in
            try Self.withSmallCache(db) {
                try db.execute(
                    sql: """
                        INSERT OR IGNORE INTO content_identities (id, size, first_seen_at)
                        SELECT e.content_id, max(e.size), ? FROM entries e
                        LEFT JOIN content_identities c ON c.id = e.content_id
                        WHERE e.location_id = ? AND e.content_id IS NOT NULL AND c.id IS NULL
                        GROUP BY e.content_id ORDER BY e.content_id
                        """,
                    arguments: [Self.nowMilliseconds(), location.id]
                )
            }
        }
    }

    /// Drops the index on `entries.content_id` before recording many content ids (rebuilding it once, sorted,
    /// is far cheaper than a million random inserts into it); `ensureContentIndex` makes it again.
    public func dropContentIndex() throws {
        try database.write { db in try db.execute(sql: "DROP INDEX IF EXISTS entries_content") }
    }

    public func ensureContentIndex() throws {
        try database.write { db in try Self.withSmallCache(db) { try Self.ensureContentIndex(db) } }
    }

    /// Runs `body` with the writer's page cache shrunk to 12 MiB, then restores it: for sorts over every entry
    /// (SQLite sizes its sorter's memory from the cache), which were the 1M-file index's peak memory.
    static func withSmallCache<T>(_ db: Database, _ body: () throws -> T) throws -> T {
        try db.execute(sql: "PRAGMA cache_size = -12288")
        try db.execute(sql: "PRAGMA shrink_memory")
        defer { try? db.execute(sql: "PRAGMA cache_size = \(writerCacheSize)") }
        return try body()
    }

    /// The writer connection's page cache (KiB, negative as SQLite takes it).
    static let writerCacheSize = -49152

    static func ensureContentIndex(_ db: Database) throws {
        try db.execute(
            sql: "CREATE INDEX IF NOT EXISTS entries_content ON entries(content_id) WHERE content_id IS NOT NULL"
        )
    }

    // MARK: - Analysis queueing (phase 5)

    /// Queues follow-up work for files with a content id: thumbnails for images and videos, text extraction for
    /// documents. Idempotent. Returns the number of tasks added.
    @discardableResult
    public func queueAnalysis(location: Location) throws -> Int {
        try database.write { db in
            try db.execute(
                sql: """
                    INSERT OR IGNORE INTO analysis_queue (entry_id, task)
                    SELECT id, 'thumbnail' FROM entries WHERE location_id = ? AND type = 0 AND content_id IS NOT NULL
                    AND category IN ('image', 'video')
                    """,
                arguments: [location.id]
            )
            var added = db.changesCount
            try db.execute(
                sql: """
                    INSERT OR IGNORE INTO analysis_queue (entry_id, task)
                    SELECT id, 'text' FROM entries WHERE location_id = ? AND type = 0 AND content_id IS NOT NULL
                    AND category IN ('document', 'book', 'spreadsheet', 'presentation')
                    """,
                arguments: [location.id]
            )
            added += db.changesCount
            return added
        }
    }

    /// Marks a location's scan as complete and online.
    public func finishScan(location: Location) throws {
        try database.write { db in
            _ = try Self.takeSyncSeq(db)
            try db.execute(
                sql: """
                    UPDATE locations SET state = 'online', state_reason = NULL, last_indexed_at = ?,
                        sync_seq = (SELECT seq FROM sync_state WHERE id = 1) WHERE id = ?
                    """,
                arguments: [Self.nowMilliseconds(), location.id]
            )
        }
    }
}
