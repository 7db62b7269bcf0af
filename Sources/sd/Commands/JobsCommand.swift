import ArgumentParser
import Foundation
import SDAPI
import SDActions
import SDCore
import SDIndexer
import SDJobs
import SDStore
import Synchronization

/// `sd jobs`: the library's durable jobs.
struct JobsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract: "List, inspect, pause, resume and cancel the library's jobs.",
        discussion: reflow(
            """
            Jobs (indexing a location, and every file action) are kept in the library: one interrupted by
            a crash or a reboot shows as 'running' with no process behind it ('interrupted' below) and goes on
            from its last checkpoint when resumed. A job is named by its id or the start of it.

            Examples:
              sd jobs
              sd jobs pause 3f2a
              sd jobs resume 3f2a
            """
        ),
        subcommands: [List.self, Show.self, Pause.self, Resume.self, Cancel.self],
        defaultSubcommand: List.self
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Unfinished jobs (all of them with --all).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @Flag(help: "Finished jobs too.") var all = false
        @Option(help: "At most this many, newest first.") var limit = 50

        func run() throws {
            let library = try libraryOptions.open()
            defer { try? library.close() }
            let jobs = try library.listJobs(all: all, limit: limit).map { JobView($0, library) }
            if global.json { return try Output.json(jobs) }
            if jobs.isEmpty {
                print(all ? "no jobs" : "no unfinished jobs (`sd jobs --all` lists finished ones too)")
                return
            }
            for job in jobs { print(job.line) }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One job, whole.")
        @OptionGroup var job: JobArguments

        func run() throws {
            let library = try job.libraryOptions.open()
            defer { try? library.close() }
            let view = JobView(try Self.fetch(job.id, library), library)
            if job.global.json { return try Output.json(view) }
            print(view.details)
        }

        static func fetch(_ id: String, _ library: Library) throws -> JobRecord {
            do { return try library.fetchJob(id) } catch let error as JobError { throw UserError(error.message) }
        }
    }

    /// The library and the job a control command acts on.
    struct JobArguments: ParsableArguments {
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument(help: "The job's id, or the start of it.") var id: String
    }

    struct Pause: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pause a job: it stops after its current step and keeps its place."
        )
        @OptionGroup var job: JobArguments
        func run() throws { try JobsCommand.control(job, pause: true) }
    }

    struct Cancel: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel a job: it stops after its current step and does not resume."
        )
        @OptionGroup var job: JobArguments
        func run() throws { try JobsCommand.control(job, pause: false) }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a paused or interrupted job here, from its last checkpoint, to its end."
        )
        @OptionGroup var arguments: JobArguments

        func run() throws {
            let global = arguments.global
            if let daemon = DaemonLink.client(for: arguments.libraryOptions) {
                return try DaemonLink.call { try through(daemon) }
            }
            let library = try arguments.libraryOptions.open()
            defer { try? library.close() }
            let job = try Show.fetch(arguments.id, library)
            if job.isFinished { throw UserError("job \(job.id.prefix(8)) has already \(job.state)") }
            if library.isJobRunning(job.id) {
                throw UserError("job \(job.id.prefix(8)) is running in another sd process")
            }
            switch job.kind {
            case "index":
                // Through the runner, like every job: the scan goes on from the job's checkpoint.
                let bar = ProgressLine(enabled: !global.json)
                let report = Mutex<IndexReport?>(nil)
                let kind = IndexJob(progress: { bar.show($0) }, finished: { r in report.withLock { $0 = r } })
                let result: JobRecord
                do {
                    result = try CopyCommand.runJob(
                        JobRunner(library: library, kinds: [kind]),
                        job.id,
                        json: global.json
                    )
                } catch let error as IndexError {
                    bar.clear()
                    throw UserError(error.message)
                }
                bar.clear()
                if global.json { return try Output.json(JobView(result, library)) }
                print(report.withLock { $0 }.map(IndexCommand.describe) ?? JobView(result, library).line)
                if result.state != "completed" { throw ExitCode(1) }
            case "scrub":
                let result = try CopyCommand.runJob(
                    JobRunner(library: library, kinds: [ScrubJob()]),
                    job.id,
                    json: global.json
                )
                try ScrubCommand.report(
                    result,
                    library: library,
                    global: global,
                    action: ActionOptions(),
                    repair: false
                )
            case let kind where Actions.isAction(kind):
                let runner = JobRunner(library: library, kinds: Actions.kinds(library))
                let result = try Actions.run(runner, job.id, library: library, summary: nil, json: global.json)
                if global.json { return try Output.json(JobView(result, library)) }
                print(JobView(result, library).line)
                if result.state != "completed" { throw ExitCode(1) }
            default:
                throw UserError("job \(job.id.prefix(8)) is a '\(job.kind)' job, which this sd cannot run")
            }
        }

        /// The job resumed by the daemon (index and action jobs; a scrub's report needs the library here).
        func through(_ daemon: APIClient) throws {
            let global = arguments.global
            let started = try daemon.get("/v1/jobs/\(APIClient.query(arguments.id))", JobAnswer.self)
            if started.job.kind == "scrub" { throw UserError("resume a scrub with `sd scrub` while sdd runs") }
            _ = try daemon.post("/v1/jobs/\(started.job.id)/resume", [String: String](), JobAnswer.self)
            let answer = try Actions.wait(for: started.job.id, daemon, json: global.json)
            let result = answer.job
            if result.state == "failed" { throw UserError(result.error ?? "job \(result.id.prefix(8)) failed") }
            if global.json {
                return try Output.json(JobView(result, running: answer.running, targetName: answer.targetName))
            }
            print(
                answer.report.map(IndexCommand.describe)
                    ?? JobView(result, running: answer.running, targetName: answer.targetName).line
            )
            if result.state != "completed" { throw ExitCode(1) }
        }
    }

    static func control(_ arguments: JobArguments, pause: Bool) throws {
        let (id, global) = (arguments.id, arguments.global)
        let library = try arguments.libraryOptions.open()
        defer { try? library.close() }
        let runner = JobRunner(library: library, kinds: [])
        var job = try Show.fetch(id, library)
        do {
            job = pause ? try runner.pause(job.id) : try runner.cancel(job.id)
        } catch let error as JobError {
            throw UserError(error.message)
        }
        // A running job acts between two steps: wait a little for it to say so.
        let deadline = Date().addingTimeInterval(10)
        while job.requested != nil && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.05)
            job = try library.fetchJob(job.id)
        }
        let view = JobView(job, library)
        if global.json { return try Output.json(view) }
        if job.requested != nil {
            print(
                "job \(job.id.prefix(8)): asked to \(pause ? "pause" : "cancel"); it will at the end of its current step"
            )
        } else {
            print(view.line)
        }
    }
}

