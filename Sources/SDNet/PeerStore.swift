import Foundation
import SDCore
import SDSystem
import Synchronization

/// A device this one has paired with: its id, the public key it proved at pairing (pinned: any other key
/// presented with this id is refused), and where it was last reached.
public struct PairedPeer: Codable, Sendable, Equatable {
    public var id: DeviceID
    public var name: String
    /// The raw 32-byte Ed25519 public key, base64.
    public var publicKey: String
    /// `HOST:PORT` addresses it was reached at or announced, most recent first.
    public var addresses: [String]
    public var pairedAt: Date
    /// What it may do here (nil in a file from before rights: a new pairing's defaults).
    public var rights: PeerRights?
    /// Until when a pairing may give it another key (`sd peer rekey`); nil: never.
    public var rekeyUntil: Date?

    public init(
        id: DeviceID,
        name: String,
        publicKey: [UInt8],
        addresses: [String],
        pairedAt: Date = Date(),
        rights: PeerRights? = .defaults
    ) {
        self.id = id
        self.name = name
        self.publicKey = Data(publicKey).base64EncodedString()
        self.addresses = addresses
        self.pairedAt = Date(timeIntervalSince1970: floor(pairedAt.timeIntervalSince1970))
        self.rights = rights
    }

    public var keyBytes: [UInt8] { Data(base64Encoded: publicKey).map(Array.init) ?? [] }

    /// What it may do here.
    public var granted: PeerRights { rights ?? .defaults }
}

/// The paired devices, in `peers.json` (mode 0600) in the config folder, shared by every sd process of this
/// user: each change is a read-modify-write under `peers.lock`, written atomically; each lookup reads the
/// file again when it changed, so a device paired by one process is known to the daemon at once.
public final class PeerStore: Sendable {
    public let path: String
    private let lockPath: String
    private let cache = Mutex<(stamp: [Int64], peers: [PairedPeer])>(([], []))

    private struct File: Codable {
        var peers: [PairedPeer]
    }

    public init(configDirectory: String) {
        path = "\(configDirectory)/peers.json"
        lockPath = "\(configDirectory)/peers.lock"
    }

    /// Every paired device.
    ///
    /// #### Errors
    /// `NetError.identity` when peers.json exists but cannot be read (it is never overwritten then).
    public func all() throws(NetError) -> [PairedPeer] {
        let stamp = Self.stamp(path)
        if let cached = cache.withLock({ $0.stamp == stamp ? $0.peers : nil }) { return cached }
        let peers = try read()
        cache.withLock { $0 = (stamp, peers) }
        return peers
    }

    public func peer(_ id: DeviceID) throws(NetError) -> PairedPeer? { try all().first { $0.id == id } }

    /// The paired device whose pinned key this is.
    public func peer(withKey key: [UInt8]) throws(NetError) -> PairedPeer? {
        try all().first { $0.keyBytes == key }
    }

    /// Adds a newly paired device. One already paired under that id keeps its key: a pairing never replaces a
    /// pinned key unless `sd peer rekey` allowed it for that device, and then its rights stay. The device as
    /// saved, and the key it had before when it was re-keyed.
    ///
    /// #### Errors
    /// `NetError.pairing` when the id is paired with another key and no re-key was allowed.
    @discardableResult
    public func pair(_ peer: PairedPeer) throws(NetError) -> (peer: PairedPeer, replacedKey: [UInt8]?) {
        var saved = peer
        var replaced: [UInt8]?
        var refusal: NetError?
        try update { peers in
            if let i = peers.firstIndex(where: { $0.id == peer.id }) {
                let known = peers[i]
                if known.keyBytes != peer.keyBytes {
                    guard let until = known.rekeyUntil, until > Date() else {
                        refusal = NetError(
                            .pairing,
                            "device \(peer.id) (\(known.name)) is already paired with another key (fingerprint \(DeviceKey.fingerprint(known.keyBytes))); this one presents \(DeviceKey.fingerprint(peer.keyBytes)). Nothing was changed. If that device really has a new key, run `sd peer rekey \(peer.id)` here, then pair again"
                        )
                        return
                    }
                    replaced = known.keyBytes
                }
                saved.rights = known.rights
                saved.addresses = Array(
                    (peer.addresses + known.addresses).reduce(into: [String]()) {
                        if !$0.contains($1) { $0.append($1) }
                    }.prefix(4)
                )
                peers[i] = saved
            } else {
                peers.append(saved)
            }
        }
        if let refusal { throw refusal }
        return (saved, replaced)
    }

