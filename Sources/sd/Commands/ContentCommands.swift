import ArgumentParser
import Foundation
import SDAPI
import SDActions
import SDCore
import SDJobs
import SDSearch
import SDStore
import SDSystem

/// `sd dupes`: files held more than once, by content id, across locations and devices.
struct DupesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dupes",
        abstract: "Files held more than once (same content id), with the bytes the extra copies take.",
        discussion: reflow(
            """
            Groups come from the index's content ids (sampled for files over 100 KiB, so two different files can
            share one); --verify confirms every group with the full BLAKE3 of each file, computed once and kept
            while the file is unchanged, and reports groups that split. Hard links to one file count once.

            Examples:
              sd dupes --min-size 10MB
              sd dupes --kind image --location Photos --verify
            """
        )
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var libraryOptions: LibraryOptions
    @OptionGroup var filters: DuplicateFilters
    @Flag(help: "Confirm each group by the full BLAKE3 of every file.") var verify = false
    @Option(help: "Groups to print (all with --json).") var limit = 20

    func run() throws {
        let target = Via.target(
            "/v1/dupes",
            [
                ("minSize", filters.minSize), ("kind", filters.kind), ("location", filters.location),
                ("verify", verify ? "true" : nil),
            ]
        )
        let line = CountLine(enabled: !global.json && verify, label: "verifying")
        let report = try Via.get(libraryOptions, target) { library in
            try Operations.dupes(
                library,
                minSize: filters.minSize,
                kind: filters.kind,
                location: filters.location,
                verify: verify
            ) { line.show($0, $1) }
        }
        line.clear()
        if global.json { return try Output.json(report) }
        if report.groups.isEmpty {
            print(verify ? "no duplicates (verified by full hash)" : "no duplicates")
        }
        for group in report.groups.prefix(max(0, limit)) {
            print(
                "\(Format.count(group.files, "copy")) of \(Format.size(group.size)), \(Format.size(group.wastedBytes))"
                    + " wasted  (content \(group.contentID))"
            )
            for member in group.members { print("  \(member.path)") }
        }
        if report.groups.count > limit { print("... \(report.groups.count - limit) more groups (--limit, --json)") }
        for split in report.splits {
            print("content \(split.contentID): not one file (sampled ids collided); by full hash:")
            for part in split.parts { print("  " + part.joined(separator: "  =  ")) }
        }
        for problem in report.skipped { print("skipped: \(problem.path): \(problem.reason)") }
        print(
            "\(Format.count(report.groups.count, "group")), \(Format.count(report.files, "file")), \(Format.size(report.wastedBytes)) wasted"
                + (verify ? " (verified by full BLAKE3)" : " (by content id; --verify confirms)")
        )
    }
}

/// `sd dedup`: removes extra copies (verified by full hash) as a previewed, undoable action.
struct DedupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dedup",
        abstract: "Remove extra copies: hard links, reflinks or the trash, verified by full hash first.",
        discussion: reflow(
            """
            Only groups confirmed by the full BLAKE3 of every file are touched (a group whose sampled ids
            collided is split and its parts treated apart), and each file is checked again the moment it is
            replaced. One copy stays per group on each filesystem: copies on other disks are backups, not
            waste (--across-disks keeps one copy in all, with --mode trash only).

            --mode hardlink (default): the extra names become hard links to the kept file (one inode; the
              names then share permissions, owner and times). `sd undo` gives each its own copy again.
            --mode reflink: each extra copy shares the kept file's blocks but stays its own file; needs btrfs,
              XFS with reflink or bcachefs, else it is refused.
            --mode trash: the extra copies go to the trash; the space comes back when it is emptied
              (`sd trash empty`); `sd undo` restores them.

            Examples:
              sd dedup --min-size 1MB --preview
              sd dedup --location Photos --mode trash -y
            """
        )
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var libraryOptions: LibraryOptions
    @OptionGroup var action: ActionOptions
    @Option(help: "hardlink, reflink or trash.") var mode: DedupMode = .hardlink
    @Option(help: "Which copy stays: oldest, newest or shortest (path).") var keep: KeepPolicy = .oldest
    @OptionGroup var filters: DuplicateFilters
    @Flag(help: "Keep one copy in all, not one per filesystem (--mode trash only).") var acrossDisks = false

    func run() throws {
        let request = ActionRequest(
            action: "dedup",
            mode: mode,
            keep: keep,
            acrossDisks: acrossDisks ? true : nil,
            minSize: filters.minSize,
            kind: filters.kind,
            location: filters.location
        )
        try Actions.perform(request, global: global, libraryOptions: libraryOptions, options: action)
    }
}

