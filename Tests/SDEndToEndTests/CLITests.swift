import Foundation
import SDCore
import SDTestSupport
import Testing

/// The real `sd` binary, run as a user would; the tests that use a library run twice: on it directly, and
/// through a daemon serving it (`Way`), with the same expectations.
struct CLITests {
    let dir: TemporaryDirectory
    let sd: SDBinary

    init() throws {
        dir = try TemporaryDirectory(prefix: "sd-e2e")
        sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
    }

    @Test(arguments: Way.allCases) func defaultLibraryIsCreatedOnFirstUse(_ way: Way) throws {
        let session = try sd.begin(way)
        defer { session.end() }
        let r = try sd.run(["library", "info", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let info = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        #expect(info?["name"] as? String == "Default")
        #expect(FileManager.default.fileExists(atPath: dir.file("data/Default.sdlibrary/library.db")))
        let list = try sd.run(["library", "list"])
        #expect(list.stdout.contains("Default"))
    }

    /// `sd cp` as a user runs it: a preview that writes nothing, a copy without a terminal needs -y, a copy
    /// that conflicts is refused, and the audit log records both.
    @Test(arguments: Way.allCases) func copyPreviewRefusalAndAuditLog(_ way: Way) throws {
        let session = try sd.begin(way)
        defer { session.end() }
        try dir.write("src/report.txt", Array("quarterly".utf8))
        try FileManager.default.createDirectory(atPath: dir.file("dst"), withIntermediateDirectories: true)
        let preview = try sd.run(["cp", "--preview", dir.file("src/report.txt"), dir.file("dst")])
        #expect(preview.status == 0, "\(preview.stderr)")
        #expect(preview.stdout.contains("copy 1 file"))
        #expect(!FileManager.default.fileExists(atPath: dir.file("dst/report.txt")))
        let unasked = try sd.run(["cp", dir.file("src/report.txt"), dir.file("dst")])
        #expect(unasked.status == 1 && unasked.stderr.contains("-y"))
        #expect(try sd.run(["cp", "-y", dir.file("src/report.txt"), dir.file("dst")]).status == 0)
        #expect(try String(contentsOfFile: dir.file("dst/report.txt"), encoding: .utf8) == "quarterly")
        let again = try sd.run(["cp", "-y", dir.file("src/report.txt"), dir.file("dst")])
        #expect(again.status == 1 && again.stdout.contains("already exists"))
        let log = try JSONSerialization.jsonObject(with: Data(try sd.run(["log", "--json"]).stdout.utf8))
        let outcomes = (log as? [[String: Any]] ?? []).map { $0["outcome"] as? String ?? "" }
        #expect(outcomes == ["refused", "ok"])
        #expect(try sd.run(["jobs", "--all"]).stdout.contains("copy    completed"))
        #expect(session.served(["(copy) completed"]), "\(session.log)")
    }

    /// Moves, the trash and undo as a user runs them, the index following each action without a rescan.
    @Test(arguments: Way.allCases) func actionsKeepTheIndexAndUndo(_ way: Way) throws {
        let session = try sd.begin(way)
        defer { session.end() }
        try dir.write("home/docs/report.txt", Array("quarterly".utf8))
        try dir.write("home/docs/notes.txt", Array("notes".utf8))
        try FileManager.default.createDirectory(atPath: dir.file("home/archive"), withIntermediateDirectories: true)
        #expect(try sd.run(["location", "add", dir.file("home")]).status == 0)
        #expect(try sd.run(["index"]).status == 0)
        func listed(_ folder: String) throws -> [String] {
            try sd.run(["ls", dir.file(folder)]).stdout.split(separator: "\n").map(String.init)
        }
        let moved = try sd.run(["mv", "-y", dir.file("home/docs/report.txt"), dir.file("home/archive")])
        #expect(moved.status == 0, "\(moved.stderr)")
        #expect(try listed("home/archive") == ["report.txt"])
        #expect(try listed("home/docs") == ["notes.txt"])
        #expect(try sd.run(["search", "report", "--json"]).stdout.contains("archive/report.txt"))

        #expect(try sd.run(["rm", "-y", dir.file("home/docs/notes.txt")]).status == 0)
        #expect(try listed("home/docs").isEmpty)
        let trash = try sd.run(["trash", "list"])
        #expect(trash.stdout.contains(dir.file("home/docs/notes.txt")))
        let id = String(trash.stdout.prefix(8))
        #expect(try sd.run(["trash", "restore", "-y", id]).status == 0)
        #expect(try listed("home/docs") == ["notes.txt"])
        #expect(try sd.run(["trash", "list"]).stdout.contains("the trash is empty"))

        // The last undoable action is the move: refused once the file changed, done once it is back.
        try dir.write("home/archive/report.txt", Array("edited".utf8))
        let refused = try sd.run(["undo", "-y"])
        #expect(refused.status == 1)
        #expect(refused.stdout.contains("changed since"), "\(refused.stdout)")
        try dir.write("home/archive/report.txt", Array("quarterly".utf8))
        let undone = try sd.run(["undo", "-y"])
        #expect(undone.status == 0, "\(undone.stderr)")
        #expect(try listed("home/docs") == ["notes.txt", "report.txt"])
        #expect(try listed("home/archive").isEmpty)

        // A permanent delete of content with no other copy is refused; forced, it goes.
        let last = try sd.run(["rm", "--permanent", "-y", dir.file("home/docs/notes.txt")])
        #expect(last.status == 1 && last.stdout.contains("below min-copies"))
        #expect(
            try sd.run(["rm", "--permanent", "--force-last-copy", "-y", dir.file("home/docs/notes.txt")]).status == 0
        )
        #expect(!FileManager.default.fileExists(atPath: dir.file("home/docs/notes.txt")))
        #expect(try sd.run(["config", "set", "min-copies", "2", "--tag", "nope"]).stderr.contains("no tag named"))
        #expect(try sd.run(["config", "set", "min-copies", "2"]).status == 0)
        #expect(try sd.run(["config", "get", "min-copies"]).stdout == "2\n")
        let log = try sd.run(["log"]).stdout
        for action in ["move", "trash", "restore", "delete"] { #expect(log.contains("  \(action)  ")) }
        let jobs = try JSONSerialization.jsonObject(with: Data(try sd.run(["jobs", "list", "--json"]).stdout.utf8))
        #expect((jobs as? [Any])?.isEmpty == true)
        #expect(
            session.served([
                "(move) completed", "(trash) completed", "(restore) completed", "(delete) completed",
                "(index) completed",
            ]),
            "\(session.log)"
        )
    }

    /// A tag put on one file is found on its copy by search, and the content commands answer.
    @Test(arguments: Way.allCases) func tagsDupesAndResolve(_ way: Way) throws {
        let session = try sd.begin(way)
        defer { session.end() }
        try dir.write("home/a/beach.jpg", Array("the same photo".utf8))
        try dir.write("home/b/beach copy.jpg", Array("the same photo".utf8))
        #expect(try sd.run(["location", "add", dir.file("home")]).status == 0)
        #expect(try sd.run(["index"]).status == 0)
        #expect(try sd.run(["tag", "create", "holiday"]).status == 0)
        // Both copies named: one content, so one change; the second is so already. A preview changes nothing.
        let both = [dir.file("home/a/beach.jpg"), dir.file("home/b/beach copy.jpg")]
        let previewed = try sd.run(["tag", "add", "holiday", "--preview"] + both)
        #expect(previewed.stdout == "tag holiday: 1 file, 1 already so\n  \(both[0])\n", "\(previewed.stdout)")
        #expect(try sd.run(["tag", "show", both[0]]).stdout == "no tags\n")
        let tagged = try sd.run(["tag", "add", "holiday"] + both)
        #expect(tagged.status == 0 && tagged.stdout.contains("tag completed: 1 file, 1 already so (job "))
        let found = try sd.run(["search", "tag:holiday", "--json"]).stdout
        #expect(found.contains("beach copy.jpg") && found.contains("a/beach.jpg"))
        #expect(try sd.run(["tag", "show", dir.file("home/b/beach copy.jpg")]).stdout == "holiday\n")
        let missing = try sd.run(["tag", "add", "nope", dir.file("home/a/beach.jpg")])
        #expect(missing.status == 1 && missing.stderr.contains("nothing was done: nope: no tag named 'nope'"))
        let unindexed = try sd.run(["tag", "add", "holiday", dir.file("home/c.jpg")])
        #expect(unindexed.status == 1 && unindexed.stderr.contains("home/c.jpg: not in the index"), "\(unindexed)")
        #expect(try sd.run(["dupes"]).stdout.contains("1 group, 2 files"))
        let listing = try JSONSerialization.jsonObject(
            with: Data(try sd.run(["ls", dir.file("home/a"), "--json"]).stdout.utf8)
        )
        let id = try #require((listing as? [[String: Any]])?.first?["contentID"] as? String)
        let resolved = try sd.run(["resolve", "sd://content/\(id)"])
        #expect(resolved.status == 0 && resolved.stdout.contains("* 1. "), "\(resolved.stdout)\(resolved.stderr)")
        let meta = try sd.run(["meta", "set", dir.file("home/a/beach.jpg"), "--rating", "4", "--favorite"])
        #expect(meta.stdout == "changed 1 item(s)\n", "\(meta.stderr)")
        let shown = try sd.run(["meta", "show", dir.file("home/a/beach.jpg"), "--json"]).stdout
        #expect(shown.contains("\"rating\" : 4") && shown.contains("\"favorite\" : true"), "\(shown)")
        #expect(try sd.run(["meta", "show", dir.file("home/nope.jpg")]).stderr.contains("is not in the index"))
        // Both copies are on one disk: that is one copy as far as losing a disk goes. The tag is on the content.
        let redundancy = try sd.run(["redundancy"]).stdout
        #expect(redundancy.hasPrefix("1 content with fewer than 2 copies: 14 B at risk"), "\(redundancy)")
        let lost = try sd.run(["redundancy", "--if-lost", dir.file("home")]).stdout
        #expect(lost.hasPrefix("if \(dir.file("home")) were lost: 1 content with no copy left"), "\(lost)")
        let tags = try sd.run(["tag", "list"]).stdout
        #expect(tags == "holiday  2 items\n", "\(tags)")
        #expect(
            session.served([
                "(index) completed", "POST /v1/tags/edit 200", "POST /v1/actions/preview 200", "GET /v1/tags/of 200",
                "GET /v1/dupes 200", "GET /v1/resolve 200", "POST /v1/meta 200", "GET /v1/meta 200",
                "GET /v1/meta 404", "GET /v1/redundancy 200", "GET /v1/tags 200",
            ]),
            "\(session.log)"
        )
    }

