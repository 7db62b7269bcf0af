import Foundation
import Logging
import SDAPI
import SDActions
import SDIndexer
import SDJobs
import SDStore
import SDSystem
import Synchronization

/// Runs the daemon's jobs and keeps the locations watched, and keeps the two apart: an index job needs its
/// location's lock, which the watcher holds, so the watcher stops while index jobs run and starts again
/// (offline recovery first) when the last one ends. Action jobs run beside the watcher; their index updates
/// are the watcher's (`WatcherUpdater` waits until it applied the action's changes).
actor Conductor {
    let library: Library
    let hub: EventHub
    let logger: Logger
    let watchEnabled: Bool
    nonisolated let runner: JobRunner
    nonisolated let link: WatchLink
    /// Index reports of the jobs this daemon ran, for `GET /v1/jobs/ID`.
    nonisolated let reports = Mutex<[String: IndexReport]>([:])
    /// Previews waiting for their commit, by id (at most 256, each for 15 minutes).
    nonisolated let previews = Mutex<[String: (preview: ActionPreview, made: Date)]>([:])
    /// The summaries of committed actions' previews, for their audit records.
    nonisolated let summaries = Mutex<[String: String]>([:])

    private var watchTask: Task<Void, Never>?
    private var indexing = 0
    private var stopping = false
    private var tasks: [String: Task<Void, Never>] = [:]

    init(library: Library, hub: EventHub, logger: Logger, watch: Bool) {
        self.library = library
        self.hub = hub
        self.logger = logger
        watchEnabled = watch
        let link = WatchLink()
        self.link = link
        let updater = WatcherUpdater(live: LiveIndexUpdater(library: library), link: link)
        // (Index jobs run through a runner of their own, with progress events; this one lists them.)
        let kinds = JobKinds.actions(updater: updater, library: library) + [IndexJob(), ScrubJob()]
        runner = JobRunner(library: library, kinds: kinds, concurrency: 2)
    }

    /// At start: the jobs a crash or a stop left, then watching (unless an index job runs; it starts watching
    /// when it ends).
    func start() {
        let left = (try? runner.interrupted()) ?? []
        for job in left { launch(job) }
        if !left.isEmpty { logger.info("resuming \(left.count) unfinished job(s)") }
        // A location never indexed is indexed by a job (in the background, resumable, with progress events)
        // before it is watched, not by the watcher's start.
        if watchEnabled {
            for location in (try? library.fetchLocations()) ?? [] where location.rootEntryID == nil {
                guard (try? library.fetchUnfinishedJob(kind: "index", target: location.uuid)) == nil else { continue }
                guard Indexer(library: library).offlineReason(location) == nil else { continue }
                if let job = try? library.createJob(
                    kind: "index",
                    target: location.uuid,
                    checkpoint: nil,
                    state: "queued"
                ) {
                    logger.info("indexing \(location.name), never indexed yet")
                    launch(job)
                }
            }
        }
        startWatchingIfIdle()
    }

    /// Runs a job here, in the background; its progress and end are published as events.
    func launch(_ job: JobRecord) {
        guard !stopping, tasks[job.id] == nil else { return }
        let exclusive = job.kind == "index"
        if exclusive { indexing += 1 }
        let runner = self.runner
        let hub = self.hub
        let logger = self.logger
        let library = self.library
        // Jobs block (disk reads, SQLite writes): each runs on a thread of its own, never on the few threads
        // that serve requests.
        let thread = ThreadExecutor(name: "sdd-job-\(job.id.prefix(8))", background: true)
        tasks[job.id] = Task.detached(executorPreference: thread) {
            defer { thread.finish() }
            if exclusive { await self.stopWatching() }
            let kind = job.kind
            do {
                let result: JobRecord
                if kind == "index" {
                    let single = JobRunner(
                        library: library,
                        kinds: [
                            IndexJob(
                                progress: { progress in
                                    hub.publish(
                                        [
                                            "event": "index-progress", "job": job.id, "location": progress.location,
                                            "phase": progress.phase.rawValue, "entries": progress.entries,
                                            "hashed": progress.hashed, "toHash": progress.toHash,
                                        ],
                                        progress: true
                                    )
                                },
                                finished: { report in self.reports.withLock { $0[job.id] = report } }
                            )
                        ]
                    )
                    result = try await single.run(job.id) { hub.publish(Events.job($0), progress: true) }
                } else {
                    result = try await runner.run(job.id) { hub.publish(Events.job($0), progress: true) }
                }
                if Operations.isAction(kind) {
                    let outcome = result.state == "completed" ? "ok" : result.state
                    let summary = self.summaries.withLock { $0.removeValue(forKey: job.id) }
                    Operations.audit(result, library: library, summary: summary, outcome: outcome, error: result.error)
                }
                hub.publish(Events.job(result))
                logger.info("job \(job.id.prefix(8)) (\(kind)) \(result.state)")
            } catch let error as JobError where error.code == .busy || error.code == .finished {
                logger.info("job \(job.id.prefix(8)) not run: \(error.message)")
            } catch {
                if Operations.isAction(kind) {
                    let summary = self.summaries.withLock { $0.removeValue(forKey: job.id) }
                    Operations.audit(job, library: library, summary: summary, outcome: "failed", error: "\(error)")
                }
                if let failed = try? library.fetchJob(job.id) { hub.publish(Events.job(failed)) }
                logger.error("job \(job.id.prefix(8)) (\(kind)) failed", metadata: ["error": "\(error)"])
            }
            await self.ended(job.id, exclusive: exclusive)
        }
    }

    /// No job runs (the watcher may be sweeping: that is idle work, which memory trimming may follow).
    var isIdle: Bool { tasks.isEmpty }

    /// Whether this daemon runs the job now.
    func isRunning(_ id: String) -> Bool { tasks[id] != nil }

    private func ended(_ id: String, exclusive: Bool) {
        tasks[id] = nil
        if exclusive {
            indexing -= 1
            startWatchingIfIdle()
        }
    }

    private func startWatchingIfIdle() {
        #if canImport(Glibc)
            guard watchEnabled, !stopping, indexing == 0, watchTask == nil else { return }
            let control = WatchControl()
            link.set(control)
            watchTask = Watching(library: library, hub: hub, logger: logger).start(control)
        #endif
    }

    private func stopWatching() async {
        guard let task = watchTask else { return }
        link.current?.stop()
        await task.value
        // Another caller may have waited for the same task, and restarted nothing: only clear what is ours.
        if watchTask == task {
            watchTask = nil
            link.set(nil)
        }
    }

    /// Runs `body` with the watcher stopped (it holds every location's lock and its list of folders), and
    /// starts it again after: for removing a location.
    func withWatcherStopped<T: Sendable>(_ body: @Sendable () throws -> T) async throws -> T {
        indexing += 1
        defer {
            indexing -= 1
            startWatchingIfIdle()
        }
        await stopWatching()
        return try body()
    }

    /// At shutdown: no new jobs; the watcher stops; running jobs stop at their next step (cancelled tasks
    /// pause them) and are queued again, so the next start resumes them.
    func shutdown() async {
        stopping = true
        let running = tasks
        for task in running.values { task.cancel() }
        for (id, task) in running {
            await task.value
            if let job = try? library.fetchJob(id), job.state == "paused", job.requested == nil {
                try? library.setJobState(id: id, "queued")
            }
        }
        await stopWatching()
    }

    // MARK: - Previews

    /// Keeps a preview for its commit; returns its id.
    nonisolated func keep(_ preview: ActionPreview) -> String {
        let id = UUID().uuidString.lowercased()
        previews.withLock { kept in
            let now = Date()
            kept = kept.filter { now.timeIntervalSince($0.value.made) < 15 * 60 }
            if kept.count >= 256, let oldest = kept.min(by: { $0.value.made < $1.value.made })?.key {
                kept[oldest] = nil
            }
            kept[id] = (preview, now)
        }
        return id
    }

    /// Takes a kept preview (a preview commits once).
    nonisolated func take(_ id: String) -> ActionPreview? {
        previews.withLock { kept in
            guard let found = kept.removeValue(forKey: id), Date().timeIntervalSince(found.made) < 15 * 60 else {
                return nil
            }
            return found.preview
        }
    }
}

