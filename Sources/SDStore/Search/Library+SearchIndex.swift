import Foundation
import GRDB
import SDSystem

/// Keeping the search index (`search_postings`, see `Schema.v4`) in step with the entries.
extension Library {
    /// How many entries the search index has not caught up with: new ones, and renamed ones.
    public func searchBacklog() throws -> Int {
        try database.read { db in
            let through = try Self.searchIndexedThrough(db)
            let new = try Int.fetchOne(db, sql: "SELECT count(*) FROM entries WHERE id > ?", arguments: [through]) ?? 0
            return new + (try Int.fetchOne(db, sql: "SELECT count(*) FROM search_dirty") ?? 0)
        }
    }

    /// Brings the search index up to date, a step at a time; returns how many entries it indexed (0 when caught
    /// up). When much is missing (a first scan, many renames) the whole index is rebuilt in one step, in
    /// memory on every core, which costs about 2 µs an entry against 20 µs to merge one into the stored lists;
    /// otherwise up to `batch` entries are merged in. Once caught up, makes the date and size indexes the search
    /// sorts and filters by, if a first scan dropped them.
    @discardableResult
    public func catchUpSearch(batch: Int = 20_000) throws -> Int {
        try database.write { db in
            try Self.withSmallCache(db) {
                let through = try Self.searchIndexedThrough(db)
                let stale = try Int.fetchOne(db, sql: "SELECT stale FROM search_state WHERE id = 1") ?? 0
                // New entries have ids above the mark: their number is at most the largest id's distance to it
                // (counting them read every row after a first scan).
                let largest = try Int64.fetchOne(db, sql: "SELECT coalesce(max(id), 0) FROM entries") ?? 0
                let new = Int(max(0, largest - through))
                let dirty = try Int.fetchOne(db, sql: "SELECT count(*) FROM search_dirty") ?? 0
                let indexed = Int(through)
                var added = 0
                if (new + dirty > 0 && (new + dirty) * 8 > indexed + new) || stale > max(10_000, indexed / 4) {
                    // The scan's caches, freed, go back to the system before the rebuild's threads allocate.
                    Memory.returnFreedToSystem()
                    // The date and size indexes are made (if missing) while the names are cut into grams, then on
                    // one thread: three threads on two cores took longer than one beside the index build.
                    if try Self.hasSearchSortIndexes(db) { return try rebuildSearchIndex(db) }
                    return try rebuildSearchIndex(db, threads: 1, alongside: Self.makeSearchSortIndexes)
                } else if new + dirty > 0 {
                    added = try Self.mergeIntoSearchIndex(db, batch: batch)
                }
                if added == 0 { try Self.makeSearchSortIndexes(db) }
                return added
            }
        }
    }

    /// Merges what is missing into the search index inside the current transaction when it is small (a live
    /// batch's own changes): changes are then searchable in the transaction that made them.
    static func catchUpSearchIfSmall(_ db: Database, limit: Int = 2_000) throws {
        let through = try searchIndexedThrough(db)
        let new =
            try Int.fetchOne(
                db,
                sql: "SELECT count(*) FROM (SELECT 1 FROM entries WHERE id > ? LIMIT ?)",
                arguments: [through, limit + 1]
            ) ?? 0
        let dirty = try Int.fetchOne(db, sql: "SELECT count(*) FROM search_dirty") ?? 0
        if new + dirty > 0 && new + dirty <= limit { _ = try mergeIntoSearchIndex(db, batch: limit) }
    }

    /// Empties the search index; `catchUpSearch` then rebuilds it (searches meanwhile read names).
    public func resetSearchIndex() throws {
        try database.write { db in
            try db.execute(
                sql: """
                    DELETE FROM search_postings;
                    DELETE FROM search_gram_counts;
                    DELETE FROM search_dirty;
                    UPDATE search_state SET indexed_through = 0, stale = 0 WHERE id = 1;
                    """
            )
        }
    }

    /// Drops the date and size indexes before a scan that inserts many entries (`catchUpSearch` makes them
    /// again, sorted, once caught up): each insert into them cost about a tenth of the writer's time.
    public func dropSearchSortIndexes() throws {
        try database.write { db in
            try db.execute(sql: "DROP INDEX IF EXISTS entries_mtime")
            try db.execute(sql: "DROP INDEX IF EXISTS entries_large")
        }
    }

