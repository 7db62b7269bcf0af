import Foundation
import Logging
import SDAPI
import SDIndexer
import SDJobs
import SDStore
import SDSystem
import ServiceLifecycle
import Synchronization

/// Subscribers to the daemon's events. Each has a bounded buffer (the newest 1,024 events): a slow client
/// loses old events, never stalls the daemon.
final class EventHub: Sendable {
    private let subscribers = Mutex<[UUID: AsyncStream<String>.Continuation]>([:])

    /// A stream of server-sent-event frames: first a comment (`: subscribed`), sent as soon as the reader is
    /// registered so that a client knows that nothing published from then on is missed, then one
    /// `data: {json}` frame per event.
    func subscribe() -> AsyncStream<String> {
        let (stream, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(1_024))
        let id = UUID()
        subscribers.withLock { $0[id] = continuation }
        continuation.yield(": subscribed\n\n")
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.removeValue(forKey: id) }
        }
        return stream
    }

    /// How many change events were published: a count that moves whenever the index changed or a job ended
    /// (progress reports do not count).
    var generation: Int { published.withLock { $0 } }
    private let published = Mutex(0)

    func publish(_ object: [String: Any], progress: Bool = false) {
        if !progress { published.withLock { $0 += 1 } }
        guard let line = Events.jsonLine(object) else { return }
        let frame = "data: \(line)\n\n"
        for continuation in subscribers.withLock({ Array($0.values) }) { continuation.yield(frame) }
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
    let activity: Activity
    /// Opened once the server listens (the socket made under umask 177, the user's umask back).
    let ready: Gate

    func run() async throws {
        guard await ready.wait() else { return }
        await conductor.start()
        let library = conductor.library
        let hub = self.hub
        let activity = self.activity
        // Once idle (no request, no change, no job for 15 s), SQLite's caches and the heap's free memory go
        // back to the system: a sweep or a burst of requests fills them, and an idle daemon should be small.
        let trimmer = Task {
            var trimmed: (requests: Int, generation: Int)?
            while !Task.isCancelled {
                let seen = (requests: activity.requests, generation: hub.generation)
                try? await Task.sleep(for: .seconds(15))
                let now = (requests: activity.requests, generation: hub.generation)
                guard now == seen, trimmed.map({ $0 != now }) ?? true, await conductor.isIdle else { continue }
                library.releaseMemory()
                try? await Task.sleep(for: .seconds(1))
                Memory.returnFreedToSystem()
                trimmed = now
            }
        }
        // Sync history older than the retention is compacted a minute after start, then every six hours.
        let logger = conductor.logger
        let compactor = Task {
            var pause: Duration = .seconds(60)
            while !Task.isCancelled {
                try? await Task.sleep(for: pause)
                pause = .seconds(6 * 3600)
                guard !Task.isCancelled else { return }
                do {
                    let days = try library.syncRetentionDays()
                    let done = try library.compactSyncHistory()
                    if done.changes + done.tombstones > 0 {
                        logger.info(
                            "sync: compacted \(done.changes) changes and \(done.tombstones) tombstones older than \(days) days"
                        )
                    }
                } catch {
                    logger.error("sync: compaction failed: \(error)")
                }
            }
        }
        try? await gracefulShutdown()
        compactor.cancel()
        trimmer.cancel()
        hub.finish()
        await conductor.shutdown()
    }
}

/// How many requests the daemon answered (to tell when it is idle).
final class Activity: Sendable {
    private let count = Mutex(0)
    var requests: Int { count.withLock { $0 } }
    func touch() { count.withLock { $0 += 1 } }
}

/// A one-way gate: services wait at it until the daemon opens it (or shuts down first).
final class Gate: Sendable {
    private let isOpen = Mutex(false)

    func open() { isOpen.withLock { $0 = true } }

    /// Waits until open; false when the daemon began to shut down (or the task was cancelled) first.
    func wait() async -> Bool {
        while !isOpen.withLock({ $0 }) {
            if Task.isCancelled || Task.isShuttingDownGracefully { return false }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return true
    }
}
