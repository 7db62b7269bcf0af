import Foundation
import SDCore
import SDStore
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

    public func search(_ request: SearchRequest) async throws -> SearchPage {
        let start = ContinuousClock.now
        let offset = try Self.offset(request.cursor)
        let cancelled = CancelFlag()
        let library = self.library
        let limit = max(1, request.limit)
        let want = offset + limit
        let candidateLimit = max(self.candidateLimit, want * 4)
        let filters = try Self.filters(request.query, library)
        let (candidates, notes, more) = try await withTaskCancellationHandler {
            try await Task.detached {
                try library.withSearchSnapshot { snapshot in
                    try Stage1(
                        snapshot: snapshot,
                        request: request,
                        filters: filters,
                        want: want,
                        candidateLimit: candidateLimit,
                        cancelled: { cancelled.isSet }
                    ).run()
                }
            }.value
        } onCancel: {
            cancelled.set()
        }
        try Task.checkCancellation()
        var ordered: [SearchCandidate]
        switch request.sort {
        case .relevance:
            ordered = request.query.hasText ? try await reranker.rerank(request.query, candidates) : candidates
        case .name: ordered = candidates.sorted { $0.row.name.lexicographicallyPrecedes($1.row.name) }
        case .size: ordered = candidates.sorted { ($0.row.size, $1.row.id) > ($1.row.size, $0.row.id) }
        case .modified:
            ordered = candidates.sorted {
                ($0.row.mtimeNanoseconds ?? 0, $1.row.id) > ($1.row.mtimeNanoseconds ?? 0, $0.row.id)
            }
        }
        try Task.checkCancellation()
        let pageRows = ordered.dropFirst(offset).prefix(limit)
        let hits = try library.withSearchSnapshot { snapshot in
            let paths = try snapshot.paths(of: pageRows.map(\.row))
            return zip(pageRows, paths).map { c, path in
                let path = path ?? c.row.name
                return SearchHit(
                    id: c.row.id,
                    name: String(decoding: c.row.name, as: UTF8.self),
                    path: String(decoding: path, as: UTF8.self),
                    kind: c.row.type == 1 ? "folder" : (c.row.category ?? "unknown"),
                    size: c.row.size,
                    modified: c.row.mtimeNanoseconds.map { Date(timeIntervalSince1970: Double($0) / 1e9) },
                    contentID: c.row.contentID.map { ContentID(int64: $0).hex },
                    tier: c.tier.rawValue,
                    score: c.score
                )
            }
        }
        let hasMore = ordered.count > want || more
        return SearchPage(
            hits: hits,
            nextCursor: hasMore && !hits.isEmpty ? Self.cursor(offset: want) : nil,
            notes: notes,
            seconds: (ContinuousClock.now - start).seconds
        )
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
                expanded.hasPrefix("/") ? expanded : FileManager.default.currentDirectoryPath + "/" + expanded
            let standardized = URL(fileURLWithPath: absolute).standardizedFileURL.path
            guard let (location, id) = try library.resolveEntry(path: Array(standardized.utf8)) else {
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

    static func cursor(offset: Int) -> String { Data("o\(offset)".utf8).base64EncodedString() }

    static func offset(_ cursor: String?) throws -> Int {
        guard let cursor else { return 0 }
        guard let data = Data(base64Encoded: cursor), let text = String(data: data, encoding: .utf8),
            text.hasPrefix("o"), let n = Int(text.dropFirst()), n >= 0
        else { throw SearchQueryError("the cursor '\(cursor)' is not one this search gave; start without --cursor") }
        return n
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
