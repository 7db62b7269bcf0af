import ArgumentParser
import Foundation
import SDAPI
import SDCore
import SDStore
import SDSystem

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
        discussion: reflow(
            """
            A library is one folder, NAME.sdlibrary: the index (SQLite), sidecars and config. `sd library backup`
            copies it while it is in use; `sd library restore` puts a copy back. A library found copied or
            restored takes a new epoch, so devices it syncs with pull its whole state again.

            Examples:
              sd library create Photos
              sd library info --library Photos
              sd library backup /mnt/backup/Photos-2026-12-08.sdlibrary --library Photos
              sd library restore /mnt/backup/Photos-2026-12-08.sdlibrary
            """
        ),
        subcommands: [Create.self, List.self, Info.self, Backup.self, Restore.self, Share.self, Join.self]
    )

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a new library.",
            discussion: reflow(
                """
                Creates NAME.sdlibrary in the data folder ($SD_DATA_DIR, else $XDG_DATA_HOME/sd, else
                ~/.local/share/sd), or in --in DIR.

                Example:
                  sd library create Photos
                """
            )
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
            discussion: reflow(
                """
                Without --library, shows the default library (created on first use).

                Examples:
                  sd library info
                  sd library info --library Photos --check
                """
            )
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
                database     \(Format.size(info.databaseBytes))
                """
            )
            if let integrity = info.integrity { print("integrity    \(integrity)") }
            if damaged { throw ExitCode(ExitStatus.foundProblems) }
        }
    }

    struct Backup: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy a library, consistently, while it is in use.",
            discussion: reflow(
                """
                Makes DEST (a new folder) a copy of the library: SQLite's online backup of the index, checked
                before it is put in place. sdd and sync may go on meanwhile. Thumbnails and other derived files
                are not copied (they are made again).

                Example:
                  sd library backup /mnt/backup/Home-2026-12-08.sdlibrary
                """
            )
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument(help: ArgumentHelp("The new folder to make (it must not exist).", valueName: "dest"))
        var destination: String

        func run() throws {
            let dest = LibraryLocator.absolute(destination)
            guard dest.hasSuffix(Library.folderExtension) else {
                throw UserError(
                    "name the backup NAME\(Library.folderExtension) (e.g. \(dest)\(Library.folderExtension)): sd knows its own folders by that name, and never indexes or acts on them"
                )
            }
            if let own = OwnFolders.holding(FileSystem.parent(of: dest)) {
                throw UserError("'\(dest)' is inside sd's own folder '\(own)'; put the backup elsewhere")
            }
            let library = try libraryOptions.open()
            defer { try? library.close() }
            let bar = FractionLine(enabled: !global.json, label: "backing up \(library.manifest.name)")
            let report = try library.backup(to: dest) { bar.show($0) }
            bar.clear()
            if global.json { return try Output.json(report) }
            print(
                "backed up library '\(report.library)' (\(Format.count(report.entries, "entry")), \(Format.size(report.bytes))) to \(report.path)"
            )
        }
    }

    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put a backup of a library back.",
            discussion: reflow(
                """
                Checks the backup and puts a copy of it where the library is (the library of the backup's name
                in the data folder, or --library NAME|PATH). The library that was there is kept beside it, renamed
                NAME.sdlibrary.before-restore-TIME; the backup is not changed. Stop sdd first if it runs this
                library. The restored library takes a new epoch: devices it syncs with pull its whole state, and it
                pulls theirs (getting back what they hold of changes made after the backup).

                Example:
                  sd library restore /mnt/backup/Home-2026-12-08.sdlibrary
                """
            )
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument(help: ArgumentHelp("The backup (a .sdlibrary folder).", valueName: "backup"))
        var backup: String

        func run() throws {
            let source = LibraryLocator.absolute(backup)
            let manifest = try Library.manifest(at: source)
            var options = libraryOptions
            if options.library == nil { options.library = manifest.name }
            let target = LibraryLocator().path(for: options.library ?? manifest.name)
            if DaemonLink.client(for: options) != nil {
                throw UserError(
                    "sdd is running library '\(manifest.name)': stop it (`sd daemon stop`), restore, then start it again"
                )
            }
            let report = try Library.restore(from: source, to: target, device: try options.device())
            if global.json { return try Output.json(report) }
            print("restored library '\(report.library)' (\(Format.count(report.entries, "entry"))) to \(report.path)")
            if let kept = report.keptAt {
                print("the library as it was is kept at \(kept); remove it once the restored one is right")
            }
            print("it takes a new epoch: the devices it syncs with pull its whole state when they next connect")
        }
    }
}

/// A one-line "label: N%" display on a terminal (standard error), at most ten times a second; silent when it
/// is not a terminal.
final class FractionLine: @unchecked Sendable {
    // @unchecked: `last` is only touched under `lock`.
    private let enabled: Bool
    private let label: String
    private let lock = NSLock()
    private var last = ContinuousClock.now

    init(enabled: Bool, label: String) {
        self.enabled = enabled && isatty(2) == 1
        self.label = label
    }

    func show(_ fraction: Double) {
        guard enabled else { return }
        lock.withLock {
            let now = ContinuousClock.now
            guard now - last > .milliseconds(100) else { return }
            last = now
            FileHandle.standardError.write(Data("\r\u{1B}[K\(label): \(Int(fraction * 100))%".utf8))
        }
    }

    func clear() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