    static func makeSearchSortIndexes(_ db: Database) throws {
        // Listings by date (and filters scanned in date order) without reading every entry.
        try db.execute(sql: "CREATE INDEX IF NOT EXISTS entries_mtime ON entries(mtime_ns)")
        // Large files only (a few percent of entries, a small index): size filters from 1 MB up.
        try db.execute(
            sql: "CREATE INDEX IF NOT EXISTS entries_large ON entries(size) WHERE size >= \(SearchFilters.largeFile)"
        )
    }

    static func hasSearchSortIndexes(_ db: Database) throws -> Bool {
        try Int.fetchOne(
            db,
            sql:
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN ('entries_mtime', 'entries_large')"
        ) == 2
    }

    static func searchIndexedThrough(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT indexed_through FROM search_state WHERE id = 1") ?? 0
    }

    // MARK: - Whole rebuild

    /// Rebuilds the search index from every entry, running `alongside` on this connection while the names are
    /// read and cut. The entries must not change in this transaction before the lists are written: they are
    /// read through the pool's readers, which see the last commit (and `alongside` may only add indexes).
    ///
    /// #### Implementation details
    /// Names are read and cut into grams by id range, one range per core, each on a thread of its own into its
    /// own in-memory lists; the writer meanwhile does `alongside` (the date index took as long as the grams).
    /// The lists are then written gram by gram, the ranges' chunks one after the other, so that every B-tree
    /// insert appends.
    func rebuildSearchIndex(_ db: Database, threads: Int = 2, alongside: (Database) throws -> Void = { _ in }) throws
        -> Int
    {
        let upTo = try Int64.fetchOne(db, sql: "SELECT coalesce(max(id), 0) FROM entries") ?? 0
        let large = upTo > 50_000
        let parts = large ? max(1, min(threads, ProcessInfo.processInfo.activeProcessorCount)) : 1
        let bounds = (0...parts).map { Int64($0) * upTo / Int64(parts) }
        let done = DispatchSemaphore(value: 0)
        let results = PartResults(parts)
        let start = ContinuousClock.now
        for part in 0..<parts {
            let (low, high) = (bounds[part], bounds[part + 1])
            let database = self.database
            let build: @Sendable () -> Void = {
                do {
                    let lists = try database.read { db in
                        try Self.buildPostings(db, after: low, through: high, large: large)
                    }
                    results.set(part, .success(lists))
                } catch {
                    results.set(part, .failure(error))
                }
                done.signal()
            }
            do { try Threads.start(name: "sd-grams-\(part)", build) } catch {
                results.set(part, .failure(error))
                done.signal()
            }
        }
        var failure: (any Error)?
        do { try alongside(db) } catch { failure = error }
        let alongsideDone = ContinuousClock.now
        for _ in 0..<parts { done.wait() }
        if let failure { throw failure }
        let maps = try results.all()
        let built = ContinuousClock.now
        try db.execute(sql: "DELETE FROM search_postings; DELETE FROM search_gram_counts; DELETE FROM search_dirty")
        var grams = Set<UInt32>()
        for map in maps { grams.formUnion(map.lists.keys) }
        let insertChunk = RawStatement(
            try db.cachedStatement(sql: "INSERT INTO search_postings (gram, first_id, ids) VALUES (?, ?, ?)"),
            db
        )
        let insertCount = RawStatement(
            try db.cachedStatement(sql: "INSERT INTO search_gram_counts (gram, n) VALUES (?, ?)"),
            db
        )
        for gram in grams.sorted() {
            var count = 0
            for map in maps {
                guard let list = map.lists[gram] else { continue }
                count += list.count
                for chunk in list.chunks {
                    insertChunk.bind(1, Int64(gram))
                    insertChunk.bind(2, chunk.first)
                    insertChunk.bind(3, bytes: chunk.bytes)
                    try insertChunk.run()
                }
            }
            insertCount.bind(1, Int64(gram))
            insertCount.bind(2, Int64(count))
            try insertCount.run()
        }
        try db.execute(
            sql: "UPDATE search_state SET indexed_through = ?, stale = 0 WHERE id = 1",
            arguments: [upTo]
        )
        if ProcessInfo.processInfo.environment["SD_TRACE"] != nil {
            FileHandle.standardError.write(
                Data(
                    "search: grams built in \(built - start) (alongside: \(alongsideDone - start)), written in \(ContinuousClock.now - built)\n"
                        .utf8
                )
            )
        }
        return maps.reduce(0) { $0 + $1.names }
    }

