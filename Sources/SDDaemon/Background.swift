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

/// What the daemon does besides answering: keeps every location watched (offline recovery first, then
/// inotify) and runs the jobs a crash or a stop left unfinished. Stops with the daemon: the watcher
/// checkpoints, a job stopped mid-way is queued again for the next start.
struct BackgroundWork: Service {
    let library: Library
    let hub: EventHub
    let logger: Logger
    let watch: Bool

    func run() async throws {
        #if canImport(Glibc)
            let control = WatchControl()
        #endif
        let runner = JobRunner(library: library, kinds: JobKinds.all(library))
        let library = self.library
        let hub = self.hub
        let watch = self.watch
        // Unfinished jobs first (an index job needs its location's lock, which the watcher then holds), then
        // watching, which brings the locations up to date anyway.
        let work = Task {
            let jobs = (try? await runner.resumeInterrupted { record in hub.publish(Events.job(record)) }) ?? []
            if Task.isCancelled {
                for job in jobs where job.state == "paused" {
                    // Stopped by the daemon's own shutdown, not by the user: the next start resumes it.
                    try? library.setJobState(id: job.id, "queued")
                }
                return
            }
            #if canImport(Glibc)
                if watch, let watching = startWatching(control) { await watching.value }
            #endif
        }
        try? await gracefulShutdown()
        hub.finish()
        #if canImport(Glibc)
            control.stop()
        #endif
        work.cancel()
        await work.value
    }

    #if canImport(Glibc)
        /// The watcher on a thread of its own (it blocks), its events published. When another process holds a
        /// location (an `sd watch` or `sd index` there), it is logged and nothing is watched.
        func startWatching(_ control: WatchControl) -> Task<Void, Never>? {
            let locations: [Location]
            do { locations = try library.fetchLocations() } catch {
                logger.error("cannot read the locations", metadata: ["error": "\(error)"])
                return nil
            }
            guard !locations.isEmpty else { return nil }
            let library = self.library
            let hub = self.hub
            let logger = self.logger
            return Task.detached {
                await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                    let thread = Thread {
                        defer { done.resume() }
                        // Held for as long as it watches: `sd index` elsewhere then says the location is watched.
                        let locks: [LocationLock]
                        do { locks = try locations.map { try library.lockLocation($0) } } catch {
                            logger.warning("not watching: \(error)")
                            return
                        }
                        defer { withExtendedLifetime(locks) {} }
                        do {
                            let watcher = try Watcher(library: library) { event in
                                let (line, object) = Events.describe(event)
                                hub.publish(object)
                                if !line.isEmpty { logger.info("\(line)") }
                            }
                            try watcher.run(control)
                        } catch {
                            logger.error("watching stopped", metadata: ["error": "\(error)"])
                        }
                    }
                    thread.name = "sdd-watch"
                    thread.start()
                }
            }
        }
    #endif
}
