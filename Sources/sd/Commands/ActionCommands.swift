import ArgumentParser
import Foundation
import SDAPI
import SDActions
import SDCore
import SDJobs
import SDStore
import SDSystem

/// `sd mv`: a move previewed, then a durable job (a rename on one filesystem; copy, verify, delete across).
struct MoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mv",
        abstract: "Move files and folders: previewed, then a durable job; `sd undo` moves them back.",
        discussion: reflow(
            """
            Like `mv`: one source to a new name, or any number into an existing folder. On one filesystem each
            source is renamed in one step; across filesystems every file is copied, flushed, verified against its
            source, and only then is the source removed. An interrupted move resumes with `sd jobs resume ID`.

            Examples:
              sd mv ~/Downloads/*.pdf ~/Documents/ --preview
              sd mv -y ~/Videos/2019 /mnt/archive/
            """
        )
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var libraryOptions: LibraryOptions
    @OptionGroup var action: ActionOptions
    @Argument(help: "What to move, then where (the last path).") var paths: [String]
    @Option(help: "When a target exists: fail, skip, overwrite or rename.") var onConflict: ConflictPolicy = .fail
    @Flag(help: "Verify copies across filesystems by the BLAKE3 of all their bytes.") var verifyFull = false

    func run() throws {
        try CopyCommand.transfer(paths, move: true, onConflict, verifyFull, global, libraryOptions, action)
    }
}

/// `sd rm`: into the library's trash by default, or for good.
struct RemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm",
        abstract: "Move files and folders to the trash (`sd trash`), or delete them for good with --permanent.",
        discussion: reflow(
            """
            The trash is a folder on the same filesystem (inside the library, or `.sd-trash-UID` at the top of
            another filesystem), so trashing is a rename and `sd undo` or `sd trash restore` puts things back.
            A permanent deletion that would leave some content with fewer copies than the library's min-copies
            (see `sd config`) is refused unless --force-last-copy; the copies are confirmed by full BLAKE3 first.

            Examples:
              sd rm ~/Downloads/old-installer.iso
              sd rm --permanent --preview ~/tmp/build
            """
        )
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var libraryOptions: LibraryOptions
    @OptionGroup var action: ActionOptions
    @Argument(help: "What to delete.") var paths: [String]
    @Flag(help: "Delete for good instead of moving to the trash.") var permanent = false
    @Flag(help: "Delete even content that would be left with fewer copies than min-copies.") var forceLastCopy = false

    func run() throws {
        let request = ActionRequest(
            action: "delete",
            paths: paths,
            permanent: permanent,
            forceLastCopy: forceLastCopy
        )
        try Actions.perform(request, global: global, libraryOptions: libraryOptions, options: action)
    }
}

/// `sd rename PATH NEW-NAME`.
struct RenameCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rename",
        abstract: "Rename a file or folder in its folder (previewed; `sd undo` renames it back).",
        discussion: "Example: sd rename -y ~/Pictures/IMG_0001.jpg beach.jpg"
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var libraryOptions: LibraryOptions
    @OptionGroup var action: ActionOptions
    @Argument(help: "The file or folder.") var path: String
    @Argument(help: "Its new name (a name, not a path).") var newName: String
    @Option(help: "When the name is taken: fail, overwrite (files only) or rename.") var onConflict: ConflictPolicy =
        .fail

    func run() throws {
        let request = ActionRequest(action: "rename", paths: [path], newName: newName, onConflict: onConflict)
        try Actions.perform(request, global: global, libraryOptions: libraryOptions, options: action)
    }
}

/// `sd mkdir PATH...`.
struct MakeFolderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mkdir",
        abstract: "Make folders, with any missing parents (recorded in the index and the audit log).",
        discussion: reflow(
            """
            Making empty folders changes nothing that exists, so sd does not ask (-y is accepted).

            Example: sd mkdir ~/Pictures/2026/summer
            """
        )
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var libraryOptions: LibraryOptions
    @OptionGroup var action: ActionOptions
    @Argument(help: "The folders to make.") var paths: [String]

    func run() throws {
        let request = ActionRequest(action: "mkdir", paths: paths)
        try Actions.perform(request, global: global, libraryOptions: libraryOptions, options: action, yes: true)
    }
}

/// `sd undo [JOB]`: reverses a move, rename or trashing if its files are unchanged since.
struct UndoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "undo",
        abstract: "Reverse the last move, rename or trashing (or the one given), if its files did not change since.",
        discussion: reflow(
            """
            Each file is checked by content id against what it was when the action completed; a file changed,
            gone, or a place taken since makes undo refuse and say which. The reversal is itself an action (a
            move, or a restore from the trash): previewed, a durable job, in the audit log.

            Examples:
              sd undo --preview
              sd undo 3f2a9c1e -y
            """
        )
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var libraryOptions: LibraryOptions
    @OptionGroup var action: ActionOptions
    @Argument(help: "The action's job id (or a prefix; see `sd log`). Default: the last one not undone.") var id:
        String?

    func run() throws {
        let request = ActionRequest(action: "undo", job: id)
        try Actions.perform(request, global: global, libraryOptions: libraryOptions, options: action)
    }
}

