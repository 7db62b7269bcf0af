import Foundation
import SDCore
import SDNet
import SDTestSupport
import Synchronization
import Testing

/// LAN discovery on real UDP multicast sockets: two devices on one group hear each other's id and port (not
/// their own), and anything that is not exactly an announcement is ignored. Run in the test run's own network
/// namespace (scripts/test), so the announcements never leave this machine.
struct DiscoveryTests {
    @Test func devicesOnOneGroupHearEachOther() async throws {
        // Multicast only inside the test run's own network namespace, never on the machine's network.
        try #require(TestNetwork.isIsolated, "\(TestNetwork.notIsolatedReason ?? "")")
        // A port of this test's own, so that a running sdd (default 7374) or another test run is not in the way.
        let port = Int.random(in: 40_000..<60_000)
        let (a, b) = (DeviceID.random(), DeviceID.random())
        let heardByA = Mutex<[Announcement]>([])
        let heardByB = Mutex<[(Announcement, String)]>([])
        let first = try await LANDiscovery.start(device: a, listenPort: 7001, port: port, every: .milliseconds(100)) {
            announcement,
            _ in heardByA.withLock { $0.append(announcement) }
        }
        let second = try await LANDiscovery.start(device: b, listenPort: 7002, port: port, every: .milliseconds(100)) {
            announcement,
            host in heardByB.withLock { $0.append((announcement, host)) }
        }
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline
            && (heardByA.withLock { $0.isEmpty } || heardByB.withLock { !$0.contains { $0.0.device == a } })
        {
            try await Task.sleep(for: .milliseconds(50))
        }
        await first.close()
        await second.close()
        let byA = heardByA.withLock { $0 }
        let byB = heardByB.withLock { $0 }
        #expect(!byA.isEmpty && byA.allSatisfy { $0 == Announcement(device: b, port: 7002) }, "\(byA)")
        #expect(byB.contains { $0.0 == Announcement(device: a, port: 7001) && !$0.1.isEmpty }, "\(byB)")
        #expect(!byB.contains { $0.0.device == b }, "a device does not hear itself")
    }

    @Test func onlyExactAnnouncementsDecode() {
        let announcement = Announcement(device: .random(), port: 7373)
        #expect(Announcement(bytes: announcement.bytes) == announcement)
        var rng = SeededRNG(seed: 3)
        var bytes = announcement.bytes
        #expect(Announcement(bytes: Array(bytes.dropLast())) == nil, "truncated")
        #expect(Announcement(bytes: bytes + [0]) == nil, "padded")
        bytes[0] ^= 0xFF
        #expect(Announcement(bytes: bytes) == nil, "not the magic")
        #expect(Announcement(bytes: Array(announcement.bytes.prefix(20)) + [0, 0]) == nil, "port 0")
        for _ in 0..<10_000 {
            _ = Announcement(bytes: rng.bytes(Int(rng.next() % 40)))
        }
    }
}
