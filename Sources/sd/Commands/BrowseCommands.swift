import ArgumentParser
import Foundation
import SDAPI
import SDCore
import SDStore
import SDSystem

struct LsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract: "List a folder's children from the index (not from the disk).",
        discussion: reflow(
            """
            Examples:
              sd ls ~/Pictures --long
              sd ls sd://<device-id>/home/me/Pictures
            """
        )
    )
    @OptionGroup var global: GlobalOptions
    @OptionGroup var libraryOptions: LibraryOptions
    @Argument(help: "A folder path or SdPath (default: the current folder).") var path: String?
    @Flag(name: .shortAndLong, help: "Show kind, size, modified time and content id.") var long = false

    func run() throws {
        let target: [UInt8]
        var device: DeviceID?
        if let path, path.hasPrefix("sd://") {
            let parsed: SDPath
            do { parsed = try SDPath(parsing: path) } catch { throw UserError(error.message) }
            guard case .physical(let owner, let bytes) = parsed else {
                throw UserError("`sd ls` lists folders; '\(path)' is a content path (see `sd path parse`)")
            }
            // Another device's folder is listed from its entries as synced here (`sd library share`).
            device = owner
            target = bytes
        } else {
            target = PathText.bytes(LibraryLocator.absolute(path ?? "."))
        }
        let items: [ListItem]
        if let daemon = DaemonLink.client(for: libraryOptions) {
            let asked = device.map { SDPath.physical(device: $0, path: target).description }
            let query = APIClient.query(asked ?? PathText.string(target))
            items = try DaemonLink.call { try daemon.get("/v1/ls?path=\(query)", [ListItem].self) }
        } else {
            let library = try libraryOptions.open()
            defer { try? library.close() }
            do { items = try Operations.list(library, path: target, device: device) } catch let error as NotInIndex {
                throw UserError(error.message)
            }
        }
        if global.json { return try Output.json(items) }
        for item in items {
            // The name itself: `print` shows it escaped where it must be.
            let display = item.name + (item.type == "directory" ? "/" : "")
            if long {
                print(
                    "\(pad(item.category ?? item.type, 12)) \(pad(Format.size(item.size), 10, right: true))  \(item.modified ?? "-")  \(pad(item.contentID ?? "-", 16))  \(display)\(item.error.map { "  [\($0)]" } ?? "")"
                )
            } else {
                print(display)
            }
        }
    }

    func pad(_ s: String, _ n: Int, right: Bool = false) -> String {
        s.count >= n
            ? s
            : (right ? String(repeating: " ", count: n - s.count) + s : s + String(repeating: " ", count: n - s.count))
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show what the library holds: entries, bytes, kinds, duplicates, pending work, jobs.",
        discussion: "Example:\n  sd status --json"
    )
    @OptionGroup var global: GlobalOptions
    @OptionGroup var libraryOptions: LibraryOptions

    func run() throws {
        let s: IndexStatus
        if let daemon = DaemonLink.client(for: libraryOptions) {
            s = try DaemonLink.call { try daemon.get("/v1/status", IndexStatus.self) }
        } else {
            let library = try libraryOptions.open()
            defer { try? library.close() }
            s = try library.status()
        }
        if global.json { return try Output.json(s) }
        print("entries     \(s.entries) (\(Format.count(s.files, "file")), \(Format.count(s.folders, "folder")))")
        print("bytes       \(s.bytes) (\(Format.size(s.bytes)))")
        print("contents    \(s.contents) distinct")
        print(
            "duplicates  \(Format.count(s.duplicateGroups, "group")), \(Format.count(s.duplicateFiles, "file")), \(Format.size(s.wastedBytes)) wasted"
        )
        // (Analysis tasks are queued for the analysis sd does not run yet: not shown as pending work.)
        print("pending     \(Format.count(s.pendingContent, "file")) to identify")
        print("errors      \(Format.count(s.errors, "entry")) could not be read")
        print("jobs        \(s.runningJobs) running or interrupted")
        for (kind, k) in s.kinds.sorted(by: { $0.value.files > $1.value.files }) {
            print(
                "  \(kind.padding(toLength: 13, withPad: " ", startingAt: 0)) \(Format.count(k.files, "file")), \(Format.size(k.bytes))"
            )
        }
        for l in s.locations {
            print(
                "location    \(l.name)  \(l.path)  \(l.state)\(l.stateReason.map { " (\($0))" } ?? "")  \(Format.count(l.entries, "entry"))"
            )
        }
    }
}

struct DebugCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debug",
        abstract: "Tools for tests and diagnosis.",
        shouldDisplay: false,
        subcommands: [DumpIndex.self, SearchBench.self]
    )

    struct DumpIndex: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dump-index",
            abstract: "Print a canonical dump of a location's index."
        )
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument var location: String

        func run() throws {
            let library = try libraryOptions.open()
            defer { try? library.close() }
            guard let found = try library.fetchLocation(location) else { throw UserError("no location '\(location)'") }
            FileHandle.standardOutput.write(Data(try library.canonicalDump(location: found).utf8))
        }
    }
}