/// `sd trash list | restore | empty`.
struct TrashCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trash",
        abstract: "What `sd rm` put in the trash: list it, restore it, empty it.",
        subcommands: [List.self, Restore.self, Empty.self],
        defaultSubcommand: List.self
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List what is in the trash, newest first.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions

        func run() throws {
            let items = try Via.get(libraryOptions, "/v1/trash") { try $0.trashItems() }
            if global.json { return try Output.json(items) }
            if items.isEmpty { return print("the trash is empty") }
            let dates = ISO8601DateFormatter()
            for item in items {
                print(
                    "\(item.id.prefix(8))  \(dates.string(from: Date(timeIntervalSince1970: Double(item.deletedAt) / 1000)))"
                        + "  \(item.kind)  \(Format.count(item.files, "file"))  \(Format.size(item.bytes))  \(item.originalPath)"
                )
            }
        }
    }

    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put trashed items back where they were (if unchanged and their place is free)."
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @OptionGroup var action: ActionOptions
        @Argument(help: "Item ids (or prefixes) from `sd trash list`.") var ids: [String] = []
        @Flag(help: "Restore everything in the trash.") var all = false

        func run() throws {
            let request = ActionRequest(action: "restore", paths: ids, all: all)
            try Actions.perform(request, global: global, libraryOptions: libraryOptions, options: action)
        }
    }

    struct Empty: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete trashed items for good (all, or those given); refused below min-copies."
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @OptionGroup var action: ActionOptions
        @Argument(help: "Item ids (or prefixes). Default: everything.") var ids: [String] = []
        @Flag(help: "Delete even content that would be left with fewer copies than min-copies.") var forceLastCopy =
            false

        func run() throws {
            let request = ActionRequest(action: "empty-trash", paths: ids, forceLastCopy: forceLastCopy)
            try Actions.perform(request, global: global, libraryOptions: libraryOptions, options: action)
        }
    }
}

/// `sd config get | set | list`: library settings (min-copies, library-wide or per tag; sync-retention-days).
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract:
            "Library settings: min-copies (the copies of any content a permanent delete must leave), sync-retention-days.",
        discussion: reflow(
            """
            sync-retention-days (default 90): how long sync history (changes, deletion marks) is kept; sdd
            compacts what is older. A device away longer pulls whole states instead of the changes it missed.

            Examples:
              sd config set min-copies 2
              sd config set min-copies 3 --tag photos
              sd config set sync-retention-days 30
              sd config list
            """
        ),
        subcommands: [Set.self, Get.self, List.self]
    )

    static let keys = ["min-copies", "sync-retention-days"]

    /// A setting as `config set|get --json` print it.
    struct Setting: Encodable {
        var key: String
        var value: String?
        var tag: String?
        var isDefault = false
    }

    static func scope(_ tag: String?, _ library: Library) throws -> String {
        guard let tag else { return "" }
        guard let uuid = try library.tagUUID(named: tag) else { throw UserError("no tag named '\(tag)'") }
        return "tag:\(uuid)"
    }

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a setting (library-wide, or for a tag).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument(help: "min-copies or sync-retention-days") var key: String
        @Argument(help: "The value (min-copies: 0 to 100; sync-retention-days: 1 to 3650).") var value: String
        @Option(help: "Only for files with this tag.") var tag: String?

        func run() throws {
            guard ConfigCommand.keys.contains(key) else {
                throw UserError("unknown setting '\(key)'; known: \(ConfigCommand.keys.joined(separator: ", "))")
            }
            let range = key == "min-copies" ? 0...100 : 1...3650
            guard let number = Int(value), range.contains(number) else {
                throw UserError(
                    "\(key) is a whole number from \(range.lowerBound) to \(range.upperBound), not '\(value)'"
                )
            }
            if key != "min-copies" && tag != nil { throw UserError("\(key) is library-wide: no --tag") }
            let library = try libraryOptions.open()
            defer { try? library.close() }
            try library.setSetting(key, String(number), scope: try ConfigCommand.scope(tag, library))
            if global.json { return try Output.json(Setting(key: key, value: String(number), tag: tag)) }
            print("\(key) = \(number)\(tag.map { " for tag \($0)" } ?? "")")
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a setting.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument(help: "min-copies or sync-retention-days") var key: String
        @Option(help: "For this tag.") var tag: String?

        func run() throws {
            let library = try libraryOptions.open()
            defer { try? library.close() }
            let value = try library.setting(key, scope: try ConfigCommand.scope(tag, library))
            let defaults = ["min-copies": "1 (default)", "sync-retention-days": "90 (default)"]
            if global.json {
                // The value in force: the one set, else (library-wide) the default; null when a tag has none.
                let inForce = value ?? (tag == nil ? defaults[key].map { String($0.prefix { $0 != " " }) } : nil)
                return try Output.json(
                    Setting(key: key, value: inForce, tag: tag, isDefault: value == nil && inForce != nil)
                )
            }
            print(value ?? (tag == nil ? defaults[key] : nil) ?? "not set")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the settings made.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions

        func run() throws {
            let library = try libraryOptions.open()
            defer { try? library.close() }
            let settings = try library.settings()
            if global.json {
                return try Output.json(settings.map { ["key": $0.key, "scope": $0.scope, "value": $0.value] })
            }
            if settings.isEmpty { return print("no settings made (min-copies is 1 by default)") }
            for s in settings { print("\(s.key) = \(s.value)\(s.scope.isEmpty ? "" : "  (\(s.scope))")") }
        }
    }
}
