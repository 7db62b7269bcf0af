import ArgumentParser
import Foundation
import SDAPI
import SDActions
import SDCore
import SDIndexer
import SDJobs
import SDStore
import SDSystem

enum Actions {
    /// Every action job kind, with index updates.
    static func kinds(_ library: Library) -> [any JobKind] { JobKinds.actions(library) }

    static func isAction(_ kind: String) -> Bool { Operations.isAction(kind) }

    /// A path argument made absolute (relative to the current folder, `~` expanded); SdPaths as they are.
    static func argument(_ text: String) -> String {
        text.hasPrefix(SDPath.scheme) ? text : CopyCommand.absolute(text)
    }

    /// A path argument resolved: a plain path, an SdPath of this device, or a content path (the first reachable
    /// copy on this device).
    static func path(_ text: String, _ library: Library) throws -> String {
        do { return try Operations.resolve(argument(text), library) } catch let error as RequestError {
            throw UserError(error.message)
        }
    }

    /// Previews an action, shows it, asks, and commits it: through the daemon when one serves the library
    /// (the job then runs there), else here.
    static func perform(
        _ request: ActionRequest,
        global: GlobalOptions,
        libraryOptions: LibraryOptions,
        options: ActionOptions,
        yes: Bool? = nil
    ) throws {
        var request = request
        if !["restore", "empty-trash"].contains(request.action) { request.paths = request.paths.map(argument) }
        request.destination = request.destination.map(argument)
        if let daemon = DaemonLink.client(for: libraryOptions) {
            return try DaemonLink.call {
                try performThrough(daemon, request, global: global, options: options, yes: yes ?? options.yes)
            }
        }
        let library = try libraryOptions.open()
        defer { try? library.close() }
        let line = CountLine(enabled: !global.json, label: "verifying")
        // Content paths with no copy here: the devices holding one are measured now (3 s at most each).
        let holding = Set(request.paths.flatMap { Operations.devicesHolding($0, library, unlessHere: true) })
        let peers =
            holding.isEmpty ? nil : try waitFor { await Operations.measureReach(Array(holding), library: library) }
        let preview = try whileWaiting("previewing", enabled: !global.json) {
            try Operations.preview(
                request,
                library: library,
                peers: peers,
                notes: { if !global.json { line.clear(); print($0) } },
                progress: { line.show($0, $1) }
            )
        }
        line.clear()
        try commit(
            preview,
            library: library,
            global: global,
            previewOnly: options.preview,
            yes: yes ?? options.yes,
            question: request.question
        )
    }

    /// The same as `commit`, with the daemon previewing, committing (by the preview's id) and running the job.
    static func performThrough(
        _ daemon: APIClient,
        _ request: ActionRequest,
        global: GlobalOptions,
        options: ActionOptions,
        yes: Bool
    ) throws {
        let answer = try whileWaiting("previewing", enabled: !global.json) {
            try daemon.post("/v1/actions/preview", request, PreviewAnswer.self)
        }
        let preview = answer.preview
        if !global.json { for note in answer.notes { print(note) } }
        if global.json && options.preview { return try previewed(preview, json: true) }
        if !global.json { print(describe(preview)) }
        if options.preview { return try previewed(preview, json: false) }
        if preview.canCommit && !yes {
            guard isatty(0) == 1 else {
                throw UserError("add -y to go ahead without asking (standard input is not a terminal)")
            }
            guard ask(request.question) else { return print("nothing done") }
        }
        // A preview that cannot commit is refused (and audited) by the daemon, with the reasons.
        let job = try daemon.post("/v1/actions/\(answer.id)/commit", [String: String](), JobRecord.self)
        Interrupt.onCtrlC(
            say:
                "stopped waiting; job \(job.id.prefix(8)) goes on in sdd (`sd jobs` shows it, `sd jobs cancel \(job.id.prefix(8))` stops it)"
        )
        defer { Interrupt.clear() }
        let result = try wait(for: job.id, daemon, json: global.json).job
        if result.state == "failed" {
            throw UserError("\(result.error ?? "failed") (job \(job.id.prefix(8)) failed)")
        }
        try finish(preview, result, global: global)
    }