extension DedupMode: ExpressibleByArgument {}
extension KeepPolicy: ExpressibleByArgument {}

/// The filters `sd dupes` and `sd dedup` share, and the duplicate groups they select.
struct DuplicateFilters: ParsableArguments {
    @Option(help: "Only files of at least this size (e.g. 1MB, 500k).") var minSize: String?
    @Option(help: "Only files of this kind (image, video, document, ...).") var kind: String?
    @Option(help: "Only groups with a file in this location (name, path or id).") var location: String?

    func groups(_ library: Library) throws -> [DuplicateGroup] {
        do {
            return try Operations.duplicateGroups(minSize: minSize, kind: kind, location: location, library: library)
        } catch let error as RequestError { throw UserError(error.message) }
    }
}

/// "label: done/total" on one terminal line; silent when not a terminal.
final class CountLine: @unchecked Sendable {
    // @unchecked: `last` is only touched under `lock`.
    private let enabled: Bool
    private let label: String
    private let lock = NSLock()
    private var last = ContinuousClock.now - .seconds(1)

    init(enabled: Bool, label: String) {
        self.enabled = enabled && isatty(2) == 1
        self.label = label
    }

    func show(_ done: Int, _ total: Int) {
        guard enabled else { return }
        lock.withLock {
            guard ContinuousClock.now - last > .milliseconds(100) else { return }
            last = .now
            FileHandle.standardError.write(Data("\r\u{1B}[K\(label) \(done)/\(total) files".utf8))
        }
    }

    func clear() {
        if enabled { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}

/// `sd redundancy`: what exists in fewer copies than it should, and where.
struct RedundancyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redundancy",
        abstract:
            "Content with fewer copies than N on distinct disks or devices: the bytes at risk, by kind and place.",
        discussion: reflow(
            """
            A copy counts once per filesystem per device: two copies on one disk die with it. Files not
            identified yet (`sd index` without --no-content identifies them) are not counted.

            Examples:
              sd redundancy                 # fewer than 2 copies (or the library's min-copies, if higher)
              sd redundancy --min-copies 3 --kind image
            """
        )
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var libraryOptions: LibraryOptions
    @Option(help: "Copies each content should have (default: 2, or the library's min-copies if higher).")
    var minCopies: Int?
    @Option(help: "Only this kind (image, video, document, ...).") var kind: String?
    @Option(help: "Instead: what would have no copy left if this disk (a path on it) or device (its id) were lost.")
    var ifLost: String?

    func run() throws {
        // (The kind is checked by the operations, here or in the daemon.)
        if let ifLost { return try lost(ifLost) }
        let target = Via.target("/v1/redundancy", [("minCopies", minCopies.map(String.init)), ("kind", kind)])
        let report = try Via.get(libraryOptions, target) {
            try Operations.redundancy($0, minCopies: minCopies, kind: kind)
        }
        let atRisk = report.contents > 0 ? ExitCode(ExitStatus.foundProblems) : nil
        if global.json {
            try Output.json(report)
            if let atRisk { throw atRisk }
            return
        }
        print(
            "\(Format.count(report.contents, "content")) with fewer than \(Format.count(report.minCopies, "copy")): "
                + "\(Format.size(report.bytesAtRisk)) at risk"
        )
        if !report.byKind.isEmpty {
            print("by kind:")
            for share in report.byKind {
                print(
                    "  \(share.name.padding(toLength: 13, withPad: " ", startingAt: 0)) \(Format.count(share.contents, "content")), \(Format.size(share.bytes))"
                )
            }
        }
        if !report.byLocation.isEmpty {
            print("by location:")
            for share in report.byLocation {
                print("  \(share.name): \(Format.count(share.contents, "content")), \(Format.size(share.bytes))")
            }
        }
        if report.pendingFiles > 0 {
            print("not identified yet (not counted): \(Format.count(report.pendingFiles, "file"))")
        }
        if let atRisk { throw atRisk }
    }

    func lost(_ what: String) throws {
        let asked =
            what.hasPrefix("/") || what.hasPrefix("~") || what.hasPrefix(".") ? CopyCommand.absolute(what) : what
        let target = Via.target("/v1/redundancy", [("ifLost", asked), ("kind", kind)])
        var result = try Via.get(libraryOptions, target) { try Operations.loss($0, asked, kind: kind) }
        result.lost = what
        let (report, libraryOnIt) = (result.report, result.libraryOnIt)
        if global.json { return try Output.json(result) }
        print(
            "if \(what) were lost: \(Format.count(report.contents, "content")) with no copy left, \(Format.size(report.bytesAtRisk))"
        )
        for share in report.byKind {
            print(
                "  \(share.name.padding(toLength: 13, withPad: " ", startingAt: 0)) \(Format.count(share.contents, "content")), \(Format.size(share.bytes))"
            )
        }
        if libraryOnIt {
            print("the library itself (\(result.library)) is on it too: keep a copy of that folder elsewhere")
        }
    }
}

/// `sd resolve SDPATH`: where a content path's copies are and which one sd reads; what a physical path is.
struct ResolveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resolve",
        abstract: "Resolve an SdPath: a content path's copies, ranked, and the one chosen; or a physical path's entry.",
        discussion: reflow(
            """
            Copies are ranked: reachable first, this device first, then the faster filesystem (memory, local disk,
            removable, network). Commands that take a file take a content path too and read the chosen copy.

            Examples:
              sd resolve sd://content/9c1e5d0a1b2c3d4e
              sd resolve ~/Pictures/beach.jpg
            """
        )
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var libraryOptions: LibraryOptions
    @Argument(help: "An SdPath (sd://content/ID, sd://DEVICE/path) or a plain path.") var path: String

