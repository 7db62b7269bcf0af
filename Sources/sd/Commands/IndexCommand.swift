import ArgumentParser
import Foundation
import SDAPI
import SDCore
import SDIndexer
import SDStore
import SDSystem

struct IndexCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "index",
        abstract: "Index locations: discover, process, aggregate, identify content, queue analysis.",
        discussion: reflow(
            """
            Without arguments, indexes every location. A run interrupted (even by SIGKILL) resumes where it
            stopped the next time. A scan never reads a missing disk as deleted files: a location whose folder
            is gone is marked offline and keeps its entries, and a scan that would remove more than half of a
            location's entries (or more than 10,000) stops before removing anything.

            Examples:
              sd index
              sd index Pictures --no-content
            """
        )
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var libraryOptions: LibraryOptions
    @Argument(help: "Locations (number, name, uuid or path); all when none.") var locations: [String] = []
    @Flag(help: "Names and metadata only: skip content identification.") var noContent = false
    @Flag(help: "Go on even if the scan would remove many entries.") var allowMassDelete = false
    @Flag(help: .hidden) var noSearchIndex = false

    func run() throws {
        if let daemon = DaemonLink.client(for: libraryOptions) { return try DaemonLink.call { try through(daemon) } }
        let library = try libraryOptions.open()
        defer { try? library.close() }
        var chosen: [Location] = []
        if locations.isEmpty {
            chosen = try library.fetchLocations()
            if chosen.isEmpty { throw UserError("no locations to index; add one with `sd location add PATH`") }
        } else {
            for key in locations {
                guard let found = try library.fetchLocation(key) else {
                    throw UserError("no location '\(key)'; see `sd location list`")
                }
                chosen.append(found)
            }
        }
        var options = IndexOptions()
        options.indexContent = !noContent
        options.allowMassDelete = allowMassDelete
        options.searchIndex = !noSearchIndex
        let bar = ProgressLine(enabled: !global.json)
        let indexer = Indexer(library: library, options: options) { bar.show($0) }
        var reports: [IndexReport] = []
        var failure: (any Error)?
        for location in chosen {
            do {
                let held = try library.lockLocation(location)
                defer { withExtendedLifetime(held) {} }
                let report = try indexer.index(location)
                bar.clear()
                reports.append(report)
                if !global.json { print(Self.describe(report)) }
            } catch let error as IndexError {
                bar.clear()
                Output.error(error.message)
                failure = error
            } catch let stop as JobStop {
                bar.clear()
                let resume = stop == .paused ? "; `sd index \(location.name)` or `sd jobs resume` goes on" : ""
                Output.error("indexing \(location.name) was \(stop.state) (`sd jobs`)\(resume)")
                failure = stop
            } catch let error as JobError {
                bar.clear()
                Output.error(error.message)
                failure = error
            }
        }
        if global.json { try Output.json(reports) }
        if failure != nil { throw ExitCode(1) }
    }

    /// The same run by the daemon (which stops watching the locations meanwhile).
    func through(_ daemon: APIClient) throws {
        let request = IndexRequest(
            locations: locations,
            noContent: noContent ? true : nil,
            allowMassDelete: allowMassDelete ? true : nil,
            noSearchIndex: noSearchIndex ? true : nil
        )
        let starts = try daemon.post("/v1/index", request, [IndexStart].self)
        var reports: [IndexReport] = []
        var failed = false
        for start in starts {
            var report = start.report
            if let id = start.job {
                let answer = try Actions.wait(for: id, daemon, json: global.json)
                report = answer.report
                if answer.job.state != "completed" {
                    let resume =
                        answer.job.state == "paused" ? "; `sd index \(start.location)` or `sd jobs resume` goes on" : ""
                    Output.error(
                        answer.job.error
                            ?? "indexing \(start.location) was \(answer.job.state) (`sd jobs`)\(resume)"
                    )
                    failed = true
                    continue
                }
            }
            guard let report else { continue }
            reports.append(report)
            if !global.json { print(Self.describe(report)) }
        }
        if global.json { try Output.json(reports) }
        if failed { throw ExitCode(1) }
    }

    static func describe(_ r: IndexReport) -> String {
        if let offline = r.offline { return "\(r.location): offline: \(offline)" }
        let c = r.counts
        var text =
            "\(r.location): \(Format.count(c.listed, "entry")) (\(c.inserted) new, \(c.updated) changed, \(c.unchanged) unchanged"
        text += ", \(r.removals.removed) removed, \(r.removals.moved) moved)"
        if r.hashed > 0 || r.hashErrors > 0 { text += "; \(Format.count(r.hashed, "file")) identified" }
        if r.hashErrors > 0 { text += ", \(r.hashErrors) unreadable" }
        if c.unreadableFolders > 0 { text += "; \(Format.count(c.unreadableFolders, "folder")) unreadable" }
        if r.resumed { text += "; resumed an interrupted run" }
        text += String(format: " in %.2f s", r.seconds)
        return text
    }
}

/// A one-line progress display on a terminal (standard error); silent when it is not a terminal.
final class ProgressLine: @unchecked Sendable {
    // @unchecked: `last` is only touched under `lock`.
    private let enabled: Bool
    private let lock = NSLock()
    private var last = ContinuousClock.now - .seconds(1)

    init(enabled: Bool) { self.enabled = enabled && isatty(2) == 1 }

    func show(_ p: IndexProgress) {
        guard enabled else { return }
        lock.withLock {
            let now = ContinuousClock.now
            guard now - last > .milliseconds(100) else { return }
            last = now
            let seconds = max(
                0.001,
                Double(p.elapsed.components.seconds) + Double(p.elapsed.components.attoseconds) / 1e18
            )
            var text = "\(p.location): \(p.phase.rawValue)"
            switch p.phase {
            case .processing, .discovery:
                text += "  \(Format.count(p.entries, "entry"))  \(Int(Double(p.entries) / seconds))/s"
            case .contentIdentification:
                let pct = p.toHash > 0 ? 100 * p.hashed / p.toHash : 100
                text += "  \(p.hashed)/\(p.toHash) files (\(pct)%)"
            default: break
            }
            FileHandle.standardError.write(Data("\r\u{1B}[K\(shown(text))".utf8))
        }
    }

    func clear() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
