import Foundation
import GRDB
import SDCore
import SDIndexer
import SDSearch
import SDSystem
import SDTestSupport
import Testing

@testable import SDStore

/// A known tree, indexed, and searches over it.
final class SearchFixture {
    let dir: TemporaryDirectory
    let library: Library
    let root: String
    var location: Location!

    init(_ files: [String: String], mtimes: [String: Date] = [:]) throws {
        dir = try TemporaryDirectory(prefix: "sd-search")
        root = dir.file("tree")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        for (path, text) in files {
            if path.hasSuffix("/") {
                try FileManager.default.createDirectory(atPath: "\(root)/\(path)", withIntermediateDirectories: true)
            } else {
                try dir.write("tree/\(path)", Array(text.utf8))
            }
        }
        for (path, date) in mtimes {
            try FileManager.default.setAttributes([.modificationDate: date], ofItemAtPath: "\(root)/\(path)")
        }
        let device = try DeviceIdentity.loadOrCreate(configDirectory: dir.file("config"))
        library = try Library.create(name: "Search", in: dir.file("data"), device: device)
        location = try library.addLocation(path: Array(root.utf8), name: "tree", volume: nil)
        _ = try Indexer(library: library).index(location)
    }

    deinit { try? library.close() }

    func page(_ text: String, sort: SearchSort = .relevance, limit: Int = 50, cursor: String? = nil) async throws
        -> SearchPage
    {
        var request = SearchRequest(query: try SearchQueryParser.parse(text))
        request.sort = sort
        request.limit = limit
        request.cursor = cursor
        return try await SearchEngine(library: library).search(request)
    }

    /// Paths (relative to the tree) of the results, in order.
    func find(_ text: String, sort: SearchSort = .relevance) async throws -> [String] {
        try await page(text, sort: sort).hits.map { String($0.path.dropFirst(root.count + 1)) }
    }
}

struct SearchTests {
    static let tree: [String: String] = [
        "Docs/Taxes/tax_invoice_2024.pdf": "tax invoice 2024",
        "Docs/Taxes/notes.txt": "notes",
        "Docs/invoice": "an exact name",
        "Docs/Invoices/": "",
        "Docs/invoice-template.docx": "template",
        "Docs/Résumé.pdf": "resume",
        "Docs/annual report draft.pdf": "draft",
        "Docs/annual report final.pdf": "final",
        "Photos/beach.jpg": String(repeating: "j", count: 2_000_000),
        "Photos/beach copy.jpg": String(repeating: "j", count: 2_000_000),
        "Photos/sunset.heic": String(repeating: "h", count: 5_000),
        "Music/song.mp3": "mp3",
    ]

