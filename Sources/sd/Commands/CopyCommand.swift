import ArgumentParser
import Foundation
import SDActions
import SDCore
import SDJobs
import SDStore

extension ConflictPolicy: ExpressibleByArgument {}

/// `sd cp`: a copy previewed, then run as a durable job that verifies every file.
struct CopyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cp",
        abstract: "Copy files and folders: previewed, then a durable job that verifies each copy.",
        discussion: """
            Like `cp -r`: one source to a new name, or any number into an existing folder. The preview lists what
            will be written, the space it needs against what is free, conflicts, and content the library already
            knows at the target. Each file is written under a hidden name, flushed to disk, verified against its
            source (content id; `--verify-full`: BLAKE3 of every byte), then renamed into place. An interrupted
            copy resumes with `sd jobs resume ID`. Without -y, sd asks before copying.

            Examples:
              sd cp ~/Pictures/2024 /mnt/backup/ --preview
              sd cp -y report.pdf notes.txt ~/Documents/
            """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var libraryOptions: LibraryOptions
    @Argument(help: "What to copy, then where (the last path).") var paths: [String]
    @Flag(help: "Print the preview and stop.") var preview = false
    @Flag(name: .customShort("y"), help: "Copy without asking.") var yes = false
    @Option(help: "When a target exists: fail, skip, overwrite or rename.") var onConflict: ConflictPolicy = .fail
    @Flag(help: "Verify each copy by the BLAKE3 of all its bytes (slower).") var verifyFull = false

    func run() throws {
        guard paths.count >= 2 else { throw UserError("give at least one source and a destination") }
        let library = try libraryOptions.open()
        defer { try? library.close() }
        let request = CopyRequest(
            sources: paths.dropLast().map(Self.absolute),
            destination: Self.absolute(paths.last!),
            onConflict: onConflict,
            verifyFull: verifyFull
        )
        let plan = CopyPlanner.preview(request, library: library)
        if global.json && preview { return try Output.json(plan) }
        if !global.json { print(Self.describe(plan)) }
        if preview { return }
        guard plan.canCommit else {
            try library.appendAudit(
                action: "copy",
                target: request.destination,
                details: Self.json(plan.problems),
                outcome: "refused",
                jobID: nil
            )
            throw UserError("nothing was copied: \(plan.problems.count) problem(s) above")
        }
        if !yes {
            guard isatty(0) == 1 else {
                throw UserError("add -y to copy without asking (standard input is not a terminal)")
            }
            FileHandle.standardError.write(Data("Copy? [y/N] ".utf8))
            guard let answer = readLine(), ["y", "yes"].contains(answer.lowercased()) else {
                print("nothing copied")
                return
            }
        }
        let runner = JobRunner(library: library, kinds: [CopyJob()])
        let job = try runner.submit(
            kind: "copy",
            target: request.destination,
            input: CopyPlan(request: request, operations: plan.operations)
        )
        let result = try Self.runJob(runner, job.id, json: global.json)
        try library.appendAudit(
            action: "copy",
            target: request.destination,
            details: Self.json(["files": plan.files, "folders": plan.folders, "bytes": Int(plan.bytes)]),
            outcome: result.state == "completed" ? "ok" : result.state,
            jobID: job.id
        )
        if global.json { return try Output.json(result) }
        print("copy \(result.state): \(plan.files) files, \(Self.size(plan.bytes)) (job \(job.id.prefix(8)))")
        if result.state != "completed" { throw ExitCode(1) }
    }

    /// Runs a job with a progress line on a terminal (bytes/s, ETA); errors become user errors.
    static func runJob(_ runner: JobRunner, _ id: String, json: Bool) throws -> JobRecord {
        let line = JobProgressLine(enabled: !json)
        do {
            let result = try SearchCommand.wait { try await runner.run(id) { line.show($0) } }
            line.clear()
            return result
        } catch let error as ActionError {
            line.clear()
            throw UserError("\(error.message) (job \(id.prefix(8)) failed)")
        } catch let error as JobError {
            line.clear()
            throw UserError(error.message)
        }
    }

    static func absolute(_ path: String) -> String {
        let expanded =
            path == "~" || path.hasPrefix("~/")
            ? FileManager.default.homeDirectoryForCurrentUser.path + path.dropFirst() : path
        return expanded.hasPrefix("/") ? expanded : FileManager.default.currentDirectoryPath + "/" + expanded
    }

    static func json(_ value: some Encodable) -> String? {
        (try? JSONEncoder().encode(value)).map { String(decoding: $0, as: UTF8.self) }
    }

    static func size(_ bytes: Int64) -> String {
        ByteCountFormatter.string(fromByteCount: bytes, countStyle: .file)
    }

    static func describe(_ p: CopyPreview) -> String {
        var lines = [
            "copy \(p.files) files, \(p.folders) folders\(p.symlinks > 0 ? ", \(p.symlinks) links" : ""): \(size(p.bytes))"
                + " to \(p.request.destination)"
        ]
        if let free = p.freeBytes {
            lines.append("  space: \(size(p.bytes)) of \(size(free)) free\(p.fits ? "" : ": does not fit")")
        }
        if p.skipped > 0 { lines.append("  skipped (already there, --on-conflict skip): \(p.skipped)") }
        if p.alreadyThere > 0 {
            lines.append(
                "  content already on that disk (per the index): \(p.alreadyThere) files, \(size(p.alreadyThereBytes))"
            )
        }
        for c in p.conflicts.prefix(20) { lines.append("  conflict: \(c.target): \(c.conflict ?? "")") }
        if p.conflicts.count > 20 { lines.append("  ... \(p.conflicts.count - 20) more conflicts") }
        for problem in p.problems.prefix(20) { lines.append("  problem: \(problem.path): \(problem.reason)") }
        if p.problems.count > 20 { lines.append("  ... \(p.problems.count - 20) more problems") }
        lines.append(String(format: "  estimated time: %.1f s", p.estimatedSeconds))
        return lines.joined(separator: "\n")
    }
}

/// A job's progress on one terminal line: done of total, bytes/s, time left. Silent when not a terminal.
final class JobProgressLine: @unchecked Sendable {
    // @unchecked: `last` and `start` are only touched under `lock`.
    private let enabled: Bool
    private let lock = NSLock()
    private var last = ContinuousClock.now - .seconds(1)
    private var start: (ContinuousClock.Instant, Int64)?

    init(enabled: Bool) { self.enabled = enabled && isatty(2) == 1 }

    func show(_ job: JobRecord) {
        guard enabled else { return }
        lock.withLock {
            let now = ContinuousClock.now
            if start == nil { start = (now, job.progressDone) }
            guard now - last > .milliseconds(200), let (began, base) = start else { return }
            last = now
            let elapsed = (now - began)
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let rate = seconds > 0 ? Double(job.progressDone - base) / seconds : 0
            var text = "\(job.kind) \(job.id.prefix(8)): \(CopyCommand.size(job.progressDone))"
            if let total = job.progressTotal, total > 0 {
                text += " of \(CopyCommand.size(total)) (\(100 * job.progressDone / total)%)"
                if rate > 0 {
                    text += String(
                        format: "  %@/s  %.0f s left",
                        CopyCommand.size(Int64(rate)),
                        Double(total - job.progressDone) / rate
                    )
                }
            }
            FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8))
        }
    }

    func clear() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
