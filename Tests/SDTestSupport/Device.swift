import Foundation
import SDSystem
import Testing

/// One device for the sync tests: its own data, config and runtime folders (so its own key, peers and
/// daemon), a folder of its files, and its sdd on a free loopback port.
public struct Device: Sendable {
    public let name: String
    public let dir: TemporaryDirectory
    public let sd: SDBinary
    public var files: String { dir.file("files-\(name)") }

    public init(_ name: String) throws {
        self.name = name
        dir = try TemporaryDirectory(prefix: "sd-sync-\(name)")
        sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
    }

    @discardableResult
    public func run(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> SDBinary.Result
    {
        let r = try sd.run(arguments)
        #expect(
            r.status == 0,
            "\(name): sd \(arguments.joined(separator: " ")): \(r.stderr)",
            sourceLocation: sourceLocation
        )
        return r
    }

    public func json(_ arguments: [String]) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(try run(arguments + ["--json"]).stdout.utf8))
    }

    public var id: String { get throws { (try json(["peer", "list"]) as? [String: Any])?["device"] as? String ?? "" } }

    /// LAN discovery's UDP port for this test run's daemons (not sdd's default, which a real one may hold).
    public static let discoveryPort = Int.random(in: 40_000..<60_000)

    /// Peers on loopback; LAN discovery only inside the test run's own network namespace (scripts/test), so
    /// that no announcement reaches the machine's network.
    public var daemonArguments: [String] {
        ["daemon", "start", "--peer-port", "0", "--peer-host", "127.0.0.1", "--discovery"]
            + [TestNetwork.isIsolated ? "\(Self.discoveryPort)" : "off"]
    }

    public func startDaemon() throws { try run(daemonArguments) }

    public func stopDaemon() { _ = try? sd.run(["daemon", "stop"]) }

    /// Runs `sd pair` here in the background until it printed its code (`extra`: more options); the code and
    /// the process (which ends once a device joined).
    public func showCode(_ extra: [String] = []) throws -> (code: String, shower: ChildProcess) {
        let out = try ChildProcess.pipe()
        let shower = try sd.start(["pair", "--minutes", "1"] + extra, output: out.write)
        close(out.write)
        var text = ""
        var buffer = [UInt8](repeating: 0, count: 1_024)
        let deadline = Date().addingTimeInterval(20)
        while !text.contains("Waiting") && Date() < deadline {
            let n = read(out.read, &buffer, buffer.count)
            if n <= 0 { break }
            text += String(decoding: buffer[0..<n], as: UTF8.self)
        }
        close(out.read)
        guard
            let code = text.split(whereSeparator: \.isWhitespace).first(where: { $0.contains("/") && $0.contains(":") })
        else {
            shower.send(SIGTERM)
            throw SDBinaryError.daemon("no pairing code in: \(text)")
        }
        return (String(code).trimmingCharacters(in: .whitespacesAndNewlines), shower)
    }

    /// Pairs `other` with this device: this one shows a code (on loopback), the other joins with it.
    public func pair(with other: Device) throws {
        let (code, shower) = try showCode(["--host", "127.0.0.1"])
        try other.run(["pair", "join", code])
        #expect(shower.wait(seconds: 20), "sd pair ends once paired")
        #expect(shower.termination == .exited(0))
    }

    /// What this device knows of its sync, for a failure's message: `sd sync status` and its daemon's last lines
    /// about sync.
    public func syncReport() -> String {
        let status = (try? sd.run(["sync", "status"]).stdout) ?? "?"
        let logs =
            (try? FileManager.default.subpathsOfDirectory(atPath: dir.file("data")))?
            .filter { $0.hasSuffix("logs/sdd.log") } ?? []
        let text = logs.map { (try? String(contentsOfFile: dir.file("data/" + $0), encoding: .utf8)) ?? "" }
        let sync = text.joined().split(separator: "\n").filter { $0.contains("sync") || $0.contains("heard") }
        return "\(name)'s sync status:\n\(status)\n\(name)'s daemon log:\n" + sync.suffix(40).joined(separator: "\n")
    }
}
