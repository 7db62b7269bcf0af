import Foundation
import GRDB
import GRDBSQLite
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

/// Where a page of a listing ended: the last row's sort keys and id (a keyset cursor's position).
public struct SearchKey: Sendable, Codable, Equatable {
    public var id: Int64
    public var name: [UInt8]
    public var size: Int64
    public var mtimeNanoseconds: Int64?

    public init(id: Int64, name: [UInt8], size: Int64, mtimeNanoseconds: Int64?) {
        self.id = id
        self.name = name
        self.size = size
        self.mtimeNanoseconds = mtimeNanoseconds
    }

    public init(_ row: SearchRow) {
        self.init(id: row.id, name: row.name, size: row.size, mtimeNanoseconds: row.mtimeNanoseconds)
    }

    enum CodingKeys: String, CodingKey { case id, name, size, mtime }

    // The name as base64 (bytes, not necessarily UTF-8; short in a cursor).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(Int64.self, forKey: .id)
        name = [UInt8](try c.decode(Data.self, forKey: .name))
        size = try c.decode(Int64.self, forKey: .size)
        mtimeNanoseconds = try c.decodeIfPresent(Int64.self, forKey: .mtime)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(Data(name), forKey: .name)
        try c.encode(size, forKey: .size)
        try c.encodeIfPresent(mtimeNanoseconds, forKey: .mtime)
    }
}

extension Library {

    // MARK: - Queries

    /// The search's view of the index: everything a search reads, in one read transaction.
    ///
    /// #### Implementation details
    /// Searches read the database memory-mapped: they look rows up all over a file far larger than a reader's
    /// page cache, and with `pread` a third of a tag search's time was the kernel copying pages. (The mapped
    /// pages are the kernel's file cache; a rebuild turns mapping off on the reader it borrows, so that reading
    /// every name does not count them into the indexer's memory.)
    public func withSearchSnapshot<T>(_ body: (SearchSnapshot) throws -> T) throws -> T {
        try database.read { db in
            try db.execute(sql: "PRAGMA mmap_size = \(Self.searchMapSize)")
            return try body(SearchSnapshot(db: db))
        }
    }

    static let searchMapSize = 1 << 40
}

/// Read access for one search (all its reads see one state of the library). Valid only inside
/// `withSearchSnapshot`.
public struct SearchSnapshot {
    let db: Database

