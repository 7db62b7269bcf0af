import Foundation
import SDSystem
import SDTestSupport
import Testing

/// Three real daemons on loopback, each with its own library, key and port: pairing, sharing one library,
/// each indexing its own folder; every device then finds every device's files, and a tag made on one is
/// seen on the others.
@Suite(.serialized) struct SyncDaemonTests {
    @Test(.timeLimit(.minutes(10))) func threeDevicesShareOneLibrary() throws {
        let a = try Device("a"), b = try Device("b"), c = try Device("c")
        defer { [a, b, c].forEach { $0.stopDaemon() } }
        for d in [a, b, c] {
            _ = try d.dir.write("files-\(d.name)/only-on-\(d.name).txt", Array("from \(d.name)".utf8))
            _ = try d.dir.write("files-\(d.name)/sub/deep-\(d.name).md", Array("# \(d.name)".utf8))
        }
        // Larger than one read (1 MiB) and than a content id's whole-file limit: fetched in pieces, sampled id.
        var big = [UInt8](repeating: 0, count: 3 << 20 + 12_345)
        var rng = SeededRNG(seed: 8)
        for i in big.indices { big[i] = UInt8(truncatingIfNeeded: rng.next()) }
        _ = try a.dir.write("files-a/sub/big.bin", big)
        chmod(a.files + "/sub/deep-a.md", 0o600)
        // Setuid on a's file: a copy elsewhere never carries it.
        chmod(a.files + "/only-on-a.txt", 0o4755)
        // Devices are named after their host until renamed (here all are "vm" alike): a gets a name of its own.
        try a.run(["device", "rename", "laptop-a"])
        // a's library, indexed; a's daemon answers the others.
        try a.run(["location", "add", a.files])
        try a.run(["index"])
        try a.startDaemon()
        try a.pair(with: b)
        try a.pair(with: c)
        let (aID, bID, cID) = (try a.id, try b.id, try c.id)
        try a.run(["library", "share", bID])
        try a.run(["library", "share", cID])
        // b and c hold the same library (same id), index their own folders, and share it with each other.
        for d in [b, c] {
            let joined = try d.run(["library", "join", aID])
            #expect(joined.stdout.contains("joined library"))
            try d.run(["location", "add", d.files])
            try d.run(["index"])
            try d.startDaemon()
        }
        try b.pair(with: c)
        try b.run(["library", "share", cID])
        try c.run(["library", "share", bID])
        #expect(
            (try a.json(["library", "info"]) as? [String: Any])?["id"] as? String
                == (try b.json(["library", "info"]) as? [String: Any])?["id"] as? String
        )

        // LAN discovery: a hears b announce its peer port. A hint, kept apart from the addresses a handshake
        // verified (and written nowhere) until a connection to it is verified.
        try #require(TestNetwork.isIsolated, "\(TestNetwork.notIsolatedReason ?? "")")
        let bPort = try peerPort(b)
        func heard() throws -> [String] {
            let peers = (try a.json(["peer", "list"]) as? [String: Any])?["peers"] as? [[String: Any]]
            let heard = peers?.first { ($0["id"] as? String) == bID }?["heard"] as? [String] ?? []
            return heard.filter { $0.hasSuffix(":\(bPort)") }
        }
        let listening = Date()
        while Date().timeIntervalSince(listening) < 20, try heard().isEmpty { Thread.sleep(forTimeInterval: 0.1) }
        #expect(try !heard().isEmpty, "a heard b announce its port")

        // Every device finds every device's files (others' as sd://DEVICE/path).
        func finds(_ d: Device, _ name: String, within seconds: Double) throws -> Double? {
            let start = Date()
            while Date().timeIntervalSince(start) < seconds {
                if try d.sd.run(["search", name]).stdout.contains(name) { return Date().timeIntervalSince(start) }
                Thread.sleep(forTimeInterval: 0.05)
            }
            return nil
        }
        // Generous waits (a busy machine); what either side knew is shown if one runs out.
        for d in [a, b, c] {
            for owner in [a, b, c] {
                for name in ["only-on-\(owner.name)", "deep-\(owner.name)"] where try finds(d, name, within: 60) == nil
                {
                    Issue.record(
                        "\(d.name) does not find \(owner.name)'s \(name)\n\(d.syncReport())\n\(owner.syncReport())"
                    )
                }
            }
        }
        let remote = try b.run(["search", "only-on-a"]).stdout
        #expect(remote.contains("sd://\(aID)/"), "another device's file is shown with its device: \(remote)")
        #expect(remote.contains("(on laptop-a)"), "and the device's name: \(remote)")
        // Another device's folder is listed from its entries as synced here (through b's daemon).
        let listed = try b.run(["ls", "sd://\(aID)\(a.files)"]).stdout
        #expect(listed.contains("only-on-a.txt"), "b lists a's folder: \(listed)")
        let missing = try b.sd.run(["ls", "sd://\(aID)/no/such/folder"])
        #expect(missing.status == 1 && missing.stderr.contains("not in the index"), "\(missing.stderr)")

