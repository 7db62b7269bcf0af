import Foundation
import SDStore
import Synchronization

/// What a job does: one kind of job (`index`, `copy`, ...), run from its stored input and checkpoint.
///
/// A job works in steps; between two it records its progress and checkpoint through the context
/// (`JobContext.save`), which is also where a pause or cancel asked by the user stops it. It must be able to
/// start again from any checkpoint it saved (after a pause, or a crash at any moment).
public protocol JobKind: Sendable {
    var kind: String { get }
    func run(_ context: JobContext) async throws
}

/// A running job's view of itself and of its record.
public final class JobContext: Sendable {
    public let record: JobRecord
    /// Whether the job ran before (then it may meet what an interrupted run left).
    public let resumed: Bool
    public let library: Library
    let progress: @Sendable (JobRecord) -> Void
    /// The input as it was submitted, when this process submitted it (saves decoding what it just encoded).
    let submitted: (any Sendable)?

    init(
        record: JobRecord,
        resumed: Bool,
        library: Library,
        submitted: (any Sendable)? = nil,
        progress: @escaping @Sendable (JobRecord) -> Void
    ) {
        self.record = record
        self.resumed = resumed
        self.library = library
        self.submitted = submitted
        self.progress = progress
    }

    /// The job's input (JSON) decoded.
    public func input<T: Decodable>(_ type: T.Type) throws -> T {
        if let submitted = submitted as? T { return submitted }
        return try JSONDecoder().decode(T.self, from: Data((record.input ?? "null").utf8))
    }

    /// The last checkpoint saved, decoded (nil on a first run).
    public func checkpoint<T: Decodable>(_ type: T.Type) throws -> T? {
        guard let text = record.checkpoint else { return nil }
        return try JSONDecoder().decode(T.self, from: Data(text.utf8))
    }

    /// Records progress and (when given) a checkpoint in one transaction, then stops the job if the user asked:
    /// throws `JobStop` (the runner records the pause or cancel).
    public func save<T: Encodable>(done: Int64, total: Int64?, checkpoint: T?) throws {
        let text = try checkpoint.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        let request = try library.saveJobProgress(id: record.id, done: done, total: total, checkpoint: text)
        var shown = record
        shown.progressDone = done
        shown.progressTotal = total ?? record.progressTotal
        progress(shown)
        try stopIfAsked(request)
    }

    /// Stops the job if the user asked (for steps that have nothing new to save).
    public func checkRequests() throws { try stopIfAsked(try library.jobRequest(id: record.id)) }

    private func stopIfAsked(_ request: String?) throws {
        if let stop = JobStop(request: request) { throw stop }
    }
}

/// Runs the library's durable jobs: a job at a time per call, up to `concurrency` at once when resuming
/// several; each under its lock, its state kept in the `jobs` table so that it survives the process.
public final class JobRunner: Sendable {
    public let library: Library
    let kinds: [String: any JobKind]
    public let concurrency: Int
    /// Inputs of jobs this runner submitted and has not run yet: a first run takes its input from here
    /// instead of decoding the stored JSON (the same value; decoding a 10,000-file plan was 8% of that copy's
    /// CPU samples in perf).
    let submitted = Mutex<[String: any Sendable]>([:])

    public init(library: Library, kinds: [any JobKind], concurrency: Int = 2) {
        self.library = library
        self.kinds = Dictionary(kinds.map { ($0.kind, $0) }, uniquingKeysWith: { a, _ in a })
        self.concurrency = max(1, concurrency)
    }

    /// Records a new job, queued.
    public func submit<T: Encodable & Sendable>(kind: String, target: String?, input: T) throws -> JobRecord {
        guard kinds[kind] != nil else { throw JobError(.unknownKind, "no job kind '\(kind)' here") }
        let text = String(decoding: try JSONEncoder().encode(input), as: UTF8.self)
        let job = try library.createJob(kind: kind, target: target, input: text, checkpoint: nil, state: "queued")
        submitted.withLock { $0[job.id] = input }
        return job
    }