    /// Allows the next pairing with `id` within `minutes` to give it another key (a device that lost its key,
    /// reinstalled). The device as it is now (its current key), or nil when it is not paired.
    public func allowRekey(_ id: DeviceID, minutes: Int = 10) throws(NetError) -> PairedPeer? {
        var found: PairedPeer?
        try update { peers in
            guard let i = peers.firstIndex(where: { $0.id == id }) else { return }
            peers[i].rekeyUntil = Date().addingTimeInterval(Double(minutes * 60))
            found = peers[i]
        }
        return found
    }

    /// Sets what a paired device may do here. The device, or nil when it is not paired.
    @discardableResult
    public func setRights(_ id: DeviceID, _ change: (inout PeerRights) -> Void) throws(NetError) -> PairedPeer? {
        var found: PairedPeer?
        try update { peers in
            guard let i = peers.firstIndex(where: { $0.id == id }) else { return }
            var rights = peers[i].granted
            change(&rights)
            peers[i].rights = rights
            found = peers[i]
        }
        return found
    }

    /// What `id` may do here (nothing when it is not paired).
    public func rights(of id: DeviceID) -> PeerRights {
        ((try? peer(id)) ?? nil)?.granted ?? .none
    }

    /// Notes an address a paired device was reached at (first in its list; at most 4 kept).
    public func noteAddress(_ address: String, of id: DeviceID) throws(NetError) {
        guard let known = try peer(id), known.addresses.first != address else { return }
        try update { peers in
            guard let i = peers.firstIndex(where: { $0.id == id }) else { return }
            peers[i].addresses = Array(([address] + peers[i].addresses.filter { $0 != address }).prefix(4))
        }
    }

    /// Forgets a device: it is refused from then on. Whether it was known.
    @discardableResult
    public func remove(_ id: DeviceID) throws(NetError) -> Bool {
        var removed = false
        try update { peers in
            let before = peers.count
            peers.removeAll { $0.id == id }
            removed = peers.count != before
        }
        return removed
    }

    private func update(_ change: (inout [PairedPeer]) -> Void) throws(NetError) {
        do {
            try FileSystem.makeDirectories(FileSystem.parent(of: path), mode: 0o700)
            let lock = try FileLock(path: lockPath, mode: .exclusive)
            var peers = try read()
            change(&peers)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.dateEncodingStrategy = .iso8601
            let body = try encoder.encode(File(peers: peers))
            try FileSystem.writeAtomically(Array(body) + [0x0A], to: path, mode: 0o600)
            _ = consume lock
        } catch let error as NetError {
            throw error
        } catch {
            throw NetError(.identity, "cannot write the paired devices file '\(path)': \(error)")
        }
    }

    private func read() throws(NetError) -> [PairedPeer] {
        guard FileSystem.exists(path) else { return [] }
        do {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            return try decoder.decode(File.self, from: Data(contentsOf: URL(fileURLWithPath: path))).peers
        } catch {
            throw NetError(
                .identity,
                "the paired devices file '\(path)' cannot be read (\(error)); restore it from a backup, or move it away and pair again"
            )
        }
    }

    /// What changes when the file is replaced: its inode, size and change time.
    private static func stamp(_ path: String) -> [Int64] {
        guard let entry = try? Directory.stat(Array(path.utf8)) else { return [-1] }
        return [Int64(bitPattern: entry.inode), Int64(entry.size), entry.ctimeNanoseconds, entry.mtimeNanoseconds]
    }
}
