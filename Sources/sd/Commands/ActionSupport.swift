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

    static func isAction(_ kind: String) -> Bool {
        TransferJob.kinds.contains(kind) || DeleteJob.kinds.contains(kind) || DedupJob.kinds.contains(kind)
    }

    /// A path argument: a plain path (relative to the current folder, `~` expanded) or an SdPath of this
    /// device, or a content path (the first reachable copy on this device).
    static func path(_ text: String, _ library: Library) throws -> String {
        guard text.hasPrefix(SDPath.scheme) else { return CopyCommand.absolute(text) }
        let parsed: SDPath
        do { parsed = try SDPath(parsing: text) } catch { throw UserError(error.message) }
        switch parsed {
        case .physical(let device, let bytes):
            guard device == library.device.id else {
                throw UserError("'\(text)' is on another device; files on other devices cannot be acted on yet")
            }
            return String(decoding: bytes, as: UTF8.self)
        case .content(let id):
            // The best reachable copy (see `sd resolve`).
            guard let copy = try ContentResolver.copies(of: id, library: library).first(where: \.reachable) else {
                throw UserError("no copy of content \(id) is reachable on this device (see `sd resolve \(text)`)")
            }
            return copy.path
        case .contentUUID:
            throw UserError("'\(text)': give content paths by content id (sd://content/<16 hex digits>)")
        }
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
        if global.json && previewOnly { return try Output.json(preview) }
        if !global.json { print(describe(preview)) }
        // Until the daemon resumes them by itself, say so when a crash left jobs behind.
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
        if previewOnly { return }
        guard preview.canCommit else {
            try library.appendAudit(
                action: preview.action,
                target: preview.destination ?? preview.operations.first?.source,
                details: CopyCommand.json(["refusals": preview.refusals]),
                outcome: "refused",
                jobID: nil
            )
            throw UserError("nothing was done: \(preview.refusals.joined(separator: "; "))")
        }
        if !yes {
            guard isatty(0) == 1 else {
                throw UserError("add -y to go ahead without asking (standard input is not a terminal)")
            }
            FileHandle.standardError.write(Data("\(question) [y/N] ".utf8))
            guard let answer = readLine(), ["y", "yes"].contains(answer.lowercased()) else {
                print("nothing done")
                return
            }
        }
        let runner = JobRunner(library: library, kinds: kinds(library))
        let job = try runner.submit(
            kind: preview.action,
            target: preview.destination ?? preview.operations.first?.source,
            input: preview.plan
        )
        let result = try run(runner, job.id, library: library, summary: summary(preview), json: global.json)
        if global.json { return try Output.json(result) }
        // Files a deduplication left alone because they changed after the preview.
        if DedupJob.kinds.contains(preview.action), let text = result.checkpoint,
            let checkpoint = try? JSONDecoder().decode(DedupJob.Checkpoint.self, from: Data(text.utf8))
        {
            for problem in checkpoint.skipped { print("  left alone: \(problem.path): \(problem.reason)") }
        }
        print(
            "\(preview.action) \(result.state): \(summary(preview)) (job \(job.id.prefix(8))"
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
        func audit(_ outcome: String, _ error: String?) {
            var details: [String: String] = [:]
            if let summary { details["summary"] = summary }
            if let error { details["error"] = error }
            try? library.appendAudit(
                action: job.kind,
                target: job.target,
                details: CopyCommand.json(details),
                outcome: outcome,
                jobID: id
            )
        }
        do {
            let result = try CopyCommand.runJob(runner, id, json: json)
            audit(result.state == "completed" ? "ok" : result.state, result.error)
            return result
        } catch {
            audit("failed", (error as? UserError)?.message ?? "\(error)")
            throw error
        }
    }

    static func summary(_ p: ActionPreview) -> String {
        var parts: [String] = []
        if p.files > 0 || p.bytes > 0 { parts.append("\(p.files) files, \(CopyCommand.size(p.bytes))") }
        if p.folders > 0 { parts.append("\(p.folders) folders") }
        if p.symlinks > 0 { parts.append("\(p.symlinks) links") }
        if p.skipped > 0 { parts.append("\(p.skipped) skipped") }
        return parts.isEmpty ? "nothing" : parts.joined(separator: ", ")
    }

    static func describe(_ p: ActionPreview) -> String {
        var lines: [String] = []
        // Files that would lose their last copies come first.
        if !p.lastCopies.isEmpty {
            lines.append("below min-copies once done (\(p.lastCopies.count) files):")
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
        default: verb = p.action
        }
        var head = "\(verb) \(summary(p))"
        if let destination = p.destination, ["copy", "move"].contains(p.action) { head += " to \(destination)" }
        lines.append(head)
        if p.action == "rename" || p.action == "mkdir" || p.operations.count <= 5 {
            for op in p.operations where op.kind != .removeFolder {
                switch op.kind {
                case .rename: lines.append("  \(op.source) -> \(op.target)")
                case .folder where p.action == "mkdir": lines.append("  make \(op.target)")
                case .trash, .delete: lines.append("  \(op.source)")
                default: break
                }
            }
        }
        if let free = p.freeBytes, p.bytesToWrite > 0 {
            lines.append(
                "  space: \(CopyCommand.size(p.bytesToWrite)) of \(CopyCommand.size(free)) free"
                    + (p.fits ? "" : ": does not fit")
            )
        }
        if let freed = p.bytesFreed {
            lines.append(
                "  frees \(CopyCommand.size(freed))" + (p.action == "trash" ? " once the trash is emptied" : "")
            )
        }
        if p.action == "dedup-link" {
            lines.append("  note: linked names share one file: its permissions, owner and times, and any later edit")
        }
        if p.alreadyThere > 0 {
            lines.append(
                "  content already on that disk (per the index): \(p.alreadyThere) files, "
                    + CopyCommand.size(p.alreadyThereBytes)
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