    func run() throws {
        let path = Actions.argument(self.path)
        let answer = try Via.get(libraryOptions, Via.target("/v1/resolve", [("path", path)])) { library in
            // Without sdd, other devices holding copies are measured now (a connection each, 3 s at most).
            let devices = Operations.devicesHolding(path, library)
            let reach = devices.isEmpty ? nil : try waitFor { await Operations.measureReach(devices, library: library) }
            return try Operations.resolveAnswer(path, library, peers: reach)
        }
        if let result = answer.content {
            if global.json { return try Output.json(result) }
            if result.copies.isEmpty { throw UserError("the library knows no file with content \(result.contentID)") }
            let chosen = result.chosen == nil ? nil : result.copies.firstIndex(where: \.reachable)
            for (i, copy) in result.copies.enumerated() {
                let mark = i == chosen ? "*" : " "
                let rtt = copy.roundTripMilliseconds.map { String(format: ", %.1f ms away", $0) } ?? ""
                print(
                    "\(mark) \(i + 1). \(copy.path)  (\(copy.local ? "this device" : copy.device), \(copy.speed)\(rtt))"
                        + (copy.why.map { ": \($0)" } ?? "")
                )
            }
            if result.chosen == nil { throw UserError("no copy of content \(result.contentID) is reachable now") }
            return
        }
        guard let result = answer.physical else { throw UserError("'\(path)' resolves to nothing") }
        let entry = result.entry
        if global.json { return try Output.json(result) }
        print(result.sdPath)
        print("  on disk: \(result.exists ? "yes" : "no")")
        if let entry {
            print(
                "  indexed: entry \(entry.id), \(entry.category ?? "\(entry.type)")"
                    + (entry.contentID.map { ", content \($0)" } ?? ", content not identified yet")
            )
        } else {
            print("  indexed: no (not inside a location, or not scanned yet)")
        }
    }
}