    /// `sd dedup` links the copies and `sd undo` separates them; `sd scrub` finds a flipped byte (exit 2) and
    /// `--repair` puts the good copy back.
    @Test(arguments: Way.allCases) func dedupUndoAndScrub(_ way: Way) throws {
        let session = try sd.begin(way)
        defer { session.end() }
        let photo = Array(String(repeating: "pixels ", count: 40_000).utf8)
        try dir.write("home/a/beach.jpg", photo)
        try dir.write("home/b/beach.jpg", photo)
        #expect(try sd.run(["location", "add", dir.file("home")]).status == 0)
        #expect(try sd.run(["index"]).status == 0)
        func inode(_ path: String) -> UInt64? {
            var st = stat()
            return stat(dir.file(path), &st) == 0 ? UInt64(st.st_ino) : nil
        }
        let dedup = try sd.run(["dedup", "-y"])
        #expect(dedup.status == 0, "\(dedup.stderr)")
        #expect(dedup.stdout.contains("frees 280 KB"), "\(dedup.stdout)")
        #expect(inode("home/a/beach.jpg") == inode("home/b/beach.jpg"))
        #expect(try sd.run(["dupes"]).stdout.contains("no duplicates"))
        #expect(try sd.run(["undo", "-y"]).status == 0)
        #expect(inode("home/a/beach.jpg") != inode("home/b/beach.jpg"))
        #expect(try sd.run(["dedup", "--mode", "reflink", "--across-disks"]).status == 1)

        #expect(try sd.run(["scrub"]).status == 0)
        // A byte flipped, the modification time put back.
        let victim = dir.file("home/b/beach.jpg")
        var st = stat()
        #expect(stat(victim, &st) == 0)
        let fd = open(victim, O_WRONLY)
        var flipped = photo[1234] ^ 1
        #expect(pwrite(fd, &flipped, 1, 1234) == 1)
        var times = [st.st_atim, st.st_mtim]
        #expect(futimens(fd, &times) == 0)
        close(fd)
        let found = try sd.run(["scrub"])
        #expect(found.status == 3, "found problems, not an internal error")
        #expect(found.stdout.contains("CORRUPTED: \(victim)") && found.stdout.contains("good copy: "))
        let repaired = try sd.run(["scrub", "--repair", "-y"])
        #expect(repaired.status == 0, "\(repaired.stdout)\(repaired.stderr)")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: victim))) == photo)
        #expect(try sd.run(["scrub"]).status == 0)
        #expect(session.served(["(dedup-link) completed", "(dedup-separate) completed"]), "\(session.log)")
    }

