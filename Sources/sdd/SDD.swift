import ArgumentParser
import Foundation
import Logging
import SDAPI
import SDDaemon
import SDNet
import SDStore
import SDSystem

/// `sdd`: the sd daemon. Serves one library's API on a Unix socket until SIGTERM or SIGINT.
@main
struct SDD: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sdd",
        abstract: "The sd daemon: serves a library's API on a Unix socket (see `sd daemon`).",
        discussion: """
            The socket is $SD_RUNTIME_DIR/sdd.sock, else $XDG_RUNTIME_DIR/sd/sdd.sock, else /tmp/sd-UID/sdd.sock,
            mode 0600. Logs go to the library's logs/sdd.log. SIGTERM stops it cleanly.
            """
    )

    @Option(help: "The library: a NAME under the data folder, or a PATH (default: the default library).")
    var library: String?
    @Option(help: "The socket to serve (default: see above).") var socket: String?
    @Option(
        help: "Also serve on 127.0.0.1 at this port (0: any), with the bearer token in sdd.token beside the socket."
    )
    var tcpPort: Int?
    @Option(help: "Accept paired devices (sync, pairing) on this TCP port, or 'off'. 0: any free port.")
    var peerPort: String = "7373"
    @Option(help: "The address to accept peers on.") var peerHost: String = "0.0.0.0"
    @Option(help: "LAN discovery: announce this device and hear paired ones on this UDP port, or 'off'.")
    var discovery: String = "\(LANDiscovery.defaultPort)"

    func run() async throws {
        let device = try DeviceIdentity.loadOrCreate(configDirectory: DeviceIdentity.configDirectory())
        // Many clients at once: enough reader connections that a quick read never waits behind slow ones.
        Library.setMaximumReaders(max(4, 2 * ProcessInfo.processInfo.activeProcessorCount))
        let opened: Library
        do { opened = try LibraryLocator().open(library, device: device) } catch {
            FileHandle.standardError.write(Data("sdd: error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let logPath = opened.path + "/logs/sdd.log"
        var handler = try FileLogHandler(label: "sdd", path: logPath)
        // SD_LOG_LEVEL=debug logs every request too.
        if let level = ProcessInfo.processInfo.environment["SD_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) {
            handler.logLevel = level
        }
        let logger = Logger(label: "sdd") { _ in handler }
        var daemon = Daemon(library: opened, socket: socket ?? API.socketPath(), logger: logger)
        if let tcpPort {
            guard (0...65535).contains(tcpPort) else {
                FileHandle.standardError.write(Data("sdd: error: --tcp-port is 0 to 65535\n".utf8))
                throw ExitCode(1)
            }
            daemon.tcpPort = tcpPort
            daemon.tokenFile = FileSystem.parent(of: daemon.socket) + "/sdd.token"
        }
        if peerPort != "off" {
            guard let port = Int(peerPort), (0...65535).contains(port) else {
                FileHandle.standardError.write(Data("sdd: error: --peer-port is 0 to 65535, or off\n".utf8))
                throw ExitCode(1)
            }
            daemon.peerPort = port
            daemon.peerHost = peerHost
        }
        if discovery == "off" {
            daemon.discoveryPort = nil
        } else {
            guard let port = Int(discovery), (1...65535).contains(port) else {
                FileHandle.standardError.write(Data("sdd: error: --discovery is 1 to 65535, or off\n".utf8))
                throw ExitCode(1)
            }
            daemon.discoveryPort = port
        }
        do {
            try await daemon.run()
        } catch let error as DaemonError {
            FileHandle.standardError.write(Data("sdd: error: \(error.message)\n".utf8))
            throw ExitCode(1)
        }
        try opened.close()
    }
}