/// A job as `sd jobs` shows it.
struct JobView: Encodable {
    var id: String
    var kind: String
    var state: String
    var target: String?
    var progressDone: Int64
    var progressTotal: Int64?
    var error: String?
    var requested: String?
    var created: Date
    var started: Date?
    var updated: Date
    var finished: Date?
    var checkpoint: String?

    init(_ job: JobRecord, _ library: Library) {
        var name: String?
        if job.kind == "index", let uuid = job.target { name = (try? library.fetchLocation(uuid))?.name }
        self.init(job, running: library.isJobRunning(job.id), targetName: name)
    }

    init(_ job: JobRecord, running: Bool, targetName: String?) {
        id = job.id
        kind = job.kind
        // 'running' with nobody running it: the process died.
        state = job.state == "running" && !running ? "interrupted" : job.state
        target = targetName ?? job.target
        progressDone = job.progressDone
        progressTotal = job.progressTotal
        error = job.error
        requested = job.requested
        created = Date(timeIntervalSince1970: Double(job.createdAt) / 1000)
        started = job.startedAt.map { Date(timeIntervalSince1970: Double($0) / 1000) }
        updated = Date(timeIntervalSince1970: Double(job.updatedAt) / 1000)
        finished = job.finishedAt.map { Date(timeIntervalSince1970: Double($0) / 1000) }
        checkpoint = job.checkpoint
    }

    var progress: String {
        guard let total = progressTotal, total > 0 else { return progressDone > 0 ? "\(progressDone)" : "" }
        return "\(progressDone)/\(total) (\(100 * progressDone / total)%)"
    }

    var line: String {
        var text = "\(id.prefix(8))  \(kind.padding(toLength: 8, withPad: " ", startingAt: 0))"
        text += "\(state.padding(toLength: 12, withPad: " ", startingAt: 0))\(target ?? "")"
        if !progress.isEmpty { text += "  \(progress)" }
        if let requested { text += "  (\(requested) asked)" }
        if let error { text += "  error: \(error)" }
        return text
    }

    var details: String {
        let dates = ISO8601DateFormatter()
        var lines = [
            "id        \(id)", "kind      \(kind)", "state     \(state)", "target    \(target ?? "-")",
            "progress  \(progress.isEmpty ? "-" : progress)", "created   \(dates.string(from: created))",
        ]
        if let started { lines.append("started   \(dates.string(from: started))") }
        lines.append("updated   \(dates.string(from: updated))")
        if let finished { lines.append("finished  \(dates.string(from: finished))") }
        if let requested { lines.append("asked     \(requested)") }
        if let error { lines.append("error     \(error)") }
        if let checkpoint { lines.append("checkpoint \(checkpoint)") }
        return lines.joined(separator: "\n")
    }
}
