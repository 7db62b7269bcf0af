import ArgumentParser
import Foundation
import SDAPI
import SDStore
import SDSystem

/// `sd daemon start | stop | status`.
struct DaemonCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Start, stop or ask about sdd, the daemon that serves a library's API.",
        discussion: reflow(
            """
            While a daemon serves the library a command names, the commands it answers (status, ls, ...) go
            through it, with the same output; the others, and everything when no daemon runs, work on the
            library directly. The socket is $SD_RUNTIME_DIR/sdd.sock, else $XDG_RUNTIME_DIR/sd/sdd.sock, else
            /tmp/sd-UID/sdd.sock (mode 0600).

            Examples:
              sd daemon start
              sd daemon status --json
              sd daemon stop
            """
        ),
        subcommands: [Start.self, Stop.self, Status.self],
        defaultSubcommand: Status.self
    )

    struct Start: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start sdd in the background for a library.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var libraryOptions: LibraryOptions
        @Option(help: "Also serve on 127.0.0.1 at this port (0: any free one), with a bearer token (sdd.token, 0600).")
        var tcpPort: Int?
        @Option(
            help:
                "Accept paired devices on this port (default 7373; only once a device is paired or `sd pair` runs), or 'off'."
        )
        var peerPort: String?
        @Option(help: "The address to accept peers on (default 0.0.0.0: every interface).") var peerHost: String?
        @Option(help: "LAN discovery's UDP port (default 7374; only while accepting peers), or 'off'.")
        var discovery: String?

        func run() throws {
            if let running = APIClient().info() {
                throw UserError("sdd already runs (pid \(running.pid), library \(running.libraryName))")
            }
            let binary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
                .deletingLastPathComponent().appendingPathComponent("sdd").path
            guard FileManager.default.isExecutableFile(atPath: binary) else {
                throw UserError("sdd is not beside sd (\(binary)); build it with `swift build`")
            }
            // The runtime folder must be this user's only (another account could otherwise plant files there or
            // reach the socket): made 0700, or checked to be.
            let folder = API.runtimeDirectory()
            do { try FileSystem.makePrivateDirectory(folder) } catch { throw UserError(error.message) }
            // Its own output (start errors) goes to a file beside the socket, made anew (never through a link);
            // its log to the library's logs/.
            let outPath = folder + "/sdd.out"
            let out: Int32
            do { out = try FileSystem.createAnew(outPath, mode: 0o600) } catch {
                throw UserError("cannot write \(outPath): \(error)")
            }
            defer { close(out) }
            var arguments: [String] = libraryOptions.library.map { ["--library", $0] } ?? []
            if let tcpPort { arguments += ["--tcp-port", "\(tcpPort)"] }
            if let peerPort { arguments += ["--peer-port", peerPort] }
            if let peerHost { arguments += ["--peer-host", peerHost] }
            if let discovery { arguments += ["--discovery", discovery] }
            let child = try ChildProcess.start(
                binary,
                arguments,
                standardOutput: .descriptor(out),
                standardError: .descriptor(out),
                newSession: true
            )
            let deadline = Date().addingTimeInterval(15)
            while Date() < deadline {
                if var info = APIClient().info() {
                    // A device with paired devices starts listening a moment after the API answers: say where.
                    let settled = Date().addingTimeInterval(5)
                    while info.network?.hasPrefix("starting") == true && Date() < settled {
                        Thread.sleep(forTimeInterval: 0.05)
                        info = APIClient().info() ?? info
                    }
                    if global.json { return try Output.json(info) }
                    let tcp = info.tcpPort.map { " and 127.0.0.1:\($0) (token in \(API.tokenPath()))" } ?? ""
                    print("sdd started (pid \(info.pid)): library \(info.libraryName) on \(API.socketPath())\(tcp)")
                    // Where it can be reached from the network, if anywhere: said every time.
                    return print("network: \(info.network ?? "unknown")")
                }
                if let ended = child.termination {
                    let said = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
                    throw UserError("sdd \(ended): \(said.trimmingCharacters(in: .whitespacesAndNewlines))")
                }
                Thread.sleep(forTimeInterval: 0.02)
            }
            throw UserError("sdd did not answer within 15 s; see \(outPath)")
        }
    }

    struct Stop: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop sdd (SIGTERM: it finishes what it does).")
        @OptionGroup var global: GlobalOptions

        /// What happened, as text or (--json) `{"stopped": Bool, "message": ...}`.
        func say(_ stopped: Bool, _ message: String) throws {
            if global.json { return try Output.json(StopAnswer(stopped: stopped, message: message)) }
            print(message)
        }

        struct StopAnswer: Encodable {
            var stopped: Bool
            var message: String
        }

        func run() throws {
            guard let info = APIClient().info() else { return try say(false, "no daemon runs") }
            // The pid to signal is the one the kernel says holds the socket, this user's, and sdd: never only
            // what the answer names.
            let socket = API.socketPath()
            guard let server = try? UnixHTTP.server(of: socket) else { return try say(false, "no daemon runs") }
            let name = ProcessLimits.processName(server.pid)
            guard server.uid == geteuid(), server.pid == info.pid, name == "sdd" else {
                throw UserError(
                    "the process answering on \(socket) (pid \(server.pid), \(name ?? "unknown"), uid \(server.uid)) "
                        + "is not sdd as it claims (it names pid \(info.pid)); nothing was signalled. Stop it yourself "
                        + "and remove the socket"
                )
            }
            guard kill(info.pid, SIGTERM) == 0 else { throw UserError("cannot signal sdd (pid \(info.pid))") }
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                // The pid file goes last, once everything stopped (the socket goes as the server stops listening).
                if !FileSystem.exists(API.pidPath()) || kill(info.pid, 0) != 0 { return try say(true, "sdd stopped") }
                Thread.sleep(forTimeInterval: 0.02)
            }
            throw UserError("sdd (pid \(info.pid)) did not stop within 30 s")
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Whether sdd runs, and for which library.")
        @OptionGroup var global: GlobalOptions
        func run() throws {
            let info = APIClient().info()
            if global.json { return try Output.json(info) }
            guard let info else { return print("no daemon runs") }
            print(
                "sdd runs (pid \(info.pid)): library \(info.libraryName) (\(info.libraryPath)) on \(API.socketPath())"
            )
            if let network = info.network { print("network: \(network)") }
        }
    }
}

