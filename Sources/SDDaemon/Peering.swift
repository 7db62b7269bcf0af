import Foundation
import Hummingbird
import Logging
import SDAPI
import SDCore
import SDNet
import SDStore
import SDSync
import ServiceLifecycle
import Synchronization

/// The daemon on the network: accepts paired devices on the peer port, and keeps the library in sync with the
/// devices it is shared with (`SyncService`). Started with the server, stopped before it.
///
/// Safe by default: it neither listens nor announces itself until this device has a paired device (or
/// `sd pair` asks for a code); LAN announcements it hears are hints, kept apart and bounded, tried only after
/// the addresses a TLS handshake verified, and written nowhere until one of them is verified in turn.
final class Peering: Sendable {
    let endpoint: PeerEndpoint
    let sync: SyncService
    let host: String
    let port: Int
    let logger: Logger
    private let listener = Mutex<PeerEndpoint.Listener?>(nil)
    /// The UDP port of LAN discovery (nil: off), and the running discovery.
    let discoveryPort: Int?
    private let discovery = Mutex<LANDiscovery?>(nil)
    /// Addresses heard in announcements of paired devices (not verified).
    let hints: DiscoveryHints
    /// One start of the listener at a time.
    private let starting = AsyncSemaphore(permits: 1)

    init(library: Library, host: String, port: Int, discoveryPort: Int?, logger: Logger) throws {
        self.discoveryPort = discoveryPort
        let dir = DeviceIdentity.configDirectory()
        endpoint = try PeerEndpoint(
            device: library.device.id,
            name: library.device.name,
            key: try DeviceKey.loadOrCreate(configDirectory: dir),
            peers: PeerStore(configDirectory: dir)
        )
        self.host = host
        self.port = port
        self.logger = logger
        let log = logger
        let hints = DiscoveryHints()
        self.hints = hints
        sync = SyncService(
            library: library,
            endpoint: endpoint,
            updater: LiveIndexUpdater(library: library),
            hints: { hints.addresses(of: $0) }
        ) {
            log.info("\($0)")
        }
    }

    /// The port peers reach this daemon on, once it listens.
    var listeningPort: Int? { listener.withLock { $0?.port } }

    /// Whether the device has a paired device (then it listens).
    var hasPeers: Bool { !((try? endpoint.peers.all()) ?? []).isEmpty }

    /// What it does on the network, in words.
    var described: String {
        guard let port = listeningPort else {
            if hasPeers { return "starting to accept paired devices on \(host)" }
            return
                "not listening for peers until a device is paired (`sd pair` starts it; it will accept them on \(host):\(self.port == 0 ? "a free port" : "\(self.port)"))"
        }
        let announcing = discovery.withLock { $0 != nil }
        return "accepting paired devices on \(host):\(port); "
            + (announcing ? "LAN discovery on UDP \(discoveryPort ?? 0)" : "no LAN discovery")
    }

    /// Listens now (if it does not yet), and announces itself if discovery is on. The port.
    ///
    /// #### Errors
    /// `NetError.unreachable` when the address cannot be bound.
    @discardableResult
    func listen() async throws -> Int {
        try await starting.withPermit { [self] in
            if let port = listeningPort { return port }
            let sync = self.sync
            let opened = try await endpoint.listen(host: host, port: port) { link in await sync.serve(link) }
            listener.withLock { $0 = opened }
            logger.info("accepting peers", metadata: ["address": "\(host):\(opened.port)"])
            if let discoveryPort { await discover(on: discoveryPort, listening: opened.port) }
            return opened.port
        }
    }

