import Foundation
import SDSearch
import SDStore

/// A page of search results as `sd search` prints it and `/v1/search` answers it.
public struct SearchAnswer: Codable, Sendable {
    public var hits: [SearchHit]
    public var nextCursor: String?
    public var notes: [String]
    public var seconds: Double
}

/// A query the user got wrong, in words (a 400 through the daemon).
public struct BadQuery: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

extension Operations {
    /// Parses `text` (words and filters, as `sd search` takes them) into a request.
    public static func searchRequest(_ text: String, sort: SearchSort, limit: Int, cursor: String?) throws
        -> SearchRequest
    {
        guard limit > 0 && limit <= 10_000 else { throw BadQuery(message: "--limit must be between 1 and 10000") }
        let parsed: SearchQuery
        do { parsed = try SearchQueryParser.parse(text) } catch { throw BadQuery(message: error.message) }
        if !parsed.hasText && parsed == SearchQuery() {
            throw BadQuery(
                message: "nothing to search for: give words or a filter, e.g. `sd search invoice` (see --help)"
            )
        }
        var request = SearchRequest(query: parsed)
        request.sort = sort
        request.limit = limit
        request.cursor = cursor
        return request
    }

    /// Runs a search, with a note when entries are still missing from the search index.
    public static func search(_ library: Library, _ request: SearchRequest) async throws -> SearchAnswer {
        let page: SearchPage
        do { page = try await SearchEngine(library: library).search(request) } catch let error as SearchQueryError {
            throw BadQuery(message: error.message)
        }
        var notes = page.notes
        let backlog = try library.searchBacklog()
        if backlog > 0 {
            notes.append(
                "\(backlog) entries are not in the search index yet; they are found by reading their names (slower) until `sd index` or `sd watch` catches up"
            )
        }
        return SearchAnswer(hits: page.hits, nextCursor: page.nextCursor, notes: notes, seconds: page.seconds)
    }
}
