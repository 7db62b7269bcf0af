import Foundation
import SDCore
import SDJobs
import SDStore
import SDTestSupport
import Testing

/// A job that counts to `input`, a step at a time, saving each step as its checkpoint; `hook` runs after each
/// step (to pause it from elsewhere, to fail, to wait), and `steps` records which steps ran.
final class CountJob: JobKind, @unchecked Sendable {
    // @unchecked: `steps` and `hook` are touched under `lock`.
    let kind = "count"
    private let lock = NSLock()
    private var ran: [Int] = []
    private var hookBody: (@Sendable (Int, JobContext) throws -> Void)?

    var steps: [Int] { lock.withLock { ran } }
    func hook(_ body: (@Sendable (Int, JobContext) throws -> Void)?) { lock.withLock { hookBody = body } }

    func run(_ context: JobContext) async throws {
        let total = try context.input(Int.self)
        var next = (try context.checkpoint(Int.self) ?? -1) + 1
        while next < total {
            lock.withLock { ran.append(next) }
            try lock.withLock { hookBody }?(next, context)
            try context.save(done: Int64(next + 1), total: Int64(total), checkpoint: next)
            next += 1
        }
    }
}

/// A value shared with a job's threads.
final class Shared<T>: @unchecked Sendable {
    // @unchecked: `value` is only touched under `lock`.
    private let lock = NSLock()
    private var value: T
    init(_ value: T) { self.value = value }
    func update<R>(_ body: (inout T) -> R) -> R { lock.withLock { body(&value) } }
    var current: T { lock.withLock { value } }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String { "the test job failed on purpose" }
}

final class JobFixture {
    let dir: TemporaryDirectory
    let library: Library
    let device: DeviceIdentity
    let job = CountJob()
    let runner: JobRunner

    init(concurrency: Int = 2) throws {
        dir = try TemporaryDirectory(prefix: "sd-jobs")
        device = try DeviceIdentity.loadOrCreate(configDirectory: dir.file("config"))
        library = try Library.create(name: "Jobs", in: dir.file("data"), device: device)
        runner = JobRunner(library: library, kinds: [job], concurrency: concurrency)
    }

    /// Another handle on the same library, as another sd process would have.
    func otherRunner() throws -> JobRunner {
        JobRunner(library: try Library.open(at: library.path, device: device), kinds: [CountJob()])
    }

    deinit { try? library.close() }
}

@Suite(.serialized) struct JobRunnerTests {
    @Test func runsToTheEndRecordingProgress() async throws {
        let f = try JobFixture()
        let submitted = try f.runner.submit(kind: "count", target: nil, input: 10)
        #expect(submitted.state == "queued")
        let seen = Shared<[Int64]>([])
        let done = try await f.runner.run(submitted.id) { record in seen.update { $0.append(record.progressDone) } }
        #expect(done.state == "completed")
        #expect(done.progressDone == 10 && done.progressTotal == 10)
        #expect(done.finishedAt != nil && done.startedAt != nil)
        #expect(f.job.steps == Array(0..<10))
        #expect(seen.current == (1...10).map(Int64.init))
        await #expect(throws: JobError.self) { try await f.runner.run(submitted.id) }
    }

    /// A pause asked from another process stops the job after its current step; resumed, it goes on from its
    /// checkpoint and no step runs twice.
    @Test func pausedFromElsewhereThenResumed() async throws {
        let f = try JobFixture()
        let other = try f.otherRunner()
        let id = try f.runner.submit(kind: "count", target: nil, input: 10).id
        f.job.hook { step, _ in
            if step == 4 {
                let asked = try other.pause(id)
                #expect(asked.requested == "pause")
            }
        }
        let paused = try await f.runner.run(id)
        #expect(paused.state == "paused")
        #expect(paused.requested == nil)
        #expect(try f.library.fetchJob(id).checkpoint == "4")
        f.job.hook(nil)
        #expect(try f.runner.interrupted().isEmpty, "a paused job waits to be resumed")
        let done = try await f.runner.run(id)
        #expect(done.state == "completed")
        #expect(f.job.steps == Array(0..<10))
        try other.library.close()
    }

