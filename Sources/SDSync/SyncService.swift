import Foundation
import SDActions
import SDCore
import SDNet
import SDStore
import Synchronization

/// What `sd sync status` shows of one peer: the saved progress and the live connection.
public struct PeerSyncStatus: Sendable, Codable, Equatable {
    public var device: DeviceID
    public var name: String
    public var connected: Bool
    public var address: String?
    /// Caught up with everything the peer had when it last said it changed.
    public var caughtUp: Bool
    public var lastSyncAt: Date?
    public var lastError: String?
    /// Rows and changes applied from it since this daemon started.
    public var applied: Int
    /// The peer's own rows received through (its change sequence), and its shared log merged through.
    public var ownedSeq: Int64
    public var sharedSeq: Int64
    /// Round-trip time of the last request, in milliseconds.
    public var rttMilliseconds: Double?

    public init(
        device: DeviceID,
        name: String,
        connected: Bool,
        address: String?,
        caughtUp: Bool,
        lastSyncAt: Date?,
        lastError: String?,
        applied: Int,
        ownedSeq: Int64,
        sharedSeq: Int64,
        rttMilliseconds: Double?
    ) {
        self.device = device
        self.name = name
        self.connected = connected
        self.address = address
        self.caughtUp = caughtUp
        self.lastSyncAt = lastSyncAt
        self.lastError = lastError
        self.applied = applied
        self.ownedSeq = ownedSeq
        self.sharedSeq = sharedSeq
        self.rttMilliseconds = rttMilliseconds
    }
}

/// Keeps one library in sync with the devices it is shared with, over peer links: serves their requests
/// (and tells them when something changed here), and follows each of them (pulls their rows and shared
/// changes when they say something changed, and every `interval` anyway). Reconnects after any failure.
public final class SyncService: Sendable {
    public let library: Library
    public let endpoint: PeerEndpoint
    let log: @Sendable (String) -> Void
    private let live = Mutex<[DeviceID: PeerSyncStatus]>([:])
    private let running = Mutex<[DeviceID: Task<Void, Never>]>([:])
    /// Followers to wake from their pause after failures: their device just showed itself.
    private let wakeups = Mutex<Set<DeviceID>>([])
    /// How often a follower looks even when told nothing.
    public let interval: Duration
    /// How often served connections check for changes to announce.
    public let announceEvery: Duration
    /// Brings the index up to date for folders other devices sent files into (nil: not done here).
    let updater: (any IndexUpdater)?
    /// Addresses a device was heard announcing (LAN discovery): tried after the verified ones.
    let hints: @Sendable (DeviceID) -> [String]

    public init(
        library: Library,
        endpoint: PeerEndpoint,
        interval: Duration = .seconds(30),
        announceEvery: Duration = .milliseconds(250),
        updater: (any IndexUpdater)? = nil,
        hints: @escaping @Sendable (DeviceID) -> [String] = { _ in [] },
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.hints = hints
        self.library = library
        self.endpoint = endpoint
        self.interval = interval
        self.announceEvery = announceEvery
        self.updater = updater
        self.log = log
    }

    // MARK: - Serving

    /// Serves one incoming connection: a list of the libraries shared with it, or a sync of this library.
    public func serve(_ link: PeerLink) async {
        do {
            guard let first = try await link.receive(timeout: .seconds(10)) else { return await link.close() }
            switch try SyncMessage(first) {
            case .listLibraries:
                let shared = try isShared(with: link.peer.id)
                try await link.send(
                    SyncMessage.libraries(
                        shared ? [SharedLibrary(id: library.manifest.id, name: library.manifest.name)] : []
                    ).frame
                )
                await link.close()
            case .open(let id):
                guard id == library.manifest.id else {
                    return await link.close(refusing: "this device does not hold library \(id)")
                }
                guard endpoint.peers.rights(of: link.peer.id).allows(.sync) else {
                    return await link.close(
                        refusing:
                            "\(endpoint.name) does not sync with this device (there: `sd peer allow \(endpoint.device) sync`)"
                    )
                }
                guard try isShared(with: link.peer.id) else {
                    return await link.close(
                        refusing:
                            "library '\(library.manifest.name)' is not shared with device \(link.peer.id); run 'sd library share \(link.peer.id)' on \(endpoint.name)"
                    )
                }
                try await link.send(SyncMessage.opened(library: id, name: library.manifest.name).frame)
                // It is up and syncing with us: following it need not wait out a pause after earlier failures.
                wake(link.peer.id)
                try await answer(link)
            default:
                await link.close(refusing: "expected a library to open")
            }
        } catch {
            log("sync: serving \(link.peer.name) (\(link.address)) ended: \(error)")
            await link.close()
        }
    }

