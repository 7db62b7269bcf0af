import Foundation
import SDSystem
import SDTestSupport
import Testing

/// Copies of a library: a backup made while two daemons sync, a restore that rejoins sync safely (peers pull
/// its whole state: nothing skipped, nothing stale kept), and a config folder copied to a second place refused.
@Suite(.serialized) struct LibraryCopyTests {
    /// Waits (generously: a busy machine) until `d`'s search for `name` does (or does not) list it.
    func waitUntil(_ d: Device, finds name: String, _ wanted: Bool = true, within seconds: Double = 60) throws -> Bool {
        let start = Date()
        while Date().timeIntervalSince(start) < seconds {
            if try d.sd.run(["search", name]).stdout.contains(name) == wanted { return true }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return false
    }

    func waitUntil(_ d: Device, hasTag tag: String, within seconds: Double = 60) throws -> Bool {
        let start = Date()
        while Date().timeIntervalSince(start) < seconds {
            if try d.sd.run(["tag", "list"]).stdout.contains(tag) { return true }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return false
    }

    /// Reads a library database with Python's sqlite3 (read-only; not sd's code): its integrity and the names of
    /// its entries.
    func independentlyRead(_ database: String) throws -> (check: String, names: Set<String>) {
        let script = """
            import sqlite3, sys
            db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
            print(db.execute("PRAGMA quick_check").fetchone()[0])
            for (name,) in db.execute("SELECT name FROM entries"):
                print(bytes(name).decode("utf-8", "replace"))
            """
        let run = try Run.program(Run.which("python3") ?? "/usr/bin/python3", ["-c", script, database])
        let lines = String(decoding: run.out, as: UTF8.self).split(separator: "\n").map(String.init)
        return (lines.first ?? String(decoding: run.err, as: UTF8.self), Set(lines.dropFirst()))
    }

    @Test(.timeLimit(.minutes(10))) func backupWhileSyncingAndARestoreThatRejoins() throws {
        let a = try Device("a"), b = try Device("b")
        defer { [a, b].forEach { $0.stopDaemon() } }
        _ = try a.dir.write("files-a/on-a.txt", Array("a".utf8))
        _ = try b.dir.write("files-b/before-backup.txt", Array("b1".utf8))
        try a.run(["location", "add", a.files])
        try a.run(["index"])
        try a.startDaemon()
        try a.pair(with: b)
        let (aID, bID) = (try a.id, try b.id)
        try a.run(["library", "share", bID])
        try b.run(["library", "join", aID])
        try b.run(["location", "add", b.files])
        try b.run(["index"])
        try b.startDaemon()
        #expect(try waitUntil(a, finds: "before-backup"), "a finds b's file")

        // A backup of b's library while both daemons run and sync.
        let backup = b.dir.file("backups/b.sdlibrary")
        let made = try b.run(["library", "backup", backup, "--json"])
        let report = try JSONSerialization.jsonObject(with: Data(made.stdout.utf8)) as? [String: Any]
        #expect(report?["path"] as? String == backup, "\(made.stdout)")
        let copied = try independentlyRead(backup + "/library.db")
        #expect(copied.check == "ok")
        #expect(copied.names.isSuperset(of: ["before-backup.txt", "on-a.txt"]), "\(copied.names.sorted())")
        let again = try b.sd.run(["library", "backup", backup])
        #expect(again.status == 1 && again.stderr.contains("exists"), "never into an existing folder: \(again.stderr)")

        // After the backup b goes on: files come (each index run moves b's change sequence on), a tag is made.
        for i in 0..<8 {
            _ = try b.dir.write("files-b/later-\(i).txt", Array("later \(i)".utf8))
            try b.run(["index"])
        }
        _ = try b.dir.write("files-b/after-backup.txt", Array("b2".utf8))
        try b.run(["index"])
        try b.run(["tag", "create", "made-after-backup"])
        #expect(try waitUntil(a, finds: "after-backup"), "a finds b's later file")
        #expect(try waitUntil(a, hasTag: "made-after-backup"))

        // b's library is restored (the daemon stopped for it), and b's folder is as it was at the backup.
        let refused = try b.sd.run(["library", "restore", backup])
        #expect(refused.status == 1 && refused.stderr.contains("sd daemon stop"), "\(refused.stderr)")
        b.stopDaemon()
        for i in 0..<8 { try FileManager.default.removeItem(atPath: b.files + "/later-\(i).txt") }
        try FileManager.default.removeItem(atPath: b.files + "/after-backup.txt")
        let restored = try b.run(["library", "restore", backup]).stdout
        #expect(restored.contains("new epoch"), "\(restored)")
        #expect(try independentlyRead(backup + "/library.db").check == "ok", "the backup is left as it was")
        _ = try b.dir.write("files-b/after-restore.txt", Array("b3".utf8))
        try b.run(["index"])
        try b.startDaemon()
        try b.run(["tag", "create", "made-after-restore"])

        // a takes b's restored library whole: what b made since is found, what b no longer has is gone from a.
        // (Each wait is generous: a busy machine. What both knew of their sync is shown if one runs out.)
        func expect(_ holds: Bool, _ what: String) {
            if !holds { Issue.record("\(what)\n\(a.syncReport())\n\(b.syncReport())") }
        }
        expect(try waitUntil(a, finds: "after-restore"), "a finds the file b indexed after the restore")
        expect(try waitUntil(a, finds: "after-backup.txt", false), "a drops what the restored b does not have")
        expect(try waitUntil(a, finds: "later-7.txt", false), "a drops what the restored b does not have")
        expect(try waitUntil(a, finds: "before-backup"), "a keeps what the restored b has")
        expect(try waitUntil(a, hasTag: "made-after-restore"), "a takes b's shared changes after the restore")
        // b gets back from a what it made after the backup.
        expect(try waitUntil(b, hasTag: "made-after-backup"), "b gets back its tag from a")
        expect(try waitUntil(b, finds: "on-a"), "b still has a's rows")
    }

    /// A config folder copied to a second place (another machine, another folder) holds one device identity
    /// twice: every command there is refused with what to do, until told which it is (`sd device new` makes it a
    /// new device, the old identity kept aside; `sd device keep` says it moved). The original is untouched.
    @Test func aCopiedConfigFolderIsRefusedUntilToldWhichItIs() throws {
        let a = try Device("a")
        let original = try a.id
        #expect(!original.isEmpty)
        func copy(to name: String) throws -> SDBinary {
            let copied = try Run.program("/bin/cp", ["-a", a.dir.file("config"), a.dir.file(name)])
            #expect(copied.status == 0)
            return try SDBinary(dataDirectory: a.dir.file("data-" + name), configDirectory: a.dir.file(name))
        }
        let twin = try copy(to: "config-copy")
        for command in [["status"], ["peer", "list"], ["device", "show"], ["daemon", "start", "--discovery", "off"]] {
            let refused = try twin.run(command)
            #expect(refused.status == 1, "sd \(command.joined(separator: " ")) on a copied identity: \(refused.stdout)")
            #expect(
                refused.stderr.contains("sd device keep") && refused.stderr.contains("sd device new"),
                "\(refused.stderr)"
            )
        }
        #expect(try a.sd.run(["device", "show"]).stdout.contains(original), "the original goes on")

        // This is a second machine: a new device; the identity it had is kept aside, not deleted.
        let made = try twin.run(["device", "new", "--json"])
        let fresh = try JSONSerialization.jsonObject(with: Data(made.stdout.utf8)) as? [String: Any]
        let freshID = try #require(fresh?["id"] as? String, "\(made.stdout) \(made.stderr)")
        #expect(freshID != original)
        let aside = try FileManager.default.contentsOfDirectory(atPath: a.dir.file("config-copy"))
            .filter { $0.hasPrefix("replaced-") }
        #expect(aside.count == 1)
        let kept = try String(
            contentsOfFile: a.dir.file("config-copy/\(aside.first ?? "")/device.json"),
            encoding: .utf8
        )
        #expect(kept.contains(original))
        #expect(try twin.run(["status"]).status == 0)

        // This folder moved (the original is gone): it keeps its identity.
        let moved = try copy(to: "config-moved")
        #expect(try moved.run(["status"]).status == 1)
        #expect(try moved.run(["device", "keep"]).status == 0)
        #expect(try moved.run(["device", "show"]).stdout.contains(original))
        #expect(try moved.run(["status"]).status == 0)
    }

    /// A device is named after its host until renamed; the name goes into its libraries.
    @Test func aDeviceCanBeRenamed() throws {
        let a = try Device("a")
        try a.run(["device", "rename", "kitchen-laptop"])
        #expect(try a.sd.run(["device", "show"]).stdout.hasPrefix("kitchen-laptop  "))
        let info = try a.run(["library", "info"]).stdout
        #expect(info.contains("this device  kitchen-laptop ("), "\(info)")
        for bad in ["", "  ", "tab\there", "bell\u{07}", String(repeating: "x", count: 65)] {
            let refused = try a.sd.run(["device", "rename", bad])
            #expect(
                refused.status == 1 && refused.stderr.contains("cannot be a device name"),
                "\(bad.debugDescription)"
            )
        }
    }
}