    @Test func wordsPrefixesPhrasesSubstringsAndExclusions() async throws {
        let f = try SearchFixture(Self.tree)
        #expect(
            try await f.find("invoice").prefix(3) == ["Docs/invoice", "Docs/Invoices", "Docs/invoice-template.docx"]
        )
        #expect(try await f.find("tax invoice") == ["Docs/Taxes/tax_invoice_2024.pdf"])
        #expect(try await f.find("inv").contains("Docs/Taxes/tax_invoice_2024.pdf"))
        #expect(
            try await f.find("\"annual report\"").sorted() == [
                "Docs/annual report draft.pdf", "Docs/annual report final.pdf",
            ]
        )
        #expect(try await f.find("\"report annual\"") == [])
        #expect(try await f.find("\"annual report\" -draft") == ["Docs/annual report final.pdf"])
        #expect(try await f.find("oice_20") == ["Docs/Taxes/tax_invoice_2024.pdf"])
        // A word that starts no word of any name is looked for inside names.
        #expect(try await f.find("nvoic").count == 4)
        // Case and diacritics folded both ways.
        #expect(try await f.find("RESUME") == ["Docs/Résumé.pdf"])
        #expect(try await f.find("résumé") == ["Docs/Résumé.pdf"])
        #expect(try await f.find("zebra") == [])
    }

    @Test func wordsInFolderNamesFindWhatIsBelow() async throws {
        let f = try SearchFixture(Self.tree)
        // "taxes" names a folder: the folder first (exact), then what is inside (path tier).
        let taxes = try await f.page("taxes")
        #expect(taxes.hits.first?.path.hasSuffix("Docs/Taxes") == true)
        #expect(
            Set(taxes.hits.dropFirst().map { $0.path.components(separatedBy: "/").last! }) == [
                "notes.txt", "tax_invoice_2024.pdf",
            ]
        )
        #expect(taxes.hits.dropFirst().allSatisfy { $0.tier == MatchTier.path.rawValue })
        // One word in the folder, the other in the name.
        #expect(try await f.find("taxes notes") == ["Docs/Taxes/notes.txt"])
        // Excluding a folder's word leaves out what is below it.
        #expect(try await f.find("docs -taxes").contains { $0.hasPrefix("Docs/Taxes/") } == false)
    }

    @Test func everyFilter() async throws {
        let old = Date(timeIntervalSince1970: 1_600_000_000)  // 2020-09
        let f = try SearchFixture(
            Self.tree,
            mtimes: ["Photos/sunset.heic": old, "Music/song.mp3": Date(timeIntervalSince1970: 1_700_000_000)]
        )
        #expect(
            try await f.find("kind:image").sorted() == [
                "Photos/beach copy.jpg", "Photos/beach.jpg", "Photos/sunset.heic",
            ]
        )
        #expect(try await f.find("ext:heic") == ["Photos/sunset.heic"])
        #expect(try await f.find("ext:jpg,mp3").count == 3)
        #expect(try await f.find("size:>1MB").sorted() == ["Photos/beach copy.jpg", "Photos/beach.jpg"])
        #expect(try await f.find("size:1KB..10KB") == ["Photos/sunset.heic"])
        #expect(try await f.find("kind:image size:<1MB") == ["Photos/sunset.heic"])
        #expect(try await f.find("modified:2020") == ["Photos/sunset.heic"])
        #expect(try await f.find("modified:2020..2023-12") == ["Music/song.mp3", "Photos/sunset.heic"])
        #expect(try await f.find("modified:..2021") == ["Photos/sunset.heic"])
        #expect(try await f.find("is:dupe").sorted() == ["Photos/beach copy.jpg", "Photos/beach.jpg"])
        #expect(try await f.find("beach is:dupe").count == 2)
        #expect(try await f.find("in:\(f.root)/Photos kind:image").count == 3)
        #expect(
            try await f.find("in:\(f.root)/Docs/Taxes").sorted() == [
                "Docs/Taxes/notes.txt", "Docs/Taxes/tax_invoice_2024.pdf",
            ]
        )
        #expect(try await f.find("location:tree song") == ["Music/song.mp3"])
        // Tags: one written the way the tag commands will (shared-metadata rows).
        let beach = try #require(try f.library.resolveEntry(path: Array("\(f.root)/Photos/beach.jpg".utf8)))
        try await f.library.database.write { db in
            let uuid = try Data.fetchOne(db, sql: "SELECT uuid FROM entries WHERE id = ?", arguments: [beach.1])
            try db.execute(sql: "INSERT INTO tags (uuid, name, hlc) VALUES ('t1', 'Holiday', '0')")
            try db.execute(
                sql: "INSERT INTO entry_tags (entry_uuid, tag_uuid, hlc) VALUES (?, 't1', '0')",
                arguments: [uuid]
            )
        }
        #expect(try await f.find("tag:holiday") == ["Photos/beach.jpg"])
        #expect(try await f.find("beach tag:holiday") == ["Photos/beach.jpg"])
        // A second tag on three files, one link deleted: tags intersect, deleted links and tags do not count.
        try await f.library.database.write { db in
            try db.execute(sql: "INSERT INTO tags (uuid, name, hlc) VALUES ('t2', 'sea', '0')")
            try db.execute(sql: "INSERT INTO tags (uuid, name, hlc, deleted) VALUES ('t3', 'Gone', '0', 1)")
            for (file, deleted) in [("Photos/beach.jpg", 0), ("Photos/beach copy.jpg", 0), ("Photos/sunset.heic", 1)] {
                let uuid = try Data.fetchOne(
                    db,
                    sql: "SELECT uuid FROM entries WHERE name = ?",
                    arguments: [Data(((file as NSString).lastPathComponent).utf8)]
                )
                for tag in ["t2", "t3"] {
                    try db.execute(
                        sql: "INSERT INTO entry_tags (entry_uuid, tag_uuid, hlc, deleted) VALUES (?, ?, '0', ?)",
                        arguments: [uuid, tag, deleted]
                    )
                }
            }
        }
        #expect(try await f.find("tag:SEA", sort: .name) == ["Photos/beach copy.jpg", "Photos/beach.jpg"])
        #expect(try await f.find("tag:sea size:>1MB", sort: .size).count == 2)
        #expect(try await f.find("tag:sea tag:holiday") == ["Photos/beach.jpg"])
        #expect(try await f.find("tag:gone") == [])
        // Sorting a filter-only listing.
        #expect(try await f.find("kind:image", sort: .size).last == "Photos/sunset.heic")
        #expect(try await f.find("kind:image", sort: .modified).last == "Photos/sunset.heic")
    }

    @Test func badFiltersAreClearErrorsAndUnknownKeysAreWords() throws {
        for bad in [
            "size:>5MB..1MB", "size:10MB..1MB", "modified:2025..2024", "modified:2025-13", "kind:spaceship",
            "size:lots", "is:big",
        ] {
            #expect(throws: SearchQueryError.self, "\(bad)") { try SearchQueryParser.parse(bad) }
        }
        let q = try SearchQueryParser.parse("colour:red car")
        #expect(q.words.contains("colour") && q.words.contains("red") && q.words.contains("car"))
        #expect(!q.notes.isEmpty)
        let open = try SearchQueryParser.parse("\"annual report")
        #expect(open.phrases == [["annual", "report"]])
        #expect(!open.notes.isEmpty)
    }

    /// A filter without a value and an empty phrase are errors: `kind:` succeeded with no matches, and
    /// `sd search '"'` listed arbitrary files.
    @Test func malformedQueriesAreErrors() throws {
        for bad in [
            "kind:", "size:", "in:", "tag:", "modified:", "ext:", "is:", "location:", "report kind:", "\"", "\"\"",
            "\" \"",
        ] {
            #expect(throws: SearchQueryError.self, "\(bad)") { try SearchQueryParser.parse(bad) }
        }
        #expect(try SearchQueryParser.parse("🎉").inside == ["🎉"])
        #expect(try SearchQueryParser.parse("ファ").inside == ["ファ"])
        #expect(try SearchQueryParser.parse("ab").inside == ["ab"])
        #expect(try SearchQueryParser.parse("report").words == ["report"])
    }

    /// Short and non-Latin queries find what a substring scan of the names finds: `sd search 🎉` said "nothing
    /// to search for" and `ファ` did not find `日本語のファイル.txt`. Random names of CJK, Hangul, Thai, emoji,
    /// combining marks and accented Latin; the oracle folds case and accents with Foundation and scans scalars.
    @Test func shortAndNonLatinQueriesFindWhatASubstringScanFinds() async throws {
        var rng = SeededRNG.announced("shortAndNonLatinQueriesFindWhatASubstringScanFinds")
        let alphabet = [
            "a", "b", "e", "É", "é", "ö", "n", "Ñ", "x", "1", "日", "本", "語", "の", "フ", "ァ", "イ", "ル", "한", "국",
            "ก", "ข", "🎉", "👍", "🏽", "e\u{301}", "o\u{308}",
        ]
        var names: Set<String> = ["日本語のファイル.txt"]
        while names.count < 250 {
            let length = Int.random(in: 1...7, using: &rng)
            names.insert((0..<length).map { _ in alphabet.randomElement(using: &rng)! }.joined() + ".dat")
        }
        let f = try SearchFixture(Dictionary(uniqueKeysWithValues: names.map { ($0, "x") }))
        func fold(_ text: String) -> [Unicode.Scalar] {
            Array(text.folding(options: [.caseInsensitive, .diacriticInsensitive], locale: nil).unicodeScalars)
        }
        func holds(_ name: String, _ query: String) -> Bool {
            let (hay, needle) = (fold(name), fold(query))
            guard !needle.isEmpty, hay.count >= needle.count else { return needle.isEmpty }
            return (0...(hay.count - needle.count)).contains { Array(hay[$0..<($0 + needle.count)]) == needle }
        }
        var queries = ["ファ", "🎉", "日本", "ル", "한국", "e", "1"]
        let sorted = names.sorted()
        while queries.count < 60 {
            // A run of one to three characters of a name, or any one or two characters.
            let name = Array(sorted.randomElement(using: &rng)!.dropLast(4))
            let start = Int.random(in: 0..<name.count, using: &rng)
            let run = String(name[start..<min(name.count, start + Int.random(in: 1...3, using: &rng))])
            let any = (0..<Int.random(in: 1...2, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }
                .joined()
            for query in [run, any] where !fold(query).isEmpty {
                let latinOnly = query.unicodeScalars.allSatisfy { $0.value < 0x2000 }
                // (Longer Latin terms are word starts, by design: not this property.)
                if latinOnly && query.count > 2 { continue }
                queries.append(query)
            }
        }
        for query in queries {
            let page = try await f.page(query, limit: 10_000)
            let found = Set(page.hits.filter { $0.kind != "folder" }.map(\.name))
            let expected = Set(names.filter { holds($0, query) })
            #expect(
                found == expected,
                "'\(query)': missing \(expected.subtracting(found)), extra \(found.subtracting(expected))"
            )
        }
        #expect(try await f.find("ファ").contains("日本語のファイル.txt"))
    }

    /// A tag filter covers the tags below it: `tag:finance` did not match `finance/tax`.
    @Test func tagFilterCoversTheTagsBelow() async throws {
        let f = try SearchFixture(Self.tree)
        _ = try f.library.createTag("finance/tax")
        _ = try f.library.createTag("financed")
        _ = try f.library.setTag("finance/tax", on: [f.root + "/Docs/Taxes/notes.txt"], present: true)
        _ = try f.library.setTag("financed", on: [f.root + "/Music/song.mp3"], present: true)
        #expect(try await f.find("tag:finance") == ["Docs/Taxes/notes.txt"])
        #expect(try await f.find("tag:FINANCE/tax") == ["Docs/Taxes/notes.txt"])
        #expect(try await f.find("notes tag:finance") == ["Docs/Taxes/notes.txt"])
        #expect(try await f.find("tag:financed") == ["Music/song.mp3"])
        #expect(try await f.find("tag:fin") == [])
        #expect(try await f.find("tag:finance/tax/2024") == [])
    }

    /// Tiers dominate; within a tier BM25 (a rarer word counts more, a shorter name more) and recency order.
    @Test func rankingRules() async throws {
        let now = Date()
        let f = try SearchFixture(
            [
                "a/plan.txt": "", "a/plan_b.txt": "", "a/old plan notes.txt": "", "a/new plan notes.txt": "",
                "plan/readme.md": "",
            ],
            mtimes: [
                "a/old plan notes.txt": now.addingTimeInterval(-400 * 86_400),
                "a/new plan notes.txt": now.addingTimeInterval(-1 * 86_400),
                "a/plan.txt": now.addingTimeInterval(-900 * 86_400),
            ]
        )
        let hits = try await f.page("plan").hits
        let names = hits.map { $0.path.components(separatedBy: "/").suffix(2).joined(separator: "/") }
        // The folder "plan" and "plan.txt" are exact (even though plan.txt is old), then the prefix, then words,
        // newest first, then below the folder.
        #expect(Array(names.prefix(2)).sorted() == ["a/plan.txt", "tree/plan"])
        #expect(names[2] == "a/plan_b.txt")
        #expect(names[3] == "a/new plan notes.txt" && names[4] == "a/old plan notes.txt")
        #expect(names.last == "plan/readme.md")
        #expect(hits.map(\.score) == hits.map(\.score).sorted(by: >))
        #expect(hits[0].score >= 400 && hits[2].score >= 300 && hits[2].score < 400)
        // Two words: only the names holding both.
        let two = try await f.page("plan notes").hits
        #expect(two.count == 2)
    }

    @Test func pagesCoverEverythingOnce() async throws {
        var files: [String: String] = [:]
        for i in 0..<23 { files["d/report_\(i).txt"] = "\(i)" }
        let f = try SearchFixture(files)
        var seen: [String] = []
        var cursor: String?
        repeat {
            let page = try await f.page("report", limit: 5, cursor: cursor)
            seen += page.hits.map(\.path)
            cursor = page.nextCursor
        } while cursor != nil
        #expect(seen.count == 23 && Set(seen).count == 23)
        await #expect(throws: SearchQueryError.self) { try await f.page("report", cursor: "garbage!") }
    }

    /// Walking every page of a query yields every match exactly once, in every sort, also while the index
    /// changes between pages (no duplicates; nothing that existed throughout is skipped). The offset cursor
    /// over an unstable order repeated and skipped results (164 distinct of 5,559). The oracle is a scan of
    /// the entries table: a name word or a folder word above it starts with the query word.
    @Test(arguments: SearchSort.allCases) func pagesGiveEveryMatchOnceWhileTheIndexChanges(_ sort: SearchSort)
        async throws
    {
        var rng = SeededRNG.announced("pagesGiveEveryMatchOnceWhileTheIndexChanges \(sort)")
        var files: [String: String] = [:]
        let words = ["report", "invoice", "reporter", "notes", "draft"]
        for i in 0..<900 {
            let a = words.randomElement(using: &rng)!, b = words.randomElement(using: &rng)!
            files["d\(i % 7)/\(a)_\(i)_\(b).txt"] = String(repeating: "x", count: Int.random(in: 0..<50, using: &rng))
        }
        for i in 0..<40 { files["Reports \(i % 3)/plain_\(i).txt"] = "p" }
        let f = try SearchFixture(files)
        let engine = SearchEngine(library: f.library, candidateLimit: 40)
        func matches() async throws -> Set<Int64> {
            try await f.library.database.read { db in
                let rows = try Row.fetchAll(db, sql: "SELECT id, parent_id, name FROM entries")
                var byID: [Int64: (parent: Int64?, words: [String])] = [:]
                for row in rows {
                    byID[row[0]] = (row[1], SearchText.words(SearchText.fold([UInt8](row[2] as Data))))
                }
                func holds(_ id: Int64, _ own: Bool) -> Bool {
                    guard let entry = byID[id] else { return false }
                    if entry.words.contains(where: { $0.hasPrefix("report") }) { return true }
                    return entry.parent.map { holds($0, false) } ?? false
                }
                // (The location's root is named by its path, which holds no query word.)
                return Set(byID.keys.filter { holds($0, true) && byID[$0]?.parent != nil })
            }
        }
        let before = try await matches()
        #expect(before.count > 300)
        var seen: [Int64] = []
        var cursor: String?
        var pages = 0
        var removed: Set<Int64> = []
        repeat {
            var request = SearchRequest(query: try SearchQueryParser.parse("report"))
            request.sort = sort
            request.limit = 37
            request.cursor = cursor
            let page = try await engine.search(request)
            seen += page.hits.map(\.id)
            cursor = page.nextCursor
            pages += 1
            if pages % 3 == 0 {
                // Between pages: some matching files go, some new ones come, and the index follows.
                let names = try FileManager.default.contentsOfDirectory(atPath: f.root + "/d\(pages % 7)")
                for name in names.shuffled(using: &rng).prefix(4) {
                    try FileManager.default.removeItem(atPath: f.root + "/d\(pages % 7)/" + name)
                }
                for k in 0..<4 { try f.dir.write("tree/new/report_new_\(pages)_\(k).txt", [0x41]) }
                let prior = try await matches()
                _ = try Indexer(library: f.library).index(f.location)
                removed.formUnion(prior.subtracting(try await matches()))
            }
        } while cursor != nil && pages < 200
        #expect(cursor == nil, "the walk ends")
        #expect(seen.count == Set(seen).count, "no entry twice: \(seen.count - Set(seen).count) repeated")
        let throughout = before.subtracting(removed)
        #expect(
            throughout.isSubset(of: Set(seen)),
            "skipped: \(throughout.subtracting(seen).count) of \(throughout.count)"
        )
        // Without changes, a walk gives exactly the matches.
        /// Every page of `text`, walked with no change between pages: the ids in the order given.
        func walk(_ text: String, limit: Int) async throws -> [Int64] {
            var ids: [Int64] = []
            var cursor: String?
            repeat {
                var request = SearchRequest(query: try SearchQueryParser.parse(text))
                request.sort = sort
                request.limit = limit
                request.cursor = cursor
                let page = try await engine.search(request)
                ids += page.hits.map(\.id)
                cursor = page.nextCursor
            } while cursor != nil
            return ids
        }
        let again = try await walk("report", limit: 50)
        let now = try await matches()
        #expect(again.count == Set(again).count)
        #expect(
            Set(again) == now,
            "missing \(now.subtracting(again).count), extra \(Set(again).subtracting(now).count)"
        )
        // One character (found anywhere in names, read name by name) and a relative date (`7d` means other
        // dates by the next page) page alike.
        for (text, oracle) in [
            ("r", { (name: String) in SearchText.fold(Array(name.utf8)).contains("r") }),
            (
                "report modified:7d",
                { (name: String) in
                    SearchText.words(SearchText.fold(Array(name.utf8))).contains { $0.hasPrefix("report") }
                }
            ),
        ] {
            let walked = try await walk(text, limit: 97)
            let files = try await f.library.database.read { db in
                try Row.fetchAll(db, sql: "SELECT id, name FROM entries WHERE type = 0").map {
                    (id: $0[0] as Int64, name: String(decoding: [UInt8]($0[1] as Data), as: UTF8.self))
                }
            }
            let expected = files.filter { oracle($0.name) }.map(\.id)
            let named = Set(walked).intersection(Set(expected))
            #expect(walked.count == Set(walked).count, "'\(text)': repeated")
            #expect(named == Set(expected), "'\(text)': \(Set(expected).subtracting(walked).count) missing")
        }
        // A search by filters alone pages by its sort keys too.
        let listed = try await walk("ext:txt -draft", limit: 41)
        let txt = try await f.library.database.read { db in
            try Row.fetchAll(db, sql: "SELECT id, name FROM entries WHERE type = 0").filter {
                let name = String(decoding: [UInt8]($0[1] as Data), as: UTF8.self)
                return name.hasSuffix(".txt") && !name.lowercased().contains("draft")
            }.map { $0[0] as Int64 }
        }
        #expect(
            listed.count == Set(listed).count && Set(listed) == Set(txt),
            "\(listed.count) listed, \(txt.count) expected"
        )
    }

    @Test func cancelledSearchStops() async throws {
        let f = try SearchFixture(Self.tree)
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await f.page("invoice")
        }
        await #expect(throws: CancellationError.self) { try await task.value }
    }

    /// Entries the search index has not caught up with are found by their names, with the same answers.
    @Test func entriesNotYetIndexedAreFound() async throws {
        let f = try SearchFixture(Self.tree)
        let before = try await f.find("invoice")
        try f.library.resetSearchIndex()
        #expect(try f.library.searchBacklog() > 0)
        #expect(try await f.find("invoice").sorted() == before.sorted())
        #expect(try await f.find("oice_20") == ["Docs/Taxes/tax_invoice_2024.pdf"])
        while try f.library.catchUpSearch() > 0 {}
        #expect(try f.library.searchBacklog() == 0)
        #expect(try await f.find("invoice") == before)
    }

    /// The search index follows renames, moves and deletions: after random changes and rescans, every entry is
    /// found by its name and no old name is.
    @Test func searchIndexFollowsRenamesAndDeletes() async throws {
        var files: [String: String] = [:]
        for i in 0..<60 { files["d\(i % 4)/alpha_\(i).txt"] = "\(i)" }
        let f = try SearchFixture(files)
        var rng = SeededRNG(seed: 11)
        var gone: [String] = []
        for round in 0..<3 {
            for i in 0..<60 where rng.next() % 3 == 0 {
                let from = "\(f.root)/d\(i % 4)/alpha_\(i).txt"
                guard FileManager.default.fileExists(atPath: from) else { continue }
                if rng.next() % 2 == 0 {
                    try FileManager.default.removeItem(atPath: from)
                } else {
                    try FileManager.default.moveItem(
                        atPath: from,
                        toPath: "\(f.root)/d\((i + 1) % 4)/beta_\(round)_\(i).txt"
                    )
                }
                gone.append("alpha_\(i)")
            }
            var options = IndexOptions()
            options.allowMassDelete = true
            _ = try Indexer(library: f.library, options: options).index(f.location)
        }
        let onDiskNames = Set(
            try FileManager.default.subpathsOfDirectory(atPath: f.root).map { ($0 as NSString).lastPathComponent }
        )
        for name in Set(gone) where !onDiskNames.contains(name + ".txt") {
            let found = try await f.find("\"\(name.replacingOccurrences(of: "_", with: " "))\"")
            #expect(!found.contains { $0.hasSuffix("/\(name).txt") }, "\(name) is gone but still found")
        }
        // Every entry is in the lists of its grams (renamed ones merged where they belong, not appended).
        #expect(try f.library.verifySearchIndex() == [])
        #expect(try f.library.searchBacklog() == 0)
        let onDisk = try FileManager.default.subpathsOfDirectory(atPath: f.root).filter { $0.hasSuffix(".txt") }
        for path in onDisk {
            let name = (path as NSString).lastPathComponent
            #expect(try await f.find(name.replacingOccurrences(of: ".txt", with: "")).contains(path), "\(path)")
        }
    }

    /// SQLite reuses the largest id after its row is deleted: a new entry with a reused id is still found.
    @Test func reusedIdsAreSearchable() async throws {
        let f = try SearchFixture(["a/first.txt": "1"])
        let newest = try #require(try f.library.resolveEntry(path: Array("\(f.root)/a/first.txt".utf8))).1
        try FileManager.default.removeItem(atPath: "\(f.root)/a/first.txt")
        var options = IndexOptions()
        options.allowMassDelete = true
        _ = try Indexer(library: f.library, options: options).index(f.location)
        try f.dir.write("tree/a/second.txt", Array("2".utf8))
        _ = try Indexer(library: f.library, options: options).index(f.location)
        let second = try #require(try f.library.resolveEntry(path: Array("\(f.root)/a/second.txt".utf8))).1
        #expect(second == newest, "the id was reused (else this test shows nothing)")
        #expect(try await f.find("second") == ["a/second.txt"])
        #expect(try await f.find("first") == [])
    }

    /// Random query text never raises an SQL error: it parses (and searches) or is a clear query error.
    @Test func randomQueriesNeverBreak() async throws {
        let f = try SearchFixture(Self.tree)
        var rng = SeededRNG(seed: 5)
        let alphabet = Array("ab\"*:()-_. NEARORANDNOTé^'\\{}kindsize><=..2025ext:in:")
        for _ in 0..<400 {
            let length = Int(rng.next() % 24)
            let text = String((0..<length).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] })
            do {
                let query = try SearchQueryParser.parse(text)
                var request = SearchRequest(query: query)
                request.limit = 5
                _ = try await SearchEngine(library: f.library).search(request)
            } catch is SearchQueryError {
                // A clear message: fine.
            } catch {
                Issue.record("query \(text.debugDescription) failed: \(error)")
            }
        }
    }
}

