import Foundation
import SDCore
import SDStore
import SDSystem
import Synchronization

/// How well a candidate matched, strongest first.
public enum MatchTier: Int, Sendable, Codable, Comparable {
    /// Every term matched, some only through the names of the folders above.
    case path = 1
    /// Every term matched a word of the name.
    case word = 2
    /// The name starts with the query.
    case prefix = 3
    /// The name is the query (with or without its extension).
    case exact = 4
    public static func < (a: MatchTier, b: MatchTier) -> Bool { a.rawValue < b.rawValue }
}

/// A candidate of the first stage, with what the second stage ranks by.
public struct SearchCandidate: Sendable {
    public var row: SearchRow
    public var tier: MatchTier
    /// The folded name's words.
    public var nameWords: [String]
    /// Inverse document frequency of each query word (from the index's statistics).
    public var idf: [Double]
    /// Score given by the reranker (higher is better).
    public var score = 0.0
}

/// The second stage: orders the first stage's candidates. The lexical reranker ships now; a semantic one (a
/// local model) can take its place without touching the first stage.
public protocol Reranker: Sendable {
    func rerank(_ query: SearchQuery, _ candidates: [SearchCandidate]) async throws -> [SearchCandidate]
}

/// Ranks by tier (exact name, then name prefix, then words in the name, then words in the path), then BM25 of
/// the query words over the name, then a small boost for recently modified entries, on one scale:
/// `100 * tier + min(bm25, 60) + recency` with recency in [0, 10]. (BM25 is computed here as a positive
/// number, higher is better; SQLite's `bm25()` is negative, lower is better, and is not used.)
public struct LexicalReranker: Reranker {
    public var now: Date
    public init(now: Date = Date()) { self.now = now }

    public func rerank(_ query: SearchQuery, _ candidates: [SearchCandidate]) async throws -> [SearchCandidate] {
        let words = query.words + query.phrases.flatMap { $0 }
        let nowNs = now.timeIntervalSince1970 * 1e9
        var ranked = candidates
        for i in ranked.indices {
            let c = ranked[i]
            ranked[i].score = 100 * Double(c.tier.rawValue) + min(Self.bm25(words, c), 60) + recency(c.row, nowNs)
        }
        ranked.sort { a, b in
            if a.score != b.score { return a.score > b.score }
            return a.row.name.lexicographicallyPrecedes(b.row.name)
        }
        return ranked
    }

    /// BM25 over the name (k1 1.2, b 0.75, average name 4 words); a word's frequency is how many name words
    /// start with it.
    static func bm25(_ words: [String], _ c: SearchCandidate) -> Double {
        let k1 = 1.2, b = 0.75, average = 4.0
        let length = Double(max(1, c.nameWords.count))
        var score = 0.0
        for (i, word) in words.enumerated() {
            let tf = Double(c.nameWords.filter { $0.hasPrefix(word) }.count)
            guard tf > 0 else { continue }
            let idf = i < c.idf.count ? c.idf[i] : 1
            score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / average))
        }
        return score
    }

    /// Up to 10 for an entry modified now, halving every 90 days.
    func recency(_ row: SearchRow, _ nowNs: Double) -> Double {
        guard let mtime = row.mtimeNanoseconds, mtime > 0 else { return 0 }
        let days = max(0, (nowNs - Double(mtime)) / 86_400e9)
        return 10 * pow(0.5, days / 90)
    }
}

/// One result.
public struct SearchHit: Sendable, Codable, Equatable {
    public var id: Int64
    public var name: String
    public var path: String
    public var kind: String
    public var size: Int64
    public var modified: Date?
    public var contentID: String?
    public var tier: Int
    public var score: Double
    /// The name of the device another device's file is on (its path is then `sd://DEVICE-ID/...`).
    public var device: String?
}

/// A page of results.
public struct SearchPage: Sendable, Codable {
    public var hits: [SearchHit]
    /// Pass back to get the next page; nil at the end.
    public var nextCursor: String?
    public var notes: [String]
    public var seconds: Double
}

public struct SearchRequest: Sendable {
    public var query: SearchQuery
    public var sort: SearchSort = .relevance
    public var limit = 50
    public var cursor: String?
    public init(query: SearchQuery) { self.query = query }
}

