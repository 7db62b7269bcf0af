import Foundation
import SDSystem

/// sd's own folders on this device: the config folder (this device's key, its paired devices), the data folder
/// and every library folder (`NAME.sdlibrary`, wherever it is), the daemon's runtime folder. Nothing in them is
/// ever a source or target of an action, served to or written by another device, or indexed: sd never acts on
/// its own files through the paths a user or a peer names.
public enum OwnFolders {
    /// The folders, as they really are (links resolved): config, data, runtime, and `library`'s folder.
    public static func list(_ library: Library? = nil) -> [String] {
        let folders =
            [
                DeviceIdentity.configDirectory(), LibraryLocator().dataDirectory, DeviceIdentity.runtimeDirectory(),
            ] + (library.map { [$0.path] } ?? [])
        return folders.map { FileSystem.resolved($0) }
    }

    /// Which of sd's own folders holds `path` (compared where they really are), or nil. A folder named
    /// `NAME.sdlibrary` anywhere on the way counts as a library's.
    public static func holding(_ path: String, library: Library? = nil) -> String? {
        let real = FileSystem.resolved(path)
        for folder in list(library) where real == folder || real.hasPrefix(folder == "/" ? "/" : folder + "/") {
            return folder
        }
        var prefix = ""
        for part in real.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/" + part
            if FolderListing.isLibraryFolder(PathText.bytes(String(part))) { return prefix }
        }
        return nil
    }
}
