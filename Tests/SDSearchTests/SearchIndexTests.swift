import Foundation
import GRDB
import SDCore
import SDSearch
import SDTestSupport
import Testing

@testable import SDStore

/// The gram postings themselves: their encoding, and the lists kept right through renames, deletions and new
/// entries, merged in small steps or rebuilt, checked against every name.
struct SearchIndexTests {
    @Test func postingsRoundTrip() {
        var rng = SeededRNG(seed: 3)
        for _ in 0..<50 {
            var ids: [Int64] = []
            var at: Int64 = Int64(rng.next() % 1_000)
            for _ in 0..<Int(rng.next() % 3_000) {
                at += Int64(1 + rng.next() % (rng.next() % 2 == 0 ? 5 : 100_000))
                ids.append(at)
            }
            let chunks = Postings.encode(ids)
            #expect(chunks.allSatisfy { $0.bytes.count <= Postings.maxBytes })
            #expect(chunks.flatMap { Postings.decode($0.bytes) } == ids)
            #expect(chunks.map(\.first) == chunks.map { Postings.decode($0.bytes).first! })
        }
        // Bytes cut short or garbage decode to what they hold, never trap.
        #expect(Postings.decode([0x85]) == [])
        #expect(Postings.decode([0x05, 0xFF, 0xFF]) == [5])
    }

    @Test func gramsOfNamesAndQueriesAgree() {
        let name = SearchGrams.nameGrams(Array("Tax_Invoice-2024.pdf".utf8))
        let has = Set(name)
        #expect(SearchGrams.wordGrams("invoice").allSatisfy(has.contains))
        #expect(SearchGrams.wordGrams("inv").allSatisfy(has.contains))
        #expect(SearchGrams.substringGrams("oice-20").allSatisfy(has.contains))
        #expect(SearchGrams.prefixGrams("tax inv").allSatisfy(has.contains))
        #expect(SearchGrams.exactGrams("tax invoice 2024")[1].allSatisfy(has.contains))
        #expect(!SearchGrams.exactGrams("tax invoice 2024")[0].allSatisfy(has.contains))
        #expect(!SearchGrams.wordGrams("nvoice").allSatisfy(has.contains), "not a word start")
        #expect(!SearchGrams.prefixGrams("invoice").allSatisfy(has.contains), "not the name's start")
        let accented = Set(SearchGrams.nameGrams(Array("Résumé.pdf".utf8)))
        #expect(SearchGrams.wordGrams("resume").allSatisfy(accented.contains))
    }

    /// Random renames (to new and to old names), deletions and new entries, with the index caught up in live
    /// steps or whole rebuilds at random: after each round, every word's results are exactly the entries whose
    /// names have it, and the lists hold every entry.
    @Test func indexFollowsRandomChanges() async throws {
        var files: [String: String] = [:]
        let words = ["alpha", "beta", "gamma", "delta", "omega", "résumé", "tax", "invoice", "x"]
        var rng = SeededRNG(seed: 29)
        func randomName() -> String {
            (0..<(1 + Int(rng.next() % 3))).map { _ in words[Int(rng.next() % UInt64(words.count))] }
                .joined(separator: ["_", " ", "-", "."][Int(rng.next() % 4)]) + "_\(rng.next() % 100)"
        }
        for i in 0..<400 { files["d\(i % 7)/\(randomName())_\(i).txt"] = "" }
        let f = try SearchFixture(files)
        let library = f.library
        for round in 0..<6 {
            // The changes, drawn here, then written in one transaction.
            let files = try await library.database.read { db in
                try Int64.fetchAll(db, sql: "SELECT id FROM entries WHERE type = 0 ORDER BY id")
            }
            var deletions: [Int64] = []
            var renames: [(Int64, Data)] = []
            for id in files where rng.next() % 5 == 0 {
                if rng.next() % 3 == 0 {
                    deletions.append(id)
                } else {
                    renames.append((id, Data("\(randomName())_r\(round)_\(id).txt".utf8)))
                }
            }
            let additions = (0..<Int(rng.next() % 40)).map { Data("\(randomName())_n\(round)_\($0).txt".utf8) }
            let live = rng.next() % 2 == 0
            try await library.database.write { [deletions, renames] db in
                for id in deletions { try db.execute(sql: "DELETE FROM entries WHERE id = ?", arguments: [id]) }
                for (id, name) in renames {
                    try db.execute(sql: "UPDATE entries SET name = ? WHERE id = ?", arguments: [name, id])
                }
                // New entries (the largest ids may have been deleted: SQLite reuses them).
                let template = try Row.fetchOne(db, sql: "SELECT * FROM entries WHERE type = 0 LIMIT 1")!
                for name in additions {
                    try db.execute(
                        sql: """
                            INSERT INTO entries (uuid, device_id, location_id, parent_id, name, type, size, added_epoch)
                            VALUES (randomblob(16), ?, ?, ?, ?, 0, 0, 0)
                            """,
                        arguments: [template["device_id"], template["location_id"], template["parent_id"], name]
                    )
                }
                if live { try Library.catchUpSearchIfSmall(db, limit: 10_000) }
            }
            // Searches are right before the index catches up (names read), and after.
            try await expectWordsFound(f, words)
            if rng.next() % 2 == 0 {
                while try library.catchUpSearch() > 0 {}
            } else {
                _ = try await library.database.write { db in try library.rebuildSearchIndex(db) }
            }
            #expect(try library.verifySearchIndex() == [], "round \(round)")
            #expect(try library.searchBacklog() == 0)
            try await expectWordsFound(f, words)
        }
    }

    func expectWordsFound(_ f: SearchFixture, _ words: [String]) async throws {
        let names = try await f.library.database.read { db in
            try Row.fetchAll(db, sql: "SELECT id, name FROM entries").map {
                let folded = SearchText.fold([UInt8]($0[1] as Data))
                return (id: $0[0] as Int64, folded: folded, words: SearchText.words(folded))
            }
        }
        for word in words + ["al", "gam", "ome"] {
            let folded = SearchText.fold(word)
            // A word starts a word of the name; a term of one or two characters is anywhere in it.
            let expected = Set(
                names.filter {
                    folded.count <= 2 ? $0.folded.contains(folded) : $0.words.contains { $0.hasPrefix(folded) }
                }.map(\.id)
            )
            var request = SearchRequest(query: try SearchQueryParser.parse(word))
            request.limit = 2_000
            let page = try await SearchEngine(library: f.library, candidateLimit: 5_000).search(request)
            #expect(Set(page.hits.map(\.id)) == expected, "'\(word)'")
        }
    }
}
