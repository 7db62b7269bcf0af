import Foundation
import SDActions
import SDCore
import SDIndexer
import SDJobs
import SDNet
import SDStore
import SDSync
import SDSystem

/// Brings the index up to date after an action: the changed folders inside locations are listed again (as
/// the watcher would), unless a watcher holds the location (it sees the changes itself).
public struct LiveIndexUpdater: IndexUpdater {
    let library: Library

    public init(library: Library) { self.library = library }

    public func foldersChanged(_ paths: [String], thorough: Bool) throws {
        let locations = try library.fetchLocations().filter { $0.state == "online" }
        var folders: [Int64: (location: Location, ids: Set<Int64>)] = [:]
        for path in paths {
            var bytes = PathText.bytes(path)
            guard let location = locations.first(where: { bytes == $0.path || Library.isInside(bytes, $0.path) }) else {
                continue
            }
            // The deepest folder the index knows: a new folder is found by listing its parent.
            while true {
                if let (_, id) = try library.resolveEntry(path: bytes) {
                    folders[location.id, default: (location, [])].ids.insert(id)
                    break
                }
                guard bytes.count > location.path.count, let slash = bytes.lastIndex(of: 0x2F) else { break }
                bytes = Array(bytes[..<slash])
            }
        }
        for (location, ids) in folders.values {
            guard let lock = try? library.lockLocation(location) else { continue }
            defer { withExtendedLifetime(lock) {} }
            let indexer = LiveIndexer(library: library)
            try indexer.apply(ids.sorted().map { .relist(folder: $0) }, to: location)
            if thorough {
                // An earlier run may have died inside an update: folders it inserted but never listed, files it
                // never identified, aggregates it never summed.
                _ = try indexer.recover(location, allowMassDelete: true)
                _ = try indexer.completeSweep(of: location)
            }
        }
    }
}

/// The job kinds sd runs, for the CLI and the daemon alike.
public enum JobKinds {
    /// Every action job kind (copy, move, trash, dedup...), keeping the index up to date.
    public static func actions(_ library: Library) -> [any JobKind] {
        actions(updater: LiveIndexUpdater(library: library), library: library)
    }

    /// The same, keeping the index up to date through `updater`.
    public static func actions(updater: some IndexUpdater, library: Library) -> [any JobKind] {
        var kinds: [any JobKind] = TransferJob.kinds.map { TransferJob(kind: $0, updater: updater) }
        kinds += DeleteJob.kinds.map { DeleteJob(kind: $0, updater: updater) }
        kinds += DedupJob.kinds.map { DedupJob(kind: $0, updater: updater) }
        kinds += TagJob.kinds.map { TagJob(kind: $0) }
        kinds.append(PeerCopyJob(connect: peerFiles(library), updater: updater))
        kinds.append(PeerPushJob(connect: peerFiles(library)))
        return kinds
    }

    /// Connects to a device's files for a peer copy, with this device's key and paired devices (the daemon's
    /// and the CLI's alike: both read the same config folder).
    static func peerFiles(_ library: Library) -> @Sendable (DeviceID) async throws -> PeerFileSession {
        { device in
            let endpoint = try PeerEndpoint.forThisDevice(configDirectory: DeviceIdentity.configDirectory())
            return try await SyncService(library: library, endpoint: endpoint).fileSession(device)
        }
    }

    /// Everything: actions, index jobs and scrubs.
    public static func all(_ library: Library) -> [any JobKind] {
        actions(library) + [IndexJob(progress: { _ in }, finished: { _ in }), ScrubJob()]
    }
}
