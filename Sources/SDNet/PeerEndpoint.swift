import Crypto
import CryptoExtras
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import SDCore
import SDStore
import Synchronization

/// This device on the network: accepts connections from paired devices, connects to them, and pairs with new
/// ones through a pairing code.
///
/// Every connection is TLS 1.3 with both sides presenting a self-signed certificate of their device key; the
/// key is checked during the handshake against the pinned keys in `PeerStore` (an unpaired device never gets
/// past it, except while a pairing code is open, and then only to prove it holds the code). After the
/// handshake each side sends a `Hello`; a device id is accepted only with the key pinned for it.
public final class PeerEndpoint: Sendable {
    public let device: DeviceID
    public let name: String
    public let key: DeviceKey
    public let peers: PeerStore
    let group: any EventLoopGroup
    private let serverContext: NIOSSLContext
    private let clientContext: NIOSSLContext
    private let window = Mutex<PairingWindow?>(nil)
    private let outcome = Mutex<PairingState>(.none)
    /// The port this endpoint listens on, once it does (announced in hellos).
    private let listening = Mutex<UInt16>(0)
    /// How long the other side has to send its hello or proof, unless the endpoint is made with another.
    public static let defaultHandshakeTimeout: Duration = .seconds(10)
    /// How long the other side has to send its hello or proof.
    public let handshakeTimeout: Duration
    /// Who may hold connections to the peer port, how many, how long.
    public let admission: Admission

    struct PairingWindow {
        var code: PairingCode
        var expires: ContinuousClock.Instant
    }

    /// What became of the last pairing code opened here.
    public enum PairingState: Sendable, Equatable {
        case none
        case waiting(PairingCode)
        case paired(PairedPeer)
        case failed(String)
    }

    /// #### Errors
    /// `NetError.identity` when the key or certificate cannot be made or loaded.
    public init(
        device: DeviceID,
        name: String,
        key: DeviceKey,
        peers: PeerStore,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        handshakeTimeout: Duration = PeerEndpoint.defaultHandshakeTimeout,
        admission: Admission = Admission()
    ) throws(NetError) {
        self.handshakeTimeout = handshakeTimeout
        self.admission = admission
        self.device = device
        self.name = name
        self.key = key
        self.peers = peers
        self.group = group
        do {
            let certificate = try NIOSSLCertificate(bytes: try key.certificate(for: device), format: .der)
            let privateKey = try NIOSSLPrivateKey(bytes: Array(key.privateKey.pemRepresentation.utf8), format: .pem)
            func configuration(server: Bool) -> TLSConfiguration {
                var c =
                    server
                    ? TLSConfiguration.makeServerConfiguration(
                        certificateChain: [.certificate(certificate)],
                        privateKey: .privateKey(privateKey)
                    )
                    : TLSConfiguration.makeClientConfiguration()
                c.certificateChain = [.certificate(certificate)]
                c.privateKey = .privateKey(privateKey)
                c.minimumTLSVersion = .tlsv13
                c.maximumTLSVersion = .tlsv13
                // The custom verification callback decides (pinned keys); no hostnames, no chains.
                c.certificateVerification = .noHostnameVerification
                c.trustRoots = .certificates([])
                c.verifySignatureAlgorithms = [.ed25519]
                c.signingSignatureAlgorithms = [.ed25519]
                return c
            }
            serverContext = try NIOSSLContext(configuration: configuration(server: true))
            clientContext = try NIOSSLContext(configuration: configuration(server: false))
        } catch let error as NetError {
            throw error
        } catch {
            throw NetError(.identity, "cannot set up TLS with this device's key: \(error)")
        }
    }

    /// The endpoint of this device as its config folder describes it (identity, key, paired devices).
    public static func forThisDevice(configDirectory dir: String) throws -> PeerEndpoint {
        let identity = try DeviceIdentity.loadOrCreate(configDirectory: dir)
        return try PeerEndpoint(
            device: identity.id,
            name: identity.name,
            key: try DeviceKey.loadOrCreate(configDirectory: dir),
            peers: PeerStore(configDirectory: dir)
        )
    }

    // MARK: - Keys in certificates