    @Test func cancelledJobsStayCancelled() async throws {
        let f = try JobFixture()
        let other = try f.otherRunner()
        let id = try f.runner.submit(kind: "count", target: nil, input: 10).id
        f.job.hook { step, _ in if step == 2 { _ = try other.cancel(id) } }
        #expect(try await f.runner.run(id).state == "cancelled")
        #expect(f.job.steps == [0, 1, 2])
        await #expect(throws: JobError.self) { try await f.runner.run(id) }
        #expect(throws: JobError.self) { try f.runner.pause(id) }
        try other.library.close()
    }

    /// Jobs nobody runs are paused and cancelled directly.
    @Test func controllingAJobNobodyRuns() async throws {
        let f = try JobFixture()
        let id = try f.runner.submit(kind: "count", target: nil, input: 3).id
        #expect(try f.runner.pause(id).state == "paused")
        #expect(try await f.runner.run(id).state == "completed")
        let other = try f.runner.submit(kind: "count", target: nil, input: 3).id
        #expect(try f.runner.cancel(String(other.prefix(8))).state == "cancelled")
    }

    /// A job whose process died mid-run (state 'running', checkpoint saved, lock free) and queued jobs are
    /// found and run to their ends, a step after their checkpoints, at most `concurrency` at once.
    @Test func interruptedJobsResume() async throws {
        let f = try JobFixture(concurrency: 1)
        let crashed = try f.library.createJob(kind: "count", target: nil, input: "6", checkpoint: "2")
        let queued = try f.runner.submit(kind: "count", target: nil, input: 2).id
        let finished = try f.runner.submit(kind: "count", target: nil, input: 1).id
        _ = try await f.runner.run(finished)
        let counts = Shared((running: 0, most: 0))
        f.job.hook { _, _ in
            counts.update {
                $0.running += 1
                $0.most = max($0.most, $0.running)
            }
            Thread.sleep(forTimeInterval: 0.005)
            counts.update { $0.running -= 1 }
        }
        #expect(Set(try f.runner.interrupted().map(\.id)) == [crashed.id, queued])
        let results = try await f.runner.resumeInterrupted()
        #expect(Set(results.map(\.id)) == [crashed.id, queued])
        #expect(results.allSatisfy { $0.state == "completed" })
        #expect(f.job.steps.filter { $0 >= 3 }.sorted() == [3, 4, 5], "the crashed job went on after step 2")
        #expect(counts.current.most == 1)
        #expect(try f.runner.interrupted().isEmpty)
    }

    /// One runner at a time: a second one is refused while the first holds the job.
    @Test func aRunningJobIsNotRunTwice() async throws {
        let f = try JobFixture()
        let other = try f.otherRunner()
        let id = try f.runner.submit(kind: "count", target: nil, input: 3).id
        f.job.hook { step, _ in
            guard step == 1 else { return }
            #expect(other.library.isJobRunning(id))
            let interrupted = try other.interrupted()
            #expect(interrupted.isEmpty)
            // What `run` does first, done here without waiting on another task from inside this one (which
            // could wait minutes for a cooperative thread while synchronous tests hold them).
            #expect(throws: JobError.self) { _ = try other.library.acquireJobLock(id) }
        }
        #expect(try await f.runner.run(id).state == "completed")
        #expect(!f.library.isJobRunning(id))
        await #expect(throws: JobError.self) { try await other.run(id) }
        try other.library.close()
    }

    @Test func failuresAreRecorded() async throws {
        let f = try JobFixture()
        let id = try f.runner.submit(kind: "count", target: nil, input: 5).id
        f.job.hook { step, _ in if step == 3 { throw TestFailure() } }
        await #expect(throws: TestFailure.self) { try await f.runner.run(id) }
        let failed = try f.library.fetchJob(id)
        #expect(failed.state == "failed")
        #expect(failed.error == "the test job failed on purpose")
        #expect(failed.checkpoint == "2")
    }

    @Test func unknownKindsAndIdsAreClearErrors() async throws {
        let f = try JobFixture()
        #expect(throws: JobError.self) { try f.runner.submit(kind: "spaceship", target: nil, input: 1) }
        let foreign = try f.library.createJob(kind: "later", target: nil, checkpoint: nil, state: "queued")
        await #expect(throws: JobError.self) { try await f.runner.run(foreign.id) }
        #expect(try f.runner.interrupted().isEmpty, "jobs of kinds this sd cannot run are left alone")
        #expect(throws: JobError.self) { try f.library.fetchJob("nope") }
        #expect(throws: JobError.self) { try f.library.fetchJob("") }
    }
}