/// `sd scrub`: reads files in full against their kept hashes to find bit rot; `--repair` restores from copies.
struct ScrubCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scrub",
        abstract: "Find silent corruption: re-read files in full and compare them with their kept hashes.",
        discussion: reflow(
            """
            Each file's full BLAKE3 is kept with the size and modification time it was computed at (by an
            earlier scrub, or by `sd dupes --verify`). A file whose size and time are unchanged but whose
            hash is not was corrupted (a failing disk, a program writing behind the filesystem's back); it is
            reported with the copies known good. A file read for the first time gets its hash kept, for the
            next scrub. A stopped scrub (Ctrl-C, a crash, `sd jobs pause`) goes on where it stopped the next
            time `sd scrub` runs with the same locations, or with `sd jobs resume`.

            --repair puts a good copy's bytes in place of each corrupted file: a copy action, previewed, the
            good copy read and checked first.

            Examples:
              sd scrub --max-rate 50           # at most 50 MB/s, to run in the background
              sd scrub --location Photos --repair
            """
        )
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var libraryOptions: LibraryOptions
    @OptionGroup var action: ActionOptions
    @Option(name: .customLong("location"), help: "A location to scrub (name, path or id; repeat; default: all).")
    var locations: [String] = []
    @Option(help: "Read at most this many MB (10^6 bytes) per second.") var maxRate: Double?
    @Flag(help: "Restore corrupted files from good copies (a previewed copy action).") var repair = false

    struct Report: Encodable {
        var job: String
        var state: String
        var files: Int
        var bytes: Int64
        var baselined: Int
        var changed: Int
        var unreadable: [ActionProblem]
        var corruptions: [Corruption]
    }

    func run() throws {
        if let maxRate, maxRate <= 0 { throw UserError("--max-rate must be above 0 (MB per second)") }
        let library = try libraryOptions.open()
        defer { try? library.close() }
        var keys: [String] = []
        for key in locations {
            guard let found = try library.fetchLocation(key) else {
                throw UserError("no location '\(key)'; see `sd location list`")
            }
            keys.append(found.uuid)
        }
        let request = ScrubRequest(locations: keys, maxBytesPerSecond: maxRate.map { Int64($0 * 1_000_000) })
        let runner = JobRunner(library: library, kinds: [ScrubJob()])
        // A scrub of the same locations that stopped goes on where it was.
        let stopped = try library.listJobs().first { job in
            job.kind == "scrub" && !library.isJobRunning(job.id)
                && (try? JSONDecoder().decode(ScrubRequest.self, from: Data((job.input ?? "").utf8)))?.locations
                    == request.locations
        }
        let id: String
        if let stopped {
            id = stopped.id
            if !global.json { print("going on with the scrub that stopped (job \(id.prefix(8)))") }
        } else {
            id = try runner.submit(kind: "scrub", target: keys.first, input: request).id
        }
        let result = try CopyCommand.runJob(runner, id, json: global.json)
        try Self.report(result, library: library, global: global, action: action, repair: repair)
    }

    /// Prints what the scrub found and, with `repair`, restores what it can.
    static func report(
        _ result: JobRecord,
        library: Library,
        global: GlobalOptions,
        action: ActionOptions,
        repair: Bool
    )
        throws
    {
        let state =
            try result.checkpoint.map { try JSONDecoder().decode(ScrubState.self, from: Data($0.utf8)) } ?? ScrubState()
        if global.json && !repair {
            try Output.json(
                Report(
                    job: result.id,
                    state: result.state,
                    files: state.files,
                    bytes: state.bytes,
                    baselined: state.baselined,
                    changed: state.changed,
                    unreadable: state.unreadable,
                    corruptions: state.corruptions
                )
            )
            if result.state != "completed" { throw ExitCode(ExitStatus.userError) }
            if !state.corruptions.isEmpty { throw ExitCode(ExitStatus.foundProblems) }
            return
        }
        if !global.json {
            for c in state.corruptions {
                print("CORRUPTED: \(c.path)")
                print("  kept hash \(c.expected), now \(c.found)")
                print(c.goodCopies.isEmpty ? "  no good copy known" : "  good copy: \(c.goodCopies[0])")
            }
            for problem in state.unreadable { print("unreadable: \(problem.path): \(problem.reason)") }
            print(
                "scrub \(result.state): \(Format.count(state.files, "file")), \(Format.size(state.bytes)) read; "
                    + "\(state.corruptions.count) corrupted, \(state.baselined) read for the first time (hash kept), "
                    + "\(state.changed) changed since indexed (skipped)"
            )
        }
        if result.state != "completed" { throw ExitCode(1) }
        guard repair, !state.corruptions.isEmpty else {
            if !state.corruptions.isEmpty {
                if !global.json { print("`sd scrub --repair` restores those with a good copy") }
                throw ExitCode(ExitStatus.foundProblems)
            }
            return
        }
        try Actions.commit(
            ScrubRepair.preview(state.corruptions),
            library: library,
            global: global,
            previewOnly: action.preview,
            yes: action.yes,
            question: "Replace the corrupted files by their good copies?"
        )
    }
}