    @Test(arguments: Way.allCases) func userErrorsExitOneWithOneLine(_ way: Way) throws {
        let session = try sd.begin(way)
        defer { session.end() }
        let missing = try sd.run(["hash", dir.file("nope")])
        #expect(missing.status == 1)
        #expect(missing.stderr.split(separator: "\n").count == 1)
        #expect(missing.stderr.contains("No such file"))

        let badPath = try sd.run(["path", "parse", "sd://not-a-device/x"])
        #expect(badPath.status == 1)
        #expect(badPath.stderr.contains("not a device id"))

        let noLibrary = try sd.run(["library", "info", "--library", dir.file("missing.sdlibrary")])
        #expect(noLibrary.status == 1)
        #expect(noLibrary.stderr.contains("sd library create"))

        let badFlag = try sd.run(["hash", "--no-such-flag", "x"])
        #expect(badFlag.status == 1)

        let elsewhere = try sd.run(["library", "create", "Elsewhere", "--in", dir.file("other")])
        #expect(elsewhere.status == 0)
        #expect(FileManager.default.fileExists(atPath: dir.file("other/Elsewhere.sdlibrary/library.json")))

        let twice = try sd.run(["library", "create", "Same"])
        #expect(twice.status == 0)
        let again = try sd.run(["library", "create", "Same", "--json"])
        #expect(again.status == 1)
        #expect(again.stdout.contains("\"error\""))
    }

