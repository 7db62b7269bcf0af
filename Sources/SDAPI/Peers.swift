import Foundation
import SDCore
import SDNet
import SDStore
import SDSync

/// A paired device as the API shows it.
public struct PeerView: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    /// A short fingerprint of its key (compare it with `sd peer list` on that device).
    public var fingerprint: String
    public var addresses: [String]
    public var pairedAt: Date
    /// What it may do here: `read`, `write in LOCATION-UUID`, `read except in LOCATION-UUID`...
    public var rights: [String]
    /// Addresses it was heard announcing on the LAN (sdd only): hints, not verified, tried after `addresses`.
    public var heard: [String]?

    public init(_ peer: PairedPeer, heard: [String]? = nil) {
        self.heard = heard
        id = peer.id.description
        name = peer.name
        fingerprint = DeviceKey.fingerprint(peer.keyBytes)
        addresses = peer.addresses
        pairedAt = peer.pairedAt
        rights = peer.granted.described()
    }
}

/// This device and the devices paired with it.
public struct PeersAnswer: Codable, Sendable {
    public var device: String
    public var name: String
    public var fingerprint: String
    /// The port sdd accepts peers on (absent: not listening).
    public var listening: Int?
    public var peers: [PeerView]

    public init(device: String, name: String, fingerprint: String, listening: Int?, peers: [PeerView]) {
        self.device = device
        self.name = name
        self.fingerprint = fingerprint
        self.listening = listening
        self.peers = peers
    }
}

/// `POST /v1/pair`: open a pairing code.
public struct PairRequest: APIBody {
    /// The address other devices reach this one at (default: this machine's first non-loopback address).
    public var host: String?
    /// How long the code works (default 5).
    public var minutes: Int?
    public init(host: String?, minutes: Int?) {
        self.host = host
        self.minutes = minutes
    }
    public static var example: PairRequest { PairRequest(host: "192.168.1.20", minutes: 5) }
}

/// What became of the last pairing code.
public struct PairState: Codable, Sendable {
    /// 'none', 'waiting', 'paired', 'failed'.
    public var state: String
    public var code: String?
    public var peer: PeerView?
    public var reason: String?

    public init(_ state: PeerEndpoint.PairingState) {
        switch state {
        case .none: self.state = "none"
        case .waiting(let code):
            self.state = "waiting"
            self.code = code.description
        case .paired(let peer):
            self.state = "paired"
            self.peer = PeerView(peer)
        case .failed(let reason):
            self.state = "failed"
            self.reason = reason
        }
    }
}

/// `POST /v1/pair/join`: pair with the device that shows this code.
public struct JoinRequest: APIBody {
    public var code: String
    public init(code: String) { self.code = code }
    public static var example: JoinRequest { JoinRequest(code: "192.168.1.20:7373/K7Q4-M2XD-9RTA-HW3C") }
}

/// `POST /v1/peers/add`: where a paired device can be reached.
public struct AddressRequest: APIBody {
    /// HOST:PORT
    public var address: String
    public init(address: String) { self.address = address }
    public static var example: AddressRequest { AddressRequest(address: "192.168.1.30:7373") }
}

/// `POST /v1/sync/share` and `/v1/sync/unshare`: a paired device, by id or name.
public struct DeviceRequest: APIBody {
    public var device: String
    public init(device: String) { self.device = device }
    public static var example: DeviceRequest { DeviceRequest(device: "laptop") }
}

extension Operations {
    /// The paired device named by id, id prefix or name.
    ///
    /// #### Errors
    /// `NotInIndex`-like `RequestError` when none or several match.
    public static func pairedDevice(_ key: String, _ peers: PeerStore) throws -> PairedPeer {
        let all = try peers.all()
        let matches = all.filter { $0.id.description == key.lowercased() || $0.name == key }
        if matches.count == 1 { return matches[0] }
        let prefixed = all.filter { $0.id.description.hasPrefix(key.lowercased()) }
        if matches.isEmpty && prefixed.count == 1 && key.count >= 4 { return prefixed[0] }
        if matches.count > 1 || prefixed.count > 1 {
            throw RequestError("'\(key)' names several paired devices; give its id (sd peer list)")
        }
        throw RequestError("no paired device '\(key)' (sd peer list shows them; sd pair pairs one)")
    }

    /// Shares the library with a paired device: it may then open it and pull from it, and this device
    /// follows it.
    public static func share(_ library: Library, with peer: PairedPeer) throws -> MessageAnswer {
        if try library.syncPeers().contains(where: { $0.device == peer.id }) {
            return MessageAnswer(message: "library '\(library.manifest.name)' is already shared with \(peer.name)")
        }
        try library.saveSyncPeer(SyncPeerState(device: peer.id))
        return MessageAnswer(
            message:
                "library '\(library.manifest.name)' is shared with \(peer.name) (\(peer.id)); on it, run 'sd library join \(library.device.id)'"
        )
    }

    /// The first non-loopback IPv4 address of this machine (for pairing codes), else 127.0.0.1.
    public static func thisMachineAddress() -> String {
        var result = "127.0.0.1"
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return result }
        defer { freeifaddrs(list) }
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let address = entry.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET) else {
                continue
            }
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            let length = socklen_t(MemoryLayout<sockaddr_in>.size)
            guard getnameinfo(address, length, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 else {
                continue
            }
            let text = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if !text.hasPrefix("127.") {
                result = text
                break
            }
        }
        return result
    }
}
