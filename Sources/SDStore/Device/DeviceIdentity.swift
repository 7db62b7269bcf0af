import Foundation
import SDCore
import SDSystem

/// This machine's identity as an sd device: made once, on first use, and kept in
/// `$XDG_CONFIG_HOME/sd/device.json` (else `~/.config/sd/device.json`).
public struct DeviceIdentity: Codable, Sendable, Equatable {
    public var id: DeviceID
    public var name: String
    public var created: Date

    /// The config folder: `$SD_CONFIG_DIR`, else `$XDG_CONFIG_HOME/sd`, else `~/.config/sd`.
    /// The daemon's runtime folder (socket, pid, token): `$SD_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/sd`, else
    /// `/tmp/sd-UID`.
    public static func runtimeDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let explicit = environment["SD_RUNTIME_DIR"], !explicit.isEmpty { return explicit }
        if let xdg = environment["XDG_RUNTIME_DIR"], !xdg.isEmpty { return xdg + "/sd" }
        return "/tmp/sd-\(getuid())"
    }

    public static func configDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let dir = environment["SD_CONFIG_DIR"], !dir.isEmpty { return dir }
        if let xdg = environment["XDG_CONFIG_HOME"], xdg.hasPrefix("/") { return "\(xdg)/sd" }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return "\(home)/.config/sd"
    }

    /// Loads this device's identity, creating it the first time. Two processes starting at once agree on one
    /// identity: the file is created with a no-replace rename, and the loser reads the winner's.
    ///
    /// #### Errors
    /// `LibraryError` `.corrupt` when device.json exists but cannot be read (it is never overwritten: the id
    /// in it may be known to other devices).
    public static func loadOrCreate(configDirectory dir: String) throws -> DeviceIdentity {
        let path = "\(dir)/device.json"
        if let existing = try load(path) {
            // The config folder holds this device's key and its paired devices: only this user's (an older sd
            // made it readable by others).
            FileSystem.restrict(dir, to: 0o700)
            FileSystem.restrict(path, to: 0o600)
            return existing
        }
        do {
            try FileSystem.makeDirectories(dir, mode: 0o700)
        } catch {
            throw LibraryError(.io, "cannot create the config folder '\(dir)': \(error)", underlying: error)
        }
        let hostname = ProcessInfo.processInfo.hostName
        let identity = DeviceIdentity(
            id: .random(),
            name: hostname.isEmpty ? "this device" : hostname,
            created: Date(timeIntervalSince1970: floor(Date().timeIntervalSince1970))
        )
        let temporary = "\(path).new-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))"
        let body = try LibraryManifest.encoder.encode(identity).map { $0 } + [0x0A]
        defer { FileSystem.remove(temporary) }
        var failure: SystemError?
        do {
            try FileSystem.writeNew(body, to: temporary, mode: 0o600)
            try FileSystem.renameNoReplace(temporary, to: path)
            try FileSystem.syncDirectory(dir)
        } catch {
            // EEXIST: another process created it first, and we use theirs.
            if !error.isExists { failure = error }
        }
        if let failure { throw LibraryError(.io, "cannot write '\(path)': \(failure)", underlying: failure) }
        guard let created = try load(path) else {
            throw LibraryError(.missingFile, "'\(path)' vanished while it was being created; run the command again")
        }
        return created
    }

    private static func load(_ path: String) throws -> DeviceIdentity? {
        guard FileSystem.exists(path) else { return nil }
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            return try LibraryManifest.decoder.decode(DeviceIdentity.self, from: data)
        } catch {
            throw LibraryError(
                .corrupt,
                "this device's identity file '\(path)' cannot be read (\(error)); restore it from a backup, or move it away to make this machine a new device",
                underlying: error
            )
        }
    }
}