    /// Runs a queued, paused or interrupted job to its end or until it is paused or cancelled; returns its
    /// final record. A job that fails is recorded as failed and its error rethrown.
    ///
    /// #### Errors
    /// `JobError.busy` when another runner has it; `.finished` when it has ended; `.unknownKind` when this
    /// program does not know how to run it.
    @discardableResult
    public func run(_ id: String, progress: @escaping @Sendable (JobRecord) -> Void = { _ in }) async throws
        -> JobRecord
    {
        let lock = try library.acquireJobLock(id)
        defer { withExtendedLifetime(lock) {} }
        let job = try library.fetchJob(id)
        if job.isFinished { throw JobError(.finished, "job \(job.id.prefix(8)) has already \(job.state)") }
        guard let kind = kinds[job.kind] else {
            throw JobError(.unknownKind, "job \(job.id.prefix(8)) is a '\(job.kind)' job, which this sd cannot run")
        }
        // A request left from a run that died is stale: pausing or cancelling a job nobody runs is direct.
        try library.setJobState(id: job.id, "running")
        let context = JobContext(
            record: try library.fetchJob(job.id),
            resumed: job.startedAt != nil,
            library: library,
            submitted: submitted.withLock { $0.removeValue(forKey: job.id) },
            progress: progress
        )
        do {
            try await kind.run(context)
            try library.setJobState(id: job.id, "completed")
            library.removeJobLock(job.id)
        } catch let stop as JobStop {
            try library.setJobState(id: job.id, stop.state)
            if stop == .cancelled { library.removeJobLock(job.id) }
        } catch is CancellationError {
            // The process is stopping (Ctrl-C): the job stays resumable.
            try library.setJobState(id: job.id, "paused")
        } catch {
            try? library.setJobState(id: job.id, "failed", error: "\(error)")
            library.removeJobLock(job.id)
            throw error
        }
        return try library.fetchJob(job.id)
    }

    /// Jobs that should be running but are not: queued ones, and running ones whose runner died (their lock
    /// is free). Paused jobs wait for `sd jobs resume`.
    public func interrupted() throws -> [JobRecord] {
        try library.listJobs().filter { job in
            (job.state == "queued" || job.state == "running") && kinds[job.kind] != nil
                && !library.isJobRunning(job.id)
        }.reversed()
    }

    /// Runs every interrupted job, oldest first, at most `concurrency` at once; returns their final records
    /// (a job that failed is in them as failed).
    public func resumeInterrupted(progress: @escaping @Sendable (JobRecord) -> Void = { _ in }) async throws
        -> [JobRecord]
    {
        let jobs = try interrupted()
        return try await withThrowingTaskGroup(of: JobRecord?.self) { group in
            var results: [JobRecord] = []
            var next = 0
            func start() {
                let id = jobs[next].id
                next += 1
                group.addTask {
                    do { return try await self.run(id, progress: progress) } catch let error as JobError
                        where error.code == .busy || error.code == .finished
                    {
                        return nil
                    } catch {
                        return try self.library.fetchJob(id)
                    }
                }
            }
            while next < jobs.count && next < concurrency { start() }
            while let result = try await group.next() {
                if let result { results.append(result) }
                if next < jobs.count { start() }
            }
            return results
        }
    }

    /// Pauses a job: asks its runner, or (nobody runs it) marks it paused.
    public func pause(_ id: String) throws -> JobRecord { try control(id, request: "pause", state: "paused") }

    /// Cancels a job: asks its runner, or (nobody runs it) marks it cancelled.
    public func cancel(_ id: String) throws -> JobRecord { try control(id, request: "cancel", state: "cancelled") }

    private func control(_ id: String, request: String, state: String) throws -> JobRecord {
        let job = try library.fetchJob(id)
        if try !library.requestJob(id: job.id, request) {
            let lock = try library.acquireJobLock(job.id)
            defer { withExtendedLifetime(lock) {} }
            try library.setJobState(id: job.id, state)
        }
        return try library.fetchJob(job.id)
    }
}