    /// Entries with ids up to this are in the gram postings; the rest are matched by reading their names.
    public func indexedThrough() throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT indexed_through FROM search_state WHERE id = 1") ?? 0
    }

    func hasIndex(_ name: String) throws -> Bool {
        try Int.fetchOne(
            db,
            sql: "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?",
            arguments: [name]
        )
            == 1
    }

    /// How many entries each gram's list holds (upper bounds: deleted and renamed entries stay in lists until
    /// a rebuild).
    public func gramCounts(_ grams: [UInt32]) throws -> [Int] {
        let statement = try db.cachedStatement(sql: "SELECT n FROM search_gram_counts WHERE gram = ?")
        return try grams.map { gram in
            let q = RawQuery(statement, db, arguments: [Int64(gram)])
            guard try q.next() else { return 0 }
            let n = q.int64(0)
            while try q.next() {}
            return Int(n)
        }
    }

    /// Entry ids below `before` (and at or above `downTo`) whose names have every one of `grams` (checked for
    /// the four rarest), newest first: a superset of what the grams stand for (the caller confirms each on its name). Empty when a gram
    /// is in no name, or `grams` is empty.
    public func postingMatches(_ grams: [UInt32], limit: Int, before: Int64 = .max, downTo: Int64 = .min) throws
        -> [Int64]
    {
        let unique = Array(Set(grams))
        guard !unique.isEmpty, limit > 0 else { return [] }
        let counts = try gramCounts(unique)
        if counts.contains(0) { return [] }
        let chosen = zip(unique, counts).sorted { ($0.1, $0.0) < ($1.1, $1.0) }.prefix(4).map(\.0)
        let cursors = try chosen.enumerated().map {
            try PostingCursor(db, slot: $0.offset, gram: $0.element, before: before)
        }
        defer { for cursor in cursors { cursor.close() } }
        var result: [Int64] = []
        let driver = cursors[0]
        outer: while result.count < limit, let id = try driver.next(), id >= downTo {
            for filter in cursors.dropFirst() where !(try filter.contains(id)) { continue outer }
            result.append(id)
        }
        return result
    }

    /// Documents per word (an upper bound from the rarest of its grams; a one-letter word counts as in every
    /// name), and all documents.
    public func documentFrequencies(_ words: [String]) throws -> (counts: [Int], total: Int) {
        let total = max(Int(try Library.searchIndexedThrough(db)), 1)
        let counts = try words.map { word -> Int in
            let grams = SearchGrams.wordGrams(word)
            guard !grams.isEmpty else { return total }
            return try gramCounts(grams).min() ?? total
        }
        return (counts, total)
    }

    /// Entries renamed since they were indexed (their new names are not in the lists yet), with their names.
    public func renamedEntries() throws -> [(id: Int64, name: [UInt8])] {
        try Row.fetchAll(db, sql: "SELECT e.id, e.name FROM search_dirty d CROSS JOIN entries e ON e.id = d.id").map {
            ($0[0], [UInt8]($0[1] as Data))
        }
    }

    /// Indexed entries below `before`, newest first, with their names (for a query the grams cannot narrow).
    public func indexedEntries(before: Int64, limit: Int) throws -> [(id: Int64, name: [UInt8])] {
        let through = try Library.searchIndexedThrough(db)
        let q = RawQuery(
            try db.cachedStatement(
                sql: "SELECT id, name FROM entries WHERE id < ? AND id <= ? ORDER BY id DESC LIMIT ?"
            ),
            db,
            arguments: [before, through, Int64(limit)]
        )
        var result: [(id: Int64, name: [UInt8])] = []
        while try q.next() { result.append((q.int64(0), q.bytes(1))) }
        return result
    }

    /// Entries beyond `after` (not yet in the search index), with their names, in id order.
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

    /// Entries passing `filters` alone (no words), in `sort` order: `limit` of them after `after` (keyset).
    public func filtered(
        _ filters: SearchFilters,
        sort: SearchSort,
        after: SearchKey? = nil,
        limit: Int
    ) throws -> [SearchRow] {
        if !filters.tags.isEmpty {
            // Tagged entries are few next to the index: their ids and sort keys come from the tags' links, are
            // sorted here, and only the rows a page needs are read (SQLite sorted 1,000 whole rows in a temporary
            // B-tree: 10 ms).
            var rest = filters
            rest.tags = []
            var keyed = try taggedEntries(filters.tags, names: sort == .name)
            func precedes(
                _ a: (id: Int64, mtime: Int64, size: Int64, name: [UInt8]),
                _ b: (id: Int64, mtime: Int64, size: Int64, name: [UInt8])
            ) -> Bool {
                switch sort {
                case .name: a.name.lexicographicallyPrecedes(b.name) || (a.name == b.name && a.id < b.id)
                case .size: (a.size, b.id) > (b.size, a.id)
                case .modified, .relevance: (a.mtime, a.id) > (b.mtime, b.id)
                }
            }
            keyed.sort(by: precedes)
            if let after {
                // Keyset: what comes after the last row given (its sort key, then its id).
                let last = (after.id, after.mtimeNanoseconds ?? .min, after.size, after.name)
                // (Tagged entries without a time sort as the oldest.)
                keyed = keyed.filter { precedes(last, $0) }
            }
            var result: [SearchRow] = []
            var start = 0
            while result.count < limit && start < keyed.count {
                let ids = keyed[start..<min(keyed.count, start + max(64, limit))].map(\.id)
                start += ids.count
                let byID = Dictionary(try rows(ids, filters: rest).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
                result += ids.compactMap { byID[$0] }
            }
            return Array(result.prefix(limit))
        }
        let (conditions, arguments) = Self.conditions(filters)
        let order: String
        switch sort {
        case .name: order = "e.name, e.id"
        case .size: order = "e.size DESC, e.id"
        case .modified, .relevance: order = "e.mtime_ns DESC, e.id DESC"
        }
        var conditions2 = conditions
        var keyArguments: [(any DatabaseValueConvertible)?] = []
        if let after {
            // Keyset: strictly after the last row given, in the same order (its sort key, then its id).
            switch sort {
            case .name:
                conditions2.append("(e.name > ? OR (e.name = ? AND e.id > ?))")
                keyArguments = [Data(after.name), Data(after.name), after.id]
            case .size:
                conditions2.append("(e.size < ? OR (e.size = ? AND e.id > ?))")
                keyArguments = [after.size, after.size, after.id]
            case .modified, .relevance:
                if let mtime = after.mtimeNanoseconds {
                    conditions2.append("(e.mtime_ns < ? OR (e.mtime_ns = ? AND e.id < ?) OR e.mtime_ns IS NULL)")
                    keyArguments = [mtime, mtime, after.id]
                } else {
                    conditions2.append("(e.mtime_ns IS NULL AND e.id < ?)")
                    keyArguments = [after.id]
                }
            }
        }
        var from = Self.rowColumns
        // Only large files wanted: read them from their small index rather than scan every entry in date order.
        if let min = filters.minSize, min >= SearchFilters.largeFile, try hasIndex("entries_large") {
            conditions2.append("e.size >= \(SearchFilters.largeFile)")
            from += " INDEXED BY entries_large"
        }
        let condition = conditions2.isEmpty ? "" : "WHERE \(conditions2.joined(separator: " AND "))"
        return try Row.fetchAll(
            db,
            sql: "\(from) \(condition) ORDER BY \(order) LIMIT ?",
            arguments: arguments + StatementArguments(keyArguments) + [limit]
        ).map(Self.row)
    }

    /// A LIKE pattern for the tags below `tag` (`tag/...`), its own `%`, `_` and `\` escaped.
    static func descendants(of tag: String) -> String {
        var pattern = ""
        for c in tag {
            if c == "%" || c == "_" || c == "\\" { pattern.append("\\") }
            pattern.append(c)
        }
        return pattern + "/%"
    }

    /// The entries carrying every one of these tags or a tag below them (names compared case-insensitively;
    /// deleted tags and links
    /// left out), with what listings sort them by (names only when asked: most listings sort by date).
    func taggedEntries(_ tags: [String], names: Bool) throws -> [(id: Int64, mtime: Int64, size: Int64, name: [UInt8])]
    {
        var result: [Int64: (id: Int64, mtime: Int64, size: Int64, name: [UInt8])]?
        let tagUUIDs = try db.cachedStatement(
            sql: "SELECT uuid FROM tags WHERE (name = ? COLLATE NOCASE OR name LIKE ? ESCAPE '\\') AND deleted = 0"
        )
        let statement = try db.cachedStatement(
            sql: """
                SELECT e.id, e.mtime_ns, e.size, \(names ? "e.name" : "NULL") FROM entry_tags et INDEXED BY entry_tags_tag
                CROSS JOIN entries e ON e.uuid = et.entry_uuid
                WHERE et.tag_uuid = ? AND et.deleted = 0
                """
        )
        // Tags on content: every file with that content carries them.
        let onContent = try db.cachedStatement(
            sql: """
                SELECT e.id, e.mtime_ns, e.size, \(names ? "e.name" : "NULL") FROM content_tags ct INDEXED BY content_tags_tag
                CROSS JOIN entries e ON e.content_id = ct.content_id
                WHERE ct.tag_uuid = ? AND ct.deleted = 0
                """
        )
        for tag in tags {
            var found: [Int64: (id: Int64, mtime: Int64, size: Int64, name: [UInt8])] = [:]
            // The tag and every tag below it (`finance` covers `finance/tax`).
            for tagUUID in try String.fetchAll(tagUUIDs, arguments: [tag, Self.descendants(of: tag)]) {
                for source in [statement, onContent] {
                    let q = RawQuery(source, db, text: tagUUID)
                    while try q.next() {
                        let id = q.int64(0)
                        found[id] = (id, q.isNull(1) ? .min : q.int64(1), q.int64(2), names ? q.bytes(3) : [])
                    }
                }
            }
            result = result.map { $0.filter { found[$0.key] != nil } } ?? found
            if result?.isEmpty ?? false { break }
        }
        return Array((result ?? [:]).values)
    }

    /// Folders (id, parent, name) of the locations, for matching words against paths.
    public func folders() throws -> [(id: Int64, parent: Int64?, name: [UInt8])] {
        try Row.fetchAll(db, sql: "SELECT id, parent_id, name FROM entries WHERE type = 1").map {
            ($0[0], $0[1], [UInt8]($0[2] as Data))
        }
    }

    /// Children of these folders (for entries matched through their path) below `before`: the `limit` newest.
    public func children(of folders: [Int64], before: Int64 = .max, limit: Int) throws -> [Int64] {
        guard !folders.isEmpty, limit > 0 else { return [] }
        var result: [Int64] = []
        for start in stride(from: 0, to: folders.count, by: 5_000) {
            let chunk = Array(folders[start..<min(folders.count, start + 5_000)])
            result += try Int64.fetchAll(
                db,
                sql: """
                    SELECT id FROM entries WHERE parent_id IN (\(chunk.map { _ in "?" }.joined(separator: ",")))
                    AND id < ? ORDER BY id DESC LIMIT ?
                    """,
                arguments: StatementArguments(chunk) + [before, limit]
            )
        }
        return Array(result.sorted(by: >).prefix(limit))
    }

    /// The absolute paths of these rows (nil for one that has gone), each folder above them read once.
    public func paths(of rows: [SearchRow]) throws -> [[UInt8]?] {
        let statement = try db.cachedStatement(
            sql:
                // Another device's entries (synced) as SdPaths of that device: sd://DEVICE/abs/path.
                """
                SELECT e.parent_id, e.name, CASE WHEN l.device_id IS (SELECT self_device FROM sync_state WHERE id = 1)
                    THEN l.path ELSE CAST('sd://' || d.uuid || CAST(l.path AS TEXT) AS BLOB) END
                FROM entries e JOIN locations l ON l.id = e.location_id JOIN devices d ON d.id = l.device_id
                WHERE e.id = ?
                """
        )
        var known: [Int64: [UInt8]] = [:]
        func path(_ id: Int64) throws -> [UInt8]? {
            if let path = known[id] { return path }
            var chain: [(id: Int64, component: [UInt8])] = []
            var current: Int64? = id
            var base: [UInt8]?
            while let at = current {
                if let path = known[at] {
                    base = path
                    break
                }
                let q = RawQuery(statement, db, arguments: [at])
                guard try q.next() else { return nil }
                let parent = q.isNull(0) ? nil : q.int64(0)
                // The root's name is its location's path.
                chain.append((at, parent == nil ? q.bytes(2) : q.bytes(1)))
                while try q.next() {}
                current = parent
            }
            var path = base
            for link in chain.reversed() {
                path = path.map { $0 + [0x2F] + link.component } ?? link.component
                known[link.id] = path
            }
            return path
        }
        return try rows.map { row in
            guard let parent = row.parentID else { return try path(row.id) }
            return try path(parent).map { $0 + [0x2F] + row.name }
        }
    }

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
                (e.uuid IN (SELECT et.entry_uuid FROM tags t JOIN entry_tags et ON et.tag_uuid = t.uuid
                    WHERE (t.name = ? COLLATE NOCASE OR t.name LIKE ? ESCAPE '\\') AND t.deleted = 0 AND et.deleted = 0)
                OR e.content_id IN (SELECT ct.content_id FROM tags t JOIN content_tags ct ON ct.tag_uuid = t.uuid
                    WHERE (t.name = ? COLLATE NOCASE OR t.name LIKE ? ESCAPE '\\') AND t.deleted = 0 AND ct.deleted = 0))
                """
            )
            // (On the file itself, or on its content: every copy carries a content's tags.)
            arguments += [tag, SearchSnapshot.descendants(of: tag), tag, SearchSnapshot.descendants(of: tag)]
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
}

/// Reads one gram's list newest first, chunk by chunk, through SQLite's C API: as the driver of an
/// intersection (`next`) or as one of its filters (`contains`, asked in descending order, which steps over
/// chunks above the id without decoding them).
final class PostingCursor {
    private let statement: OpaquePointer
    private let database: Database
    private let before: Int64
    private var ids: [Int64] = []
    private var index = -1
    private var chunkFirst = Int64.max
    private var exhausted = false

    /// `slot` tells apart the statements of one intersection (each needs its own).
    init(_ db: Database, slot: Int, gram: UInt32, before: Int64) throws {
        statement = try db.cachedStatement(
            sql:
                "SELECT first_id, ids FROM search_postings WHERE gram = ? AND first_id < ? ORDER BY first_id DESC -- \(slot)"
        ).sqliteStatement
        database = db
        self.before = before
        sqlite3_reset(statement)
        sqlite3_bind_int64(statement, 1, Int64(gram))
        sqlite3_bind_int64(statement, 2, before)
        ids.reserveCapacity(1_024)
    }

    func close() { sqlite3_reset(statement) }

    private func step() throws -> Bool {
        switch sqlite3_step(statement) {
        case SQLITE_ROW: return true
        case SQLITE_DONE:
            exhausted = true
            return false
        case let code:
            exhausted = true
            throw DatabaseError(
                resultCode: ResultCode(rawValue: code),
                message: String(cString: sqlite3_errmsg(database.sqliteConnection))
            )
        }
    }

    private func load() {
        chunkFirst = sqlite3_column_int64(statement, 0)
        let count = Int(sqlite3_column_bytes(statement, 1))
        Postings.decode(UnsafeRawBufferPointer(start: sqlite3_column_blob(statement, 1), count: count), into: &ids)
        index = ids.count - 1
    }

    /// The next id, descending.
    func next() throws -> Int64? {
        while true {
            while index >= 0 {
                let id = ids[index]
                index -= 1
                if id < before { return id }
            }
            if exhausted { return nil }
            guard try step() else { return nil }
            load()
        }
    }

    /// Whether the list holds `id`; ids must be asked in descending order.
    func contains(_ id: Int64) throws -> Bool {
        while true {
            if chunkFirst <= id {
                while index >= 0 && ids[index] > id { index -= 1 }
                return index >= 0 && ids[index] == id
            }
            if exhausted { return false }
            guard try step() else { return false }
            if sqlite3_column_int64(statement, 0) > id { continue }
            load()
        }
    }
}
