import ArgumentParser
import Foundation
import SDAPI
import SDStore

/// `sd log`: what was done to files, by whom, with what outcome.
struct LogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "The audit log: every action committed or refused, newest first."
    )
    @OptionGroup var global: GlobalOptions
    @OptionGroup var libraryOptions: LibraryOptions
    @Option(help: "At most this many entries.") var limit = 50

    func run() throws {
        let log = try Via.get(libraryOptions, "/v1/log?limit=\(max(1, limit))") {
            try $0.auditLog(limit: max(1, limit))
        }
        if global.json { return try Output.json(log) }
        if log.isEmpty {
            print("nothing in the audit log yet")
            return
        }
        let dates = ISO8601DateFormatter()
        for entry in log {
            var line = "\(dates.string(from: Date(timeIntervalSince1970: Double(entry.at) / 1000)))  "
            line += "\(entry.actor)  \(entry.action)  \(entry.outcome)"
            if let target = entry.target { line += "  \(target)" }
            if let job = entry.jobID { line += "  (job \(job.prefix(8)))" }
            if let details = entry.details { line += "  \(details)" }
            print(line)
        }
    }
}
