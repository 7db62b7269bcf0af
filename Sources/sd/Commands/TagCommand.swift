import ArgumentParser
import Foundation
import SDAPI
import SDStore

/// `sd tag`: tags, shared metadata that follows a file's content to its copies.
struct TagCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tag",
        abstract: "Tags: create, list, rename, delete; add to and remove from files and folders.",
        discussion: reflow(
            """
            Names are hierarchical (`finance/tax`). A tag on a file with a content id is on its content: every
            copy, here or on another device, carries it; files not identified yet and folders carry their own.
            Every change is kept in the library's change log with a hybrid logical clock stamp, for sync.
            `sd search tag:NAME` finds what carries a tag.

            Examples:
              sd tag create finance/tax --color '#2a9d8f'
              sd tag add finance/tax ~/Documents/2025/*.pdf
              sd tag show ~/Documents/2025/return.pdf
            """
        ),
        subcommands: [Create.self, List.self, Rename.self, Delete.self, Add.self, Remove.self, Show.self],
        defaultSubcommand: List.self
    )

    static func edit(_ edit: TagEdit, _ options: LibraryOptions, _ global: GlobalOptions) throws {
        let answer = try Via.post(options, "/v1/tags/edit", edit) {
            MessageAnswer(message: try Operations.editTag(edit, $0))
        }
        if global.json { return try Output.json(answer) }
        print(answer.message)
    }

    static func run<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as TagError { throw UserError(error.message) }
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a tag (and its missing parents).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument(help: "Its name, e.g. photos or finance/tax.") var name: String
        @Option(help: "A color, #rrggbb.") var color: String?

        func run() throws {
            try TagCommand.edit(TagEdit(action: "create", name: name, color: color), libraryOptions, global)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the tags and how many items carry each.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions

        func run() throws {
            let tags = try Via.get(libraryOptions, "/v1/tags") { try $0.tags() }
            if global.json { return try Output.json(tags) }
            if tags.isEmpty { return print("no tags yet (`sd tag create NAME`)") }
            for tag in tags {
                print("\(tag.name)\(tag.color.map { " \($0)" } ?? "")  \(Format.count(tag.uses, "item"))")
            }
        }
    }

    struct Rename: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rename a tag (its children follow).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument var name: String
        @Argument var newName: String

        func run() throws {
            try TagCommand.edit(TagEdit(action: "rename", name: name, newName: newName), libraryOptions, global)
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a tag and the tags below it (files are untouched)."
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument var name: String

        func run() throws { try TagCommand.edit(TagEdit(action: "delete", name: name), libraryOptions, global) }
    }

    /// Tagging is an action: previewed (what changes, what is so already, what is not indexed), then a job,
    /// audited. It touches no file and is undone by its opposite, so it does not ask (-y is accepted).
    static func set(
        _ tag: String,
        _ paths: [String],
        present: Bool,
        _ global: GlobalOptions,
        _ options: LibraryOptions,
        _ action: ActionOptions
    ) throws {
        let request = ActionRequest(action: present ? "tag" : "untag", paths: paths, tag: tag)
        try Actions.perform(request, global: global, libraryOptions: options, options: action, yes: true)
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put a tag on files and folders of the index (previewed with --preview; a job, audited)."
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @OptionGroup var action: ActionOptions
        @Argument var tag: String
        @Argument(help: "Paths or SdPaths.") var paths: [String]

        func run() throws { try TagCommand.set(tag, paths, present: true, global, libraryOptions, action) }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take a tag off files and folders (previewed with --preview; a job, audited)."
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @OptionGroup var action: ActionOptions
        @Argument var tag: String
        @Argument(help: "Paths or SdPaths.") var paths: [String]

        func run() throws { try TagCommand.set(tag, paths, present: false, global, libraryOptions, action) }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The tags on a file or folder.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument var path: String

        func run() throws {
            let path = Actions.argument(self.path)
            let tags = try Via.get(libraryOptions, Via.target("/v1/tags/of", [("path", path)])) {
                try Operations.tags(of: path, $0)
            }
            if global.json { return try Output.json(tags) }
            print(tags.isEmpty ? "no tags" : tags.joined(separator: "\n"))
        }
    }
}

/// `sd meta set | show`: a file's rating, favorite mark and note.
struct MetaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meta",
        abstract: "Rate, mark as favorite and annotate files and folders of the index (shared metadata).",
        discussion: reflow(
            """
            These belong to the file at its place (followed across renames and moves), not to its content as
            tags do. Every change is written to the change log, stamped with this device's clock, for sync.

            Examples:
              sd meta set ~/Pictures/beach.jpg --rating 5 --favorite
              sd meta set ~/Documents/tax-2025.pdf --note "filed 2026-03-02"
              sd meta show ~/Pictures/beach.jpg
            """
        ),
        subcommands: [Change.self, Show.self]
    )

    struct Change: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Change the rating, favorite mark or note."
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument(help: "Paths or SdPaths.") var paths: [String]
        @Option(help: "A rating from 0 to 5.") var rating: Int?
        @Flag(inversion: .prefixedNo, help: "Mark as a favorite (or not).") var favorite: Bool?
        @Option(help: "A note (an empty one clears it).") var note: String?
        @Flag(help: "Clear the rating.") var clearRating = false

        func run() throws {
            let request = MetaRequest(
                paths: paths.map(Actions.argument),
                rating: rating,
                clearRating: clearRating ? true : nil,
                favorite: favorite,
                note: note
            )
            let answer = try Via.post(libraryOptions, "/v1/meta", request) { try Operations.setMetadata(request, $0) }
            let (changed, missing) = (answer.changed, answer.notIndexed)
            if global.json {
                try Output.json(answer)
                if !missing.isEmpty { throw ExitCode(ExitStatus.userError) }
                return
            }
            print("changed \(changed) item(s)")
            for path in missing.prefix(10) {
                Output.error("not in the index (see `sd location add`, `sd index`): \(path)")
            }
            if !missing.isEmpty { throw ExitCode(1) }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The rating, favorite mark, note and tags.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument var path: String

        func run() throws {
            let path = Actions.argument(self.path)
            let meta = try Via.get(libraryOptions, Via.target("/v1/meta", [("path", path)])) {
                try Operations.metadata(of: path, $0)
            }
            let tags = meta.tags
            if global.json { return try Output.json(meta) }
            print("rating: \(meta.rating.map { String(repeating: "*", count: $0) + " (\($0))" } ?? "none")")
            print("favorite: \(meta.favorite ? "yes" : "no")")
            print("note: \(meta.note ?? "none")")
            print("tags: \(tags.isEmpty ? "none" : tags.joined(separator: ", "))")
        }
    }
}
