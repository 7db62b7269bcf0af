import ArgumentParser
import Foundation
import SDAPI
import SDCore
import SDStore
import SDSystem

struct LocationCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "location",
        abstract: "Add, list and remove the folders sd indexes.",
        discussion: reflow(
            """
            Examples:
              sd location add ~/Pictures --name Pictures
              sd location list
              sd location remove Pictures      # removes index data only, never files
            """
        ),
        subcommands: [Add.self, List.self, Remove.self]
    )

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a folder to index (then run `sd index`).",
            discussion: "Example:\n  sd location add /srv/photos --name Photos"
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument(help: "The folder.") var path: String
        @Option(help: "A name for it (default: the folder's name).") var name: String?
        @Flag(help: "Index names and metadata only, no content ids.") var noContent = false

        func run() throws {
            let request = LocationRequest(path: LibraryLocator.absolute(path), name: name, noContent: noContent)
            let location = try Via.post(libraryOptions, "/v1/locations", request) {
                try Operations.addLocation(request, $0)
            }
            if global.json { return try Output.json(location) }
            print(
                "added location \(location.id) '\(location.name)' at \(location.pathString); run `sd index` to index it"
            )
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the locations.",
            discussion: "Example:\n  sd location list --json"
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions

        func run() throws {
            let locations: [Location]
            if let daemon = DaemonLink.client(for: libraryOptions) {
                locations = try DaemonLink.call { try daemon.get("/v1/locations", [Location].self) }
            } else {
                let library = try libraryOptions.open()
                defer { try? library.close() }
                locations = try library.fetchLocations()
            }
            if global.json { return try Output.json(locations) }
            if locations.isEmpty { print("no locations; add one with `sd location add PATH`") }
            for l in locations {
                let state = l.state + (l.stateReason.map { " (\($0))" } ?? "")
                print("\(l.id)  \(l.name)  \(l.pathString)  \(state)")
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a location and its index data. Files on disk are never touched.",
            discussion: reflow(
                """
                The ratings, favorite marks, notes and tags kept on the location's files and folders go with
                their index entries: sd lists them and asks first. Tags on files' contents stay, and are back
                when the location is added and indexed again.

                Examples:
                  sd location remove 2 --preview
                  sd location remove ~/Old -y
                """
            )
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument(help: "The location: its number, name, uuid or path.") var location: String
        @Flag(help: "Only show what would be forgotten.") var preview = false
        @Flag(name: [.customShort("y"), .long], help: "Do not ask, even when metadata goes.") var yes = false

        func run() throws {
            let key = APIClient.query(location).replacingOccurrences(of: "/", with: "%2F")
            let removal = try Via.get(libraryOptions, "/v1/locations/\(key)/removal") {
                try Operations.locationRemoval(try Operations.location(location, $0), $0)
            }
            if preview {
                if global.json { return try Output.json(removal) }
                return print(Self.describe(removal))
            }
            if removal.losesMetadata && !yes {
                if !global.json { print(Self.describe(removal)) }
                guard isatty(0) == 1 else {
                    throw UserError(
                        "metadata on the location's files goes with it: add -y to remove it anyway (standard input is not a terminal)"
                    )
                }
                guard Actions.ask("Remove the location and forget that metadata?") else { return print("nothing done") }
            }
            let removed = try Via.post(libraryOptions, "/v1/locations/\(key)/remove", [String: String]()) {
                try Operations.removeLocation(try Operations.location(location, $0), $0)
            }
            if global.json { return try Output.json(["removedEntries": removed.removedEntries]) }
            print(
                "removed location '\(removed.location)' and \(removed.removedEntries) index entries; no file was touched"
                    + (removal.losesMetadata ? "; the metadata listed above is forgotten" : "")
            )
        }

        static func describe(_ r: LocationRemoval) -> String {
            var lines = ["removing location '\(r.location)' forgets \(r.entries) index entries (no file is touched)"]
            if r.losesMetadata {
                let parts = [
                    (r.ratings, "rating"), (r.favorites, "favorite mark"), (r.notes, "note"),
                    (r.entryTags, "tag on a file or folder"),
                ].filter { $0.0 > 0 }.map { "\($0.0) \($0.0 == 1 ? $0.1 : Self.plural($0.1))" }
                lines.append("  and the metadata kept on them: " + parts.joined(separator: ", "))
                for path in r.examples { lines.append("    \(path)") }
            }
            if r.contentTagged > 0 {
                lines.append(
                    "  tags on the contents of \(Format.count(r.contentTagged, "file")) stay: they are back when the location is indexed again"
                )
            }
            return lines.joined(separator: "\n")
        }

        static func plural(_ noun: String) -> String {
            noun == "tag on a file or folder" ? "tags on files and folders" : noun + "s"
        }
    }
}

struct VolumeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "volume",
        abstract: "Show mounted volumes.",
        subcommands: [List.self]
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List mounted volumes: mount point, filesystem, size, free space, identity.",
            discussion: "Example:\n  sd volume list --all"
        )
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Include virtual filesystems (proc, sysfs, cgroup...).") var all = false

        func run() throws {
            let virtual: Set<String> = [
                "proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "securityfs", "debugfs",
                "tracefs", "pstore", "bpf", "configfs", "fusectl", "hugetlbfs", "autofs", "binfmt_misc",
            ]
            let volumes = Mounts.list().filter { all || !virtual.contains($0.filesystem) }
            if global.json { return try Output.json(volumes) }
            for v in volumes {
                print(
                    "\(v.mountPoint)  \(v.filesystem)  \(Format.size(v.totalBytes)) total  \(Format.size(v.freeBytes)) free\(v.readOnly ? "  read-only" : "")  \(v.identity)"
                )
            }
        }
    }
}
