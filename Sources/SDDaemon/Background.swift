import Foundation
import Logging
import SDAPI
import SDIndexer
import SDJobs
import SDStore
import ServiceLifecycle
import Synchronization

/// Subscribers to the daemon's events. Each has a bounded buffer (the newest 1,024 events): a slow client
/// loses old events, never stalls the daemon.
final class EventHub: Sendable {
    private let subscribers = Mutex<[UUID: AsyncStream<String>.Continuation]>([:])

    func subscribe() -> AsyncStream<String> {
        let (stream, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(1_024))
        let id = UUID()
        subscribers.withLock { $0[id] = continuation }
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.removeValue(forKey: id) }
        }
        return stream
    }

    func publish(_ object: [String: Any]) {
        guard let line = Events.jsonLine(object) else { return }
        for continuation in subscribers.withLock({ Array($0.values) }) { continuation.yield(line) }
    }

    var count: Int { subscribers.withLock { $0.count } }

    /// Ends every stream (at shutdown, so that open event requests finish).
    func finish() {
        for continuation in subscribers.withLock({ Array($0.values) }) { continuation.finish() }
    }
}

/// What the daemon does besides answering (the conductor's jobs and watcher), as a service: started with
/// the server, stopped before it (event streams end, jobs and the watcher checkpoint and stop).
struct BackgroundWork: Service {
    let conductor: Conductor
    let hub: EventHub

    func run() async throws {
        await conductor.start()
        try? await gracefulShutdown()
        hub.finish()
        await conductor.shutdown()
    }
}