/// Under a live watch, renames and deletions are searchable as soon as the watcher has applied them.
struct LiveSearchTests {
    final class Events: @unchecked Sendable {
        // @unchecked: `list` is only touched under `lock`.
        private var list: [WatchEvent] = []
        private let lock = NSLock()
        func add(_ e: WatchEvent) { lock.withLock { list.append(e) } }
        var applied: Int { lock.withLock { list.filter { if case .applied = $0 { true } else { false } }.count } }
        var watching: Bool { lock.withLock { list.contains { if case .watching = $0 { true } else { false } } } }
    }

    @Test func renamesAndDeletesAreSearchableAtOnce() async throws {
        let f = try SearchFixture(SearchTests.tree)
        let events = Events()
        let control = WatchControl()
        let library = f.library
        let stopped = DispatchSemaphore(value: 0)
        try Threads.start(name: "sd-test-watch") {
            do {
                let watcher = try Watcher(library: library) { events.add($0) }
                try watcher.run(control)
            } catch {
                Issue.record("watcher: \(error)")
            }
            stopped.signal()
        }
        // The library must outlive the watcher: stop it and wait before the fixture closes it.
        defer {
            control.stop()
            stopped.wait()
        }
        func waitFor(_ what: String, _ condition: () -> Bool) throws {
            let deadline = Date().addingTimeInterval(20)
            while !condition() {
                guard Date() < deadline else { throw WatchTestFailure(what) }
                Thread.sleep(forTimeInterval: 0.01)
            }
        }
        try waitFor("watching") { events.watching }
        let before = events.applied
        try FileManager.default.moveItem(atPath: "\(f.root)/Music/song.mp3", toPath: "\(f.root)/Music/anthem.mp3")
        try FileManager.default.removeItem(atPath: "\(f.root)/Docs/invoice-template.docx")
        try FileManager.default.moveItem(atPath: "\(f.root)/Photos", toPath: "\(f.root)/Pictures")
        // As soon as the entries show the changes, the search shows them too (same transactions).
        func exists(_ relative: String) -> Bool {
            ((try? library.resolveEntry(path: Array("\(f.root)/\(relative)".utf8))) ?? nil) != nil
        }
        try waitFor("the changes to be applied") {
            events.applied > before && exists("Music/anthem.mp3") && !exists("Docs/invoice-template.docx")
                && exists("Pictures/beach.jpg") && !exists("Photos")
        }
        #expect(try await f.find("song") == [])
        #expect(try await f.find("anthem") == ["Music/anthem.mp3"])
        #expect(try await f.find("template") == [])
        #expect(try await f.find("pictures beach").sorted() == ["Pictures/beach copy.jpg", "Pictures/beach.jpg"])
        #expect(try await f.find("photos") == [])
        // The renamed entries were merged into the lists inside the watcher's own transactions.
        #expect(try library.searchBacklog() == 0)
        #expect(try library.verifySearchIndex() == [])
    }

    struct WatchTestFailure: Error, CustomStringConvertible {
        var description: String
        init(_ what: String) { description = "timed out waiting for \(what)" }
    }
}
