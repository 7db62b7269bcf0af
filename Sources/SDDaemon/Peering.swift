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
        sync = SyncService(library: library, endpoint: endpoint, updater: LiveIndexUpdater(library: library)) {
            log.info("\($0)")
        }
    }

    /// The port peers reach this daemon on, once it listens.
    var listeningPort: Int? { listener.withLock { $0?.port } }

    func start() async {
        do {
            let sync = self.sync
            let opened = try await endpoint.listen(host: host, port: port) { link in await sync.serve(link) }
            listener.withLock { $0 = opened }
            logger.info("accepting peers", metadata: ["port": "\(opened.port)"])
            if let discoveryPort { await discover(on: discoveryPort, listening: opened.port) }
        } catch {
            // Serving the API matters more: go on without peers, and say why.
            logger.error("not accepting peers: \(error)")
        }
    }

    /// Announces this device on the LAN, and notes where paired devices announce themselves (an address to
    /// try; the TLS handshake still decides who is there).
    private func discover(on udpPort: Int, listening: Int) async {
        let peers = endpoint.peers
        let logger = self.logger
        do {
            let started = try await LANDiscovery.start(
                device: endpoint.device,
                listenPort: listening,
                port: udpPort
            ) { announcement, host in
                let address = host.contains(":") ? "[\(host)]:\(announcement.port)" : "\(host):\(announcement.port)"
                if (try? peers.noteAnnounced(address, of: announcement.device)) == true {
                    logger.info("heard paired device \(announcement.device) at \(address) (LAN discovery)")
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

struct PeeringService: Service {
    let peering: Peering
    let ready: Gate

    func run() async throws {
        guard await ready.wait() else { return }
        await peering.start()
        let sync = peering.sync
        let follower = Task { await sync.run() }
        try? await gracefulShutdown()
        follower.cancel()
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
                    peers: try p.endpoint.peers.all().map(PeerView.init)
                )
            )
        }
        router.post("/v1/pair") { request, context in
            let p = try need()
            let asked = try await Body.decode(PairRequest.self, request, context)
            let minutes = asked.minutes ?? 5
            guard (1...60).contains(minutes) else { throw BadRequest("minutes is 1 to 60") }
            guard p.listeningPort != nil else {
                throw ActionRefused("this sdd is not accepting peers (see its log); a pairing code would not work")
            }
            _ = try p.endpoint.openPairing(
                host: asked.host ?? Operations.thisMachineAddress(),
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
