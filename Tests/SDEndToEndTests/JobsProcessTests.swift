import Foundation
import SDSystem
import SDTestSupport
import Testing

/// `sd jobs` against real `sd index` processes: a pause or cancel asked from another process stops the run,
/// a killed run shows as interrupted, and resumed runs end with exactly the index an uninterrupted run gives.
@Suite(.serialized) struct JobsProcessTests {
    @Test(.timeLimit(.minutes(15))) func pauseCancelAndResumeAcrossProcesses() throws {
        let dir = try TemporaryDirectory(prefix: "sd-jobs")
        try Scripts.makeTree(at: dir.file("tree"), files: 4000, large: 2, largeMiB: 16)
        let reference = try SDBinary(dataDirectory: dir.file("ref"), configDirectory: dir.file("config"))
        try #require(reference.run(["location", "add", dir.file("tree"), "--name", "tree"]).status == 0)
        try #require(reference.run(["index"]).status == 0)
        let expected = try reference.run(["debug", "dump-index", "tree"]).stdout

        var victims = 0
        func victim() throws -> SDBinary {
            victims += 1
            let sd = try SDBinary(dataDirectory: dir.file("victim-\(victims)"), configDirectory: dir.file("config"))
            try #require(sd.run(["location", "add", dir.file("tree"), "--name", "tree"]).status == 0)
            return sd
        }

        // Pause from another process, then resume: the same index as an uninterrupted run.
        var paused = false
        for _ in 0..<5 where !paused {
            let sd = try victim()
            let run = try Self.start(sd, ["index"])
            guard let job = try Self.waitForRunningJob(sd, run) else { continue }  // it ended first: again
            let pause = try sd.run(["jobs", "pause", String(job.prefix(6))])
            guard pause.status == 0, run.wait() != .exited(0) else { continue }  // it ended first: again
            paused = true
            #expect(try Self.jobs(sd).first?["state"] as? String == "paused")
            let resumed = try sd.run(["jobs", "resume", job])
            #expect(resumed.status == 0, "\(resumed.stderr)")
            #expect(resumed.stdout.contains("resumed an interrupted run"))
            #expect(try sd.run(["debug", "dump-index", "tree"]).stdout == expected)
            #expect(try Self.jobs(sd).isEmpty, "no unfinished job is left")
            #expect(try sd.run(["jobs", "resume", job]).status == 1, "a completed job cannot be resumed")
        }
        #expect(paused, "no pause landed while the index ran")

        // Cancel: the run stops, the job stays cancelled, and the next `sd index` starts afresh and completes.
        var cancelled = false
        for _ in 0..<5 where !cancelled {
            let sd = try victim()
            let run = try Self.start(sd, ["index"])
            guard let job = try Self.waitForRunningJob(sd, run) else { continue }  // it ended first: again
            let cancel = try sd.run(["jobs", "cancel", job])
            guard cancel.status == 0, run.wait() != .exited(0) else { continue }
            cancelled = true
            let all = try Self.jobs(sd, all: true)
            #expect(all.first { $0["id"] as? String == job }?["state"] as? String == "cancelled")
            #expect(try sd.run(["index"]).status == 0)
            #expect(try sd.run(["debug", "dump-index", "tree"]).stdout == expected)
        }
        #expect(cancelled, "no cancel landed while the index ran")

        // SIGKILL: the job shows as interrupted, and resuming it completes the index.
        let sd = try victim()
        let run = try Self.start(sd, ["index"])
        let job = try Self.waitForRunningJob(sd, run)
        run.send(SIGKILL)
        run.wait()
        if let job, let state = try Self.jobs(sd).first?["state"] as? String {
            #expect(state == "interrupted")
            #expect(try sd.run(["jobs", "resume", job]).status == 0)
        } else {
            #expect(try sd.run(["index"]).status == 0)  // it had finished
        }
        #expect(try sd.run(["debug", "dump-index", "tree"]).stdout == expected)
    }

    static func start(_ sd: SDBinary, _ arguments: [String]) throws -> ChildProcess { try sd.start(arguments) }

    static func jobs(_ sd: SDBinary, all: Bool = false) throws -> [[String: Any]] {
        let out = try sd.run(["jobs", "list", "--json"] + (all ? ["--all"] : [])).stdout
        return (try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]]) ?? []
    }

    /// The id of the index job once it runs (its lock held).
    /// Nil when the run ended before it was seen running (a busy machine can let a whole index pass between two
    /// looks): the caller tries again.
    static func waitForRunningJob(_ sd: SDBinary, _ process: ChildProcess) throws -> String? {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if let job = try jobs(sd).first, job["state"] as? String == "running", let id = job["id"] as? String {
                return id
            }
            if !process.isRunning, try jobs(sd).isEmpty { return nil }
            Thread.sleep(forTimeInterval: 0.02)
        }
        throw JobsTestError("the index job never showed as running")
    }

    struct JobsTestError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}