    /// The raw Ed25519 key of a presented certificate (nil if it is not an Ed25519 certificate).
    static func rawKey(of certificate: NIOSSLCertificate) -> [UInt8]? {
        guard let spki = try? certificate.extractPublicKey().toSPKIBytes() else { return nil }
        let prefix: [UInt8] = [0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00]
        guard spki.count == 44, Array(spki.prefix(12)) == prefix else { return nil }
        return Array(spki.suffix(32))
    }

    /// The key a connection's other side presented, noted by the verification callback.
    final class Presented: Sendable {
        let key = Mutex<[UInt8]?>(nil)
    }

    // MARK: - Listening

    /// A listening socket; `close()` stops accepting (connections already accepted go on).
    public final class Listener: Sendable {
        public let port: Int
        let channel: any Channel
        init(port: Int, channel: any Channel) {
            self.port = port
            self.channel = channel
        }
        public func close() async { try? await channel.close() }
    }

    /// Starts accepting peers on `host:port` (port 0: any free one). Each connection from a paired device is
    /// handed to `onLink` once both hellos are exchanged; pairing connections are handled here.
    ///
    /// #### Errors
    /// `NetError.unreachable` when the address cannot be bound (in use, not local).
    public func listen(
        host: String,
        port: Int,
        onLink: @escaping @Sendable (PeerLink) async -> Void
    ) async throws(NetError) -> Listener {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            // A flood is accepted (and closed at once, see Admission) quickly rather than left in the kernel.
            .serverChannelOption(ChannelOptions.backlog, value: 1_024)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                // Over a cap or a rate: closed at once, before any TLS work (a flood costs a moment's descriptor).
                let remote = channel.remoteAddress?.ipAddress ?? "?"
                guard admission.admit(remote) else {
                    channel.close(promise: nil)
                    return channel.eventLoop.makeSucceededVoidFuture()
                }
                let inbox = Inbox()
                let presented = Presented()
                let guardian = ConnectionGuard(admission: admission, address: remote)
                return channel.eventLoop.makeCompletedFuture {
                    let tls = NIOSSLServerHandler(context: serverContext) { [self] certificates, promise in
                        guard let leaf = certificates.first, let key = Self.rawKey(of: leaf),
                            self.acceptsIncoming(key)
                        else { return promise.succeed(.failed) }
                        presented.key.withLock { $0 = key }
                        promise.succeed(.certificateVerified)
                    }
                    try channel.pipeline.syncOperations.addHandlers([
                        IdleStateHandler(readTimeout: admission.limits.idleTimeout), IdleCloser(), tls, guardian,
                        FrameDecoder(maximumLength: Frame.defaultMaximumLength, inbox: inbox),
                        MessageToByteHandler(FrameEncoder()), InboxHandler(inbox: inbox),
                    ])
                    Task {
                        await self.accepted(
                            channel,
                            inbox: inbox,
                            presented: presented,
                            guardian: guardian,
                            onLink: onLink
                        )
                    }
                }
            }
        do {
            let channel = try await bootstrap.bind(host: host, port: port).get()
            let bound = channel.localAddress?.port ?? port
            listening.withLock { $0 = UInt16(clamping: bound) }
            return Listener(port: bound, channel: channel)
        } catch {
            throw NetError(.unreachable, "cannot listen for peers on \(host):\(port): \(error)")
        }
    }

    /// Accepts a key in the handshake: a pinned one, or any while a pairing code is open.
    private func acceptsIncoming(_ key: [UInt8]) -> Bool {
        if (try? peers.peer(withKey: key)) != nil { return true }
        return window.withLock { w in w.map { ContinuousClock.now < $0.expires } ?? false }
    }

    private func accepted(
        _ channel: any Channel,
        inbox: Inbox,
        presented: Presented,
        guardian: ConnectionGuard,
        onLink: @Sendable (PeerLink) async -> Void
    ) async {
        func refuse(_ reason: String) async { await PeerLink.refuse(reason, on: channel) }
        let hello: Hello
        do {
            guard let frame = try await inbox.next(timeout: handshakeTimeout, channel: channel) else {
                try? await channel.close()
                return
            }
            hello = try Hello(frame)
        } catch {
            await refuse("no valid hello (\(error))")
            return
        }
        guard let key = presented.key.withLock({ $0 }) else {
            await refuse("no key presented")
            return
        }
        let remoteHost = channel.remoteAddress?.ipAddress ?? "?"
        let address = Self.address(host: remoteHost, port: hello.listenPort)
        switch hello.purpose {
        case .pair:
            guardian.handshaken()
            await hostPairing(channel, inbox: inbox, hello: hello, key: key, address: address)
        case .connect:
            guard let peer = try? peers.peer(hello.device) else {
                await refuse("device \(hello.device) is not paired with \(device); pair them first (sd pair)")
                return
            }
            guard peer.keyBytes == key else {
                await refuse("the key presented is not the one paired for device \(hello.device)")
                return
            }
            guard guardian.authenticated(as: peer.id) else {
                await refuse("device \(hello.device) holds too many connections to \(device) already")
                return
            }
            inbox.belongs(to: peer.id)
            let mine = Hello(device: device, name: name, purpose: .connect, nonce: Self.nonce(), listenPort: listenPort)
            do {
                try await PeerLink.write(mine.frame, on: channel)
            } catch {
                try? await channel.close()
                return
            }
            if hello.listenPort != 0 { try? peers.noteAddress(address, of: peer.id) }
            await onLink(PeerLink(peer: peer, hello: hello, address: address, channel: channel, inbox: inbox))
        }
    }

    var listenPort: UInt16 { listening.withLock { $0 } }

    static func address(host: String, port: UInt16) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    static func nonce() -> [UInt8] {
        var rng = SystemRandomNumberGenerator()
        return (0..<32).map { _ in rng.next() }
    }

    // MARK: - Connecting

    /// Connects to a paired device at `address` (`HOST:PORT`). With `expecting`, only that device's pinned
    /// key is accepted; without, any paired device's.
    ///
    /// #### Errors
    /// `NetError.unreachable` (no answer), `.refused` (the TLS check or the other side's hello check failed:
    /// not paired, or not the device expected), `.protocolError`, `.timeout`.
    public func connect(to address: String, expecting: DeviceID? = nil) async throws(NetError) -> PeerLink {
        let pinned: [UInt8]?
        if let expecting {
            guard let peer = try peers.peer(expecting) else {
                throw NetError(.refused, "device \(expecting) is not paired with this one; pair them first (sd pair)")
            }
            pinned = peer.keyBytes
        } else {
            pinned = nil
        }
        let (link, _) = try await open(address, purpose: .connect) { [peers] key in
            if let pinned { return key == pinned }
            return (try? peers.peer(withKey: key)) != nil
        }
        return link
    }

    /// Opens a TLS connection and exchanges hellos; the remote hello, key and channel.
    private func open(
        _ address: String,
        purpose: Hello.Purpose,
        nonce: [UInt8] = PeerEndpoint.nonce(),
        accepting: @escaping @Sendable ([UInt8]) -> Bool
    ) async throws(NetError) -> (PeerLink, [UInt8]) {
        let (host, port) = try Self.split(address)
        let inbox = Inbox()
        let presented = Presented()
        let context = clientContext
        let idle = admission.limits.idleTimeout
        let deadline = admission.limits.handshakeDeadline
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.seconds(5))
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let tls = try NIOSSLClientHandler(context: context, serverHostname: nil) { certificates, promise in
                        guard let leaf = certificates.first, let key = Self.rawKey(of: leaf), accepting(key) else {
                            return promise.succeed(.failed)
                        }
                        presented.key.withLock { $0 = key }
                        promise.succeed(.certificateVerified)
                    }
                    try channel.pipeline.syncOperations.addHandlers([
                        IdleStateHandler(readTimeout: idle), IdleCloser(), tls, HandshakeDeadline(deadline),
                        FrameDecoder(maximumLength: Frame.defaultMaximumLength, inbox: inbox),
                        MessageToByteHandler(FrameEncoder()), InboxHandler(inbox: inbox),
                    ])
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            throw NetError(.unreachable, "cannot reach \(address): \(error)")
        }
        let mine = Hello(device: device, name: name, purpose: purpose, nonce: nonce, listenPort: listenPort)
        do {
            do {
                try await PeerLink.write(mine.frame, on: channel)
            } catch {
                // The connection ended before the hello went out: the reason (a failed handshake, a refusal)
                // is what ended the inbox.
                _ = try await inbox.next(timeout: handshakeTimeout, channel: channel)
                throw error
            }
            guard let frame = try await inbox.next(timeout: handshakeTimeout, channel: channel) else {
                throw NetError(
                    .refused,
                    "\(address) closed the connection: it does not know this device (pair them first)"
                )
            }
            let hello = try Hello(frame)
            guard let key = presented.key.withLock({ $0 }) else {
                throw NetError(.refused, "\(address) presented no key")
            }
            let peer: PairedPeer
            if purpose == .connect {
                guard let known = try peers.peer(hello.device), known.keyBytes == key else {
                    throw NetError(.refused, "\(address) claims to be device \(hello.device) but does not hold its key")
                }
                peer = known
                inbox.belongs(to: known.id)
                try? peers.noteAddress(address, of: known.id)
            } else {
                peer = PairedPeer(id: hello.device, name: hello.name, publicKey: key, addresses: [address])
            }
            return (PeerLink(peer: peer, hello: hello, address: address, channel: channel, inbox: inbox), key)
        } catch {
            try? await channel.close()
            if let error = error as? WireError { throw NetError(.protocolError, "\(address): \(error)") }
            throw error as? NetError ?? NetError(.closed, "\(address): \(error)")
        }
    }

    static func split(_ address: String) throws(NetError) -> (String, Int) {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
            (1...65_535).contains(port)
        else { throw NetError(.unreachable, "'\(address)' is not HOST:PORT") }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw NetError(.unreachable, "'\(address)' has no host") }
        return (host, port)
    }

    // MARK: - Pairing

    /// Opens a pairing code for `ttl` (the listener must run): the first device to present it proves it and is
    /// paired; the code is then gone, as it is after a wrong proof or when it expires.
    public func openPairing(host: String, ttl: Duration = .seconds(300)) throws(NetError) -> PairingCode {
        let port = listenPort
        guard port != 0 else { throw NetError(.pairing, "this device is not listening for peers; start sdd first") }
        let code = PairingCode.make(host: host, port: port)
        window.withLock { $0 = PairingWindow(code: code, expires: .now + ttl) }
        outcome.withLock { $0 = .waiting(code) }
        return code
    }

    /// What became of the last code (`.failed` once it expired unused).
    public var pairingState: PairingState {
        let expired = window.withLock { w -> Bool in
            guard let open = w, ContinuousClock.now >= open.expires else { return false }
            w = nil
            return true
        }
        if expired {
            outcome.withLock { if case .waiting = $0 { $0 = .failed("the pairing code expired unused") } }
        }
        return outcome.withLock { $0 }
    }

    /// Closes an open code (nobody can use it from now).
    public func cancelPairing() {
        window.withLock { $0 = nil }
        outcome.withLock { if case .waiting = $0 { $0 = .failed("the pairing code was withdrawn") } }
    }

    private func hostPairing(_ channel: any Channel, inbox: Inbox, hello: Hello, key: [UInt8], address: String) async {
        func fail(_ reason: String, tell: String) async {
            outcome.withLock { $0 = .failed(reason) }
            await PeerLink.refuse(tell, on: channel)
        }
        // One attempt per code: taken now, whatever the outcome.
        let open = window.withLock { w -> PairingWindow? in
            defer { w = nil }
            return w
        }
        guard let open, ContinuousClock.now < open.expires else {
            await PeerLink.refuse(
                "no pairing code is open on this device (it expired or was used); ask for a new one",
                on: channel
            )
            return
        }
        let mine = Hello(device: device, name: name, purpose: .pair, nonce: Self.nonce(), listenPort: listenPort)
        do {
            try await PeerLink.write(mine.frame, on: channel)
            guard let frame = try await inbox.next(timeout: handshakeTimeout, channel: channel),
                frame.kind == Frame.Kind.pairProof
            else { return await fail("the joining device sent no proof", tell: "expected a pairing proof") }
            let expected = PairingCode.proof(
                secret: open.code.secret,
                role: "join",
                hostNonce: mine.nonce,
                joinerNonce: hello.nonce,
                hostKey: self.key.publicKey,
                joinerKey: key,
                host: device,
                joiner: hello.device
            )
            guard Self.equalInConstantTime(frame.payload, expected) else {
                return await fail(
                    "a device (\(hello.name), \(address)) presented a wrong pairing code; the code is now void",
                    tell: "wrong pairing code; the code is now void, ask for a new one"
                )
            }
            let peer = PairedPeer(
                id: hello.device,
                name: hello.name,
                publicKey: key,
                addresses: hello.listenPort == 0 ? [] : [address]
            )
            // A pinned key is never replaced by a pairing (unless `sd peer rekey` allowed it for that device).
            let saved: PairedPeer
            do { saved = try peers.pair(peer).peer } catch {
                return await fail(
                    "a device (\(hello.name), \(address)) knew the code but claims the id of a device already paired: \(error.message)",
                    tell: "this device is already paired with another device of id \(hello.device); nothing was changed"
                )
            }
            // Paired here before the answer goes: once the joining device has it, both sides say so.
            outcome.withLock { $0 = .paired(saved) }
            let answer = PairingCode.proof(
                secret: open.code.secret,
                role: "host",
                hostNonce: mine.nonce,
                joinerNonce: hello.nonce,
                hostKey: self.key.publicKey,
                joinerKey: key,
                host: device,
                joiner: hello.device
            )
            try await PeerLink.write(Frame(Frame.Kind.pairProof, answer), on: channel)
            try? await channel.close()
        } catch {
            await fail("pairing with \(address) failed: \(error)", tell: "pairing failed")
        }
    }

    /// Pairs with the device that opened `code`: both prove they hold the code's secret without sending it,
    /// then each pins the other's key. The paired device.
    ///
    /// #### Errors
    /// `NetError.pairing` (wrong or used code, or the other side's proof is wrong: then nothing is saved),
    /// `.unreachable`, `.timeout`.
    public func join(_ code: PairingCode) async throws(NetError) -> PairedPeer {
        let nonce = Self.nonce()
        let link: PeerLink
        let hostKey: [UInt8]
        do {
            (link, hostKey) = try await open(
                Self.address(host: code.host, port: code.port),
                purpose: .pair,
                nonce: nonce
            ) { _ in true }
        } catch  where error.kind == .refused {
            throw NetError(.pairing, error.message)
        }
        let proof = PairingCode.proof(
            secret: code.secret,
            role: "join",
            hostNonce: link.hello.nonce,
            joinerNonce: nonce,
            hostKey: hostKey,
            joinerKey: key.publicKey,
            host: link.hello.device,
            joiner: device
        )
        do {
            try await link.send(Frame(Frame.Kind.pairProof, proof))
            guard let frame = try await link.receive(timeout: handshakeTimeout), frame.kind == Frame.Kind.pairProof
            else { throw NetError(.pairing, "the other device ended the pairing without its proof") }
            let expected = PairingCode.proof(
                secret: code.secret,
                role: "host",
                hostNonce: link.hello.nonce,
                joinerNonce: nonce,
                hostKey: hostKey,
                joinerKey: key.publicKey,
                host: link.hello.device,
                joiner: device
            )
            guard Self.equalInConstantTime(frame.payload, expected) else {
                throw NetError(
                    .pairing,
                    "the device at \(code.host):\(code.port) does not know the code's secret: it is not the device that showed the code; nothing was saved"
                )
            }
            let peer = PairedPeer(
                id: link.hello.device,
                name: link.hello.name,
                publicKey: hostKey,
                addresses: ["\(Self.address(host: code.host, port: code.port))"]
            )
            // The showing device's key is pinned only if no other key is pinned for its id.
            let saved = try peers.pair(peer).peer
            await link.close()
            return saved
        } catch let error as NetError {
            await link.close()
            if error.kind == .refused { throw NetError(.pairing, error.message) }
            throw error
        } catch {
            await link.close()
            throw NetError(.pairing, "\(error)")
        }
    }

    static func equalInConstantTime(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in a.indices { difference |= a[i] ^ b[i] }
        return difference == 0
    }
}