/// The daemon serving the library a command names, if one does.
enum DaemonLink {
    static func client(for options: LibraryOptions) -> APIClient? {
        let client = APIClient()
        guard let info = client.info() else { return nil }
        let locator = LibraryLocator()
        let wanted = URL(fileURLWithPath: locator.path(for: options.library ?? LibraryLocator.defaultName))
            .standardizedFileURL.path
        return URL(fileURLWithPath: info.libraryPath).standardizedFileURL.path == wanted ? client : nil
    }

    /// Runs `body` and turns the daemon's answers into the CLI's: 4xx messages are user errors.
    static func call<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as APIError { throw UserError(error.message) } catch let error
            as SystemError
        {
            // The daemon went away mid-command (stopped, or killed): its jobs resume when it starts again.
            throw UserError(
                "sdd stopped answering (\(error)); `sd daemon start` starts it again and it resumes its jobs (`sd jobs`)"
            )
        }
    }
}

/// A command's data from the daemon when one serves the library, else from the library here: the same
/// operation either way.
enum Via {
    static func get<T: Decodable>(
        _ options: LibraryOptions,
        _ target: String,
        direct: (Library) throws -> T
    ) throws -> T {
        if let daemon = DaemonLink.client(for: options) {
            return try DaemonLink.call { try daemon.get(target, T.self) }
        }
        let library = try options.open()
        defer { try? library.close() }
        return try direct(library)
    }

    static func post<T: Decodable>(
        _ options: LibraryOptions,
        _ target: String,
        _ body: some Encodable,
        direct: (Library) throws -> T
    ) throws -> T {
        if let daemon = DaemonLink.client(for: options) {
            return try DaemonLink.call { try daemon.post(target, body, T.self) }
        }
        let library = try options.open()
        defer { try? library.close() }
        return try direct(library)
    }

    /// `path?name=value&...`, the values escaped, the nil ones left out.
    static func target(_ path: String, _ parameters: [(String, String?)]) -> String {
        let query = parameters.compactMap { name, value in value.map { "\(name)=\(APIClient.query($0))" } }
        return query.isEmpty ? path : path + "?" + query.joined(separator: "&")
    }
}
