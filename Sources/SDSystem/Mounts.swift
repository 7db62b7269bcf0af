import Foundation

#if canImport(Glibc)
    @preconcurrency import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A mounted filesystem, as `/proc/self/mountinfo` and `statvfs` describe it.
public struct MountedVolume: Sendable, Codable, Equatable {
    public var mountPoint: String
    public var filesystem: String
    public var source: String
    /// `major:minor` of the filesystem's device (st_dev), as mountinfo prints it.
    public var deviceNumber: String
    public var readOnly: Bool
    public var totalBytes: UInt64
    public var freeBytes: UInt64
    /// A stable identity: the filesystem UUID where the system knows one (from /dev/disk/by-uuid), else
    /// "derived:" + a hash of filesystem type, source and device number.
    public var identity: String
    public var hasFilesystemUUID: Bool
}

public enum Mounts {
    /// Every mounted filesystem, in mountinfo order (later mounts over the same point come later).
    public static func list(mountinfo: String = "/proc/self/mountinfo") -> [MountedVolume] {
        guard let text = try? String(contentsOfFile: mountinfo, encoding: .utf8) else { return [] }
        let uuids = filesystemUUIDs()
        var volumes: [MountedVolume] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard let dash = fields.firstIndex(of: "-"), fields.count > dash + 2, fields.count >= 6 else { continue }
            let deviceNumber = String(fields[2])
            let mountPoint = unescape(fields[4])
            let options = fields[5].split(separator: ",")
            let filesystem = String(fields[dash + 1])
            let source = unescape(fields[dash + 2])
            var total: UInt64 = 0, free: UInt64 = 0
            var sv = statvfs()
            if statvfs(mountPoint, &sv) == 0 {
                total = UInt64(sv.f_blocks) * UInt64(sv.f_frsize)
                free = UInt64(sv.f_bavail) * UInt64(sv.f_frsize)
            }
            let uuid = uuids[deviceNumber]
            let derived =
                "derived:"
                + String(
                    FNV1a.fingerprint("\(filesystem)\u{0}\(source)\u{0}\(deviceNumber)"),
                    radix: 16
                )
            volumes.append(
                MountedVolume(
                    mountPoint: mountPoint,
                    filesystem: filesystem,
                    source: source,
                    deviceNumber: deviceNumber,
                    readOnly: options.contains("ro"),
                    totalBytes: total,
                    freeBytes: free,
                    identity: uuid ?? derived,
                    hasFilesystemUUID: uuid != nil
                )
            )
        }
        return volumes
    }

    /// The volume holding `path`: the mount with the longest mount point that is a prefix of the path.
    public static func volume(containing path: String, in volumes: [MountedVolume]) -> MountedVolume? {
        var best: MountedVolume?
        for v in volumes {
            let prefix = v.mountPoint == "/" ? "/" : v.mountPoint + "/"
            if path == v.mountPoint || path.hasPrefix(prefix) {
                if best == nil || v.mountPoint.count >= best!.mountPoint.count { best = v }
            }
        }
        return best
    }

    /// `major:minor` -> filesystem UUID, from the symlinks in /dev/disk/by-uuid.
    static func filesystemUUIDs() -> [String: String] {
        var map: [String: String] = [:]
        let dir = "/dev/disk/by-uuid"
        guard let names = try? FileSystem.list(dir) else { return map }
        for name in names {
            var st = Glibc.stat()
            guard stat("\(dir)/\(name)", &st) == 0 else { continue }
            let rdev = UInt64(st.st_rdev)
            // glibc's dev_t layout (gnu_dev_major/minor are macros Swift cannot import).
            let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & ~UInt64(0xfff))
            let minor = (rdev & 0xff) | ((rdev >> 12) & ~UInt64(0xff))
            map["\(major):\(minor)"] = name
        }
        return map
    }

    /// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
    static func unescape(_ field: Substring) -> String {
        var out: [UInt8] = []
        let bytes = Array(field.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\\"), i + 3 < bytes.count,
                let value = UInt8(String(decoding: bytes[(i + 1)...(i + 3)], as: UTF8.self), radix: 8)
            {
                out.append(value)
                i += 4
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// FNV-1a, for a short stable fingerprint where no cryptographic strength is needed (SDSystem sits below
/// SDCore's BLAKE3).
enum FNV1a {
    static func fingerprint(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in text.utf8 {
            hash ^= UInt64(b)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }
}