/// Finds entries: a first stage that takes candidates from the gram postings (exact names, name prefixes,
/// words, substrings) and the filters, confirms every candidate against its real name, and a second stage
/// (`Reranker`) that orders them. Runs off the caller's thread; cancelling the task stops it between steps.
public final class SearchEngine: Sendable {
    let library: Library
    let reranker: any Reranker
    /// Candidates read per window (newest first): enough for a few pages, bounded so that a word in 30,000 names
    /// stays fast. Ranking is exact within that window; exact names and name prefixes are looked for first,
    /// whatever their age.
    let candidateLimit: Int

    public init(library: Library, reranker: any Reranker = LexicalReranker(), candidateLimit: Int = 300) {
        self.library = library
        self.reranker = reranker
        self.candidateLimit = candidateLimit
    }

    /// One page. Every sort is a total order ending with the entry id, and `nextCursor` is a keyset cursor
    /// on it: walking the pages gives every match once, and while the index changes between pages, nothing
    /// is repeated and nothing that existed throughout is skipped.
    ///
    /// A text search's order: first its head (every name match down to where the first page's reading of
    /// the newest candidates stopped, and the exact and prefix matches) in the asked order (relevance: tier,
    /// BM25, recency, scored with the first page's clock and word statistics), then the rest of its matches
    /// (older names, entries matched through their folders' names), newest first.
    public func search(_ request: SearchRequest) async throws -> SearchPage {
        let start = ContinuousClock.now
        let sort = request.sort
        let fingerprint = Self.fingerprint(request.query, sort)
        let cursor = try SearchCursor.decode(request.cursor, fingerprint: fingerprint)
        var query = cursor?.fallback == true ? Self.substringsInstead(request.query) : request.query
        if let cursor {
            query.modifiedFrom = cursor.modifiedFrom.map { Date(timeIntervalSince1970: $0) }
            query.modifiedBefore = cursor.modifiedBefore.map { Date(timeIntervalSince1970: $0) }
        }
        let limit = max(1, request.limit)
        let filters = try Self.filters(query, library)
        if !query.hasText {
            let (rows, more) = try await inSnapshot(query, sort, filters, limit) { stage in
                try Self.filtersOnly(stage, after: cursor?.key, limit: limit)
            }
            let shown = rows.map { SearchCandidate(row: $0, tier: .word, nameWords: [], idf: []) }
            var next: SearchCursor?
            if more, let last = rows.last {
                next = SearchCursor(fingerprint: fingerprint, phase: 0, id: last.id, now: 0)
                next?.key = SearchKey(last)
                next?.modifiedFrom = query.modifiedFrom?.timeIntervalSince1970
                next?.modifiedBefore = query.modifiedBefore?.timeIntervalSince1970
            }
            return try render(shown, next, query.notes, start)
        }
        var base = SearchCursor(
            fingerprint: fingerprint,
            phase: 1,
            id: 0,
            now: cursor?.now ?? Date().timeIntervalSince1970,
            idf: cursor?.idf,
            nameBound: cursor?.nameBound ?? 0,
            exactBound: cursor?.exactBound ?? 0,
            fallback: cursor?.fallback ?? false,
            moved: cursor?.moved,
            modifiedFrom: query.modifiedFrom?.timeIntervalSince1970,
            modifiedBefore: query.modifiedBefore?.timeIntervalSince1970
        )
        var notes = query.notes
        var shown: [SearchCandidate] = []
        var next: SearchCursor?
        if cursor == nil || cursor?.phase == 1 {
            let given = cursor.map { HeadBounds(name: $0.nameBound, exact: $0.exactBound) }
            var head = try await inSnapshot(query, sort, filters, limit) {
                try $0.head(bounds: given, idf: cursor?.idf, moved: cursor?.moved)
            }
            // Words in no name nor folder name: looked for inside names instead (and so on every later page).
            if cursor == nil && head.candidates.isEmpty && Self.mayFallBack(query) {
                let (bounds, moved) = (head.bounds, head.moved)
                let none = try await inSnapshot(query, sort, filters, limit) {
                    let rest = try $0.rest(before: .max, bounds: bounds, moved: moved, need: 1)
                    return rest.candidates.isEmpty && rest.floor == nil
                }
                if none {
                    let words = query.words.map { "'\($0)'" }.joined(separator: ", ")
                    query = Self.substringsInstead(query)
                    base.fallback = true
                    head = try await inSnapshot(query, sort, filters, limit) {
                        try $0.head(bounds: nil, idf: nil, moved: nil)
                    }
                    if !head.candidates.isEmpty {
                        head.notes.append("no name has the words \(words): searched inside names")
                    }
                }
            }
            notes = head.notes
            base.idf = head.idf
            base.moved = head.moved
            (base.nameBound, base.exactBound) = (head.bounds.name, head.bounds.exact)
            var ordered = head.candidates
            if sort == .relevance {
                let ranker =
                    reranker is LexicalReranker
                    ? LexicalReranker(now: Date(timeIntervalSince1970: base.now)) : reranker
                ordered = try await ranker.rerank(query, ordered)
            }
            ordered.sort { Self.precedes($0, $1, sort) }
            if let cursor { ordered = ordered.filter { Self.follows($0, cursor, sort) } }
            shown = Array(ordered.prefix(limit))
            if ordered.count > limit, let last = shown.last { next = base.at(last, phase: 1) }
        }
        try Task.checkCancellation()
        if next == nil {
            // The head is done: the rest, newest first, below the last of it given.
            let below = cursor?.phase == 2 ? cursor?.id ?? .max : .max
            let need = limit - shown.count
            let bounds = HeadBounds(name: base.nameBound, exact: base.exactBound)
            let moved = base.moved
            let rest = try await inSnapshot(query, sort, filters, limit) {
                try $0.rest(before: below, bounds: bounds, moved: moved, need: need + 1)
            }
            shown += rest.candidates.prefix(need)
            if rest.candidates.count > need {
                next = base
                next?.phase = 2
                next?.id = rest.candidates.prefix(need).last?.row.id ?? below
            } else if let floor = rest.floor {
                // The page read as many names as one may: the next goes on below where it stopped.
                next = base
                next?.phase = 2
                next?.id = floor
            }
        }
        return try render(shown, next, notes, start)
    }

