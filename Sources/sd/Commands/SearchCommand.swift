import ArgumentParser
import Foundation
import SDAPI
import SDCore
import SDSearch
import SDStore
import SDSystem

struct SearchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Find files and folders in the index by name, path and filters.",
        discussion: reflow(
            """
            QUERY
              tax invoice      words starting with 'tax' and 'invoice', in the name
                               or in the names of the folders above it
              "exact phrase"   those words next to each other in the name
              oice_20          punctuation inside: a substring of the name
              -draft           leave out names (and folders) with that word
              kind:document    a kind: image, video, audio, document, code, ...
              ext:pdf          an extension; ext:jpg,heic for several
              size:>1MB        also <, >=, <=, 1MB..5MB; KB MB GB TB are 1000s,
                               KiB MiB GiB are 1024s
              modified:2025    also 2025-06, 2025-06-01, 2024..2025-06, ..2025,
                               2025.., today, yesterday, 7d
              tag:finance      entries with that tag
              in:~/Documents   only below that folder
              location:Pics    only in that location
              is:dupe          files whose content another file holds too

            Case and accents are ignored: 'resume' finds 'Résumé.pdf'. An
            unknown key:value is searched as words (sd says so); an impossible
            filter is an error. Put a leading -term after `--`, or quote the
            whole query: sd search 'invoice -draft'.

            RANKING
              exact name, then names starting with the query, then names with
              every word, then entries below matching folders; within each,
              BM25 of the words over the name, then the recently modified.

            Examples:
              sd search tax invoice kind:document modified:2025
              sd search '"annual report" -draft ext:pdf'
              sd search oice_20 --limit 10 --json
              sd search --kind video --size '>1GB' --sort size
            """
        )
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var libraryOptions: LibraryOptions
    @Argument(help: "Query words, phrases and filters.") var query: [String] = []
    @Option(help: "Kind (category), e.g. document, image.") var kind: [String] = []
    @Option(help: "Extension, e.g. pdf.") var ext: [String] = []
    @Option(help: "Size: '>10MB', '<1KB', '1MB..5MB'.") var size: String?
    @Option(help: "Modified: 2025, 2024..2025-06, 7d.") var modified: String?
    @Option(help: "Location (name, number, uuid or path).") var location: [String] = []
    @Option(help: "Tag name.") var tag: [String] = []
    @Flag(help: "Only files whose content is held by another file too.") var dupes = false
    @Option(help: "relevance, name, size or modified.") var sort: SearchSort = .relevance
    @Option(help: "Results per page.") var limit = 50
    @Option(help: "Continue after a previous page (its next cursor).") var cursor: String?
    @Flag(name: .customLong("paths-only"), help: "Print only the paths, one per line (names escaped as shown).")
    var pathsOnly = false
    @Flag(help: "Print only the paths, each ended by a NUL byte, exactly as they are (for xargs -0).")
    var print0 = false

    func run() throws {
        var text = query.joined(separator: " ")
        func add(_ key: String, _ value: String) {
            text += " \(key):\"\(value.replacingOccurrences(of: "\"", with: ""))\""
        }
        kind.forEach { add("kind", $0) }
        ext.forEach { add("ext", $0) }
        if let size { add("size", size) }
        if let modified { add("modified", modified) }
        location.forEach { add("location", $0) }
        tag.forEach { add("tag", $0) }
        if dupes { text += " is:dupe" }
        let request: SearchRequest
        do { request = try Operations.searchRequest(text, sort: sort, limit: limit, cursor: cursor) } catch let error
            as BadQuery
        {
            throw UserError(error.message)
        }
        let answer: SearchAnswer
        if let daemon = DaemonLink.client(for: libraryOptions) {
            var target = "/v1/search?q=\(APIClient.query(text))&sort=\(sort.rawValue)&limit=\(limit)"
            if let cursor { target += "&cursor=\(APIClient.query(cursor))" }
            answer = try DaemonLink.call { try daemon.get(target, SearchAnswer.self) }
        } else {
            let library = try libraryOptions.open()
            defer { try? library.close() }
            let frozen = request
            do { answer = try Self.wait { try await Operations.search(library, frozen) } } catch let error as BadQuery {
                throw UserError(error.message)
            }
        }
        let page = answer
        let notes = answer.notes
        if global.json { return try Output.json(answer) }
        if print0 {
            // The paths' own bytes, NUL-ended: no escaping, no other output on standard output.
            var out: [UInt8] = []
            for hit in page.hits { out += PathText.bytes(hit.path) + [0] }
            FileHandle.standardOutput.write(Data(out))
            if let next = page.nextCursor {
                FileHandle.standardError.write(Data("sd: more results: --cursor \(next)\n".utf8))
            }
            return
        }
        for note in notes { FileHandle.standardError.write(Data("sd: note: \(shown(note))\n".utf8)) }
        if pathsOnly {
            for hit in page.hits { print(hit.path) }
        }
        for hit in page.hits where !pathsOnly {
            let modified = hit.modified.map { Format.date($0) } ?? "-"
            let size = hit.kind == "folder" ? "-" : Format.size(hit.size)
            print(
                "\(hit.kind.padding(toLength: 12, withPad: " ", startingAt: 0)) \(size.padding(toLength: 9, withPad: " ", startingAt: 0)) \(modified)  \(hit.contentID ?? "-               ")  \(hit.path)\(hit.device.map { "  (on \($0))" } ?? "")"
            )
        }
        // The summary goes to standard error: standard output stays the results alone.
        let count = Format.count(page.hits.count, "result")
        if page.hits.isEmpty {
            FileHandle.standardError.write(Data("sd: no matches\n".utf8))
        } else if let next = page.nextCursor {
            FileHandle.standardError.write(Data("sd: \(count) on this page; more: --cursor \(next)\n".utf8))
        } else {
            FileHandle.standardError.write(Data("sd: \(count)\n".utf8))
        }
    }

    /// Runs async work to completion from this synchronous command.
    static func wait<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) throws -> T {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        Task {
            do { box.result = .success(try await work()) } catch { box.result = .failure(error) }
            done.signal()
        }
        done.wait()
        return try box.result!.get()
    }
}