    /// Listens once a device is paired: at start, then whenever one is (a pairing joined from this device).
    func listenWhenPaired() async {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            if listeningPort == nil && hasPeers {
                do { try await listen() } catch {
                    // Serving the API matters more: go on without peers, and say why (once a minute).
                    logger.error("not accepting peers: \(error)")
                    try? await Task.sleep(for: .seconds(60))
                }
            }
            try? await Task.sleep(for: .seconds(2))
        }
    }

    /// Announces this device on the LAN, and notes where paired devices announce themselves (a hint to try;
    /// the TLS handshake decides who is there).
    private func discover(on udpPort: Int, listening: Int) async {
        let peers = endpoint.peers
        let hints = self.hints
        let sync = self.sync
        let logger = self.logger
        do {
            let started = try await LANDiscovery.start(
                device: endpoint.device,
                listenPort: listening,
                port: udpPort
            ) { announcement, host in
                let address = host.contains(":") ? "[\(host)]:\(announcement.port)" : "\(host):\(announcement.port)"
                // Rates first (per device and in all), then the paired devices are looked at.
                guard hints.admit(announcement.device),
                    let paired = try? peers.peer(announcement.device), !paired.addresses.contains(address)
                else { return }
                if hints.note(address, of: announcement.device) {
                    logger.info(
                        "heard paired device \(announcement.device) announce \(address) (a hint until verified)"
                    )
                    // A new address to try: following it need not wait out a pause after earlier failures.
                    sync.wake(announcement.device)
                }
            }
            discovery.withLock { $0 = started }
            logger.info("announcing on the LAN", metadata: ["udp": "\(udpPort)"])
        } catch {
            logger.warning("no LAN discovery: \(error)")
        }
    }

    func stop() async {
        let open = listener.withLock { value -> PeerEndpoint.Listener? in
            defer { value = nil }
            return value
        }
        await open?.close()
        let announcing = discovery.withLock { value -> LANDiscovery? in
            defer { value = nil }
            return value
        }
        await announcing?.close()
    }
}

/// Addresses paired devices announced on the LAN: hints, never trusted and never written anywhere. At most 4
/// per device (the newest); announcements are looked at at most 100 a second in all and 2 a second per device
/// id (a flood under one device's id does not drown the others'); an address that a TLS handshake then
/// verifies is noted with the device by the endpoint (and only then written to peers.json).
final class DiscoveryHints: Sendable {
    private struct Bucket {
        var tokens: Double
        var at = ContinuousClock.now

        /// Takes a token if there is one, refilled at `rate` a second up to `burst`.
        mutating func take(rate: Double, burst: Double) -> Bool {
            let now = ContinuousClock.now
            let elapsed = now - at
            at = now
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            tokens = min(burst, tokens + rate * seconds)
            guard tokens >= 1 else { return false }
            tokens -= 1
            return true
        }
    }
    private struct State {
        var byDevice: [DeviceID: [String]] = [:]
        var all = Bucket(tokens: 100)
        var perDevice: [DeviceID: Bucket] = [:]
    }
    private let state = Mutex(State())
    static let perDevice = 4
    static let devices = 256

    /// Whether an announcement of `device` is looked at now (the rates).
    func admit(_ device: DeviceID) -> Bool {
        state.withLock { s in
            guard s.all.take(rate: 100, burst: 100) else { return false }
            if s.perDevice[device] == nil && s.perDevice.count >= 4_096 { s.perDevice.removeAll() }
            var bucket = s.perDevice[device] ?? Bucket(tokens: 4)
            defer { s.perDevice[device] = bucket }
            return bucket.take(rate: 2, burst: 4)
        }
    }

    /// Notes a hint; whether it was new (false: known, or too many devices).
    func note(_ address: String, of device: DeviceID) -> Bool {
        state.withLock { s in
            var list = s.byDevice[device] ?? []
            if list.first == address { return false }
            if list.isEmpty && s.byDevice.count >= Self.devices { return false }
            list.removeAll { $0 == address }
            list.insert(address, at: 0)
            s.byDevice[device] = Array(list.prefix(Self.perDevice))
            return true
        }
    }

    func addresses(of device: DeviceID) -> [String] { state.withLock { $0.byDevice[device] ?? [] } }
}

struct PeeringService: Service {
    let peering: Peering
    let ready: Gate

