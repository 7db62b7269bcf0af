import Foundation
import SDCore
import SDNet
import SDStore
import SDSystem
import SDTestSupport
import Testing

/// A device for tests: its own config folder (key, peers.json) and endpoint, listening on loopback.
final class TestDevice: Sendable {
    let dir: TemporaryDirectory
    let endpoint: PeerEndpoint
    let listener: PeerEndpoint.Listener?

    init(_ name: String, id: DeviceID = .random(), listen: Bool = true, keyFrom other: TestDevice? = nil) async throws {
        dir = try TemporaryDirectory(prefix: "sd-net-\(name)")
        if let other {
            // The same key file as another device (to impersonate it).
            _ = try dir.write(
                "device.key",
                Array(try Data(contentsOf: URL(fileURLWithPath: other.dir.file("device.key"))))
            )
            chmod(dir.file("device.key"), 0o600)
        }
        endpoint = try PeerEndpoint(
            device: id,
            name: name,
            key: try DeviceKey.loadOrCreate(configDirectory: dir.path),
            peers: PeerStore(configDirectory: dir.path),
            // The test process's two cooperative threads can be held for minutes by synchronous tests running
            // alongside (a kill test, say), and then a 10 s handshake times out though nothing is wrong: these
            // tests check refusals and pairing, not the timer.
            handshakeTimeout: TestDevice.patience
        )
        if listen {
            listener = try await endpoint.listen(host: "127.0.0.1", port: 0) { link in
                // Echo each frame back until the connection ends.
                while let frame = try? await link.receive() {
                    try? await link.send(frame)
                }
            }
        } else {
            listener = nil
        }
    }

    /// How long a test waits for an answer: as long as the synchronous tests running alongside may hold the
    /// cooperative threads (the answer comes at once when they do not).
    static let patience: Duration = .seconds(900)

    var address: String { "127.0.0.1:\(listener?.port ?? 0)" }
    var id: DeviceID { endpoint.device }

    func stop() async { await listener?.close() }
}

@Suite struct PeerTests {
    @Test func pairingCodesReadBackAndForgiveTypos() throws {
        let code = PairingCode.make(host: "192.168.1.20", port: 7373)
        #expect(code.secret.count == 10, "80 bits")
        let text = code.description
        #expect(text.hasPrefix("192.168.1.20:7373/") && text.count == "192.168.1.20:7373/".count + 19, "\(text)")
        #expect(try PairingCode(parsing: text) == code)
        #expect(try PairingCode(parsing: text.lowercased()) == code)
        let confusable = PairingCode(host: "h", port: 1, secret: [0, 0, 0, 0, 0, 0x08, 0x42, 0x10, 0x84, 0x21])
        #expect(confusable.secretText == "0000-0000-1111-1111")
        #expect(try PairingCode(parsing: "h:1/oooo-0000-iiii-LLLL") == confusable)
        let v6 = PairingCode(host: "fe80::1", port: 9, secret: code.secret)
        #expect(try PairingCode(parsing: v6.description) == v6)
        for bad in ["", "host/ABCD", "host:0/0000-0000-0000-0000", "h:1/0000-0000-0000", "h:1/0000-0000-0000-000U"] {
            #expect(throws: NetError.self, "\(bad)") { try PairingCode(parsing: bad) }
        }
    }

    @Test func keysAreMadeOncePrivateAndKept() throws {
        let dir = try TemporaryDirectory(prefix: "sd-key")
        let key = try DeviceKey.loadOrCreate(configDirectory: dir.path)
        let again = try DeviceKey.loadOrCreate(configDirectory: dir.path)
        #expect(key.publicKey == again.publicKey && key.publicKey.count == 32)
        let mode = try Directory.stat(Array(dir.file("device.key").utf8)).mode & 0o777
        #expect(mode == 0o600)
        chmod(dir.file("device.key"), 0o644)
        #expect(throws: NetError.self) { try DeviceKey.loadOrCreate(configDirectory: dir.path) }
        chmod(dir.file("device.key"), 0o600)
        _ = try dir.write("device.key", Array("garbage".utf8))
        chmod(dir.file("device.key"), 0o600)
        #expect(throws: NetError.self) { try DeviceKey.loadOrCreate(configDirectory: dir.path) }
    }

    @Test func pairThenConnectBothWays() async throws {
        let a = try await TestDevice("alpha")
        let b = try await TestDevice("beta")
        defer {
            Task {
                await a.stop(); await b.stop()
            }
        }
        let code = try a.endpoint.openPairing(host: "127.0.0.1")
        #expect(a.endpoint.pairingState == .waiting(code))
        let paired = try await b.endpoint.join(code)
        #expect(paired.id == a.id && paired.name == "alpha" && paired.keyBytes == a.endpoint.key.publicKey)
        guard case .paired(let other) = a.endpoint.pairingState else {
            Issue.record("alpha did not record the pairing: \(a.endpoint.pairingState)")
            return
        }
        #expect(other.id == b.id && other.keyBytes == b.endpoint.key.publicKey)
        #expect(try a.endpoint.peers.peer(b.id) != nil && b.endpoint.peers.peer(a.id) != nil)
        let mode = try Directory.stat(Array(a.dir.file("peers.json").utf8)).mode & 0o777
        #expect(mode == 0o600)

        // Now connections work both ways, and frames cross.
        let link = try await b.endpoint.connect(to: a.address, expecting: a.id)
        #expect(link.peer.id == a.id)
        try await link.send(Frame(200, Array("ping".utf8)))
        #expect(try await link.receive(timeout: TestDevice.patience) == Frame(200, Array("ping".utf8)))
        await link.close()
        let back = try await a.endpoint.connect(to: b.address)
        #expect(back.peer.id == b.id)
        let big = Array(repeating: UInt8(7), count: 3 << 20)
        try await back.send(Frame(201, big))
        #expect(try await back.receive(timeout: TestDevice.patience)?.payload == big)
        await back.close()
    }

