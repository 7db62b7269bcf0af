import Foundation
import SDSystem
import SDTestSupport
import Testing

/// What a new user broke (the trust review): each test is one defect, and failed on the code before its fix.
@Suite(.serialized) struct TrustTests {
    /// Nothing in a library folder, the config folder or the runtime folder is a source or target of an action,
    /// nor a location, nor indexed: `sd rm -y .../X.sdlibrary/library.db` trashed the index, after which every
    /// command, `sd undo` included, failed.
    @Test(arguments: Way.allCases) func sdsOwnFilesAreNeverActedOn(_ way: Way) throws {
        let dir = try TemporaryDirectory(prefix: "sd-trust-own")
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        try dir.write("home/a.txt", Array("alpha".utf8))
        #expect(try sd.run(["location", "add", dir.file("home")]).status == 0)
        #expect(try sd.run(["index"]).status == 0)
        let session = try sd.begin(way)
        defer { session.end() }
        let library = dir.file("data/Default.sdlibrary")
        let database = library + "/library.db"
        let before = try Data(contentsOf: URL(fileURLWithPath: library + "/library.json"))
        let attempts: [[String]] = [
            ["rm", "-y", database], ["rm", "-y", "--permanent", library + "/library.json"],
            ["mv", "-y", library + "/library.json", dir.file("home")], ["cp", "-y", dir.file("home/a.txt"), library],
            ["rename", "-y", database, "x.db"], ["mkdir", "-y", library + "/extra"],
            ["rm", "-y", dir.file("config/device.json")], ["cp", "-y", dir.file("home/a.txt"), dir.file("config")],
            ["location", "add", library], ["location", "add", dir.file("config")],
        ]
        for attempt in attempts {
            let r = try sd.run(attempt)
            #expect(r.status == 1 && r.stderr.contains("sd's own"), "\(attempt): \(r.status) \(r.stdout) \(r.stderr)")
        }
        #expect(FileSystem.exists(database) && !FileSystem.exists(library + "/extra"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: library + "/library.json")) == before)
        #expect(!FileSystem.exists(dir.file("home/library.json")))
        #expect(try sd.run(["status"]).status == 0, "the library still works")
        // A location that holds the data folder does not index the libraries in it.
        #expect(try sd.run(["location", "add", dir.path, "--name", "everything"]).status == 1, "locations do not nest")
        let other = try SDBinary(dataDirectory: dir.file("data2"), configDirectory: dir.file("config2"))
        #expect(try other.run(["location", "add", dir.file("data")]).status == 0)
        #expect(try other.run(["index"]).status == 0)
        let found = try other.run(["search", "library"]).stdout
        #expect(!found.contains("library.db") && !found.contains("Default.sdlibrary"), "\(found)")
    }