    func run() async throws {
        guard await ready.wait() else { return }
        let sync = peering.sync
        // Listening first: a connection this device opens says where it listens (its hello's port), and the
        // device it reaches notes that address. Opened before the listener, it said 0, and that device had no
        // way back here until the connection ended (seen: a follower that never found its peer).
        if peering.hasPeers { _ = try? await peering.listen() }
        let follower = Task { await sync.run() }
        let listening = Task { await peering.listenWhenPaired() }
        try? await gracefulShutdown()
        follower.cancel()
        listening.cancel()
        await peering.stop()
    }
}

extension Routes {
    /// Pairing, peers, library sharing and sync state.
    func addPeers(to router: RouteTable, peering: Peering?) {
        @Sendable func need() throws -> Peering {
            guard let peering else {
                throw ActionRefused("this sdd does not talk to peers (it was started with --peer-port off)")
            }
            return peering
        }
        let library = daemon.library
        router.get("/v1/peers") { _, _ in
            let p = try need()
            return try JSON.response(
                PeersAnswer(
                    device: p.endpoint.device.description,
                    name: p.endpoint.name,
                    fingerprint: DeviceKey.fingerprint(p.endpoint.key.publicKey),
                    listening: p.listeningPort,
                    peers: try p.endpoint.peers.all().map { PeerView($0, heard: p.hints.addresses(of: $0.id)) }
                )
            )
        }
        router.post("/v1/pair") { request, context in
            let p = try need()
            let asked = try await Body.decode(PairRequest.self, request, context)
            let minutes = asked.minutes ?? 5
            guard (1...60).contains(minutes) else { throw BadRequest("minutes is 1 to 60") }
            // Pairing needs the peer port open: it opens now if no device was paired yet.
            do { try await p.listen() } catch {
                throw ActionRefused("this sdd cannot accept peers (\(error)); a pairing code would not work")
            }
            // An address the other device can reach: the one it listens on when that is one address, else this
            // machine's first (never an address it does not listen on).
            let wildcard = ["0.0.0.0", "::", "", "[::]"].contains(p.host)
            _ = try p.endpoint.openPairing(
                host: asked.host ?? (wildcard ? Operations.thisMachineAddress() : p.host),
                ttl: .seconds(minutes * 60)
            )
            return try JSON.response(PairState(p.endpoint.pairingState))
        }
        router.get("/v1/pair") { _, _ in try JSON.response(PairState(try need().endpoint.pairingState)) }
        router.post("/v1/pair/join") { request, context in
            let p = try need()
            let asked = try await Body.decode(JoinRequest.self, request, context)
            let code: PairingCode
            do { code = try PairingCode(parsing: asked.code) } catch let error as NetError {
                throw BadRequest(error.message)
            }
            return try JSON.response(PeerView(try await p.endpoint.join(code)))
        }
        router.post("/v1/peers/add") { request, context in
            let p = try need()
            let asked = try await Body.decode(AddressRequest.self, request, context)
            let link = try await p.endpoint.connect(to: asked.address)
            await link.close()
            return try JSON.response(PeerView(try p.endpoint.peers.peer(link.peer.id) ?? link.peer))
        }
        router.get("/v1/sync") { _, _ in try JSON.response(try need().sync.status()) }
        router.post("/v1/sync/share") { request, context in
            let p = try need()
            let asked = try await Body.decode(DeviceRequest.self, request, context)
            let peer = try Operations.pairedDevice(asked.device, p.endpoint.peers)
            return try JSON.response(try Operations.share(library, with: peer))
        }
        router.get("/v1/sync/conflicts") { _, _ in try JSON.response(try library.syncConflicts()) }
        // Content paths: other devices' copies ranked by how the sync connections reach them now.
        router.get("/v1/resolve") { request, _ in
            let reach = try peering.map { Operations.reach(from: try $0.sync.status()) }
            return try JSON.response(try Operations.resolveAnswer(try Query.path(request), library, peers: reach))
        }
    }
}
