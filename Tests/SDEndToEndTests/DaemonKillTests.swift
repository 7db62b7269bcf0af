import Foundation
import SDSystem
import SDTestSupport
import Testing

/// sdd killed with SIGKILL while it runs an index job and while it runs a copy job, started again each time:
/// the jobs resume by themselves and finish, with the index and the copies as if nothing had happened.
@Suite(.serialized) struct DaemonKillTests {
    @Test(.timeLimit(.minutes(20))) func killedDaemonResumesIndexAndCopyJobs() throws {
        let dir = try TemporaryDirectory(prefix: "sd-daemonkill")
        try Scripts.makeTree(at: dir.file("tree"), files: 5000, large: 2, largeMiB: 32)
        try FileManager.default.createDirectory(atPath: dir.file("backup"), withIntermediateDirectories: true)
        let reference = try SDBinary(dataDirectory: dir.file("ref-data"), configDirectory: dir.file("config"))
        try #require(reference.run(["location", "add", dir.file("tree"), "--name", "tree"]).status == 0)
        try #require(reference.run(["index"]).status == 0)
        let expected = try reference.run(["debug", "dump-index", "tree"]).stdout

        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        try #require(sd.run(["location", "add", dir.file("tree"), "--name", "tree"]).status == 0)
        try #require(sd.run(["location", "add", dir.file("backup"), "--name", "backup"]).status == 0)
        let daemon = Daemon(sd: sd)
        try daemon.start()
        defer { _ = try? sd.run(["daemon", "stop"]) }
        var rng = SeededRNG.announced("daemon kill test")

        // Indexing: the job is the daemon's, it is killed mid-run three times.
        let starts = try daemon.post("/v1/index", #"{"locations": ["tree"]}"#) as? [[String: Any]]
        let indexJob = try #require(starts?.first?["job"] as? String)
        let indexKills = try daemon.killWhileRunning(indexJob, times: 3, &rng)
        #expect(indexKills >= 1, "no kill landed while the index job ran")
        let indexed = try daemon.waitUntilFinished(indexJob)
        #expect(indexed["state"] as? String == "completed", "\(indexed)")
        #expect(try sd.run(["debug", "dump-index", "tree"]).stdout == expected, "the resumed index differs")

        // A copy into the backup location: killed mid-run three times.
        let previewAnswer = try daemon.post(
            "/v1/actions/preview",
            #"{"action": "copy", "paths": ["\#(dir.file("tree"))"], "destination": "\#(dir.file("backup"))"}"#
        )
        let previewID = try #require((previewAnswer as? [String: Any])?["id"] as? String)
        let committed = try daemon.post("/v1/actions/\(previewID)/commit", "{}") as? [String: Any]
        let copyJob = try #require(committed?["id"] as? String)
        let copyKills = try daemon.killWhileRunning(copyJob, times: 3, &rng)
        #expect(copyKills >= 1, "no kill landed while the copy job ran")
        let copied = try daemon.waitUntilFinished(copyJob)
        #expect(copied["state"] as? String == "completed", "\(copied)")
        #expect(
            try Oracle.b3sums(dir.file("backup/tree")) == Oracle.b3sums(dir.file("tree")),
            "the source's bytes (b3sum)"
        )
        let leftovers = try FileManager.default.subpathsOfDirectory(atPath: dir.file("backup")).filter {
            $0.contains(".sd-part")
        }
        #expect(leftovers.isEmpty, "temporary files left: \(leftovers.prefix(5))")

        // The index of the backup equals a fresh index of it.
        let check = try SDBinary(dataDirectory: dir.file("check-data"), configDirectory: dir.file("config"))
        try #require(check.run(["location", "add", dir.file("backup"), "--name", "backup"]).status == 0)
        try #require(check.run(["index"]).status == 0)
        let fresh = try check.run(["debug", "dump-index", "backup"]).stdout
        #expect(try daemon.eventually { try sd.run(["debug", "dump-index", "backup"]).stdout == fresh })
        print("daemon kills: \(indexKills) during indexing, \(copyKills) during the copy")
    }

    /// sdd for a test's library, reached on its socket.
    struct Daemon {
        let sd: SDBinary
        /// How it is started (and started again after each kill).
        var startArguments = ["daemon", "start"]
        var socket: String { sd.environment["SD_RUNTIME_DIR"]! + "/sdd.sock" }

        func start() throws {
            let started = try sd.run(startArguments)
            try #require(started.status == 0, "\(started.stderr)")
        }

        func request(_ method: String, _ target: String, _ body: String? = nil) throws -> Any {
            let answer = try UnixHTTP.request(
                socket: socket,
                method: method,
                target: target,
                body: body.map { Array($0.utf8) }
            )
            try #require(
                (200..<300).contains(answer.status),
                "\(target): \(String(decoding: answer.body, as: UTF8.self))"
            )
            return try JSONSerialization.jsonObject(with: Data(answer.body))
        }

        func post(_ target: String, _ body: String) throws -> Any { try request("POST", target, body) }

        func job(_ id: String) throws -> (job: [String: Any], running: Bool) {
            let answer = try request("GET", "/v1/jobs/\(id)") as? [String: Any]
            return (answer?["job"] as? [String: Any] ?? [:], answer?["running"] as? Bool ?? false)
        }

        var pid: Int32 {
            get throws { Int32(try #require((try request("GET", "/v1/info") as? [String: Any])?["pid"] as? Int)) }
        }

        /// Kills sdd (SIGKILL) at a random moment while the job runs, starts it again, `times` times or until
        /// the job ends; returns how many kills landed while the job was unfinished.
        func killWhileRunning(_ id: String, times: Int, _ rng: inout SeededRNG) throws -> Int {
            var landed = 0
            for _ in 0..<times {
                let deadline = Date().addingTimeInterval(120)
                var state = try job(id)
                // Running is enough: an index job reports progress only between phases, by when it is nearly done.
                while !(state.running && state.job["state"] as? String == "running") && Date() < deadline {
                    if ["completed", "failed", "cancelled"].contains(state.job["state"] as? String ?? "") {
                        return landed
                    }
                    Thread.sleep(forTimeInterval: 0.02)
                    state = try job(id)
                }
                Thread.sleep(forTimeInterval: Double(rng.next() % 200) / 1000)
                let pid = try self.pid
                kill(pid, SIGKILL)
                try waitForDeath(pid)
                let record =
                    try JSONSerialization.jsonObject(
                        with: Data(try sd.run(["jobs", "show", id, "--json"]).stdout.utf8)
                    ) as? [String: Any]
                if ["interrupted", "queued"].contains(record?["state"] as? String ?? "") { landed += 1 }
                try start()
            }
            return landed
        }

        func waitForDeath(_ pid: Int32) throws {
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                // Gone, or a zombie its new parent has not reaped yet.
                guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return }
                if let close = stat.lastIndex(of: ")"), stat[stat.index(close, offsetBy: 2)] == "Z" { return }
                Thread.sleep(forTimeInterval: 0.01)
            }
            Issue.record("sdd (pid \(pid)) did not die")
        }

        func waitUntilFinished(_ id: String) throws -> [String: Any] {
            let deadline = Date().addingTimeInterval(600)
            while Date() < deadline {
                let state = try job(id)
                if ["completed", "failed", "cancelled"].contains(state.job["state"] as? String ?? "") {
                    return state.job
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
            return try job(id).job
        }

        /// Whether `check` holds within 30 s (the watcher applies changes in batches).
        func eventually(_ check: () throws -> Bool) throws -> Bool {
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                if try check() { return true }
                Thread.sleep(forTimeInterval: 0.1)
            }
            return try check()
        }
    }
}