        // A copy from a peer lands verified: b fetches a's folder (its job runs in b's daemon, pulls from a's).
        let fetched = b.dir.file("fetched")
        let preview = try b.run(["cp", "--preview", "sd://\(aID)\(a.files)", fetched]).stdout
        #expect(preview.contains("3 files, 3.2 MB, 2 folders"), "\(preview)")
        let copied = try b.run(["cp", "-y", "sd://\(aID)\(a.files)", fetched])
        #expect(copied.stdout.contains("peer-copy completed: 3 files"), "\(copied.stdout)")
        #expect(try TemporaryDirectory.tree(fetched) == (try TemporaryDirectory.tree(a.files)))
        let mode = try FileManager.default.attributesOfItem(atPath: fetched + "/sub/deep-a.md")[.posixPermissions]
        #expect(mode as? Int == 0o600, "the copy has the original's permissions")
        let special = try FileManager.default.attributesOfItem(atPath: fetched + "/only-on-a.txt")[.posixPermissions]
        #expect(special as? Int == 0o755, "the copy has the original's permissions but setuid")
        #expect(try b.run(["log", "--limit", "1"]).stdout.contains("peer-copy  ok"))
        // Again, into the same place: every file conflicts, and nothing is fetched.
        let again = try b.sd.run(["cp", "-y", "sd://\(aID)\(a.files)/sub/big.bin", fetched + "/sub"])
        #expect(again.status == 1 && again.stderr.contains("already exists"), "\(again.stderr)")
        // A content path resolves to a's copy (this device has none indexed), ranked by the measured round trip;
        // copying it fetches from there.
        let listing = try a.json(["ls", a.files + "/sub"]) as? [[String: Any]]
        let bigID = try #require(listing?.first { ($0["name"] as? String) == "big.bin" }?["contentID"] as? String)
        let resolved = try b.run(["resolve", "sd://content/\(bigID)"]).stdout
        #expect(resolved.hasPrefix("* 1. \(a.files)/sub/big.bin  (\(aID), network, "), "\(resolved)")
        #expect(resolved.contains(" ms away)"), "\(resolved)")
        let byContent = try b.run(["cp", "-y", "sd://content/\(bigID)", fetched + "/by-content.bin"])
        #expect(byContent.stdout.contains("peer-copy completed: 1 file"), "\(byContent.stdout)")
        #expect(
            FileManager.default.contentsEqual(atPath: fetched + "/by-content.bin", andPath: a.files + "/sub/big.bin")
        )
        // What a does not index is not served, whatever b asks.
        let outside = try b.sd.run(["cp", "-y", "sd://\(aID)/etc/hostname", fetched])
        #expect(outside.status == 1 && outside.stderr.contains("not in the index of"), "\(outside.stderr)")

        // A copy to a peer: b sends a folder of its own into a's location (the job runs in b's daemon and sends
        // to a's, which checks each file against b's content id, renames it into place and indexes it).
        let outgoing = b.dir.file("outgoing")
        _ = try b.dir.write("outgoing/pushed-note.txt", Array("from b to a".utf8))
        _ = try b.dir.write("outgoing/inner/pushed-big.bin", big)
        chmod(outgoing + "/pushed-note.txt", 0o640)
        // Not without a's leave: a new pairing may read, sync and change metadata, not write.
        let unwelcome = try b.sd.run(["cp", "-y", outgoing, "sd://\(aID)\(a.files)"])
        #expect(
            unwelcome.status != 0 && (unwelcome.stdout + unwelcome.stderr).contains("does not let this device write"),
            "\(unwelcome.stdout) \(unwelcome.stderr)"
        )
        #expect(!FileSystem.exists(a.files + "/outgoing/pushed-note.txt"))
        let allowed = try a.run(["peer", "allow", bID, "write", "--location", a.files]).stdout
        #expect(allowed.contains("may now put new files"), "\(allowed)")
        let pushPreview = try b.run(["cp", "--preview", outgoing, "sd://\(aID)\(a.files)"]).stdout
        #expect(pushPreview.contains("copy to another device 2 files, 3.2 MB, 2 folders"), "\(pushPreview)")
        #expect(pushPreview.contains(" free"), "the free space of a's volume, as synced: \(pushPreview)")
        let pushed = try b.run(["cp", "-y", outgoing, "sd://\(aID)\(a.files)"])
        #expect(pushed.stdout.contains("peer-push completed: 2 files"), "\(pushed.stdout)")
        #expect(try TemporaryDirectory.tree(a.files + "/outgoing") == (try TemporaryDirectory.tree(outgoing)))
        let pushedMode = try FileManager.default.attributesOfItem(atPath: a.files + "/outgoing/pushed-note.txt")
        #expect(pushedMode[.posixPermissions] as? Int == 0o640, "the copy has the original's permissions")
        #expect(try b.run(["log", "--limit", "1"]).stdout.contains("peer-push  ok"))
        // a indexed what it received, and b sees it there by sync (b's own folder is not one of its locations).
        #expect(try finds(a, "pushed-note", within: 10) != nil, "a indexed the file it received")
        #expect(try finds(b, "pushed-note", within: 10) != nil, "and b sees a's new entry")
        let pushAgain = try b.sd.run(["cp", "-y", outgoing + "/pushed-note.txt", "sd://\(aID)\(a.files)/outgoing"])
        #expect(pushAgain.status == 1 && pushAgain.stderr.contains("already exists"), "\(pushAgain.stderr)")
        let pushOutside = try b.sd.run(["cp", "-y", outgoing + "/pushed-note.txt", "sd://\(aID)/tmp"])
        #expect(
            pushOutside.status == 1 && pushOutside.stderr.contains("not inside a location"),
            "\(pushOutside.stderr)"
        )

        // A tag made on b is seen on a and c within a second.
        try b.run(["tag", "create", "shared-tag"])
        try b.run(["tag", "add", "shared-tag", b.files + "/only-on-b.txt"])
        let tagged = Date()
        var seen: [String: Double] = [:]
        while Date().timeIntervalSince(tagged) < 10 && seen.count < 2 {
            for d in [a, c] where seen[d.name] == nil {
                if try d.sd.run(["tag", "list"]).stdout.contains("shared-tag") {
                    seen[d.name] = Date().timeIntervalSince(tagged)
                }
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        print("three daemons: tag seen after \(seen.mapValues { String(format: "%.2f s", $0) })")
        #expect(seen.count == 2, "the tag reached both")
        #expect(seen.values.allSatisfy { $0 < 1.0 }, "within a second: \(seen)")

        // A new file on c appears in a's search; a removed one goes.
        _ = try c.dir.write("files-c/late-arrival.txt", Array("late".utf8))
        let appeared = try finds(a, "late-arrival", within: 10)
        #expect(appeared != nil, "c's new file reaches a")
        print(
            "three daemons: a file made on c is found on a after \(appeared.map { String(format: "%.2f s", $0) } ?? "never")"
        )
        try FileManager.default.removeItem(atPath: c.files + "/late-arrival.txt")
        let gone = Date()
        while Date().timeIntervalSince(gone) < 10,
            try a.sd.run(["search", "late-arrival"]).stdout.contains("late-arrival")
        {
            Thread.sleep(forTimeInterval: 0.05)
        }
        #expect(try !a.sd.run(["search", "late-arrival"]).stdout.contains("late-arrival"), "and its removal too")

        // c's daemon killed (SIGKILL) while a makes 200 files, then started again: it catches up.
        let info = try c.json(["daemon", "status"]) as? [String: Any]
        let pid = Int32(info?["pid"] as? Int ?? 0)
        #expect(pid > 0)
        for i in 0..<200 { _ = try a.dir.write("files-a/burst/burst-file-\(i).txt", Array("\(i)".utf8)) }
        Thread.sleep(forTimeInterval: 0.3)
        kill(pid, SIGKILL)
        for i in 200..<300 { _ = try a.dir.write("files-a/burst/burst-file-\(i).txt", Array("\(i)".utf8)) }
        try c.startDaemon()
        func count(_ d: Device) throws -> Int {
            let found = try d.json(["search", "burst-file", "--limit", "1000"]) as? [String: Any]
            return (found?["hits"] as? [Any])?.count ?? 0
        }
        let restarted = Date()
        while Date().timeIntervalSince(restarted) < 30, try count(c) < 300 { Thread.sleep(forTimeInterval: 0.1) }
        #expect(try count(c) == 300, "c caught up after SIGKILL")
        while Date().timeIntervalSince(restarted) < 30, try count(b) < 300 { Thread.sleep(forTimeInterval: 0.1) }
        let bLog =
            (try? String(contentsOfFile: b.dir.file("data/Default.sdlibrary/logs/sdd.log"), encoding: .utf8)) ?? ""
        #expect(try count(b) == 300, "b too: \(bLog.split(separator: "\n").suffix(30).joined(separator: "\n"))")

        // sync status shows the peers, connected.
        let status = try a.run(["sync", "status"]).stdout
        #expect(status.contains("in sync") || status.contains("syncing"), "\(status)")

        // An unpaired device is refused: it cannot join, nor list what is shared.
        let stranger = try Device("stranger")
        let refused = try stranger.sd.run(["peer", "add", "127.0.0.1:\(try peerPort(a))"])
        #expect(refused.status == 1 && refused.stderr.contains("TLS handshake failed"), "\(refused.stderr)")
    }

    /// A "cloud" is one more device running sdd headless, as a service manager would run it (the sdd binary in
    /// the foreground, its options only): it holds the library and a laptop's index, and passes shared metadata
    /// on between devices that never meet (a laptop and a phone, each paired with the cloud only).
    @Test(.timeLimit(.minutes(10))) func aCloudIsOneMoreDeviceRunningSddHeadless() throws {
        let laptop = try Device("laptop"), cloud = try Device("cloud"), phone = try Device("phone")
        var service: ChildProcess?
        defer {
            service?.send(SIGTERM)
            _ = service?.wait(seconds: 20)
            [laptop, phone].forEach { $0.stopDaemon() }
        }
        _ = try laptop.dir.write("files-laptop/quarterly-report.txt", Array("figures".utf8))
        try laptop.run(["location", "add", laptop.files])
        try laptop.run(["index"])
        try laptop.startDaemon()
        try laptop.pair(with: cloud)
        try laptop.run(["library", "share", try cloud.id])
        try cloud.run(["library", "join", try laptop.id])
        // From here the cloud is its service alone.
        service = try ChildProcess.start(
            URL(fileURLWithPath: cloud.sd.path).deletingLastPathComponent().appendingPathComponent("sdd").path,
            ["--peer-port", "0", "--peer-host", "127.0.0.1", "--discovery", "off"],
            environment: cloud.sd.environment,
            standardOutput: .null,
            standardError: .null
        )
        let up = Date()
        while Date().timeIntervalSince(up) < 20, (try? cloud.json(["daemon", "status"])) == nil {
            Thread.sleep(forTimeInterval: 0.1)
        }
        try cloud.pair(with: phone)
        try cloud.run(["library", "share", try phone.id])
        try phone.run(["library", "join", try cloud.id])
        try phone.startDaemon()

        // The cloud keeps the laptop's index (searchable there).
        let indexed = Date()
        while Date().timeIntervalSince(indexed) < 20,
            try !cloud.sd.run(["search", "quarterly-report"]).stdout.contains("quarterly-report")
        {
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(try cloud.sd.run(["search", "quarterly-report"]).stdout.contains("sd://\(try laptop.id)/"))
        // A tag made on the laptop reaches the phone through the cloud.
        try laptop.run(["tag", "create", "via-cloud"])
        let tagged = Date()
        while Date().timeIntervalSince(tagged) < 20, try !phone.sd.run(["tag", "list"]).stdout.contains("via-cloud") {
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(
            try phone.sd.run(["tag", "list"]).stdout.contains("via-cloud"),
            "the tag went laptop -> cloud -> phone"
        )
        print(
            "cloud: a tag made on the laptop reached the phone after \(String(format: "%.2f", Date().timeIntervalSince(tagged))) s"
        )
    }

    /// A copy from a peer, its daemon killed (SIGKILL) while it fetches, started again: the job resumes from
    /// its last flushed bytes and lands the file whole and verified, with no temporary left.
    @Test(.timeLimit(.minutes(10))) func killedPeerCopyResumesAndLandsVerified() throws {
        let a = try Device("a"), b = try Device("b")
        defer { [a, b].forEach { $0.stopDaemon() } }
        _ = try a.dir.write("files-a/big.bin", try Self.randomBytes(192 << 20))
        let daemon = try sharedPair(a, b)
        let target = b.dir.file("fetched.bin")
        let (kills, finished) = try commitKilledTwice(
            daemon,
            #"{"action": "copy", "paths": ["sd://\#(try a.id)\#(a.files)/big.bin"], "destination": "\#(target)"}"#
        )
        #expect(kills >= 1, "no kill landed while the peer copy ran")
        #expect(finished["state"] as? String == "completed", "\(finished)")
        #expect(FileManager.default.contentsEqual(atPath: target, andPath: a.files + "/big.bin"))
        let left = try FileManager.default.contentsOfDirectory(atPath: b.dir.path).filter { $0.contains(".sd-part") }
        #expect(left.isEmpty, "temporaries left: \(left)")
        print("peer copy: \(kills) kills landed while it ran")
    }

    /// A copy to a peer, the sending daemon killed (SIGKILL) while it sends, started again: the job resumes from
    /// the bytes the receiver last flushed, and the file lands there whole and verified, no temporary left.
    @Test(.timeLimit(.minutes(10))) func killedPeerPushResumesAndLandsVerified() throws {
        let a = try Device("a"), b = try Device("b")
        defer { [a, b].forEach { $0.stopDaemon() } }
        _ = try a.dir.write("files-a/here.txt", Array("a's".utf8))
        let sent = try b.dir.write("outgoing/big.bin", try Self.randomBytes(192 << 20))
        let daemon = try sharedPair(a, b)
        let (kills, finished) = try commitKilledTwice(
            daemon,
            #"{"action": "copy", "paths": ["\#(sent)"], "destination": "sd://\#(try a.id)\#(a.files)"}"#
        )
        #expect(kills >= 1, "no kill landed while the push ran")
        #expect(finished["state"] as? String == "completed", "\(finished)")
        #expect(FileManager.default.contentsEqual(atPath: a.files + "/big.bin", andPath: sent))
        let left = try FileManager.default.contentsOfDirectory(atPath: a.files).filter { $0.contains(".sd-part") }
        #expect(left.isEmpty, "temporaries left: \(left)")
        print("peer push: \(kills) kills landed while it ran")
    }

    static func randomBytes(_ count: Int) throws -> [UInt8] {
        let source = FileHandle(forReadingAtPath: "/dev/urandom")!
        defer { try? source.close() }
        return [UInt8](source.readData(ofLength: count))
    }

    /// a indexes its folder and serves it; b is paired with a, holds the library, and runs its daemon (which
    /// the kill tests start again after each kill).
    func sharedPair(_ a: Device, _ b: Device) throws -> DaemonKillTests.Daemon {
        try a.run(["location", "add", a.files])
        try a.run(["index"])
        try a.startDaemon()
        try a.pair(with: b)
        try a.run(["library", "share", try b.id])
        // b may send files into a's location (a new pairing may only read, sync and change metadata).
        try a.run(["peer", "allow", try b.id, "write", "--location", a.files])
        try b.run(["library", "join", try a.id])
        let daemon = DaemonKillTests.Daemon(sd: b.sd, startArguments: b.daemonArguments)
        try daemon.start()
        return daemon
    }

    /// Previews and commits an action on `daemon`, SIGKILLs it twice while the job runs (starting it again each
    /// time), and waits for the job: how many kills landed, and the job as it ended.
    func commitKilledTwice(_ daemon: DaemonKillTests.Daemon, _ request: String) throws -> (Int, [String: Any]) {
        let preview = try daemon.post("/v1/actions/preview", request)
        let previewID = try #require((preview as? [String: Any])?["id"] as? String, "\(preview)")
        let committed = try daemon.post("/v1/actions/\(previewID)/commit", "{}") as? [String: Any]
        let job = try #require(committed?["id"] as? String)
        var rng = SeededRNG.announced("peer kill test")
        let kills = try daemon.killWhileRunning(job, times: 2, &rng)
        return (kills, try daemon.waitUntilFinished(job))
    }

    func peerPort(_ d: Device) throws -> Int {
        (try d.json(["peer", "list"]) as? [String: Any])?["listening"] as? Int ?? 0
    }
}