    /// Runs `body` on a first stage over one read snapshot of the library, off the caller's thread; a
    /// cancelled task stops it between steps.
    func inSnapshot<T: Sendable>(
        _ query: SearchQuery,
        _ sort: SearchSort,
        _ filters: SearchFilters,
        _ limit: Int,
        _ body: @escaping @Sendable (Stage1) throws -> T
    ) async throws -> T {
        let cancelled = CancelFlag()
        let library = self.library
        let candidateLimit = max(self.candidateLimit, limit * 4)
        let value = try await withTaskCancellationHandler {
            try await Task.detached {
                try library.withSearchSnapshot { snapshot in
                    var request = SearchRequest(query: query)
                    request.sort = sort
                    request.limit = limit
                    let stage = Stage1(
                        snapshot: snapshot,
                        request: request,
                        filters: filters,
                        want: limit,
                        candidateLimit: candidateLimit,
                        cancelled: { cancelled.isSet }
                    )
                    return try body(stage)
                }
            }.value
        } onCancel: {
            cancelled.set()
        }
        try Task.checkCancellation()
        return value
    }

    /// A page of a search by filters alone, after `key`: `limit` rows, and whether more follow.
    static func filtersOnly(_ stage: Stage1, after key: SearchKey?, limit: Int) throws -> (
        rows: [SearchRow], more: Bool
    ) {
        var kept: [SearchRow] = []
        var last = key
        while kept.count <= limit {
            try stage.check()
            let rows = try stage.snapshot.filtered(
                stage.filters,
                sort: stage.request.sort,
                after: last,
                limit: limit + 1
            )
            guard let end = rows.last else { break }
            last = SearchKey(end)
            kept +=
                stage.query.excluded.isEmpty
                ? rows : rows.filter { !stage.excludedByName(SearchText.words(SearchText.fold($0.name))) }
            if rows.count <= limit { break }
        }
        return (Array(kept.prefix(limit)), kept.count > limit)
    }