    /// The lists of the entries in one id range, and how many names they came from.
    static func buildPostings(_ db: Database, after low: Int64, through high: Int64, large: Bool) throws
        -> PartLists
    {
        try db.execute(sql: "PRAGMA mmap_size = 0")
        var builder = PostingBuilder(large: large)
        let query = RawQuery(
            try db.cachedStatement(sql: "SELECT id, name FROM entries WHERE id > ? AND id <= ? ORDER BY id"),
            db,
            arguments: [low, high]
        )
        while try query.next() {
            let id = query.int64(0)
            query.withBytes(1) { builder.add(id: id, name: $0) }
        }
        let result = PartLists(lists: builder.finish(), names: builder.names)
        return result
    }

    // MARK: - Merging

    /// Merges up to `batch` new entries and up to `batch` renamed ones into the stored lists; returns how many.
    static func mergeIntoSearchIndex(_ db: Database, batch: Int) throws -> Int {
        let through = try searchIndexedThrough(db)
        var entries: [(id: Int64, name: [UInt8])] = []
        let new = RawQuery(
            try db.cachedStatement(sql: "SELECT id, name FROM entries WHERE id > ? ORDER BY id LIMIT ?"),
            db,
            arguments: [through, Int64(batch)]
        )
        while try new.next() { entries.append((new.int64(0), new.bytes(1))) }
        let upTo = entries.last?.id ?? through
        let dirty = RawQuery(
            try db.cachedStatement(
                sql: "SELECT d.id, e.name FROM search_dirty d CROSS JOIN entries e ON e.id = d.id ORDER BY d.id LIMIT ?"
            ),
            db,
            arguments: [Int64(batch)]
        )
        var dirtyIDs: [Int64] = []
        while try dirty.next() {
            dirtyIDs.append(dirty.int64(0))
            entries.append((dirty.int64(0), dirty.bytes(1)))
        }
        entries.sort { $0.id < $1.id }
        var byGram: [UInt32: [Int64]] = [:]
        for entry in entries {
            for gram in SearchGrams.nameGrams(entry.name) where byGram[gram]?.last != entry.id {
                byGram[gram, default: []].append(entry.id)
            }
        }
        for gram in byGram.keys.sorted() { try merge(byGram[gram]!, into: gram, db) }
        for start in stride(from: 0, to: dirtyIDs.count, by: 500) {
            let chunk = dirtyIDs[start..<min(dirtyIDs.count, start + 500)]
            try db.execute(
                sql: "DELETE FROM search_dirty WHERE id IN (\(chunk.map(String.init).joined(separator: ",")))"
            )
        }
        // Renamed entries deleted since were never read; their rows in search_dirty have gone with them.
        try db.execute(sql: "UPDATE search_state SET indexed_through = ? WHERE id = 1", arguments: [upTo])
        return entries.count
    }

    /// Adds ascending ids to one gram's stored list.
    static func merge(_ ids: [Int64], into gram: UInt32, _ db: Database) throws {
        let g = Int64(gram)
        // Cached statements: a live batch merges a few thousand lists, and preparing each statement anew cost
        // more than the merges themselves.
        func chunk(_ sql: String, _ arguments: StatementArguments) throws -> (first: Int64, ids: [Int64])? {
            guard let row = try Row.fetchOne(try db.cachedStatement(sql: sql), arguments: arguments) else {
                return nil
            }
            return (row[0], Postings.decode([UInt8](row[1] as Data)))
        }
        func replace(_ first: Int64?, with merged: [Int64]) throws {
            if let first {
                try db.cachedStatement(sql: "DELETE FROM search_postings WHERE gram = ? AND first_id = ?")
                    .execute(arguments: [g, first])
            }
            let insert = try db.cachedStatement(
                sql: "INSERT INTO search_postings (gram, first_id, ids) VALUES (?, ?, ?)"
            )
            for part in Postings.encode(merged) {
                try insert.execute(arguments: [g, part.first, Data(part.bytes)])
            }
        }
        let newestSQL = "SELECT first_id, ids FROM search_postings WHERE gram = ? ORDER BY first_id DESC LIMIT 1"
        var added = 0
        var newest = try chunk(newestSQL, [g])
        let lastStored = newest?.ids.last ?? .min
        let older = ids.filter { $0 <= lastStored }
        let newer = ids.filter { $0 > lastStored }
        if !older.isEmpty {
            // Renamed entries (and reused ids): each goes into the chunk its id falls in.
            var groups: [Int64: [Int64]] = [:]
            for id in older {
                let target =
                    try Int64.fetchOne(
                        try db.cachedStatement(
                            sql: """
                                SELECT first_id FROM search_postings WHERE gram = ? AND first_id <= ?
                                ORDER BY first_id DESC LIMIT 1
                                """
                        ),
                        arguments: [g, id]
                    )
                    ?? Int64.fetchOne(
                        try db.cachedStatement(sql: "SELECT min(first_id) FROM search_postings WHERE gram = ?"),
                        arguments: [g]
                    ) ?? 0
                groups[target, default: []].append(id)
            }
            for (first, group) in groups {
                guard
                    let stored = try chunk(
                        "SELECT first_id, ids FROM search_postings WHERE gram = ? AND first_id = ?",
                        [g, first]
                    )
                else { continue }
                let merged = Array(Set(stored.ids).union(group)).sorted()
                guard merged.count > stored.ids.count else { continue }
                added += merged.count - stored.ids.count
                try replace(first, with: merged)
            }
            newest = try chunk(newestSQL, [g])
        }
        if !newer.isEmpty {
            try replace(newest?.first, with: (newest?.ids ?? []) + newer)
            added += newer.count
        }
        if added > 0 {
            try db.cachedStatement(
                sql: """
                    INSERT INTO search_gram_counts (gram, n) VALUES (?, ?)
                    ON CONFLICT (gram) DO UPDATE SET n = n + excluded.n
                    """
            ).execute(arguments: [g, added])
        }
    }
}