    @Test func helpHasAnExampleAndExitsZero() throws {
        for command in [
            ["--help"], ["hash", "--help"], ["kind", "--help"], ["library", "--help"],
            ["library", "create", "--help"], ["library", "list", "--help"], ["library", "info", "--help"],
            ["path", "--help"], ["path", "parse", "--help"], ["path", "format", "--help"],
        ] {
            let r = try sd.run(command)
            #expect(r.status == 0, "\(command)")
            #expect(r.stdout.contains("Example"), "\(command) help has no example")
        }
    }

    @Test func pathFormatAndParseRoundTrip() throws {
        let formatted = try sd.run(["path", "format", "/tmp/a b/c%d.txt"])
        #expect(formatted.status == 0)
        let text = formatted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(text.hasSuffix("/tmp/a%20b/c%25d.txt"))
        let parsed = try sd.run(["path", "parse", "--json", text])
        #expect(parsed.stdout.contains("\"path\" : \"/tmp/a b/c%d.txt\""))
    }

    @Test func kindReportsMethod() throws {
        let png = try dir.write("image-without-extension", [0x89] + Array("PNG\r\n\u{1A}\n".utf8) + [0, 0, 0, 13])
        let r = try sd.run(["kind", png])
        #expect(r.status == 0)
        #expect(r.stdout.hasPrefix("image  image/png  magic"))
    }

    /// `sd hash --full` prints exactly what b3sum prints, on 100 random files of many sizes.
    @Test func fullHashEqualsB3sum() throws {
        let b3sum = try #require(
            Run.which("b3sum"),
            "b3sum is needed: scripts/test installs it (apt-get install b3sum)"
        )
        var rng = SeededRNG(seed: 2026)
        var files: [String] = []
        for i in 0..<100 {
            let size: Int =
                switch i % 4 {
                case 0: Int(rng.next() % 4096)
                case 1: Int(rng.next() % 64) * 1024 + Int(rng.next() % 3) - 1
                case 2: Int(rng.next() % 300_000)
                default: Int(rng.next() % (3 << 20))
                }
            files.append(try dir.write("random/file \(i).bin", rng.bytes(max(0, size))))
        }
        let ours = try sd.run(["hash", "--full"] + files)
        let theirs = try Run.program(b3sum, files)
        #expect(ours.status == 0)
        #expect(ours.stdout == String(decoding: theirs.out, as: UTF8.self))
    }
}
