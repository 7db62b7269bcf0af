import Foundation
import SDCore
import SDNet
import SDTestSupport
import Testing

/// A pairing never replaces a pinned key: a device that claims the id of one already paired, with another key,
/// is refused on both sides, and the key pinned before stays. (A finding of the security review; it failed on
/// the code before its fix.)
@Suite struct SecurityTests {
    @Test func aNewPairingCannotTakeOverAPairedDevicesId() async throws {
        let a = try await TestDevice("alpha")
        let b = try await TestDevice("beta")
        defer {
            Task {
                await a.stop(); await b.stop()
            }
        }
        _ = try await b.endpoint.join(try a.endpoint.openPairing(host: "127.0.0.1"))
        let pinned = try #require(try a.endpoint.peers.peer(b.id)).keyBytes

        // A device with b's id and a key of its own pairs with a (it got a code: a stolen screen, a social trick).
        let impostor = try await TestDevice("impostor-as-beta", id: b.id, listen: false)
        let code = try a.endpoint.openPairing(host: "127.0.0.1")
        await #expect(throws: NetError.self) { _ = try await impostor.endpoint.join(code) }
        #expect(try a.endpoint.peers.peer(b.id)?.keyBytes == pinned, "a kept b's key")
        guard case .failed(let reason) = a.endpoint.pairingState else {
            Issue.record("the attempt is not reported: \(a.endpoint.pairingState)")
            return
        }
        #expect(reason.contains(b.id.description), "\(reason)")
        // b still connects as itself; the impostor does not.
        let link = try await b.endpoint.connect(to: a.address, expecting: a.id)
        await link.close()
        await #expect(throws: NetError.self) { _ = try await impostor.endpoint.connect(to: a.address) }

        // The other way: a device showing a code under a's id with another key is not pinned over a by b.
        let fakeA = try await TestDevice("impostor-as-alpha", id: a.id)
        defer { Task { await fakeA.stop() } }
        let pinnedA = try #require(try b.endpoint.peers.peer(a.id)).keyBytes
        await #expect(throws: NetError.self) {
            _ = try await b.endpoint.join(try fakeA.endpoint.openPairing(host: "127.0.0.1"))
        }
        #expect(try b.endpoint.peers.peer(a.id)?.keyBytes == pinnedA, "b kept a's key")
    }
}