/// One id range's lists, built by one thread of a rebuild.
struct PartLists: @unchecked Sendable {
    // @unchecked: the tuples' arrays are plain values; Swift does not infer Sendable for tuple elements here.
    var lists: [UInt32: PostingBuilder.List]
    var names: Int
}

/// The parts of a rebuild as its threads finish them.
private final class PartResults: @unchecked Sendable {
    // @unchecked: `results` is only touched under `lock`.
    private let lock = NSLock()
    private var results: [Result<PartLists, any Error>?]
    init(_ parts: Int) { results = Array(repeating: nil, count: parts) }
    func set(_ part: Int, _ result: Result<PartLists, any Error>) { lock.withLock { results[part] = result } }
    func all() throws -> [PartLists] {
        try lock.withLock { try results.map { try $0!.get() } }
    }
}

extension Library {
    /// Checks the search index against the entries: every entry up to the mark (renamed ones aside) must be in
    /// the list of each of its name's grams, every list in ascending order, every count at least its list's
    /// length. Returns the problems found (empty when sound). Reads every list: for tests and `sd debug`.
    public func verifySearchIndex() throws -> [String] {
        try database.read { db in
            var problems: [String] = []
            var lists: [UInt32: Set<Int64>] = [:]
            for row in try Row.fetchAll(
                db,
                sql: "SELECT gram, first_id, ids FROM search_postings ORDER BY gram, first_id"
            ) {
                let gram = UInt32(truncatingIfNeeded: row[0] as Int64)
                let ids = Postings.decode([UInt8](row[2] as Data))
                if ids.first != row[1] as Int64 {
                    problems.append("gram \(gram): chunk keyed \(row[1] as Int64) starts at \(ids.first ?? -1)")
                }
                if zip(ids, ids.dropFirst()).contains(where: { $0 >= $1 }) {
                    problems.append("gram \(gram): chunk \(row[1] as Int64) is not ascending")
                }
                if let last = lists[gram]?.max(), let first = ids.first, first <= last {
                    problems.append("gram \(gram): chunk \(row[1] as Int64) overlaps the one before")
                }
                lists[gram, default: []].formUnion(ids)
            }
            for row in try Row.fetchAll(db, sql: "SELECT gram, n FROM search_gram_counts") {
                let gram = UInt32(truncatingIfNeeded: row[0] as Int64)
                if (row[1] as Int) < lists[gram]?.count ?? 0 {
                    problems.append("gram \(gram): count \(row[1] as Int) below its \(lists[gram]?.count ?? 0) ids")
                }
            }
            let through = try Self.searchIndexedThrough(db)
            let dirty = Set(try Int64.fetchAll(db, sql: "SELECT id FROM search_dirty"))
            for row in try Row.fetchAll(db, sql: "SELECT id, name FROM entries WHERE id <= ?", arguments: [through]) {
                let id: Int64 = row[0]
                guard !dirty.contains(id) else { continue }
                let name = [UInt8](row[1] as Data)
                for gram in SearchGrams.nameGrams(name) where !(lists[gram]?.contains(id) ?? false) {
                    problems.append(
                        "entry \(id) '\(String(decoding: name, as: UTF8.self))' is missing from gram \(gram)"
                    )
                    break
                }
            }
            return problems
        }
    }
}
