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

    public init(id: DeviceID, name: String, publicKey: [UInt8], addresses: [String], pairedAt: Date = Date()) {
        self.id = id
        self.name = name
        self.publicKey = Data(publicKey).base64EncodedString()
        self.addresses = addresses
        self.pairedAt = Date(timeIntervalSince1970: floor(pairedAt.timeIntervalSince1970))
    }

    public var keyBytes: [UInt8] { Data(base64Encoded: publicKey).map(Array.init) ?? [] }
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

    /// Adds or replaces (by id) a paired device.
    public func save(_ peer: PairedPeer) throws(NetError) {
        try update { peers in
            peers.removeAll { $0.id == peer.id }
            peers.append(peer)
        }
    }

    /// Notes an address a paired device was reached at (first in its list; at most 4 kept).
    public func noteAddress(_ address: String, of id: DeviceID) throws(NetError) {
        guard let known = try peer(id), known.addresses.first != address else { return }
        try update { peers in
            guard let i = peers.firstIndex(where: { $0.id == id }) else { return }
            peers[i].addresses = Array(([address] + peers[i].addresses.filter { $0 != address }).prefix(4))
        }
    }

    /// Notes an address a paired device announced (LAN discovery) if it is not known yet: first in its list,
    /// to be tried first. Nothing for a device not paired. Whether it was new.
    @discardableResult
    public func noteAnnounced(_ address: String, of id: DeviceID) throws(NetError) -> Bool {
        guard let known = try peer(id), !known.addresses.contains(address) else { return false }
        try noteAddress(address, of: id)
        return true
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