/// The watcher the daemon runs now, if any.
final class WatchLink: Sendable {
    #if canImport(Glibc)
        private let control = Mutex<WatchControl?>(nil)
        var current: WatchControl? { control.withLock { $0 } }
        func set(_ value: WatchControl?) { control.withLock { $0 = value } }
    #endif
}

/// Index updates after an action in the daemon: locations the daemon's watcher holds are brought up to date
/// by it (this waits until it applied the action's changes); others as the CLI does it.
struct WatcherUpdater: IndexUpdater {
    let live: LiveIndexUpdater
    let link: WatchLink

    func foldersChanged(_ paths: [String], thorough: Bool) throws {
        try live.foldersChanged(paths, thorough: thorough)
        #if canImport(Glibc)
            if let control = link.current, control.isRunning { _ = control.sync() }
        #endif
    }
}

/// The watcher on a thread of its own (it blocks), its events published.
struct Watching {
    let library: Library
    let hub: EventHub
    let logger: Logger

    #if canImport(Glibc)
        /// When another process holds a location (an `sd watch` or `sd index` there), it is logged and nothing
        /// is watched.
        func start(_ control: WatchControl) -> Task<Void, Never>? {
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
                    let started = Result { () throws(SystemError) in
                        try Threads.start(name: "sdd-watch") {
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
                    }
                    if case .failure(let error) = started {
                        logger.error("not watching", metadata: ["error": "\(error)"])
                        done.resume()
                    }
                }
            }
        }
    #endif
}

/// A task executor with threads of its own, for work that blocks (SQLite reads, disk I/O): jobs get one each
/// (`finish()` ends it); request handlers share a few, so that the cooperative pool is never blocked.
final class ThreadExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: `jobs` and `done` are only touched under `lock`.
    private let lock = NSCondition()
    private var jobs: [UnownedJob] = []
    private var done = false

    /// No thread could be started (the system is out of them): jobs run on Dispatch's threads instead.
    private var threadless = false

    init(name: String, threads: Int = 1, background: Bool = false) {
        var started = 0
        for n in 0..<max(1, threads) {
            do {
                try Threads.start(name: threads == 1 ? name : "\(name)-\(n)") { [self] in
                    // A job's thread, and the walkers and hashers it starts, give way to requests.
                    if background { Priority.lowerThisThread() }
                    loop()
                }
                started += 1
            } catch {}
        }
        threadless = started == 0
    }

    func enqueue(_ job: UnownedJob) {
        if threadless {
            let executor = asUnownedTaskExecutor()
            DispatchQueue.global().async { job.runSynchronously(on: executor) }
            return
        }
        lock.lock()
        jobs.append(job)
        lock.signal()
        lock.unlock()
    }

    func finish() {
        lock.lock()
        done = true
        lock.broadcast()
        lock.unlock()
    }

    private func loop() {
        while true {
            lock.lock()
            while jobs.isEmpty && !done { lock.wait() }
            if jobs.isEmpty {
                lock.unlock()
                return
            }
            let job = jobs.removeFirst()
            lock.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
