import ArgumentParser
import Dispatch
import Foundation
import SDAPI
import SDIndexer
import SDStore

struct WatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Keep every location's index live while files change (runs until Ctrl-C or SIGTERM).",
        discussion: reflow(
            """
            First brings each location up to date with what changed while sd was not running: folders whose
            modification time moved are read again (that finds files added, removed and renamed), then a
            background sweep looks at every file for ones modified in place. After that, changes are applied
            as they happen (inotify), in batches, usually well within a second. A location whose disk goes
            away is marked offline, never read as deleted.

            One line is printed per batch of changes; with --json, one JSON object per line.

            Examples:
              sd watch
              sd watch --json | jq .
            """
        )
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var libraryOptions: LibraryOptions
    @Flag(help: "Names and metadata only: skip content identification of new and changed files.") var noContent =
        false
    @Flag(help: "Skip the background sweep for files modified in place while sd was not running.") var noSweep =
        false
    @Option(help: "Seconds between rescans of folders that could not be watched (watch limit reached).")
    var rescanInterval: Double = 60

    func run() throws {
        #if !canImport(Glibc)
            throw UserError("sd watch needs Linux's inotify; watching on this system is not written yet (use sd index)")
        #else
            try watch()
        #endif
    }

    #if canImport(Glibc)
        func watch() throws {
            let library = try libraryOptions.open()
            defer { try? library.close() }
            let locations = try library.fetchLocations()
            if locations.isEmpty { throw UserError("no locations to watch; add one with `sd location add PATH`") }
            let held = try locations.map { location -> LocationLock in
                do { return try library.lockLocation(location) } catch let error as IndexError {
                    throw UserError(error.message)
                }
            }
            defer { withExtendedLifetime(held) {} }
            var options = WatchOptions()
            options.index.indexContent = !noContent
            options.sweep = !noSweep
            options.rescanInterval = .milliseconds(Int64(max(0.1, rescanInterval) * 1000))
            let json = global.json
            let control = WatchControl()
            let sources = [SIGINT, SIGTERM].map { number -> any DispatchSourceSignal in
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler { control.stop() }
                source.resume()
                return source
            }
            defer { sources.forEach { $0.cancel() } }
            let watcher = try Watcher(library: library, options: options) { event in Self.print(event, json: json) }
            try watcher.run(control)
            if !json { Swift.print("stopped") }
        }

        static func print(_ event: WatchEvent, json: Bool) {
            let (line, object) = Events.describe(event)
            if case .warning(let message) = event { Output.warning(message) }
            let text = json ? Events.jsonLine(object) : (line.isEmpty ? nil : line)
            if let text { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }
        }
    #endif
}
