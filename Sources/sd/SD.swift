import ArgumentParser
import Foundation
import SDAPI
import SDCore
import SDNet
import SDStore
import SDSync

@main
struct SD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sd",
        abstract: "sd: one fast, trustworthy index over all your files, wherever they are.",
        discussion: reflow(
            """
            Examples:
              sd library create Home
              sd location add ~/Pictures && sd index
              sd ls ~/Pictures --long
              sd status
              sd hash photo.jpg            # content id, as Spacedrive computes it
              sd hash --full movie.mkv     # full BLAKE3, same output as b3sum
              sd kind report.pdf

            EXIT STATUS
              0 success; 1 a user error (missing file, bad path, bad arguments, an action refused, a library
              that cannot be opened); 2 an internal error (a bug: please report it); 3 the command worked and
              found problems (scrub found corruption, `library info --check` found damage, redundancy found
              content at risk).
            """
        ),
        version: "0.1.0",
        subcommands: [
            LibraryCommand.self, LocationCommand.self, IndexCommand.self, WatchCommand.self, SearchCommand.self,
            JobsCommand.self, CopyCommand.self, MoveCommand.self, RemoveCommand.self, RenameCommand.self,
            MakeFolderCommand.self, TrashCommand.self, UndoCommand.self, LogCommand.self, ConfigCommand.self,
            DaemonCommand.self, DupesCommand.self, DedupCommand.self, RedundancyCommand.self, ScrubCommand.self,
            MetaCommand.self, DeviceCommand.self,
            ResolveCommand.self,
            PairCommand.self, PeerCommand.self, SyncCommand.self,
            TagCommand.self,
            LsCommand.self,
            StatusCommand.self,
            VolumeCommand.self, HashCommand.self, KindCommand.self, PathCommand.self, DebugCommand.self,
        ]
    )

    static func main() {
        do {
            let arguments = BulkOperands.take(from: Array(RawArguments.all().dropFirst()))
            var command = try parseAsRoot(arguments)
            try command.run()
            noteEscapes()
        } catch {
            noteEscapes()
            exit(withError: error)
        }
    }

    /// One place maps every error to a message and an exit status (see EXIT STATUS above).
    static func exit(withError error: any Error) -> Never {
        let code = exitCode(for: error)
        if code == .success || error is CleanExit {
            // --help, --version
            Self.exit(withError: error as (any Error)?)
        }
        if let userError = error as? UserError {
            Output.fatal(userError.message, status: userError.code)
        }
        if let requestError = error as? RequestError { Output.fatal(requestError.message, status: 1) }
        if let refused = error as? ActionRefused { Output.fatal(refused.message, status: 1) }
        if let missing = error as? NotInIndex { Output.fatal(missing.message, status: 1) }
        if let tagError = error as? TagError { Output.fatal(tagError.message, status: 1) }
        if let netError = error as? NetError { Output.fatal(netError.message, status: 1) }
        if let refusal = error as? SyncRefusal { Output.fatal(refusal.message, status: 1) }
        if let libraryError = error as? LibraryError {
            // Every library error is something the user can act on; the message says what.
            Output.fatal(libraryError.message, status: 1)
        }
        if let damage = LibraryError.damage(error) { Output.fatal(damage.message, status: 1) }
        if code == .validationFailure {
            // Bad arguments: argument-parser's message and usage, but our exit status for a user error.
            FileHandle.standardError.write(Data((shown(fullMessage(for: error)) + "\n").utf8))
            Foundation.exit(1)
        }
        if error is ExitCode { Foundation.exit(code.rawValue) }
        Output.fatal("internal error: \(error)", status: 2)
    }
}

/// An error the user can fix; its message says how. Exit status 1.
struct UserError: Error, CustomStringConvertible {
    var message: String
    var code: Int32 = 1
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    @Flag(name: .long, help: "Print machine-readable JSON instead of text.")
    var json = false
}

/// The exit statuses, one meaning each (documented in `sd --help` and the README).
enum ExitStatus {
    /// A user error: a missing file, a bad path or argument, an action refused, a library that cannot open.
    static let userError: Int32 = 1
    /// A bug in sd.
    static let internalError: Int32 = 2
    /// The command did its work and found problems (corruption, damage, content at risk).
    static let foundProblems: Int32 = 3
}

enum Output {
    /// Whether the command line asked for JSON: errors are then also reported as a JSON object on stdout.
    static let wantsJSON = CommandLine.arguments.dropFirst().contains("--json")

    static func error(_ message: String) {
        FileHandle.standardError.write(Data("sd: error: \(shown(message))\n".utf8))
    }

    /// Reports the error that ends the command (stderr, plus a JSON object on stdout under --json).
    static func fatal(_ message: String, status: Int32) -> Never {
        error(message)
        if wantsJSON, let data = try? JSONEncoder().encode(["error": shown(message), "exitStatus": "\(status)"]) {
            FileHandle.standardOutput.write(data + Data([0x0A]))
        }
        Foundation.exit(status)
    }

    static func warning(_ message: String) {
        FileHandle.standardError.write(Data("sd: warning: \(shown(message))\n".utf8))
    }

    /// Prints a value as pretty, key-sorted JSON on standard output.
    static func json(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        var data = withBytesBeside(try encoder.encode(value))
        data.append(0x0A)
        FileHandle.standardOutput.write(data)
    }
}
