import Foundation
import GRDB
import SDCore

/// One entry as the search reads it.
public struct SearchRow: Sendable {
    public var id: Int64
    public var uuid: [UInt8]
    public var locationID: Int64
    public var parentID: Int64?
    public var name: [UInt8]
    public var type: Int64
    public var category: String?
    public var size: Int64
    public var mtimeNanoseconds: Int64?
    public var contentID: Int64?
}

/// Filters a search applies in SQL (all optional; each one narrows).
public struct SearchFilters: Sendable, Equatable {
    public var categories: [String] = []
    /// Lower-case extensions without the dot.
    public var extensions: [String] = []
    public var minSize: Int64?
    public var maxSize: Int64?
    /// Nanoseconds since 1970, inclusive lower and exclusive upper bound.
    public var modifiedFrom: Int64?
    public var modifiedBefore: Int64?
    public var locationIDs: [Int64] = []
    /// Folder entry ids: only entries below one of them.
    public var within: [Int64] = []
    public var tags: [String] = []
    /// Only files whose content is held by more than one file.
    public var duplicatesOnly = false
    public init() {}

    public var isEmpty: Bool { self == SearchFilters() }

    /// Files from this size up are in the `entries_large` index.
    public static let largeFile: Int64 = 1_000_000
}

/// The order of a filter-only listing.
public enum SearchSort: String, Sendable, CaseIterable, Codable {
    case relevance, name, size, modified
}

extension Library {
    static let foldFunction = DatabaseFunction("sd_fold", argumentCount: 1, pure: true) { values in
        switch values[0].storage {
        case .blob(let data): return SearchText.fold(data)
        case .string(let text): return SearchText.fold(text)
        default: return nil
        }
    }

    // MARK: - Keeping the index

    /// How many entries are not in the search index yet.
    public func searchBacklog() throws -> Int {
        try database.read { db in
            let through = try Int64.fetchOne(db, sql: "SELECT indexed_through FROM search_state WHERE id = 1") ?? 0
            return try Int.fetchOne(db, sql: "SELECT count(*) FROM entries WHERE id > ?", arguments: [through]) ?? 0
        }
    }

    /// Adds up to `batch` entries beyond `indexed_through` to the search index, in one transaction; returns how
    /// many it added (0 when caught up). Once caught up, makes the folded-name index if it is missing.
    @discardableResult
    public func catchUpSearch(batch: Int = 20_000) throws -> Int {
        try database.write { db in
            // A smaller page cache while indexing names and sorting the new indexes: with the writer's 48 MiB the
            // 1M-entry index peaked at 159 MB.
            try Self.withSmallCache(db) {
                let added = try Self.catchUpSearch(db, batch: batch)
                if added == 0 {
                    let start = ContinuousClock.now
                    try db.execute(sql: "CREATE INDEX IF NOT EXISTS entries_folded ON entries(sd_fold(name))")
                    // Listings by date (and filters scanned in date order) without reading every entry.
                    try db.execute(sql: "CREATE INDEX IF NOT EXISTS entries_mtime ON entries(mtime_ns)")
                    // Large files only (a few percent of entries, a small index): size filters from 1 MB up.
                    try db.execute(
                        sql:
                            "CREATE INDEX IF NOT EXISTS entries_large ON entries(size) WHERE size >= \(SearchFilters.largeFile)"
                    )
                    if ProcessInfo.processInfo.environment["SD_TRACE"] != nil {
                        FileHandle.standardError.write(
                            Data("search: B-tree indexes \(ContinuousClock.now - start)\n".utf8)
                        )
                    }
                }
                return added
            }
        }
    }

    static func catchUpSearch(_ db: Database, batch: Int) throws -> Int {
        let through = try Int64.fetchOne(db, sql: "SELECT indexed_through FROM search_state WHERE id = 1") ?? 0
        guard
            let upTo = try Int64.fetchOne(
                db,
                sql: "SELECT max(id) FROM (SELECT id FROM entries WHERE id > ? ORDER BY id LIMIT ?)",
                arguments: [through, batch]
            )
        else { return 0 }
        for table in ["search_words", "search_trigrams"] {
            try db.execute(
                sql:
                    "INSERT INTO \(table) (rowid, name) SELECT id, CAST(name AS TEXT) FROM entries WHERE id > ? AND id <= ?",
                arguments: [through, upTo]
            )
        }
        let added = db.changesCount
        try db.execute(sql: "UPDATE search_state SET indexed_through = ? WHERE id = 1", arguments: [upTo])
        return added
    }

