import Foundation
import SDSystem

/// The built `sd` executable (beside the test bundle, or $SD_BINARY), run with a private data and config
/// folder so that tests never touch the user's libraries.
public struct SDBinary: Sendable {
    public let path: String
    public let environment: [String: String]

    public init(dataDirectory: String, configDirectory: String) throws {
        let env = ProcessInfo.processInfo.environment
        var candidates: [String] = []
        if let explicit = env["SD_BINARY"] { candidates.append(explicit) }
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = bundle.deletingLastPathComponent()
        for _ in 0..<3 {
            candidates.append(dir.appendingPathComponent("sd").path)
            dir = dir.deletingLastPathComponent()
        }
        candidates.append(Fixtures.repositoryRoot.appendingPathComponent(".build/debug/sd").path)
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw SDBinaryError.notBuilt(candidates)
        }
        path = found
        var environment = env
        environment["SD_DATA_DIR"] = dataDirectory
        environment["SD_CONFIG_DIR"] = configDirectory
        // Its own daemon socket: a daemon another test (or the user) runs is never this one's.
        environment["SD_RUNTIME_DIR"] = dataDirectory + "-run"
        self.environment = environment
    }

    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String

        public init(status: Int32, stdout: String, stderr: String) {
            self.status = status
            self.stdout = stdout
            self.stderr = stderr
        }
    }

    @discardableResult
    public func run(_ arguments: [String], environment extra: [String: String] = [:]) throws -> Result {
        let r = try Run.program(path, arguments, environment: environment.merging(extra) { $1 })
        return Result(
            status: r.status,
            stdout: String(decoding: r.out, as: UTF8.self),
            stderr: String(decoding: r.err, as: UTF8.self)
        )
    }
}

extension SDBinary {
    /// Starts sd with these arguments; its output goes to `output` (a descriptor), else nowhere.
    public func start(_ arguments: [String], output: Int32? = nil) throws -> ChildProcess {
        try ChildProcess.start(
            path,
            arguments,
            environment: environment,
            standardOutput: output.map { .descriptor($0) } ?? .null,
            standardError: .null
        )
    }
}

public enum SDBinaryError: Error, CustomStringConvertible {
    case notBuilt([String])
    case daemon(String)
    public var description: String {
        switch self {
        case .notBuilt(let places): "the sd executable is not built (looked in \(places)); run `swift build` first"
        case .daemon(let said): "sd daemon start failed: \(said)"
        }
    }
}

/// The repository's own scripts the tests use: the tree generator (`scripts/make-tree`) and the content-id
/// oracle (`scripts/content-id-oracle`, over b3sum). Nothing outside the repository.
public enum Scripts {
    public static let directory = Fixtures.repositoryRoot.appendingPathComponent("scripts")
    public static func script(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// Makes a tree with `scripts/make-tree` (files, plus `large` files of `largeMiB` MiB each); its manifest is
    /// `PATH.manifest.tsv`.
    ///
    /// #### Errors
    /// `ScriptError` with the script's own message when it fails.
    public static func makeTree(at path: String, files: Int, large: Int, largeMiB: Int, extra: [String] = []) throws {
        let python = Run.which("python3") ?? "/usr/bin/python3"
        let made = try Run.program(
            python,
            [
                script("make-tree"), "--out", path, "--files", "\(files)", "--large", "\(large)", "--large-mib",
                "\(largeMiB)",
            ] + extra
        )
        guard made.status == 0 else {
            throw ScriptError("make-tree failed: \(String(decoding: made.err, as: UTF8.self))")
        }
    }
}

public struct ScriptError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// How a test runs the CLI: on the library directly, or through a daemon serving it (same answers expected).
public enum Way: String, CaseIterable, Sendable {
    case direct
    case daemon
}

/// A daemon a test started for its library (nothing for `.direct`); `end()` stops it.
public struct DaemonSession: Sendable {
    public let way: Way
    let sd: SDBinary
    let logPath: String

    /// The daemon's log so far (empty when none runs).
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Whether the daemon (if one runs) logged each of these: how a test knows its commands went through it.
    public func served(_ needles: [String]) -> Bool {
        way == .direct || needles.allSatisfy { log.contains($0) }
    }

    public func end() {
        if way == .daemon { _ = try? sd.run(["daemon", "stop"]) }
    }
}

extension SDBinary {
    /// Starts sdd for the default library when `way` is `.daemon`.
    public func begin(_ way: Way) throws -> DaemonSession {
        let data = environment["SD_DATA_DIR"] ?? ""
        let session = DaemonSession(way: way, sd: self, logPath: data + "/Default.sdlibrary/logs/sdd.log")
        if way == .daemon {
            // Peers on any free loopback port, no LAN announcements: tests never take 7373 or reach beyond
            // this machine.
            let started = try run(
                ["daemon", "start", "--peer-port", "0", "--peer-host", "127.0.0.1", "--discovery", "off"],
                environment: ["SD_LOG_LEVEL": "debug"]
            )
            guard started.status == 0 else { throw SDBinaryError.daemon(started.stderr) }
        }
        return session
    }
}
