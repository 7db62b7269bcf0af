import Foundation
import SDCore
import SDStore
import SDSystem

/// A known copy of some content, as the ranking sees it.
public struct CopyCandidate: Sendable, Codable, Equatable {
    public var path: String
    /// The device holding it (DeviceID text) and whether that is this device.
    public var device: String
    public var local: Bool
    /// Whether it can be read now: its location online and the file there with the indexed size.
    public var reachable: Bool
    /// The filesystem's speed class (see `SpeedClass`).
    public var speed: SpeedClass
    /// Measured round trip to the device, for peers (the sync issue fills it).
    public var roundTripMilliseconds: Double?
    public var why: String?

    public init(
        path: String,
        device: String,
        local: Bool,
        reachable: Bool,
        speed: SpeedClass,
        roundTripMilliseconds: Double? = nil,
        why: String? = nil
    ) {
        self.path = path
        self.device = device
        self.local = local
        self.reachable = reachable
        self.speed = speed
        self.roundTripMilliseconds = roundTripMilliseconds
        self.why = why
    }
}

/// How another device can be reached now, as measured (by sdd's sync connections, or by connecting once).
public struct PeerReach: Sendable, Codable, Equatable {
    public var connected: Bool
    public var roundTripMilliseconds: Double?
    public var error: String?

    public init(connected: Bool, roundTripMilliseconds: Double?, error: String? = nil) {
        self.connected = connected
        self.roundTripMilliseconds = roundTripMilliseconds
        self.error = error
    }
}

/// How fast a filesystem is likely to serve a read, from its type: memory, local disk, removable or foreign
/// filesystems, network.
public enum SpeedClass: String, Sendable, Codable, Comparable, CaseIterable {
    // Fastest first.
    case memory, local, removable, network, unknown

    var rank: Int { Self.allCases.firstIndex(of: self)! }

    public static func < (a: SpeedClass, b: SpeedClass) -> Bool { a.rank < b.rank }

    public static func of(filesystem: String) -> SpeedClass {
        switch filesystem {
        case "tmpfs", "ramfs": return .memory
        case "ext4", "ext3", "ext2", "xfs", "btrfs", "f2fs", "zfs", "bcachefs", "overlay", "apfs": return .local
        case "vfat", "exfat", "ntfs", "ntfs3", "fuseblk", "hfsplus", "iso9660", "udf": return .removable
        case "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "fuse.sshfs", "fuse.rclone", "davfs": return .network
        default: return filesystem.hasPrefix("fuse.") ? .network : .unknown
        }
    }
}

/// The order in which copies of one content are tried: reachable before unreachable, this device before
/// peers, then the faster filesystem, then (peers) the shorter round trip, then the path (stable).
public struct CopyRanking: Sendable {
    public init() {}

    public func rank(_ candidates: [CopyCandidate]) -> [CopyCandidate] {
        candidates.sorted { a, b in
            if a.reachable != b.reachable { return a.reachable }
            if a.local != b.local { return a.local }
            if a.speed != b.speed { return a.speed < b.speed }
            let ra = a.roundTripMilliseconds ?? .infinity
            let rb = b.roundTripMilliseconds ?? .infinity
            if ra != rb { return ra < rb }
            return a.path < b.path
        }
    }
}

public enum ContentResolver {
    /// Every indexed copy of `content`, ranked; the first is the one to read when it is reachable. `peers`:
    /// how each other device (by id text) can be reached now; without it, other devices' copies count as
    /// unreachable (not measured).
    public static func copies(
        of content: ContentID,
        library: Library,
        peers: [String: PeerReach]? = nil,
        ranking: CopyRanking = CopyRanking()
    ) throws -> [CopyCandidate] {
        let mounts = Mounts.list()
        let here = library.device.id.description
        let candidates = try library.copyDetails(of: content).map { copy -> CopyCandidate in
            var candidate = CopyCandidate(
                path: copy.path,
                device: copy.device,
                local: copy.device == here,
                reachable: false,
                speed: .unknown
            )
            if !candidate.local {
                candidate.speed = .network
                if let reach = peers?[copy.device] {
                    candidate.reachable = reach.connected
                    candidate.roundTripMilliseconds = reach.roundTripMilliseconds
                    if !reach.connected {
                        candidate.why = "its device cannot be reached now" + (reach.error.map { ": \($0)" } ?? "")
                    }
                } else {
                    candidate.why =
                        peers == nil
                        ? "on another device, not measured (sdd measures its peers: sd daemon start)"
                        : "on a device this library does not sync with"
                }
            } else if !copy.online {
                candidate.why = "its location is offline"
            } else if let now = try? Directory.stat(PathText.bytes(copy.path)), now.type == .regular {
                if Int64(now.size) == copy.size {
                    candidate.reachable = true
                } else {
                    candidate.why = "changed on disk since it was indexed"
                }
            } else {
                candidate.why = "not there any more"
            }
            if candidate.local, let volume = Mounts.volume(containing: copy.path, in: mounts) {
                candidate.speed = SpeedClass.of(filesystem: volume.filesystem)
            }
            return candidate
        }
        return ranking.rank(candidates)
    }
}