    /// Catches the search index up inside the current transaction when what is missing is small (a live batch's
    /// own inserts): changes then become searchable in the transaction that made them.
    static func catchUpSearchIfSmall(_ db: Database, limit: Int = 5_000) throws {
        let through = try Int64.fetchOne(db, sql: "SELECT indexed_through FROM search_state WHERE id = 1") ?? 0
        let missing =
            try Int.fetchOne(
                db,
                sql: "SELECT count(*) FROM (SELECT 1 FROM entries WHERE id > ? LIMIT ?)",
                arguments: [through, limit + 1]
            ) ?? 0
        if missing > 0 && missing <= limit { _ = try catchUpSearch(db, batch: limit) }
    }

    /// Empties the search index; `catchUpSearch` then rebuilds it from the entries (searches meanwhile read
    /// names). For repair, and for tests of the catch-up path.
    public func resetSearchIndex() throws {
        try database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO search_words (search_words) VALUES ('delete-all');
                    INSERT INTO search_trigrams (search_trigrams) VALUES ('delete-all');
                    UPDATE search_state SET indexed_through = 0 WHERE id = 1;
                    """
            )
        }
    }

    /// Drops the search's B-tree indexes (folded names, dates) before a scan that inserts many entries (they
    /// are rebuilt, sorted, by `catchUpSearch`); each insert into them cost about a tenth of the writer's time.
    public func dropFoldedNameIndex() throws {
        try database.write { db in
            try db.execute(sql: "DROP INDEX IF EXISTS entries_folded")
            try db.execute(sql: "DROP INDEX IF EXISTS entries_mtime")
            try db.execute(sql: "DROP INDEX IF EXISTS entries_large")
        }
    }

    // MARK: - Queries

    /// The search's view of the index: everything a search reads, in one read transaction.
    public func withSearchSnapshot<T>(_ body: (SearchSnapshot) throws -> T) throws -> T {
        try database.read { db in try body(SearchSnapshot(db: db)) }
    }
}

/// Read access for one search (all its reads see one state of the library). Valid only inside
/// `withSearchSnapshot`.
public struct SearchSnapshot {
    let db: Database

    /// Entries with ids up to this are in the FTS tables; the rest are matched by reading their names.
    public func indexedThrough() throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT indexed_through FROM search_state WHERE id = 1") ?? 0
    }

    public func hasFoldedIndex() throws -> Bool { try hasIndex("entries_folded") }

    func hasIndex(_ name: String) throws -> Bool {
        try Int.fetchOne(
            db,
            sql: "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?",
            arguments: [name]
        )
            == 1
    }

    /// Entry ids whose name may have every word (`prefix`: a word starting with it), newest ids first, below
    /// `before`: a superset (prefixes are asked by their first three letters); the caller confirms.
    public func wordMatches(_ words: [(word: String, prefix: Bool)], limit: Int, before: Int64 = .max) throws
        -> [Int64]
    {
        guard !words.isEmpty else { return [] }
        return try Int64.fetchAll(
            db,
            sql: """
                SELECT rowid FROM search_words WHERE search_words MATCH ? AND rowid < ? ORDER BY rowid DESC LIMIT ?
                """,
            arguments: [Self.wordExpression(words), before, limit]
        )
    }

    static func wordExpression(_ words: [(word: String, prefix: Bool)]) -> String {
        words.map { word, prefix in
            guard prefix else { return quote(word) }
            let scalars = word.unicodeScalars
            if scalars.count <= 3 { return quote(word) + "*" }
            var head = String.UnicodeScalarView()
            head.append(contentsOf: scalars.prefix(3))
            return quote(String(head)) + "*"
        }.joined(separator: " AND ")
    }

    /// How many names may hold the word, counted up to `cap` (for ranking; cheap because capped: beyond it a word
    /// is common, and how common no longer matters).
    public func wordFrequency(_ word: String, prefix: Bool, cap: Int = 1_000) throws -> Int {
        try Int.fetchOne(
            db,
            sql: "SELECT count(*) FROM (SELECT 1 FROM search_words WHERE search_words MATCH ? LIMIT ?)",
            arguments: [Self.wordExpression([(word, prefix)]), cap]
        ) ?? 0
    }

    /// The FTS5 expression for a substring: its three rarest three-character sequences (counted up to a cap,
    /// which keeps counting cheap; intersecting every list cost 7-12 ms for common sequences, three rare ones
    /// 2 ms). Nil when one of its sequences is in no name, or it is shorter than three characters.
    public func trigramExpression(_ substring: String) throws -> String? {
        let scalars = Array(substring.unicodeScalars)
        guard scalars.count >= 3 else { return nil }
        var grams: Set<String> = []
        for i in 0...(scalars.count - 3) {
            var gram = String.UnicodeScalarView()
            gram.append(contentsOf: scalars[i..<(i + 3)])
            grams.insert(String(gram))
        }
        var counted: [(gram: String, documents: Int)] = []
        for gram in grams {
            let n =
                try Int.fetchOne(
                    db,
                    sql:
                        "SELECT count(*) FROM (SELECT 1 FROM search_trigrams WHERE search_trigrams MATCH ? LIMIT 1000)",
                    arguments: [Self.quote(gram)]
                ) ?? 0
            if n == 0 { return nil }
            counted.append((gram, n))
        }
        // Counts are capped: among sequences past the cap, those with fewer letters (digits, punctuation) are
        // usually the rarer in names.
        func letters(_ gram: String) -> Int { gram.unicodeScalars.filter { $0.properties.isAlphabetic }.count }
        return counted.sorted { ($0.documents, letters($0.gram), $0.gram) < ($1.documents, letters($1.gram), $1.gram) }
            .prefix(3).map { Self.quote($0.gram) }.joined(separator: " AND ")
    }

    /// Entry ids matching a `trigramExpression` (a superset of the names holding the substring; the caller
    /// confirms), in id order, above `after`. (In id order: FTS5 intersected these lists in descending order
    /// at a third of the speed.)
    public func trigramMatches(expression: String, limit: Int, after: Int64 = 0) throws -> [Int64] {
        try Int64.fetchAll(
            db,
            sql: "SELECT rowid FROM search_trigrams WHERE search_trigrams MATCH ? AND rowid > ? LIMIT ?",
            arguments: [expression, after, limit]
        )
    }

    /// Entries whose folded name is exactly `folded`, or `folded` plus an extension.
    public func exactNameMatches(_ folded: String, limit: Int) throws -> [Int64] {
        try Int64.fetchAll(
            db,
            sql: """
                SELECT id FROM entries WHERE sd_fold(name) = ?1
                UNION SELECT id FROM entries WHERE sd_fold(name) >= ?1 || '.' AND sd_fold(name) < ?1 || '/'
                LIMIT ?2
                """,
            arguments: [folded, limit]
        )
    }

    /// Entries whose folded name starts with `folded`, in name order.
    public func prefixNameMatches(_ folded: String, limit: Int) throws -> [Int64] {
        try Int64.fetchAll(
            db,
            sql: "SELECT id FROM entries WHERE sd_fold(name) >= ?1 AND sd_fold(name) < ?1 || char(1114111) LIMIT ?2",
            arguments: [folded, limit]
        )
    }

    /// Documents per word (counted up to 1,000; words may be prefixes), and all documents.
    public func documentFrequencies(_ words: [(word: String, prefix: Bool)]) throws -> (counts: [Int], total: Int) {
        let counts = try words.map { try wordFrequency($0.word, prefix: $0.prefix) }
        let total = try Int.fetchOne(db, sql: "SELECT indexed_through FROM search_state WHERE id = 1") ?? 0
        return (counts, max(total, 1))
    }

    /// Entries beyond `after` (not yet in the FTS tables), with their names, in id order.
    public func unindexedEntries(after: Int64, limit: Int) throws -> [(id: Int64, name: [UInt8])] {
        try Row.fetchAll(
            db,
            sql: "SELECT id, name FROM entries WHERE id > ? ORDER BY id LIMIT ?",
            arguments: [after, limit]
        ).map { ($0[0], [UInt8]($0[1] as Data)) }
    }

    /// The rows of these entries that pass `filters`.
    ///
    /// #### Implementation details
    /// With only simple filters, each row is read by id through SQLite's C API and filtered here (GRDB's row
    /// decoding was most of a search's time); tags, folders and duplicates need SQL.
    public func rows(_ ids: [Int64], filters: SearchFilters) throws -> [SearchRow] {
        guard !ids.isEmpty else { return [] }
        if filters.within.isEmpty && filters.tags.isEmpty && !filters.duplicatesOnly {
            let statement = try db.cachedStatement(sql: "\(Self.rowColumns) WHERE e.id = ?")
            var result: [SearchRow] = []
            result.reserveCapacity(ids.count)
            for id in ids {
                let q = RawQuery(statement, db, arguments: [id])
                guard try q.next() else { continue }
                let row = SearchRow(
                    id: q.int64(0),
                    uuid: q.bytes(1),
                    locationID: q.int64(2),
                    parentID: q.isNull(3) ? nil : q.int64(3),
                    name: q.bytes(4),
                    type: q.int64(5),
                    category: q.text(6),
                    size: q.int64(7),
                    mtimeNanoseconds: q.isNull(8) ? nil : q.int64(8),
                    contentID: q.isNull(9) ? nil : q.int64(9)
                )
                while try q.next() {}
                if Self.passes(row, filters) { result.append(row) }
            }
            return result
        }
        var result: [SearchRow] = []
        for start in stride(from: 0, to: ids.count, by: 5_000) {
            let chunk = Array(ids[start..<min(ids.count, start + 5_000)])
            var (conditions, arguments) = Self.conditions(filters)
            conditions.insert("e.id IN (\(chunk.map { _ in "?" }.joined(separator: ",")))", at: 0)
            arguments = StatementArguments(chunk) + arguments
            result += try Row.fetchAll(
                db,
                sql: "\(Self.rowColumns) WHERE \(conditions.joined(separator: " AND "))",
                arguments: arguments
            ).map(Self.row)
        }
        return result
    }

    /// Entries passing `filters` alone (no words), in `sort` order.
    public func filtered(_ filters: SearchFilters, sort: SearchSort, offset: Int, limit: Int) throws -> [SearchRow] {
        let (conditions, arguments) = Self.conditions(filters)
        let order: String
        switch sort {
        case .name: order = "e.name, e.id"
        case .size: order = "e.size DESC, e.id"
        case .modified, .relevance: order = "e.mtime_ns DESC, e.id DESC"
        }
        var conditions2 = conditions
        var from = Self.rowColumns
        // Only large files wanted: read them from their small index rather than scan every entry in date order.
        if let min = filters.minSize, min >= SearchFilters.largeFile, try hasIndex("entries_large") {
            conditions2.append("e.size >= \(SearchFilters.largeFile)")
            from += " INDEXED BY entries_large"
        }
        let condition = conditions2.isEmpty ? "" : "WHERE \(conditions2.joined(separator: " AND "))"
        return try Row.fetchAll(
            db,
            sql: "\(from) \(condition) ORDER BY \(order) LIMIT ? OFFSET ?",
            arguments: arguments + [limit, offset]
        ).map(Self.row)
    }

    /// Folders (id, parent, name) of the locations, for matching words against paths.
    public func folders() throws -> [(id: Int64, parent: Int64?, name: [UInt8])] {
        try Row.fetchAll(db, sql: "SELECT id, parent_id, name FROM entries WHERE type = 1").map {
            ($0[0], $0[1], [UInt8]($0[2] as Data))
        }
    }

    /// Children of these folders (for entries matched through their path), newest ids first.
    public func children(of folders: [Int64], limit: Int) throws -> [Int64] {
        guard !folders.isEmpty else { return [] }
        var result: [Int64] = []
        for start in stride(from: 0, to: folders.count, by: 5_000) where result.count < limit {
            let chunk = Array(folders[start..<min(folders.count, start + 5_000)])
            result += try Int64.fetchAll(
                db,
                sql:
                    "SELECT id FROM entries WHERE parent_id IN (\(chunk.map { _ in "?" }.joined(separator: ","))) LIMIT ?",
                arguments: StatementArguments(chunk) + [limit - result.count]
            )
        }
        return result
    }

    /// The absolute path of an entry.
    public func path(of id: Int64) throws -> [UInt8]? { try Library.entryPath(id: id, db) }

    static let rowColumns = """
        SELECT e.id, e.uuid, e.location_id, e.parent_id, e.name, e.type, e.category, e.size, e.mtime_ns, e.content_id
        FROM entries e
        """

    static func row(_ row: Row) -> SearchRow {
        SearchRow(
            id: row[0],
            uuid: [UInt8](row[1] as Data),
            locationID: row[2],
            parentID: row[3],
            name: [UInt8](row[4] as Data),
            type: row[5],
            category: row[6],
            size: row[7],
            mtimeNanoseconds: row[8],
            contentID: row[9]
        )
    }

    /// The simple filters, checked on a row.
    static func passes(_ row: SearchRow, _ f: SearchFilters) -> Bool {
        if !f.categories.isEmpty && !f.categories.contains(row.category ?? "") { return false }
        if !f.extensions.isEmpty {
            guard row.type == 0 else { return false }
            let lower = String(decoding: row.name, as: UTF8.self).lowercased()
            guard f.extensions.contains(where: { lower.hasSuffix("." + $0) }) else { return false }
        }
        if let min = f.minSize, row.type != 0 || row.size < min { return false }
        if let max = f.maxSize, row.type != 0 || row.size > max { return false }
        if let from = f.modifiedFrom, (row.mtimeNanoseconds ?? .min) < from { return false }
        if let before = f.modifiedBefore, (row.mtimeNanoseconds ?? .max) >= before { return false }
        if !f.locationIDs.isEmpty && !f.locationIDs.contains(row.locationID) { return false }
        return true
    }

    static func conditions(_ f: SearchFilters) -> ([String], StatementArguments) {
        var conditions: [String] = []
        var arguments = StatementArguments()
        func list(_ values: [some DatabaseValueConvertible]) -> String {
            for v in values { arguments += [v] }
            return values.map { _ in "?" }.joined(separator: ",")
        }
        if !f.categories.isEmpty { conditions.append("e.category IN (\(list(f.categories)))") }
        if !f.extensions.isEmpty {
            let parts = f.extensions.map { ext -> String in
                arguments += ["%." + ext]
                return "lower(CAST(e.name AS TEXT)) LIKE ?"
            }
            conditions.append("(" + parts.joined(separator: " OR ") + ")")
            conditions.append("e.type = 0")
        }
        if let min = f.minSize {
            conditions.append("e.size >= ? AND e.type = 0")
            arguments += [min]
        }
        if let max = f.maxSize {
            conditions.append("e.size <= ? AND e.type = 0")
            arguments += [max]
        }
        if let from = f.modifiedFrom {
            conditions.append("e.mtime_ns >= ?")
            arguments += [from]
        }
        if let before = f.modifiedBefore {
            conditions.append("e.mtime_ns < ?")
            arguments += [before]
        }
        if !f.locationIDs.isEmpty { conditions.append("e.location_id IN (\(list(f.locationIDs)))") }
        if !f.within.isEmpty {
            conditions.append(
                """
                e.id IN (WITH RECURSIVE below(id) AS (SELECT id FROM entries WHERE parent_id IN (\(list(f.within)))
                    UNION SELECT x.id FROM entries x JOIN below b ON x.parent_id = b.id) SELECT id FROM below)
                """
            )
        }
        for tag in f.tags {
            // Entries by uuid from the tag's links (both indexed), not a lookup per entry.
            conditions.append(
                """
                e.uuid IN (SELECT et.entry_uuid FROM tags t JOIN entry_tags et ON et.tag_uuid = t.uuid
                    WHERE t.name = ? COLLATE NOCASE AND t.deleted = 0 AND et.deleted = 0)
                """
            )
            arguments += [tag]
        }
        if f.duplicatesOnly {
            conditions.append(
                """
                e.type = 0 AND e.content_id IS NOT NULL AND EXISTS (SELECT 1 FROM entries d
                    WHERE d.content_id = e.content_id AND d.id != e.id
                    AND (d.inode IS NOT e.inode OR d.device_number IS NOT e.device_number))
                """
            )
        }
        return (conditions, arguments)
    }

    /// A token quoted for an FTS5 expression: never read as syntax.
    static func quote(_ token: String) -> String {
        "\"" + token.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
