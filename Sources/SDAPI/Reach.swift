import Foundation
import SDActions
import SDCore
import SDNet
import SDStore
import SDSync
import Synchronization

extension Operations {
    /// The other devices holding copies of what a content path names (none for any other text). With
    /// `unlessHere`, none either when this device has a reachable copy (a copy reads that one: no need to
    /// reach the others).
    public static func devicesHolding(_ text: String, _ library: Library, unlessHere: Bool = false) -> [DeviceID] {
        guard text.hasPrefix(SDPath.scheme), case .content(let id)? = try? SDPath(parsing: text) else { return [] }
        if unlessHere, (try? ContentResolver.copies(of: id, library: library))?.contains(where: \.reachable) == true {
            return []
        }
        let here = library.device.id.description
        let devices = ((try? library.copyDetails(of: id)) ?? []).map(\.device).filter { $0 != here }
        return Set(devices).compactMap { DeviceID($0) }
    }

    /// How each device can be reached, measured now by connecting to it (for commands run without sdd), each
    /// within `timeout`; devices the library does not sync with are left out.
    public static func measureReach(
        _ devices: [DeviceID],
        library: Library,
        timeout: Duration = .seconds(3)
    ) async -> [String: PeerReach] {
        let synced = Set(((try? library.syncPeers()) ?? []).map(\.device))
        guard let endpoint = try? PeerEndpoint.forThisDevice(configDirectory: DeviceIdentity.configDirectory()) else {
            return [:]
        }
        let service = SyncService(library: library, endpoint: endpoint)
        return await withTaskGroup(of: (String, PeerReach).self) { group in
            for device in devices where synced.contains(device) {
                group.addTask {
                    let measured = await firstOf(within: timeout) {
                        do {
                            return PeerReach(
                                connected: true,
                                roundTripMilliseconds: try await service.measureRoundTrip(device)
                            )
                        } catch {
                            return PeerReach(connected: false, roundTripMilliseconds: nil, error: "\(error)")
                        }
                    }
                    return (
                        device.description,
                        measured
                            ?? PeerReach(
                                connected: false,
                                roundTripMilliseconds: nil,
                                error: "no answer within \(timeout)"
                            )
                    )
                }
            }
            var result: [String: PeerReach] = [:]
            for await (device, reach) in group { result[device] = reach }
            return result
        }
    }

    /// How each device can be reached, as sdd's sync connections see it.
    public static func reach(from status: [PeerSyncStatus]) -> [String: PeerReach] {
        Dictionary(
            status.map {
                (
                    $0.device.description,
                    PeerReach(connected: $0.connected, roundTripMilliseconds: $0.rttMilliseconds, error: $0.lastError)
                )
            },
            uniquingKeysWith: { a, _ in a }
        )
    }
}

/// `body`'s result, or nil when it takes longer than `timeout` (it then goes on, unwatched, to its end: a
/// connection attempt does not stop when asked).
func firstOf<T: Sendable>(within timeout: Duration, _ body: @escaping @Sendable () async -> T) async -> T? {
    let once = ClaimOnce()
    return await withCheckedContinuation { (continuation: CheckedContinuation<T?, Never>) in
        Task {
            let value = await body()
            if once.claim() { continuation.resume(returning: value) }
        }
        Task {
            try? await Task.sleep(for: timeout)
            if once.claim() { continuation.resume(returning: nil) }
        }
    }
}

/// True for the first caller of `claim` only.
final class ClaimOnce: Sendable {
    private let done = Mutex(false)

    func claim() -> Bool {
        done.withLock { was in
            defer { was = true }
            return !was
        }
    }
}
