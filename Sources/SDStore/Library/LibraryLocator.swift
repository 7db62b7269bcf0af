import Foundation
import SDCore
import SDSystem

/// Where libraries live, and how a `--library NAME|PATH` argument maps to a folder.
public struct LibraryLocator: Sendable {
    /// `$SD_DATA_DIR`, else `$XDG_DATA_HOME/sd`, else `~/.local/share/sd`.
    public let dataDirectory: String

    /// The library used when none is named; created on first use.
    public static let defaultName = "Default"

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        if let dir = environment["SD_DATA_DIR"], !dir.isEmpty {
            dataDirectory = dir
        } else if let xdg = environment["XDG_DATA_HOME"], xdg.hasPrefix("/") {
            dataDirectory = "\(xdg)/sd"
        } else {
            dataDirectory = "\(environment["HOME"] ?? NSHomeDirectory())/.local/share/sd"
        }
    }

    /// A NAME means `<data dir>/NAME.sdlibrary`; anything with a '/' or ending in `.sdlibrary` is a path.
    public func path(for nameOrPath: String) -> String {
        if nameOrPath.contains("/") || nameOrPath.hasSuffix(Library.folderExtension) {
            return Self.absolute(nameOrPath)
        }
        return "\(dataDirectory)/\(nameOrPath)\(Library.folderExtension)"
    }

    /// `path` made absolute against the current folder, with `.` and `..` resolved.
    public static func absolute(_ path: String) -> String {
        let absolute = path.hasPrefix("/") ? path : FileSystem.currentDirectory() + "/" + path
        return PathText.canonical((absolute as NSString).standardizingPath)
    }

    /// Whether `nameOrPath` is a bare name (so the library may be created on first use).
    public func isName(_ nameOrPath: String) -> Bool {
        !nameOrPath.contains("/") && !nameOrPath.hasSuffix(Library.folderExtension)
    }

    public struct Listed: Codable, Sendable {
        public var name: String
        public var path: String
        public var id: String?
        /// Why the library could not be read, if it could not.
        public var problem: String?
    }

    /// The libraries in the data folder, by name.
    public func list() -> [Listed] {
        let names = (try? FileSystem.list(dataDirectory)) ?? []
        return names.filter { $0.hasSuffix(Library.folderExtension) && !$0.hasPrefix(".") }.sorted().map { folder in
            let path = "\(dataDirectory)/\(folder)"
            do {
                let manifest = try Library.readManifest(path)
                return Listed(name: manifest.name, path: path, id: manifest.id.description)
            } catch {
                return Listed(
                    name: String(folder.dropLast(Library.folderExtension.count)),
                    path: path,
                    problem: "\(error)"
                )
            }
        }
    }

    /// Opens the library named by `nameOrPath` (the default when nil), creating it first if it is the
    /// default or `create` is set and it does not exist yet.
    public func open(_ nameOrPath: String?, device: DeviceIdentity, createIfMissing: Bool = false) throws -> Library {
        let chosen = nameOrPath ?? Self.defaultName
        let path = path(for: chosen)
        if !FileSystem.exists(path) && isName(chosen) && (createIfMissing || nameOrPath == nil) {
            do {
                return try Library.create(name: chosen, in: dataDirectory, device: device)
            } catch let error as LibraryError where error.code == .alreadyExists {
                // Created by another process meanwhile.
            }
        }
        return try Library.open(at: path, device: device)
    }
}