    /// The name of the device an `sd://DEVICE/...` path is on (nil for this device's paths).
    static func device(of path: [UInt8], _ names: [String: String]) -> String? {
        let scheme = Array("sd://".utf8)
        guard path.starts(with: scheme), let slash = path[scheme.count...].firstIndex(of: 0x2F) else { return nil }
        return names[String(decoding: path[scheme.count..<slash], as: UTF8.self)]
    }

    /// The hits of a page, with their paths.
    func render(_ shown: [SearchCandidate], _ next: SearchCursor?, _ notes: [String], _ start: ContinuousClock.Instant)
        throws -> SearchPage
    {
        let names = try library.deviceNames()
        let hits = try library.withSearchSnapshot { snapshot in
            let paths = try snapshot.paths(of: shown.map(\.row))
            return zip(shown, paths).map { c, path in
                let path = path ?? c.row.name
                return SearchHit(
                    id: c.row.id,
                    name: PathText.string(c.row.name),
                    path: PathText.string(path),
                    kind: c.row.type == 1 ? "folder" : (c.row.category ?? "unknown"),
                    size: c.row.size,
                    modified: c.row.mtimeNanoseconds.map { Date(timeIntervalSince1970: Double($0) / 1e9) },
                    contentID: c.row.contentID.map { ContentID(int64: $0).hex },
                    tier: c.tier.rawValue,
                    score: c.score,
                    device: Self.device(of: path, names)
                )
            }
        }
        return SearchPage(
            hits: hits,
            nextCursor: try next?.encoded(),
            notes: notes,
            seconds: (ContinuousClock.now - start).seconds
        )
    }

    /// The order of a head: the sort's key, then the entry id.
    static func precedes(_ a: SearchCandidate, _ b: SearchCandidate, _ sort: SearchSort) -> Bool {
        switch sort {
        case .relevance: a.score > b.score || (a.score == b.score && a.row.id < b.row.id)
        case .name:
            a.row.name.lexicographicallyPrecedes(b.row.name) || (a.row.name == b.row.name && a.row.id < b.row.id)
        case .size: a.row.size > b.row.size || (a.row.size == b.row.size && a.row.id < b.row.id)
        case .modified:
            (a.row.mtimeNanoseconds ?? .min) > (b.row.mtimeNanoseconds ?? .min)
                || ((a.row.mtimeNanoseconds ?? .min) == (b.row.mtimeNanoseconds ?? .min) && a.row.id < b.row.id)
        }
    }

    /// Whether `c` comes after the cursor's position in the head's order.
    static func follows(_ c: SearchCandidate, _ cursor: SearchCursor, _ sort: SearchSort) -> Bool {
        var last = c
        last.row.id = cursor.id
        last.score = cursor.score ?? 0
        if let key = cursor.key {
            last.row.name = key.name
            last.row.size = key.size
            last.row.mtimeNanoseconds = key.mtimeNanoseconds
        }
        return precedes(last, c, sort)
    }

    static func mayFallBack(_ query: SearchQuery) -> Bool {
        query.substrings.isEmpty && query.phrases.isEmpty && query.inside.isEmpty && !query.words.isEmpty
            && query.words.allSatisfy { $0.count >= 3 }
    }

    static func substringsInstead(_ query: SearchQuery) -> SearchQuery {
        var query = query
        query.substrings += query.words
        query.words = []
        return query
    }

    /// What a cursor belongs to: the query (as parsed) and the sort, hashed (FNV-1a).
    static func fingerprint(_ query: SearchQuery, _ sort: SearchSort) -> String {
        // (Without the dates: `modified:7d` means other dates on the next page; the cursor keeps the first's.)
        var query = query
        query.modifiedFrom = nil
        query.modifiedBefore = nil
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "\(query)|\(sort.rawValue)".utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }

    /// The query's filters in the library's terms (locations and folders by id).
    ///
    /// #### Errors
    /// `SearchQueryError` for a location or folder the library does not know.
    static func filters(_ query: SearchQuery, _ library: Library) throws -> SearchFilters {
        var f = SearchFilters()
        f.categories = query.kinds.map(\.rawValue)
        f.extensions = query.extensions
        f.minSize = query.minSize
        f.maxSize = query.maxSize
        f.modifiedFrom = query.modifiedFrom.map { Int64($0.timeIntervalSince1970 * 1e9) }
        f.modifiedBefore = query.modifiedBefore.map { Int64($0.timeIntervalSince1970 * 1e9) }
        f.tags = query.tags
        f.duplicatesOnly = query.duplicatesOnly
        for key in query.locations {
            guard let location = try library.fetchLocation(key) else {
                throw SearchQueryError("location:\(key) is not a location of this library; see `sd location list`")
            }
            f.locationIDs.append(location.id)
        }
        for path in query.inPaths {
            var expanded = path
            if expanded == "~" || expanded.hasPrefix("~/") {
                expanded = FileManager.default.homeDirectoryForCurrentUser.path + expanded.dropFirst()
            }
            let absolute =
                expanded.hasPrefix("/") ? expanded : FileSystem.currentDirectory() + "/" + expanded
            let standardized = URL(fileURLWithPath: absolute).standardizedFileURL.path
            guard let (location, id) = try library.resolveEntry(path: PathText.bytes(standardized)) else {
                throw SearchQueryError("in:\(path) is not a folder in the index")
            }
            if id == location.rootEntryID {
                f.locationIDs.append(location.id)
            } else {
                f.within.append(id)
            }
        }
        return f
    }

}

/// A keyset cursor: where a page ended in its search's order, and what keeps that order the same on the
/// pages after (the clock and word statistics relevance was scored with, the bounds of the head).
struct SearchCursor: Codable, Sendable {
    var version = 1
    var fingerprint: String
    /// 0: a search by filters alone; 1: in the head; 2: in the rest (newest first).
    var phase: Int
    /// The last entry given (phase 2: the rest continues below it).
    var id: Int64
    var now: Double
    var idf: [Double]?
    var nameBound: Int64 = 0
    var exactBound: Int64 = 0
    var fallback = false
    /// The words the first page searched inside names instead (see `Stage1.effectiveQuery`).
    var moved: [String]?
    /// The dates a relative `modified:` (today, 7d) meant on the first page.
    var modifiedFrom: Double?
    var modifiedBefore: Double?
    /// The last entry's relevance score (phase 1).
    var score: Double?
    /// The last entry's sort keys (phase 1, and searches by filters alone).
    var key: SearchKey?

    /// This cursor, placed after `c`.
    func at(_ c: SearchCandidate, phase: Int) -> SearchCursor {
        var cursor = self
        cursor.phase = phase
        cursor.id = c.row.id
        cursor.score = c.score
        cursor.key = SearchKey(c.row)
        return cursor
    }

    func encoded() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return try encoder.encode(self).base64EncodedString()
    }

    /// The cursor `text` stands for; nil for none.
    ///
    /// #### Errors
    /// `SearchQueryError` for a cursor this search did not give (garbled, or of another query or sort).
    static func decode(_ text: String?, fingerprint: String) throws -> SearchCursor? {
        guard let text else { return nil }
        guard let data = Data(base64Encoded: text), let cursor = try? JSONDecoder().decode(Self.self, from: data),
            cursor.version == 1
        else {
            throw SearchQueryError(
                "the cursor '\(text.prefix(40))' is not one this search gave; start without --cursor"
            )
        }
        // (A cursor is the user's text: scores from its numbers must stay numbers.)
        guard (cursor.idf ?? []).allSatisfy({ $0.isFinite && $0 >= 0 && $0 < 1_000 }), cursor.now.isFinite,
            cursor.score.map(\.isFinite) ?? true, (cursor.idf?.count ?? 0) <= 64
        else {
            throw SearchQueryError(
                "the cursor '\(text.prefix(40))' is not one this search gave; start without --cursor"
            )
        }
        guard cursor.fingerprint == fingerprint else {
            throw SearchQueryError("that cursor belongs to another query or sort; start without --cursor")
        }
        return cursor
    }
}

/// Set when the search's task is cancelled; the first stage checks it between steps.
final class CancelFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func set() { flag.store(true, ordering: .relaxed) }
    var isSet: Bool { flag.load(ordering: .relaxed) }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
