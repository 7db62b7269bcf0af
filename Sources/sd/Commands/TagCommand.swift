import ArgumentParser
import Foundation
import SDStore

/// `sd tag`: tags, shared metadata that follows a file's content to its copies.
struct TagCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tag",
        abstract: "Tags: create, list, rename, delete; add to and remove from files and folders.",
        discussion: """
            Names are hierarchical (`finance/tax`). A tag on a file with a content id is on its content: every
            copy, here or on another device, carries it; files not identified yet and folders carry their own.
            Every change is kept in the library's change log with a hybrid logical clock stamp, for sync.
            `sd search tag:NAME` finds what carries a tag.

            Examples:
              sd tag create finance/tax --color '#2a9d8f'
              sd tag add finance/tax ~/Documents/2025/*.pdf
              sd tag show ~/Documents/2025/return.pdf
            """,
        subcommands: [Create.self, List.self, Rename.self, Delete.self, Add.self, Remove.self, Show.self],
        defaultSubcommand: List.self
    )

    static func run<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as TagError { throw UserError(error.message) }
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a tag (and its missing parents).")
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument(help: "Its name, e.g. photos or finance/tax.") var name: String
        @Option(help: "A color, #rrggbb.") var color: String?

        func run() throws {
            let library = try libraryOptions.open()
            defer { try? library.close() }
            try TagCommand.run { _ = try library.createTag(name, color: color) }
            try library.appendAudit(action: "tag-create", target: name, details: nil, outcome: "ok", jobID: nil)
            print("created tag \(name)")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the tags and how many items carry each.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions

        func run() throws {
            let library = try libraryOptions.open()
            defer { try? library.close() }
            let tags = try library.tags()
            if global.json { return try Output.json(tags) }
            if tags.isEmpty { return print("no tags yet (`sd tag create NAME`)") }
            for tag in tags { print("\(tag.name)\(tag.color.map { " \($0)" } ?? "")  \(tag.uses) items") }
        }
    }

    struct Rename: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rename a tag (its children follow).")
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument var name: String
        @Argument var newName: String

        func run() throws {
            let library = try libraryOptions.open()
            defer { try? library.close() }
            try TagCommand.run { try library.renameTag(name, to: newName) }
            try library.appendAudit(action: "tag-rename", target: name, details: newName, outcome: "ok", jobID: nil)
            print("renamed tag \(name) to \(newName)")
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a tag and the tags below it (files are untouched)."
        )
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument var name: String

        func run() throws {
            let library = try libraryOptions.open()
            defer { try? library.close() }
            try TagCommand.run { try library.deleteTag(name) }
            try library.appendAudit(action: "tag-delete", target: name, details: nil, outcome: "ok", jobID: nil)
            print("deleted tag \(name)")
        }
    }

    static func set(_ tag: String, _ paths: [String], present: Bool, _ options: LibraryOptions) throws {
        let library = try options.open()
        defer { try? library.close() }
        let absolute = try paths.map { try Actions.path($0, library) }
        let (changed, missing) = try TagCommand.run { try library.setTag(tag, on: absolute, present: present) }
        try library.appendAudit(
            action: present ? "tag-add" : "tag-remove",
            target: tag,
            details: CopyCommand.json(["changed": changed, "notIndexed": missing.count]),
            outcome: missing.isEmpty ? "ok" : "partial",
            jobID: nil
        )
        print("\(present ? "tagged" : "untagged") \(changed) item(s) \(present ? "with" : "from") \(tag)")
        for path in missing.prefix(10) { Output.error("not in the index (see `sd location add`, `sd index`): \(path)") }
        if !missing.isEmpty { throw ExitCode(1) }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put a tag on files and folders of the index.")
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument var tag: String
        @Argument(help: "Paths or SdPaths.") var paths: [String]

        func run() throws { try TagCommand.set(tag, paths, present: true, libraryOptions) }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Take a tag off files and folders.")
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument var tag: String
        @Argument(help: "Paths or SdPaths.") var paths: [String]

        func run() throws { try TagCommand.set(tag, paths, present: false, libraryOptions) }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The tags on a file or folder.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument var path: String

        func run() throws {
            let library = try libraryOptions.open()
            defer { try? library.close() }
            let absolute = try Actions.path(path, library)
            guard let tags = try library.tags(ofEntryAt: absolute) else {
                throw UserError("'\(absolute)' is not in the index")
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
        discussion: """
            These belong to the file at its place (followed across renames and moves), not to its content as
            tags do. Every change is written to the change log, stamped with this device's clock, for sync.

            Examples:
              sd meta set ~/Pictures/beach.jpg --rating 5 --favorite
              sd meta set ~/Documents/tax-2025.pdf --note "filed 2026-03-02"
              sd meta show ~/Pictures/beach.jpg
            """,
        subcommands: [Change.self, Show.self]
    )

    struct Change: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Change the rating, favorite mark or note."
        )
        @OptionGroup var libraryOptions: LibraryOptions
        @Argument(help: "Paths or SdPaths.") var paths: [String]
        @Option(help: "A rating from 0 to 5.") var rating: Int?
        @Flag(inversion: .prefixedNo, help: "Mark as a favorite (or not).") var favorite: Bool?
        @Option(help: "A note (an empty one clears it).") var note: String?
        @Flag(help: "Clear the rating.") var clearRating = false

        func run() throws {
            guard !paths.isEmpty else { throw UserError("give the files to change") }
            guard rating != nil || favorite != nil || note != nil || clearRating else {
                throw UserError("say what to change: --rating N, --favorite/--no-favorite, --note TEXT, --clear-rating")
            }
            if clearRating && rating != nil { throw UserError("--rating and --clear-rating cannot go together") }
            let library = try libraryOptions.open()
            defer { try? library.close() }
            let absolute = try paths.map { try Actions.path($0, library) }
            var change = MetadataChange(favorite: favorite)
            if let rating { change.rating = .some(rating) } else if clearRating { change.rating = .some(nil) }
            if let note { change.note = .some(note.isEmpty ? nil : note) }
            let (changed, missing) = try TagCommand.run { try library.setMetadata(change, on: absolute) }
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
            let library = try libraryOptions.open()
            defer { try? library.close() }
            let absolute = try Actions.path(path, library)
            guard let meta = try library.metadata(ofEntryAt: absolute),
                let tags = try library.tags(ofEntryAt: absolute)
            else { throw UserError("'\(absolute)' is not in the index") }
            if global.json {
                struct View: Encodable {
                    var rating: Int?
                    var favorite: Bool
                    var note: String?
                    var tags: [String]
                }
                return try Output.json(View(rating: meta.rating, favorite: meta.favorite, note: meta.note, tags: tags))
            }
            print("rating: \(meta.rating.map { String(repeating: "*", count: $0) + " (\($0))" } ?? "none")")
            print("favorite: \(meta.favorite ? "yes" : "no")")
            print("note: \(meta.note ?? "none")")
            print("tags: \(tags.isEmpty ? "none" : tags.joined(separator: ", "))")
        }
    }
}