    func isShared(with device: DeviceID) throws -> Bool {
        try library.syncPeers().contains { $0.device == device }
    }

    /// Answers requests until the connection ends; announces changes here meanwhile.
    private func answer(_ link: PeerLink) async throws {
        let written = WrittenFolders()
        let peers = endpoint.peers
        let device = link.peer.id
        let server = SyncServer(library: library, written: written, rights: { peers.rights(of: device) }, peer: device)
        /// Folders that received files since the last look, brought up to date in the index.
        @Sendable func reindex() {
            let folders = written.take()
            guard let updater, !folders.isEmpty else { return }
            do { try updater.foldersChanged(folders, thorough: false) } catch {
                log("sync: indexing what \(link.peer.name) sent: \(error)")
            }
        }
        defer { reindex() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                var last = try library.syncMarker()
                var ticks = 0
                while !Task.isCancelled && link.isActive {
                    try await Task.sleep(for: announceEvery)
                    ticks += 1
                    if ticks % 4 == 0 { reindex() }
                    let now = try library.syncMarker()
                    if now != last {
                        last = now
                        try await link.send(SyncMessage.changed.frame)
                    }
                }
            }
            group.addTask {
                while let frame = try await link.receive() {
                    let request = try SyncMessage(frame)
                    guard let answer = try server.answer(request) else {
                        throw NetError(.protocolError, "unexpected sync message \(frame.kind)")
                    }
                    try await link.send(answer.frame)
                }
            }
            try await group.next()
            group.cancelAll()
        }
        await link.close()
    }

    // MARK: - Following

    /// Follows every device this library is shared with until cancelled (devices shared later are picked up
    /// within two seconds; devices no longer shared are let go).
    public func run() async {
        var cleaned = ContinuousClock.now - .seconds(3600)
        while !Task.isCancelled {
            // Temporaries of files other devices began sending and left: at start, then every hour.
            if ContinuousClock.now - cleaned >= .seconds(3600) {
                cleaned = .now
                let removed = PeerFileReceiver.removeAbandoned(library)
                if removed > 0 { log("sync: removed \(removed) temporaries of files other devices left unfinished") }
            }
            // Devices this library is shared with, and that this device syncs with.
            let paired = endpoint.peers
            let peers = ((try? library.syncPeers().map(\.device)) ?? []).filter { paired.rights(of: $0).allows(.sync) }
            running.withLock { tasks in
                for device in peers where tasks[device] == nil {
                    tasks[device] = Task { [self] in await follow(device) }
                }
                for (device, task) in tasks where !peers.contains(device) {
                    task.cancel()
                    tasks[device] = nil
                }
            }
            try? await Task.sleep(for: .seconds(2))
        }
        for task in running.withLock({ Array($0.values) }) { task.cancel() }
    }

    /// Follows one device: connect, open the library, pull whenever told (or every `interval`), reconnect
    /// with growing pauses after failures.
    func follow(_ device: DeviceID) async {
        var pause: Duration = .milliseconds(500)
        while !Task.isCancelled {
            do {
                try await followOnce(device)
                pause = .milliseconds(500)
            } catch {
                update(device) {
                    $0.connected = false
                    $0.lastError = "\(error)"
                }
                log("sync: following \(device): \(error)")
            }
            if await sleep(pause, orUntilWoken: device) {
                pause = .milliseconds(500)
            } else {
                pause = min(pause * 2, .seconds(30))
            }
        }
    }

    /// Tells the follower of `device` to try again now (it showed itself: it connected here, or was heard at a
    /// new address).
    public func wake(_ device: DeviceID) {
        _ = wakeups.withLock { $0.insert(device) }
    }

    /// Sleeps for `pause`, or until `wake(device)` (looked at four times a second); true when woken.
    /// (Polled: a follower only waits like this while its device is unreachable.)
    func sleep(_ pause: Duration, orUntilWoken device: DeviceID) async -> Bool {
        let end = ContinuousClock.now + pause
        while !Task.isCancelled {
            if wakeups.withLock({ $0.remove(device) != nil }) { return true }
            let left = end - ContinuousClock.now
            if left <= .zero { return false }
            try? await Task.sleep(for: min(left, .milliseconds(250)))
        }
        return false
    }

    /// A connection to `device` (at any of its known addresses) with this library opened on it.
    func openLink(_ device: DeviceID) async throws -> PeerLink {
        guard let peer = try endpoint.peers.peer(device) else {
            throw NetError(.refused, "device \(device) is not paired with this one (sd pair)")
        }
        var link: PeerLink?
        var failures: [String] = []
        // The addresses a handshake verified first, then what it was heard announcing (the handshake decides).
        let heard = hints(device).filter { !peer.addresses.contains($0) }
        for address in peer.addresses + heard {
            do {
                link = try await endpoint.connect(to: address, expecting: device)
                break
            } catch {
                failures.append("\(address): \(error)")
            }
        }
        guard let link else {
            throw NetError(
                .unreachable,
                failures.isEmpty
                    ? "no address known for \(peer.name); run 'sd peer add HOST:PORT'"
                    : failures.joined(separator: "; ")
            )
        }
        do {
            try await link.send(SyncMessage.open(library: library.manifest.id).frame)
            guard let opened = try await link.receive(timeout: .seconds(10)),
                case .opened = try SyncMessage(opened)
            else { throw NetError(.protocolError, "\(peer.name) did not open the library") }
        } catch {
            await link.close()
            throw error
        }
        return link
    }

    private func followOnce(_ device: DeviceID) async throws {
        let link = try await openLink(device)
        let peer = link.peer
        defer { Task { await link.close() } }
        update(device) {
            $0.connected = true
            $0.address = link.address
            $0.name = peer.name
            $0.lastError = nil
        }
        log("sync: following \(peer.name) at \(link.address)")
        let peers = endpoint.peers
        let follower = try SyncFollower(library: library, peer: device, rights: { peers.rights(of: device) })
        var told = false
        while !Task.isCancelled {
            if !follower.isIdle {
                let heard = try await Self.round(follower, over: link, timeout: .seconds(60)) { rtt in
                    update(device) { [state = follower.state, applied = follower.applied, idle = follower.isIdle] in
                        $0.caughtUp = idle
                        $0.lastSyncAt = state.lastSyncAt
                        $0.ownedSeq = state.owned.entry.first ?? 0
                        $0.sharedSeq = state.sharedSeq
                        $0.applied = applied
                        if let rtt { $0.rttMilliseconds = rtt.milliseconds }
                    }
                }
                told = told || heard
                continue
            }
            if told {
                told = false
                follower.startRound()
                continue
            }
            // Idle: wait to be told, or for the interval.
            do {
                guard let frame = try await link.receive(timeout: interval) else {
                    throw NetError(.closed, "\(peer.name) closed the connection")
                }
                if try SyncMessage(frame) == .changed { told = true }
            } catch let error as NetError where error.kind == .timeout {
                told = true
            }
        }
    }

    /// Runs `follower` over `link` until it is idle: sends its requests and takes their answers, asking for
    /// the next device-owned batch before applying one, so that the peer reads it meanwhile (the two sides
    /// otherwise wait for each other in turn). `taken` after each answer taken, with the round trip of a request
    /// that was not asked ahead. Whether the peer announced a change meanwhile.
    static func round(
        _ follower: SyncFollower,
        over link: PeerLink,
        timeout: Duration,
        taken: (Duration?) -> Void
    ) async throws -> Bool {
        var told = false
        var askAgain = true
        var sent: ContinuousClock.Instant?
        /// The next message, received and decoded while the last one is applied.
        var prefetched: Task<SyncMessage?, any Error>?
        @Sendable func next() async throws -> SyncMessage? {
            try await link.receive(timeout: timeout).map { try SyncMessage($0) }
        }
        while true {
            try Task.checkCancellation()
            if askAgain || !follower.isAwaiting {
                guard let request = follower.request() else { return told }
                sent = .now
                try await link.send(request.frame)
                askAgain = false
            }
            let received: SyncMessage?
            if let early = prefetched {
                prefetched = nil
                received = try await early.value
            } else {
                received = try await next()
            }
            guard let message = received else {
                throw NetError(.closed, "\(link.peer.name) closed the connection")
            }
            if message == .changed {
                told = true
                continue
            }
            let rtt = sent.map { ContinuousClock.now - $0 }
            sent = nil
            if let ahead = follower.requestAhead(of: message) {
                try await link.send(ahead.frame)
                prefetched = Task { try await next() }
            }
            // An answer not taken (not to the last request: none should come on one connection) is asked again.
            askAgain = try !follower.take(message)
            taken(rtt)
        }
    }

    private func update(_ device: DeviceID, _ change: (inout PeerSyncStatus) -> Void) {
        live.withLock { all in
            var s =
                all[device]
                ?? .unknown(device)
            change(&s)
            all[device] = s
        }
    }

    /// Every peer this library is shared with, with its saved progress and live state.
    public func status() throws -> [PeerSyncStatus] {
        let current = live.withLock { $0 }
        return try library.syncPeers().map { saved in
            var s =
                current[saved.device]
                ?? .unknown(saved.device)
            s.lastSyncAt = s.lastSyncAt ?? saved.lastSyncAt
            s.lastError = s.lastError ?? saved.lastError
            s.ownedSeq = saved.owned.entry.first ?? 0
            s.sharedSeq = saved.sharedSeq
            if s.name.isEmpty { s.name = (try? endpoint.peers.peer(saved.device)?.name) ?? "" }
            return s
        }
    }

    // MARK: - Joining

    /// The libraries `device` (at `address`) shares with this one.
    public static func libraries(
        sharedBy device: DeviceID,
        at address: String,
        endpoint: PeerEndpoint
    ) async throws -> [SharedLibrary] {
        let link = try await endpoint.connect(to: address, expecting: device)
        defer { Task { await link.close() } }
        try await link.send(SyncMessage.listLibraries.frame)
        guard let frame = try await link.receive(timeout: .seconds(10)),
            case .libraries(let list) = try SyncMessage(frame)
        else { throw NetError(.protocolError, "no list of libraries from \(address)") }
        return list
    }

    /// Pulls everything `device` has of this library now (a first backfill), once, with progress: what was
    /// applied, and the bytes received.
    public static func pullOnce(
        library: Library,
        from device: DeviceID,
        at address: String,
        endpoint: PeerEndpoint,
        progress: (Int) -> Void = { _ in }
    ) async throws -> (applied: Int, bytes: Int) {
        let link = try await endpoint.connect(to: address, expecting: device)
        defer { Task { await link.close() } }
        try await link.send(SyncMessage.open(library: library.manifest.id).frame)
        guard let opened = try await link.receive(timeout: .seconds(10)), case .opened = try SyncMessage(opened) else {
            throw NetError(.protocolError, "\(address) did not open the library")
        }
        let peers = endpoint.peers
        let follower = try SyncFollower(library: library, peer: device, rights: { peers.rights(of: device) })
        _ = try await round(follower, over: link, timeout: .seconds(120)) { _ in progress(follower.applied) }
        return (follower.applied, link.bytesReceived)
    }
}

extension PeerSyncStatus {
    /// A peer not connected, nothing known of it yet.
    public static func unknown(_ device: DeviceID, name: String = "") -> PeerSyncStatus {
        PeerSyncStatus(
            device: device,
            name: name,
            connected: false,
            address: nil,
            caughtUp: false,
            lastSyncAt: nil,
            lastError: nil,
            applied: 0,
            ownedSeq: 0,
            sharedSeq: 0,
            rttMilliseconds: nil
        )
    }
}