extension SearchSort: ExpressibleByArgument {}

/// The outcome of async work, handed back to a waiting thread (the semaphore orders the accesses).
private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

/// `sd debug search-bench`: runs queries many times in one process (warm, as the daemon would) and prints each
/// one's latencies in milliseconds as JSON, for scripts/bench search.
struct SearchBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search-bench",
        abstract: "Time searches in-process: JSON {query: {p50, p99, hits}, \"all\": {p50, p99}} (ms)."
    )
    @OptionGroup var libraryOptions: LibraryOptions
    @Option(help: "Runs per query.") var runs = 200
    @Option(help: "Results per search.") var limit = 50
    @Argument(help: "Queries; a query may end with ' @sort=modified' (or name, size).") var queries: [String]

    func run() throws {
        let library = try libraryOptions.open()
        defer { try? library.close() }
        while try library.catchUpSearch() > 0 {}
        let engine = SearchEngine(library: library)
        var report: [String: [String: Double]] = [:]
        var pooled: [Double] = []
        for text in queries {
            var queryText = text
            var sort = SearchSort.relevance
            if let at = text.range(of: " @sort=") {
                queryText = String(text[..<at.lowerBound])
                sort = SearchSort(rawValue: String(text[at.upperBound...])) ?? .relevance
            }
            var request = SearchRequest(query: try SearchQueryParser.parse(queryText))
            request.sort = sort
            request.limit = limit
            let frozen = request
            var times: [Double] = []
            var hits = 0
            for _ in 0..<(runs + 5) {
                let start = ContinuousClock.now
                let page = try SearchCommand.wait { try await engine.search(frozen) }
                let elapsed = ContinuousClock.now - start
                times.append(elapsed.milliseconds)
                hits = page.hits.count
            }
            times = Array(times.dropFirst(5)).sorted()
            pooled += times
            report[text] = [
                "p50": times[times.count / 2], "p99": times[min(times.count - 1, times.count * 99 / 100)],
                "hits": Double(hits),
            ]
        }
        pooled.sort()
        if !pooled.isEmpty {
            report["all"] = [
                "p50": pooled[pooled.count / 2], "p99": pooled[min(pooled.count - 1, pooled.count * 99 / 100)],
                "hits": 0,
            ]
        }
        try Output.json(report)
    }
}
