import Foundation
import SDSystem
import SDTestSupport
import Testing

/// `sd index` killed with SIGKILL at random moments, then run again: every time, the index ends exactly as an
/// uninterrupted run leaves it (compared as a canonical dump: paths, metadata, content ids, aggregates).
struct IndexKillTests {
    @Test(.timeLimit(.minutes(15))) func resumesToTheSameIndexAfterKills() throws {
        let dir = try TemporaryDirectory(prefix: "sd-kill")
        try Scripts.makeTree(at: dir.file("tree"), files: 5000, large: 2, largeMiB: 8)

        let reference = try SDBinary(dataDirectory: dir.file("ref-data"), configDirectory: dir.file("config"))
        try #require(reference.run(["location", "add", dir.file("tree"), "--name", "tree"]).status == 0)
        let started = ContinuousClock.now
        try #require(reference.run(["index"]).status == 0)
        let fullRun = ContinuousClock.now - started
        let expected = try reference.run(["debug", "dump-index", "tree"]).stdout
        let expectedContents = try Self.contents(reference)
        #expect(expected.split(separator: "\n").count == 5000 + 2 + 1 + Int(try folderCount(dir.file("tree"))))

        var rng = SeededRNG.announced("index kill test")
        var window = fullRun.seconds * 1.2
        var interruptions = 0
        var compared = 0
        var attempts = 0
        var victimNumber = 0
        func freshVictim() throws -> SDBinary {
            victimNumber += 1
            let victim = try SDBinary(
                dataDirectory: dir.file("victim-\(victimNumber)"),
                configDirectory: dir.file("config")
            )
            try #require(victim.run(["location", "add", dir.file("tree"), "--name", "tree"]).status == 0)
            return victim
        }
        func finishAndCompare(_ victim: SDBinary) throws {
            let finish = try victim.run(["index"])
            #expect(finish.status == 0, "victim \(victimNumber): \(finish.stderr)")
            let dump = try victim.run(["debug", "dump-index", "tree"]).stdout
            #expect(dump == expected, "victim \(victimNumber): the resumed index differs from an uninterrupted one")
            // Content identities are made after the entries name them: a resumed run must complete them.
            #expect(try Self.contents(victim) == expectedContents, "victim \(victimNumber)")
            #expect(try victim.run(["status", "--json"]).stdout.contains("\"runningJobs\" : 0"))
            compared += 1
        }
        var victim = try freshVictim()
        // Kill at random moments until at least 20 kills have landed mid-run (a job left unfinished). Sometimes
        // kill the resumed run again before letting it finish.
        while interruptions < 22 && attempts < 120 {
            attempts += 1
            try runAndKill(victim, after: Double(rng.next() % 1000) / 1000 * window)
            let status = try victim.run(["status", "--json"]).stdout
            if status.contains("\"runningJobs\" : 1") {
                interruptions += 1
                if rng.next() % 3 == 0 { continue }
            } else {
                window *= 0.85  // the run finished first: aim earlier
            }
            try finishAndCompare(victim)
            victim = try freshVictim()
        }
        try finishAndCompare(victim)
        #expect(interruptions >= 20, "only \(interruptions) kills in \(attempts) attempts interrupted a run")
        #expect(compared >= 10)
    }

    static func contents(_ sd: SDBinary) throws -> Int? {
        let json = try JSONSerialization.jsonObject(with: Data(try sd.run(["status", "--json"]).stdout.utf8))
        return (json as? [String: Any])?["contents"] as? Int
    }

    private func runAndKill(_ sd: SDBinary, after seconds: Double) throws {
        let process = try sd.start(["index"])
        Thread.sleep(forTimeInterval: seconds)
        process.send(SIGKILL)
        process.wait()
    }

    private func folderCount(_ path: String) throws -> Int {
        var count = 0
        let enumerator = FileManager.default.enumerator(atPath: path)
        while let item = enumerator?.nextObject() as? String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: "\(path)/\(item)", isDirectory: &isDir), isDir.boolValue {
                count += 1
            }
        }
        return count
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