    @Test func strangersImpostorsAndReplayedCodesAreRefused() async throws {
        let a = try await TestDevice("alpha")
        let b = try await TestDevice("beta")
        let stranger = try await TestDevice("stranger", listen: false)
        defer {
            Task {
                await a.stop(); await b.stop()
            }
        }
        let code = try a.endpoint.openPairing(host: "127.0.0.1")
        _ = try await b.endpoint.join(code)

        // An unpaired device is refused in the TLS handshake, whatever it claims.
        await expectRefused(.refused) { _ = try await stranger.endpoint.connect(to: a.address) }
        let claimsB = try await TestDevice("claims-beta", id: b.id, listen: false)
        await expectRefused(.refused) { _ = try await claimsB.endpoint.connect(to: a.address) }

        // The used code cannot be used again (a replay), nor can a stranger pair with it.
        await expectRefused(.pairing) { _ = try await stranger.endpoint.join(code) }
        #expect(try a.endpoint.peers.peer(stranger.id) == nil)

        // A paired device that presents another paired device's id is refused (ids are bound to keys).
        let c = try await TestDevice("gamma", listen: false)
        _ = try await c.endpoint.join(try a.endpoint.openPairing(host: "127.0.0.1"))
        let cAsB = try await TestDevice("gamma-as-beta", id: b.id, listen: false, keyFrom: c)
        await expectRefused(.refused) { _ = try await cAsB.endpoint.connect(to: a.address) }
        // And a device that holds b's id but c's key cannot pass for b when a connects to "b" either.
        let fakeB = try await TestDevice("fake-beta", id: b.id, keyFrom: c)
        defer { Task { await fakeB.stop() } }
        await expectRefused(.refused) { _ = try await a.endpoint.connect(to: fakeB.address, expecting: b.id) }
        // c itself is fine.
        let ok = try await c.endpoint.connect(to: a.address)
        #expect(ok.peer.id == a.id)
        await ok.close()
    }

    @Test func wrongAndExpiredCodesPairNobody() async throws {
        let a = try await TestDevice("alpha")
        let b = try await TestDevice("beta", listen: false)
        defer { Task { await a.stop() } }
        // A wrong secret: refused, and the code is void afterwards (one attempt per code).
        let code = try a.endpoint.openPairing(host: "127.0.0.1")
        var wrong = code
        wrong.secret[0] ^= 1
        await expectRefused(.pairing) { _ = try await b.endpoint.join(wrong) }
        await expectRefused(.pairing) { _ = try await b.endpoint.join(code) }
        if case .failed = a.endpoint.pairingState {} else { Issue.record("\(a.endpoint.pairingState)") }
        #expect(try a.endpoint.peers.all().isEmpty && b.endpoint.peers.all().isEmpty)

        let short = try a.endpoint.openPairing(host: "127.0.0.1", ttl: .milliseconds(200))
        try await Task.sleep(for: .milliseconds(400))
        await expectRefused(.pairing) { _ = try await b.endpoint.join(short) }
        #expect(a.endpoint.pairingState == .failed("the pairing code expired unused"))
        #expect(try a.endpoint.peers.all().isEmpty)
    }

    @Test func aHostileFrameClosesOnlyItsConnection() async throws {
        let a = try await TestDevice("alpha")
        let b = try await TestDevice("beta", listen: false)
        defer { Task { await a.stop() } }
        _ = try await b.endpoint.join(try a.endpoint.openPairing(host: "127.0.0.1"))
        let good = try await b.endpoint.connect(to: a.address)
        let bad = try await b.endpoint.connect(to: a.address)
        // Over the 8 MiB limit: that connection is closed by the other side.
        try? await bad.send(Frame(300, Array(repeating: 1, count: 9 << 20)))
        var ended = false
        do { ended = try await bad.receive(timeout: .seconds(20)) == nil } catch { ended = true }
        #expect(ended)
        try await good.send(Frame(301, [1, 2, 3]))
        #expect(try await good.receive(timeout: TestDevice.patience) == Frame(301, [1, 2, 3]))
        await good.close()
    }

    func expectRefused(
        _ kind: NetError.Kind,
        sourceLocation: SourceLocation = #_sourceLocation,
        _ body: () async throws -> Void
    ) async {
        do {
            try await body()
            Issue.record("expected a \(kind) error", sourceLocation: sourceLocation)
        } catch let error as NetError {
            #expect(error.kind == kind, "\(error)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        }
    }
}
