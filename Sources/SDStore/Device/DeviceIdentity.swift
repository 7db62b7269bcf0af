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
            try checkPlace(of: existing, in: dir)
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
        try checkPlace(of: created, in: dir)
        return created
    }

    // MARK: - Where the identity lives

    /// The file that says where this identity was made to live: the machine (`/etc/machine-id`) and the config
    /// folder's device and inode. A config folder copied to another machine, or to another folder (a cloned
    /// disk, a restored home folder, a copied test setup), is found there and refused: two machines with one
    /// device identity would overwrite each other's rows in every library they share.
    static let placeName = "device.place"

    /// Where `dir` is now: the machine's id and the folder's device and inode.
    static func place(of dir: String) -> String {
        let machine =
            ["/etc/machine-id", "/var/lib/dbus/machine-id"].lazy
            .compactMap { try? String(contentsOfFile: $0, encoding: .utf8) }
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            .first { !$0.isEmpty } ?? "unknown-machine"
        // The folder's inode, links followed (not its device number, which changes across reboots on NFS and
        // other volumes where nothing moved).
        let folder = FileSystem.identity(dir).map { "\($0.inode)" } ?? "?"
        return "\(machine) \(folder)"
    }

    /// Refuses an identity whose config folder is not where it was made (see `placeName`); records the place
    /// the first time (an identity made by an older sd).
    ///
    /// #### Errors
    /// `LibraryError` `.copiedIdentity`, saying how to go on: keep it here (the only place it is used now), or
    /// make this machine a new device.
    static func checkPlace(of identity: DeviceIdentity, in dir: String) throws {
        let file = "\(dir)/\(placeName)"
        let here = place(of: dir)
        guard let recorded = try? String(contentsOfFile: file, encoding: .utf8) else {
            try recordPlace(in: dir)
            return
        }
        // (A place recorded as 'MACHINE DEVICE:INODE' by this sd's first days compares by its inode.)
        let recordedParts = recorded.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ")
        let was = recordedParts.map { String($0.split(separator: ":").last ?? "") }.joined(separator: " ")
        guard was != here else { return }
        let machine = was.split(separator: " ").first.map(String.init) ?? "?"
        let sameMachine = here.hasPrefix(machine + " ")
        throw LibraryError(
            .copiedIdentity,
            "this device's identity (\(identity.name), \(identity.id)) in '\(dir)' was made "
                + (sameMachine ? "in another folder" : "on another machine")
                + " and copied here: two places with one identity would overwrite each other's rows in the libraries"
                + " they share, so sd will not use it as it is. If this is now the only place that uses it (the folder"
                + " was moved or restored), run `sd device keep`; otherwise run `sd device new` to make this a new"
                + " device (then pair it again)"
        )
    }

    /// Records that the identity in `dir` lives where `dir` is now (`sd device keep`).
    public static func recordPlace(in dir: String) throws {
        do {
            try FileSystem.writeAtomically(Array((place(of: dir) + "\n").utf8), to: "\(dir)/\(placeName)", mode: 0o600)
        } catch {
            throw LibraryError(.io, "cannot write '\(dir)/\(placeName)': \(error)", underlying: error)
        }
    }

    /// The identity in `dir` without the check of where it lives (for `sd device keep` and `sd device new`).
    public static func loadUnchecked(configDirectory dir: String) throws -> DeviceIdentity? {
        try load("\(dir)/device.json")
    }

    /// Makes this a new device (`sd device new`): this identity's files (its id, key, paired devices and place)
    /// are moved aside into `replaced-TIME/` in the config folder (never deleted), and a new identity is made.
    /// The folder moved aside, and the new identity.
    public static func startOver(configDirectory dir: String) throws -> (keptAt: String, identity: DeviceIdentity) {
        let aside = "\(dir)/replaced-\(Library.restoreStamp())"
        do {
            try FileSystem.makeDirectories(aside, mode: 0o700)
            for name in ["device.json", "device.key", "peers.json", placeName] where FileSystem.exists("\(dir)/\(name)")
            {
                try FileSystem.renameNoReplace("\(dir)/\(name)", to: "\(aside)/\(name)")
            }
            try FileSystem.syncDirectory(dir)
        } catch {
            throw LibraryError(.io, "cannot move this identity aside into '\(aside)': \(error)", underlying: error)
        }
        return (aside, try loadOrCreate(configDirectory: dir))
    }

    /// Gives this device a new name (`sd device rename`): kept in device.json; libraries take it when they are
    /// next opened, and paired devices when this one next connects.
    ///
    /// #### Errors
    /// `.invalidName` for an empty name, one over 64 bytes, or one with control characters; `.io`.
    public static func rename(to name: String, configDirectory dir: String) throws -> DeviceIdentity {
        let trimmed = name.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed.utf8.count <= 64,
            !trimmed.unicodeScalars.contains(where: {
                $0.properties.generalCategory == .control || $0.properties.generalCategory == .format
            })
        else {
            throw LibraryError(
                .invalidName,
                "'\(name)' cannot be a device name: use 1-64 bytes without control characters (e.g. laptop, nas-2)"
            )
        }
        // (Made if there is none yet; refused if it was copied here.)
        var identity = try loadOrCreate(configDirectory: dir)
        identity.name = trimmed
        let body = try LibraryManifest.encoder.encode(identity).map { $0 } + [0x0A]
        do {
            try FileSystem.writeAtomically(body, to: "\(dir)/device.json", mode: 0o600)
        } catch {
            throw LibraryError(.io, "cannot write '\(dir)/device.json': \(error)", underlying: error)
        }
        return identity
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
