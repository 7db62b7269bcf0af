import ArgumentParser
import Foundation
import SDCore
import SDStore

/// Options for commands that work on a library.
struct LibraryOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "The library: a NAME under the data folder, or a PATH to a .sdlibrary folder.",
            valueName: "name|path"
        )
    )
    var library: String?

    var locator: LibraryLocator { LibraryLocator() }

    func device() throws -> DeviceIdentity {
        try DeviceIdentity.loadOrCreate(configDirectory: DeviceIdentity.configDirectory())
    }

    /// Opens the chosen library; the default one is created on first use.
    func open() throws -> Library {
        try locator.open(library, device: try device())
    }
}

struct LibraryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "library",
        abstract: "Create, list and inspect libraries.",
        discussion: """
            A library is one folder, NAME.sdlibrary: the index (SQLite), sidecars and config. Copying the folder
            is a backup.

            Examples:
              sd library create Photos
              sd library info --library Photos
            """,
        subcommands: [Create.self, List.self, Info.self, Share.self, Join.self]
    )

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a new library.",
            discussion: """
                Creates NAME.sdlibrary in the data folder ($SD_DATA_DIR, else $XDG_DATA_HOME/sd, else
                ~/.local/share/sd), or in --in DIR.

                Example:
                  sd library create Photos
                """
        )
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The library's name.") var name: String
        @Option(name: .customLong("in"), help: ArgumentHelp("Create it in this folder instead.", valueName: "dir"))
        var directory: String?

        func run() throws {
            let locator = LibraryLocator()
            let device = try LibraryOptions().device()
            let dir = directory.map(LibraryLocator.absolute) ?? locator.dataDirectory
            let library = try Library.create(name: name, in: dir, device: device)
            defer { try? library.close() }
            if global.json {
                try Output.json(try library.info())
            } else {
                print("created library '\(name)' (\(library.manifest.id)) at \(library.path)")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the libraries in the data folder.",
            discussion: "Example:\n  sd library list --json"
        )
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let locator = LibraryLocator()
            let listed = locator.list()
            if global.json { return try Output.json(listed) }
            if listed.isEmpty {
                print("no libraries in \(locator.dataDirectory); create one with `sd library create NAME`")
            }
            for item in listed {
                if let problem = item.problem {
                    print("\(item.name)  \(item.path)  (cannot be read: \(problem))")
                } else {
                    print("\(item.name)  \(item.id ?? "-")  \(item.path)")
                }
            }
        }
    }

    /// What `library info --check --json` says of a library too damaged to open.
    struct DamagedLibrary: Encodable {
        var path: String
        var opened: Bool
        var integrity: String
        var error: String
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a library's identity, schema and counts.",
            discussion: """
                Without --library, shows the default library (created on first use).

                Examples:
                  sd library info
                  sd library info --library Photos --check
                """
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @Flag(help: "Also run SQLite's full integrity check (slow on large libraries).") var check = false

        func run() throws {
            let library: Library
            do {
                library = try libraryOptions.open()
            } catch let error as LibraryError where check && error.code == .corrupt {
                // Too damaged to open: the check still runs (read-only) and reports what it found.
                let path = libraryOptions.locator.path(for: libraryOptions.library ?? LibraryLocator.defaultName)
                let integrity = Library.checkDatabase(libraryAt: path)
                if global.json {
                    try Output.json(
                        DamagedLibrary(path: path, opened: false, integrity: integrity, error: error.message)
                    )
                } else {
                    print("path         \(path)\nintegrity    \(integrity)\n\n\(error.message)")
                }
                throw ExitCode(integrity == "ok" ? 1 : ExitStatus.foundProblems)
            }
            defer { try? library.close() }
            let info = try library.info(checkIntegrity: check)
            let damaged = info.integrity.map { $0 != "ok" } ?? false
            if global.json {
                try Output.json(info)
                if damaged { throw ExitCode(ExitStatus.foundProblems) }
                return
            }
            print(
                """
                library      \(info.name) (\(info.id))
                path         \(info.path)
                schema       \(info.schemaVersion)
                created      \(ISO8601DateFormatter().string(from: info.created))
                this device  \(library.device.name) (\(library.device.id))
                devices      \(info.devices)
                locations    \(info.locations)
                entries      \(info.entries)
                contents     \(info.contentIdentities)
                tags         \(info.tags)
                jobs         \(info.jobs)
                database     \(info.databaseBytes) bytes
                """
            )
            if let integrity = info.integrity { print("integrity    \(integrity)") }
            if damaged { throw ExitCode(ExitStatus.foundProblems) }
        }
    }
}