    /// Waits for a job the daemon runs, with the same progress line as when it runs here.
    static func wait(for id: String, _ daemon: APIClient, json: Bool) throws -> JobAnswer {
        let line = JobProgressLine(enabled: !json)
        defer { line.clear() }
        while true {
            let answer = try daemon.get("/v1/jobs/\(id)", JobAnswer.self)
            if answer.hasStopped { return answer }
            line.show(answer.job)
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// The end of `--preview`: a preview that could not commit exits as the same command with `-y` would (a
    /// user error: it would be refused), so a script that previews first learns the same thing.
    static func previewed(_ preview: ActionPreview, json: Bool) throws {
        if json { try Output.json(preview) }
        if !preview.canCommit { throw ExitCode(ExitStatus.userError) }
    }

    static func ask(_ question: String) -> Bool {
        FileHandle.standardError.write(Data("\(question) [y/N] ".utf8))
        guard let answer = readLine(), ["y", "yes"].contains(answer.lowercased()) else { return false }
        return true
    }

    /// Shows the preview; then, as asked, stops (`--preview`), refuses (problems: audited), asks, and commits:
    /// the job runs here with a progress line, and its outcome goes to the audit log.
    static func commit(
        _ preview: ActionPreview,
        library: Library,
        global: GlobalOptions,
        previewOnly: Bool,
        yes: Bool,
        question: String
    ) throws {
        if global.json && previewOnly { return try previewed(preview, json: true) }
        if !global.json { print(describe(preview)) }
        // Say so when a crash left jobs behind (a daemon resumes them by itself).
        let left = (try? JobRunner(library: library, kinds: kinds(library)).interrupted()) ?? []
        if !left.isEmpty && !global.json {
            let what = left.count == 1 ? "it" : "the first; `sd jobs` lists them"
            FileHandle.standardError.write(
                Data(
                    "sd: note: \(left.count) interrupted job(s): `sd jobs resume \(left[0].id.prefix(8))` finishes \(what)\n"
                        .utf8
                )
            )
        }
        if previewOnly { return try previewed(preview, json: false) }
        if preview.canCommit && !yes {
            guard isatty(0) == 1 else {
                throw UserError("add -y to go ahead without asking (standard input is not a terminal)")
            }
            guard ask(question) else { return print("nothing done") }
        }
        let runner = JobRunner(library: library, kinds: kinds(library))
        let job = try Operations.commit(preview, runner: runner)
        Interrupt.onCtrlC(
            say:
                "stopped; job \(job.id.prefix(8)) is interrupted: `sd jobs resume \(job.id.prefix(8))` goes on from its last checkpoint (`sd jobs cancel \(job.id.prefix(8))` drops it)"
        )
        defer { Interrupt.clear() }
        let result = try run(runner, job.id, library: library, summary: summary(preview), json: global.json)
        try finish(preview, result, global: global)
    }

    /// What the CLI says once an action's job ended.
    static func finish(_ preview: ActionPreview, _ result: JobRecord, global: GlobalOptions) throws {
        if global.json { return try Output.json(result) }
        // Files a deduplication left alone because they changed after the preview.
        if DedupJob.kinds.contains(preview.action), let text = result.checkpoint,
            let checkpoint = try? JSONDecoder().decode(DedupJob.Checkpoint.self, from: Data(text.utf8))
        {
            for problem in checkpoint.skipped { print("  left alone: \(problem.path): \(problem.reason)") }
        }
        print(
            "\(preview.action) \(result.state): \(summary(preview)) (job \(result.id.prefix(8))"
                + (["move", "rename", "trash", "dedup-link"].contains(preview.action)
                    ? "; `sd undo` reverses it)" : ")")
        )
        if result.state != "completed" { throw ExitCode(1) }
    }

    /// Runs an action job to its end here (first run or resumed) and audits the outcome.
    static func run(_ runner: JobRunner, _ id: String, library: Library, summary: String?, json: Bool) throws
        -> JobRecord
    {
        let job = try library.fetchJob(id)
        do {
            let result = try CopyCommand.runJob(runner, id, json: json)
            let outcome = result.state == "completed" ? "ok" : result.state
            Operations.audit(job, library: library, summary: summary, outcome: outcome, error: result.error)
            return result
        } catch {
            let message = (error as? UserError)?.message ?? "\(error)"
            Operations.audit(job, library: library, summary: summary, outcome: "failed", error: message)
            throw error
        }
    }

    static func summary(_ p: ActionPreview) -> String { Operations.summary(p) }

    static func describe(_ p: ActionPreview) -> String {
        var lines: [String] = []
        // Files that would lose their last copies come first.
        if !p.lastCopies.isEmpty {
            lines.append("below min-copies once done (\(Format.count(p.lastCopies.count, "file"))):")
            for c in p.lastCopies.prefix(20) {
                lines.append(
                    "  \(c.path): \(c.remaining) cop\(c.remaining == 1 ? "y" : "ies") left, min-copies \(c.required)"
                )
            }
            if p.lastCopies.count > 20 { lines.append("  ... \(p.lastCopies.count - 20) more") }
        }
        let verb: String
        switch p.action {
        case "trash": verb = "move to the trash"
        case "delete": verb = "delete for good"
        case "empty-trash": verb = "empty from the trash"
        case "restore": verb = "restore"
        case "dedup-link": verb = "replace by hard links to the kept copies:"
        case "dedup-reflink": verb = "replace by reflinks of the kept copies:"
        case "dedup-separate": verb = "give their own copies again:"
        case "peer-copy": verb = "copy from another device"
        case "peer-push": verb = "copy to another device"
        default: verb = p.action
        }
        var head = "\(verb) \(summary(p))"
        if let destination = p.destination, ["copy", "move", "peer-copy", "peer-push"].contains(p.action) {
            head += " to \(destination)"
        }
        if let tag = p.operations.first(where: { $0.kind == .tag })?.target { head = "\(verb) \(tag): \(summary(p))" }
        lines.append(head)
        if p.action == "rename" || p.action == "mkdir" || p.operations.count <= 5 {
            for op in p.operations where op.kind != .removeFolder {
                switch op.kind {
                case .rename: lines.append("  \(op.source) -> \(op.target)")
                case .folder where p.action == "mkdir": lines.append("  make \(op.target)")
                case .trash, .delete: lines.append("  \(op.source)")
                case .tag where !op.skip:
                    lines.append("  \(op.source)" + (op.sameContentAs.map { " (same content as \($0))" } ?? ""))
                default: break
                }
            }
        }
        for left in p.leftAsItIs ?? [] { lines.append("  left as it is: \(left.path): \(left.reason)") }
        for link in (p.links ?? []).prefix(20) {
            switch link.kind {
            case .symlink: lines.append("  left dangling: \(link.path) -> \(link.target)")
            case .hardlink where link.path.isEmpty:
                lines.append(
                    "  \(link.target): \(link.others ?? 0) other hard link(s), not in the index, keep its bytes"
                )
            case .hardlink: lines.append("  \(link.path): a hard link of \(link.target); it keeps the bytes")
            }
        }
        let unlisted = max(0, (p.links?.count ?? 0) - 20) + (p.linksNotListed ?? 0)
        if unlisted > 0 { lines.append("  and \(unlisted) more links left behind (--json lists them)") }
        if p.operations.contains(where: { $0.sameContentAs != nil }) {
            lines.append("  note: a tag is kept on a file's content, so every copy of it changes")
        }
        if let elsewhere = p.copiesOnOtherDevices, elsewhere > 0 {
            lines.append("  and \(Format.count(elsewhere, "copy")) on other devices (by sync)")
        }
        if let free = p.freeBytes, p.bytesToWrite > 0 {
            lines.append(
                "  space: \(Format.size(p.bytesToWrite)) of \(Format.size(free)) free"
                    + (p.fits ? "" : ": does not fit")
            )
        }
        if let freed = p.bytesFreed {
            lines.append(
                "  frees \(Format.size(freed))" + (p.action == "trash" ? " once the trash is emptied" : "")
            )
        }
        if p.action == "dedup-link" {
            lines.append("  note: linked names share one file: its permissions, owner and times, and any later edit")
        }
        if p.alreadyThere > 0 {
            lines.append(
                "  content already on that disk (per the index): \(Format.count(p.alreadyThere, "file")), "
                    + Format.size(p.alreadyThereBytes)
            )
        }
        for c in p.conflicts.prefix(20) { lines.append("  conflict: \(c.target): \(c.conflict ?? "")") }
        if p.conflicts.count > 20 { lines.append("  ... \(p.conflicts.count - 20) more conflicts") }
        for problem in p.problems.prefix(20) { lines.append("  problem: \(problem.path): \(problem.reason)") }
        if p.problems.count > 20 { lines.append("  ... \(p.problems.count - 20) more problems") }
        if p.estimatedSeconds >= 0.05 { lines.append(String(format: "  estimated time: %.1f s", p.estimatedSeconds)) }
        return lines.joined(separator: "\n")
    }
}

/// The options every action command shares.
struct ActionOptions: ParsableArguments {
    @Flag(help: "Print the preview and stop.") var preview = false
    @Flag(name: .customShort("y"), help: "Go ahead without asking.") var yes = false
}