    /// A damaged `library.db` is a user error that says what to do, in every command: it gave "internal error:
    /// SQLite error 11" with a query dump, and `library info --check` died the same way. `--check` reports
    /// the damage (exit 3: it worked and found problems), and sd leaves the file as it was.
    @Test(arguments: ["one table", "most pages"]) func damagedLibraryIsAUserErrorWithAdvice(_ damage: String) throws {
        let dir = try TemporaryDirectory(prefix: "sd-trust-damage")
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        for i in 0..<40 { try dir.write("home/d\(i % 4)/f\(i).txt", Array("file \(i)".utf8)) }
        #expect(try sd.run(["location", "add", dir.file("home")]).status == 0)
        #expect(try sd.run(["index"]).status == 0)
        let database = dir.file("data/Default.sdlibrary/library.db")
        // Python's own SQLite names the pages to damage (sd's code does not take part).
        let python = Run.which("python3") ?? "/usr/bin/python3"
        let script = """
            import sqlite3, sys
            db = sys.argv[1]
            c = sqlite3.connect(db)
            root = c.execute("SELECT rootpage FROM sqlite_master WHERE name = 'entries'").fetchone()[0]
            size = c.execute("PRAGMA page_size").fetchone()[0]
            count = c.execute("PRAGMA page_count").fetchone()[0]
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            c.close()
            pages = [root] if sys.argv[2] == "one table" else range(3, count + 1, 2)
            with open(db, "r+b") as f:
                for p in pages:
                    f.seek((p - 1) * size)
                    f.write(bytes([0x55]) * size)
            print(size, *pages)
            """
        let ran = try Run.program(python, ["-c", script, database, damage])
        try #require(ran.status == 0, "\(String(decoding: ran.err, as: UTF8.self))")
        let numbers = String(decoding: ran.out, as: UTF8.self).split(separator: " ").compactMap {
            Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let (pageSize, pages) = (numbers[0], numbers.dropFirst())
        /// The damaged pages as they are now: sd never writes over them (what it can open, it may still write
        /// elsewhere in the file: a library with one damaged table still opens).
        func damagedPages() throws -> [Data] {
            let now = try Data(contentsOf: URL(fileURLWithPath: database))
            return pages.map { now.subdata(in: ($0 - 1) * pageSize..<$0 * pageSize) }
        }
        let damaged = try damagedPages()
        #expect(damaged.allSatisfy { $0.allSatisfy { $0 == 0x55 } } && !damaged.isEmpty)
        for command in [["status"], ["search", "f1"], ["ls", dir.file("home")], ["dupes"], ["status", "--json"]] {
            let r = try sd.run(command)
            let said = r.stdout + r.stderr
            #expect(r.status == 1, "\(command): \(r.status) \(said)")
            #expect(said.contains("damaged") && said.contains("sd library info --check"), "\(command): \(said)")
            #expect(!said.contains("internal error") && !said.contains("SELECT"), "\(command): \(said)")
        }
        let check = try sd.run(["library", "info", "--check"])
        #expect(check.status == 3, "\(check.status) \(check.stdout) \(check.stderr)")
        #expect(check.stdout.contains("integrity    damaged"), "\(check.stdout) \(check.stderr)")
        let json = try sd.run(["library", "info", "--check", "--json"])
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(json.status == 3 && (object?["integrity"] as? String)?.hasPrefix("damaged") == true, "\(json.stdout)")
        #expect(try damagedPages() == damaged, "sd left the damaged pages as they were")
    }

    /// One meaning per exit status: scrub exited 2 (an internal error) when it found corruption, and a preview
    /// that could not commit exited 0 while the same command with `-y` exited 1.
    @Test func exitStatusesMeanOneThingEach() throws {
        let dir = try TemporaryDirectory(prefix: "sd-trust-exit")
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        try dir.write("home/a.txt", Array("alpha".utf8))
        try dir.write("home/b.txt", Array("bravo".utf8))
        #expect(try sd.run(["location", "add", dir.file("home")]).status == 0)
        #expect(try sd.run(["index"]).status == 0)
        // A move onto an existing name cannot commit: preview and -y agree.
        let preview = try sd.run(["mv", "--preview", dir.file("home/a.txt"), dir.file("home/b.txt")])
        let committed = try sd.run(["mv", "-y", dir.file("home/a.txt"), dir.file("home/b.txt")])
        #expect(preview.status == 1 && committed.status == 1, "\(preview.status) \(committed.status) \(preview.stdout)")
        let jsonPreview = try sd.run(["mv", "--preview", "--json", dir.file("home/a.txt"), dir.file("home/b.txt")])
        #expect(jsonPreview.status == 1 && jsonPreview.stdout.contains("\"problems\""), "\(jsonPreview.stdout)")
        #expect(try sd.run(["mv", "--preview", dir.file("home/a.txt"), dir.file("home/c.txt")]).status == 0)
        // Content at risk (one copy of each) is a finding: 3.
        #expect(try sd.run(["redundancy"]).status == 3)
        #expect(try sd.run(["redundancy", "--json"]).status == 3)
        #expect(try sd.run(["scrub"]).status == 0)
        try dir.write("home/a.txt", Array("alphA".utf8))
        var times = [timespec(tv_sec: 1_600_000_000, tv_nsec: 0), timespec(tv_sec: 1_600_000_000, tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, dir.file("home/a.txt"), &times, 0) == 0)
        _ = try sd.run(["index"])
        #expect(try sd.run(["scrub"]).status == 0, "baseline read")
        try dir.write("home/a.txt", Array("alphB".utf8))
        #expect(utimensat(AT_FDCWD, dir.file("home/a.txt"), &times, 0) == 0)
        let found = try sd.run(["scrub"])
        #expect(found.status == 3 && found.stdout.contains("CORRUPTED"), "\(found.status) \(found.stdout)")
        #expect(try sd.run(["scrub", "--json"]).status == 3)
        #expect(try sd.run(["hash", dir.file("home/nope")]).status == 1)
    }

    /// The preview of a tag change states exactly what the commit does: `sd tag remove TAG PATH` previewed one
    /// file but took the tag off all three copies of its content. Checked against the tags of every file of
    /// the tree before and after (not against the preview's own counts).
    @Test(arguments: Way.allCases) func tagPreviewIsWhatTheCommitDoes(_ way: Way) throws {
        let dir = try TemporaryDirectory(prefix: "sd-trust-tag")
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        let files = ["a/x.txt", "b/x.txt", "c/copy.txt", "d/other.txt", "d/plain.txt"]
        for (i, name) in files.enumerated() {
            try dir.write("home/\(name)", Array((i < 3 ? "the same bytes" : "own bytes \(i)").utf8))
        }
        #expect(try sd.run(["location", "add", dir.file("home")]).status == 0)
        #expect(try sd.run(["index"]).status == 0)
        let session = try sd.begin(way)
        defer { session.end() }
        #expect(try sd.run(["tag", "create", "finance"]).status == 0)
        func tagged() throws -> Set<String> {
            Set(try files.filter { try sd.run(["tag", "show", dir.file("home/\($0)")]).stdout.contains("finance") })
        }
        for (verb, named) in [("add", ["a/x.txt", "d/other.txt"]), ("remove", ["b/x.txt"])] {
            let before = try tagged()
            let paths = named.map { dir.file("home/\($0)") }
            let preview = try sd.run(["tag", verb, "finance", "--preview", "--json"] + paths)
            #expect(preview.status == 0, "\(preview.stderr)")
            let object = try JSONSerialization.jsonObject(with: Data(preview.stdout.utf8)) as? [String: Any]
            let operations = object?["operations"] as? [[String: Any]] ?? []
            let previewed = Set(
                operations.filter { $0["skip"] as? Bool != true }.compactMap { $0["source"] as? String }
                    .map { String($0.dropFirst(dir.file("home/").count)) }
            )
            let text = try sd.run(["tag", verb, "finance", "--preview"] + paths).stdout
            #expect(try sd.run(["tag", verb, "finance", "-y"] + paths).status == 0)
            let after = try tagged()
            let changed = before.symmetricDifference(after)
            #expect(previewed == changed, "\(verb): previewed \(previewed), changed \(changed)")
            for path in changed { #expect(text.contains(dir.file("home/\(path)")), "\(verb): \(text)") }
            #expect(text.contains("\(changed.count) files") || changed.count == 1, "\(text)")
        }
        #expect(try tagged() == ["d/other.txt"])
    }

    /// Previews of removals name the links they leave behind: `sd dedup --mode trash` removed a file a symlink
    /// pointed at, leaving the link dangling without a word. Checked against the filesystem after the commit
    /// (links that no longer resolve; names whose link count fell), not against sd's own view.
    @Test(arguments: Way.allCases) func removalPreviewsNameTheLinksLeftBehind(_ way: Way) throws {
        let dir = try TemporaryDirectory(prefix: "sd-trust-links")
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        let home = dir.file("home")
        try dir.write("home/data/target.txt", Array("target".utf8))
        try dir.write("home/data/shared.bin", Array("shared bytes".utf8))
        try dir.write("home/keep/old.txt", Array("twin".utf8))
        try dir.write("home/keep/new.txt", Array("twin".utf8))
        try dir.write("home/other/plain.txt", Array("plain".utf8))
        #expect(symlink(home + "/data/target.txt", home + "/absolute-link") == 0)
        #expect(symlink("../data/target.txt", home + "/other/relative-link") == 0)
        #expect(symlink("target.txt", home + "/data/inner-link") == 0)
        #expect(symlink("../keep/new.txt", home + "/other/to-the-newer-twin") == 0)
        #expect(symlink("plain.txt", home + "/other/unrelated-link") == 0)
        #expect(link(home + "/data/shared.bin", home + "/other/hard.bin") == 0)
        var old = [timespec(tv_sec: 1_500_000_000, tv_nsec: 0), timespec(tv_sec: 1_500_000_000, tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, home + "/keep/old.txt", &old, 0) == 0)
        #expect(try sd.run(["location", "add", home]).status == 0)
        #expect(try sd.run(["index"]).status == 0)
        let session = try sd.begin(way)
        defer { session.end() }

        /// Links that no longer resolve, and files whose link count is below what it was: the filesystem's word.
        func dangling() -> Set<String> {
            let links = [
                "absolute-link", "other/relative-link", "data/inner-link", "other/to-the-newer-twin",
                "other/unrelated-link",
            ]
            return Set(
                links.filter {
                    var st = stat()
                    let isLink = lstat(home + "/" + $0, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK
                    return isLink && stat(home + "/" + $0, &st) != 0
                }
            )
        }
        func notes(_ r: SDBinary.Result) throws -> [[String: Any]] {
            let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            return object?["links"] as? [[String: Any]] ?? []
        }
        func relative(_ path: Any?) -> String { String((path as? String ?? "").dropFirst(home.count + 1)) }

        // Dedup into the trash: the newer twin goes, and the link to it is named.
        let dedup = try sd.run(["dedup", "--mode", "trash", "--preview", "--json"])
        let dedupNotes = try notes(dedup)
        #expect(Set(dedupNotes.map { relative($0["path"]) }) == ["other/to-the-newer-twin"], "\(dedup.stdout)")
        let dedupText = try sd.run(["dedup", "--mode", "trash", "--preview"]).stdout
        #expect(
            dedupText.contains("left dangling: \(home)/other/to-the-newer-twin -> \(home)/keep/new.txt"),
            "\(dedupText)"
        )
        #expect(try sd.run(["dedup", "--mode", "trash", "-y"]).status == 0)
        #expect(dangling() == ["other/to-the-newer-twin"])

        // Deleting a folder: both links into it (absolute, relative), not the one inside it; the hard link kept.
        let linkCount = { (path: String) in (try? Directory.stat(Array(path.utf8)).linkCount) ?? 0 }
        #expect(linkCount(home + "/other/hard.bin") == 2)
        let rm = try sd.run(["rm", "--permanent", "--preview", "--json", home + "/data"])
        let rmNotes = try notes(rm)
        let symlinks = Set(rmNotes.filter { $0["kind"] as? String == "symlink" }.map { relative($0["path"]) })
        let hardlinks = Set(rmNotes.filter { $0["kind"] as? String == "hardlink" }.map { relative($0["path"]) })
        #expect(symlinks == ["absolute-link", "other/relative-link"], "\(rm.stdout)")
        #expect(hardlinks == ["other/hard.bin"], "\(rm.stdout)")
        let rmText = try sd.run(["rm", "--permanent", "--preview", home + "/data"]).stdout
        #expect(rmText.contains("\(home)/other/hard.bin: a hard link of \(home)/data/shared.bin"), "\(rmText)")
        let removed = try sd.run(["rm", "--permanent", "--force-last-copy", "-y", home + "/data"])
        #expect(removed.status == 0, "\(removed.stdout) \(removed.stderr)")
        #expect(dangling() == ["other/to-the-newer-twin", "absolute-link", "other/relative-link"])
        #expect(linkCount(home + "/other/hard.bin") == 1, "the hard link the preview named was detached")
        // Nothing links to what remains: no notes.
        let quiet = try sd.run(["rm", "--preview", "--json", home + "/other/plain.txt"])
        #expect(try notes(quiet).map { relative($0["path"]) } == ["other/unrelated-link"], "\(quiet.stdout)")
        #expect(try notes(try sd.run(["rm", "--preview", "--json", home + "/keep"])).isEmpty)
    }

    /// `sd location remove` dropped ratings, notes and folder tags while saying "no file was touched"; with no
    /// location left `sd status` still counted every content and the database kept its size; `library info`
    /// counted a deleted tag. Now the removal lists what goes and asks, content tags come back with the files,
    /// orphaned contents go and the space is given back (checked with Python's own SQLite).
    @Test(arguments: Way.allCases) func locationRemovalSaysWhatGoesAndGivesSpaceBack(_ way: Way) throws {
        let dir = try TemporaryDirectory(prefix: "sd-trust-location")
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        let home = dir.file("home")
        try dir.write("home/a.txt", Array("alpha".utf8))
        try dir.write("home/b.txt", Array("shared".utf8))
        try dir.write("other/b-copy.txt", Array("shared".utf8))
        for i in 0..<4_000 { try dir.write("home/sub/f\(i % 40)/file-\(i).txt", Array("content \(i)".utf8)) }
        #expect(try sd.run(["location", "add", home]).status == 0)
        #expect(try sd.run(["location", "add", dir.file("other")]).status == 0)
        #expect(try sd.run(["index"]).status == 0)
        let session = try sd.begin(way)
        defer { session.end() }
        for command in [
            ["meta", "set", home + "/a.txt", "--rating", "4", "--note", "keep this"], ["tag", "create", "finance"],
            ["tag", "add", "finance", "-y", home + "/sub"], ["tag", "create", "photos"],
            ["tag", "add", "photos", "-y", home + "/b.txt"], ["tag", "create", "old"], ["tag", "delete", "old"],
        ] {
            let r = try sd.run(command)
            #expect(r.status == 0, "\(command): \(r.stderr)")
        }
        let info = try JSONSerialization.jsonObject(with: Data(try sd.run(["library", "info", "--json"]).stdout.utf8))
        #expect((info as? [String: Any])?["tags"] as? Int == 2, "two live tags: \(info)")

        let preview = try sd.run(["location", "remove", home, "--preview", "--json"])
        let removal = try JSONSerialization.jsonObject(with: Data(preview.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(removal["ratings"] as? Int == 1 && removal["notes"] as? Int == 1, "\(preview.stdout)")
        #expect(removal["entryTags"] as? Int == 1 && removal["contentTagged"] as? Int == 1, "\(preview.stdout)")
        let examples = removal["examples"] as? [String] ?? []
        #expect(Set(examples) == [home + "/a.txt", home + "/sub"], "\(examples)")
        let text = try sd.run(["location", "remove", home, "--preview"]).stdout
        #expect(text.contains("1 rating, 1 note, 1 tag on a file or folder"), "\(text)")
        // Not a terminal, no -y: refused, and nothing removed.
        let refused = try sd.run(["location", "remove", home])
        #expect(refused.status == 1 && refused.stderr.contains("add -y"), "\(refused.stdout)\(refused.stderr)")
        #expect(try sd.run(["location", "list"]).stdout.contains(home))

        let database = dir.file("data/Default.sdlibrary/library.db")
        let python = Run.which("python3") ?? "/usr/bin/python3"
        func pages() throws -> (count: Int, free: Int) {
            let script = """
                import sqlite3, sys
                c = sqlite3.connect(sys.argv[1])
                print(c.execute("PRAGMA page_count").fetchone()[0], c.execute("PRAGMA freelist_count").fetchone()[0])
                """
            let out = String(decoding: try Run.program(python, ["-c", script, database]).out, as: UTF8.self)
            let n = out.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
            return (n.first ?? 0, n.last ?? 0)
        }
        let before = try pages()
        let removed = try sd.run(["location", "remove", home, "-y"])
        #expect(
            removed.status == 0 && removed.stdout.contains("the metadata listed above is forgotten"),
            "\(removed.stdout)"
        )
        let after = try pages()
        #expect(after.count * 2 < before.count, "the file shrank: \(before) -> \(after) pages")
        #expect(after.free * 4 <= after.count, "free pages given back: \(after)")
        let status = try JSONSerialization.jsonObject(with: Data(try sd.run(["status", "--json"]).stdout.utf8))
        #expect((status as? [String: Any])?["contents"] as? Int == 1, "one content left (other/b-copy.txt): \(status)")
        let text2 = try sd.run(["status"]).stdout
        #expect(!text2.contains("analysis"), "\(text2)")

        // Added again: what is kept on contents is back; what was kept on the entries is gone, as announced.
        #expect(try sd.run(["location", "add", home]).status == 0)
        #expect(try sd.run(["index"]).status == 0)
        #expect(try sd.run(["tag", "show", home + "/b.txt"]).stdout.contains("photos"))
        #expect(try sd.run(["meta", "show", home + "/a.txt"]).stdout.contains("rating: none"))
    }

    /// `--json` everywhere: `meta set`, `tag create` and `config set` rejected it. Every command of the tree
    /// argument-parser describes (`--experimental-dump-help`, the parser's own account) takes it, and the ones
    /// that lacked it print one JSON value.
    @Test func everyCommandTakesJSON() throws {
        let dir = try TemporaryDirectory(prefix: "sd-trust-json")
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        let dump = try sd.run(["--experimental-dump-help"])
        let tree = try #require(try JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [String: Any])
        var leaves: [(path: String, flags: Set<String>)] = []
        func walk(_ command: [String: Any], _ path: [String]) {
            let subcommands = (command["subcommands"] as? [[String: Any]] ?? []).filter {
                $0["commandName"] as? String != "help"
            }
            if subcommands.isEmpty {
                let names = (command["arguments"] as? [[String: Any]] ?? []).flatMap {
                    ($0["names"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
                }
                leaves.append((path.joined(separator: " "), Set(names)))
            }
            for sub in subcommands where sub["commandName"] as? String != "debug" {
                walk(sub, path + [sub["commandName"] as? String ?? "?"])
            }
        }
        walk(try #require(tree["command"] as? [String: Any]), [])
        #expect(leaves.count > 60, "\(leaves.count) commands")
        let without = leaves.filter { !$0.flags.contains("json") }.map(\.path)
        #expect(without.isEmpty, "without --json: \(without)")

        try dir.write("home/a.txt", Array("alpha".utf8))
        #expect(try sd.run(["location", "add", dir.file("home")]).status == 0)
        #expect(try sd.run(["index"]).status == 0)
        for command in [
            ["tag", "create", "finance", "--json"], ["tag", "rename", "finance", "money", "--json"],
            ["meta", "set", dir.file("home/a.txt"), "--rating", "3", "--json"],
            ["config", "set", "min-copies", "2", "--json"],
            ["config", "get", "min-copies", "--json"], ["config", "get", "sync-retention-days", "--json"],
            ["tag", "delete", "money", "--json"], ["daemon", "stop", "--json"],
        ] {
            let r = try sd.run(command)
            let value = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
            #expect(r.status == 0 && value is [String: Any], "\(command): \(r.status) \(r.stdout) \(r.stderr)")
        }
        let got = try JSONSerialization.jsonObject(
            with: Data(try sd.run(["config", "get", "min-copies", "--json"]).stdout.utf8)
        )
        #expect((got as? [String: Any])?["value"] as? String == "2", "\(got)")
    }

    /// An undo after part of it was done by hand (one file restored from the trash by itself) reverses the rest
    /// and says what it left; only when nothing can be reversed is it refused.
    @Test(arguments: Way.allCases) func undoAfterAPartialRestoreReversesTheRest(_ way: Way) throws {
        let dir = try TemporaryDirectory(prefix: "sd-trust-undo")
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        let home = dir.file("home")
        let contents = ["a.txt": "alpha", "b.txt": "bravo", "c.txt": "charlie"]
        for (name, text) in contents { try dir.write("home/" + name, Array(text.utf8)) }
        #expect(try sd.run(["location", "add", home]).status == 0)
        #expect(try sd.run(["index"]).status == 0)
        let session = try sd.begin(way)
        defer { session.end() }
        let removed = try sd.run(["rm", "-y"] + contents.keys.sorted().map { home + "/" + $0 })
        #expect(removed.status == 0, "\(removed.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: home).isEmpty)
        let trash = try JSONSerialization.jsonObject(with: Data(try sd.run(["trash", "list", "--json"]).stdout.utf8))
        let items = try #require(trash as? [[String: Any]])
        let a = try #require(
            items.first { ($0["originalPath"] as? String)?.hasSuffix("/a.txt") == true }?["id"] as? String
        )
        #expect(try sd.run(["trash", "restore", "-y", a]).status == 0)

        let undo = try sd.run(["undo", "-y"])
        #expect(undo.status == 0, "the rest is reversed: \(undo.stdout) \(undo.stderr)")
        #expect(undo.stdout.contains("left as it is: \(home)/a.txt: is already back where it was"), "\(undo.stdout)")
        for (name, text) in contents {
            let back = try? String(contentsOfFile: home + "/" + name, encoding: .utf8)
            #expect(back == text, "\(name) is back with its bytes")
        }
        #expect(try sd.run(["trash", "list"]).stdout.contains("the trash is empty"))
        // Nothing is left to undo of it: a second undo is refused, and changes nothing.
        let again = try sd.run(["undo", "-y"])
        #expect(again.status == 1, "\(again.stdout)")
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: home)) == Set(contents.keys))
    }

    /// One formatter: no command says "1 files" (or any plural for one), sizes read one way ("6 B", never
    /// "6 bytes" or "Zero KB"), and dates are ISO 8601 in UTC wherever a command prints one.
    @Test func countsSizesAndDatesReadOneWay() throws {
        let dir = try TemporaryDirectory(prefix: "sd-trust-format")
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        let home = dir.file("home")
        try dir.write("home/one/only.txt", Array("hello!".utf8))
        try dir.write("home/one-copy.txt", Array("hello!".utf8))
        #expect(try sd.run(["location", "add", home]).status == 0)
        #expect(try sd.run(["tag", "create", "t"]).status == 0)
        var printed = ""
        for command in [
            ["index"], ["status"], ["ls", "-l", home + "/one"], ["search", "only"], ["dupes"],
            ["cp", "--preview", home + "/one/only.txt", dir.file("elsewhere")], ["rm", "--preview", home + "/one"],
            ["tag", "add", "t", "--preview", home + "/one/only.txt"], ["rm", "-y", home + "/one-copy.txt"],
            ["trash", "list"], ["redundancy"], ["scrub", "-y"], ["location", "list"], ["library", "info"],
        ] {
            let r = try sd.run(command)
            printed += r.stdout + r.stderr
        }
        let plural = try Regex(#"(^|[^0-9.])1 (files|folders|entries|copies|groups|items|results|contents)\b"#)
        #expect(printed.firstMatch(of: plural) == nil, "a plural for one: \(printed)")
        #expect(printed.firstMatch(of: try Regex(#"\d bytes"#)) == nil && !printed.contains("Zero"), "\(printed)")
        #expect(printed.contains("6 B"), "\(printed)")
        // Every date printed is ISO 8601 in UTC.
        let local = try Regex(#"\d{4}-\d{2}-\d{2} \d{2}:\d{2}"#)
        #expect(printed.firstMatch(of: local) == nil, "a date not in ISO form: \(printed)")
        #expect(printed.contains(try Regex(#"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"#)), "\(printed)")

        // For scripts: the paths alone (NUL-ended, exact), and a summary line on standard error only.
        let found = try sd.run(["search", "only", "--print0"])
        #expect(found.stdout == home + "/one/only.txt\u{0}", "\(found.stdout.debugDescription)")
        let paths = try sd.run(["search", "only", "--paths-only"])
        #expect(paths.stdout == home + "/one/only.txt\n" && paths.stderr.contains("1 result"), "\(paths.stderr)")
    }

    /// A slow preview shows that it works on a terminal, and writes nothing extra when standard error is not
    /// one (the suite's own runs). A pseudo-terminal (Python's pty, not sd's code) stands in for a person's.
    @Test func slowPreviewsSayTheyWorkOnATerminalOnly() throws {
        let dir = try TemporaryDirectory(prefix: "sd-trust-progress")
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        for i in 0..<300 { try dir.write("home/f\(i % 10)/file-\(i).txt", Array("content \(i)".utf8)) }
        #expect(try sd.run(["location", "add", dir.file("home")]).status == 0)
        #expect(try sd.run(["index"]).status == 0)
        let preview = ["cp", "--preview", dir.file("home"), dir.file("copy")]
        let piped = try sd.run(preview, environment: ["SD_PROGRESS_AFTER_MS": "0"])
        #expect(piped.status == 0 && !piped.stderr.contains("previewing"), "quiet when piped: \(piped.stderr)")
        let script = """
            import os, pty, sys
            pid, fd = pty.fork()
            if pid == 0:
                os.execv(sys.argv[1], sys.argv[1:])
            out = b""
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            os.waitpid(pid, 0)
            sys.stdout.buffer.write(out)
            """
        var environment = sd.environment
        environment["SD_PROGRESS_AFTER_MS"] = "0"
        let onTerminal = try Run.program(
            Run.which("python3") ?? "/usr/bin/python3",
            ["-c", script, sd.path] + preview,
            environment: environment
        )
        let text = String(decoding: onTerminal.out, as: UTF8.self)
        #expect(text.contains("previewing…"), "a terminal sees the preview working: \(text.debugDescription)")
        #expect(text.contains("copy 300 files"), "\(text)")
    }

    /// Help is wrapped once, to the terminal: no prose line ends early and goes on in the next (the source's
    /// own line breaks wrapped it a second time), and none runs past the width.
    @Test func helpIsWrappedOnce() throws {
        let dir = try TemporaryDirectory(prefix: "sd-trust-help")
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        let top = try sd.run(["--help"], environment: ["COLUMNS": "80"]).stdout
        let commands =
            top.components(separatedBy: "SUBCOMMANDS:").last?.split(separator: "\n")
            .compactMap { $0.hasPrefix("  ") ? $0.split(separator: " ").first.map(String.init) : nil } ?? []
        #expect(commands.count > 20, "\(top)")
        for command in commands {
            let help = try sd.run([command, "--help"], environment: ["COLUMNS": "80"]).stdout
            let lines = help.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            for (line, next) in zip(lines, lines.dropFirst()) {
                #expect(line.count <= 80 || line.hasPrefix("USAGE:"), "sd \(command) --help: '\(line)'")
                let prose = !line.hasPrefix(" ") && !line.isEmpty && !line.hasSuffix(":")
                let continues = next.first.map { $0.isLowercase } ?? false
                #expect(!(prose && line.count < 55 && continues), "sd \(command) --help, ragged: '\(line)' / '\(next)'")
            }
        }
    }
}
