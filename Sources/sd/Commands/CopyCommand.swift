import ArgumentParser
import Foundation
import SDAPI
import SDActions
import SDCore
import SDJobs
import SDStore
import SDSystem

extension ConflictPolicy: ExpressibleByArgument {}

/// `sd cp`: a copy previewed, then run as a durable job that verifies every file.
struct CopyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cp",
        abstract: "Copy files and folders: previewed, then a durable job that verifies each copy.",
        discussion: reflow(
            """
            Like `cp -r`: one source to a new name, or any number into an existing folder. The preview lists what
            will be written, the space it needs against what is free, conflicts, and content the library already
            knows at the target. Each file is written under a hidden name, flushed to disk, verified against its
            source (content id; `--verify-full`: BLAKE3 of every byte), then renamed into place. An interrupted
            copy resumes with `sd jobs resume ID`. Without -y, sd asks before copying. Paths may be SdPaths.

            Another device's files (a device the library is shared with): sources `sd://DEVICE/path` (or
            `sd://content/ID` with no copy here) are fetched from it; a destination `sd://DEVICE/path` sends
            files there, into one of its locations (previewed against its index and volume as synced here; it
            verifies each file before renaming it into place).

            Examples:
              sd cp ~/Pictures/2024 /mnt/backup/ --preview
              sd cp -y report.pdf notes.txt ~/Documents/
              sd cp -y ~/Pictures/2024 sd://DEVICE/srv/photos/
            """
        )
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var libraryOptions: LibraryOptions
    @OptionGroup var action: ActionOptions
    @Argument(help: "What to copy, then where (the last path).") var paths: [String]
    @Option(help: "When a target exists: fail, skip, overwrite or rename.") var onConflict: ConflictPolicy = .fail
    @Flag(help: "Verify each copy by the BLAKE3 of all its bytes (slower).") var verifyFull = false

    func run() throws {
        try Self.transfer(paths, move: false, onConflict, verifyFull, global, libraryOptions, action)
    }

    /// `sd cp` and `sd mv`: sources and a destination (paths or SdPaths), previewed, then committed.
    static func transfer(
        _ paths: [String],
        move: Bool,
        _ onConflict: ConflictPolicy,
        _ verifyFull: Bool,
        _ global: GlobalOptions,
        _ libraryOptions: LibraryOptions,
        _ action: ActionOptions
    ) throws {
        guard paths.count >= 2 else { throw UserError("give at least one source and a destination") }
        let request = ActionRequest(
            action: move ? "move" : "copy",
            paths: Array(paths.dropLast()),
            destination: paths.last!,
            onConflict: onConflict,
            verifyFull: verifyFull
        )
        try Actions.perform(request, global: global, libraryOptions: libraryOptions, options: action)
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
        } catch let error as SystemError {
            // The disk refused a step (permission, space, a file gone): the job failed, and says where.
            line.clear()
            throw UserError("\(error) (job \(id.prefix(8)) failed; `sd jobs show \(id.prefix(8))`)")
        }
    }

    static func absolute(_ path: String) -> String {
        let expanded =
            path == "~" || path.hasPrefix("~/")
            ? FileManager.default.homeDirectoryForCurrentUser.path + path.dropFirst() : path
        // Canonical (`PathText`): a control character typed in a name travels as the byte it is.
        return PathText.canonical(expanded.hasPrefix("/") ? expanded : FileSystem.currentDirectory() + "/" + expanded)
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
            var text = "\(job.kind) \(job.id.prefix(8)): \(Format.size(job.progressDone))"
            if let total = job.progressTotal, total > 0 {
                text += " of \(Format.size(total)) (\(100 * job.progressDone / total)%)"
                if rate > 0 {
                    text += String(
                        format: "  %@/s  %.0f s left",
                        Format.size(Int64(rate)),
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
