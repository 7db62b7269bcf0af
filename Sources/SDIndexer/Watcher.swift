#if canImport(Glibc)
    import Foundation
    import SDCore
    import SDStore
    import SDSystem
    import Synchronization

    public struct WatchOptions: Sendable {
        public var index = IndexOptions()
        /// A batch of events is applied once no event came for this long...
        public var quiet: Duration = .milliseconds(60)
        /// ...or this long after its first event, whichever comes first (bursts are applied in batches).
        public var maxDelay: Duration = .milliseconds(300)
        /// Folders relisted per step of the background sweep (between batches of events).
        public var sweepChunk = 256
        /// Run the sweep (for files modified in place while sd was not running) after recovery.
        public var sweep = true
        /// How often folders without a watch are relisted, and offline locations checked for their return.
        public var rescanInterval: Duration = .seconds(60)
        /// At most this many watches (the kernel's `fs.inotify.max_user_watches` applies anyway); lower it to
        /// leave room for other programs.
        public var maxWatches: Int?
        public init() {}
    }

    /// What the watcher reports as it goes.
    public enum WatchEvent: Sendable {
        /// A location is being watched; `recovery` is offline recovery's first pass (or a full index when the
        /// location had none or an interrupted one).
        case watching(location: String, folders: Int, recovery: LiveReport)
        case applied(location: String, LiveReport)
        case sweepDone(location: String, folders: Int, LiveReport)
        case offline(location: String, reason: String)
        case online(location: String)
        case overflow
        case warning(String)
    }

    /// Stops or pauses a running watcher from another thread, or waits for it to apply what it was told.
    public final class WatchControl: Sendable {
        private struct State {
            var stopped = false
            var paused = false
            var running = false
            var waiting: [DispatchSemaphore] = []
        }
        private let state = Mutex(State())
        public init() {}
        public func stop() {
            let waiting = state.withLock { s -> [DispatchSemaphore] in
                s.stopped = true
                return s.running ? [] : s.waiting
            }
            for w in waiting { w.signal() }
        }
        /// Stops reading events until `resume()` (the kernel queues them; if its queue overflows, the watcher
        /// rescans what changed when it resumes).
        public func pause() { state.withLock { $0.paused = true } }
        public func resume() { state.withLock { $0.paused = false } }
        var isStopped: Bool { state.withLock { $0.stopped } }
        var isPaused: Bool { state.withLock { $0.paused } }

        /// Whether a watcher runs under this control (its locations are watched and up to date).
        public var isRunning: Bool { state.withLock { $0.running && !$0.stopped } }

        /// Waits until the watcher has applied every change the kernel reported before this call (so that a
        /// change just made is in the index when it returns). False when no watcher answered within `seconds`.
        public func sync(seconds: Double = 60) -> Bool {
            let done = DispatchSemaphore(value: 0)
            let live = state.withLock { s -> Bool in
                guard s.running && !s.stopped else { return false }
                s.waiting.append(done)
                return true
            }
            guard live else { return false }
            return done.wait(timeout: .now() + seconds) == .success
        }

        func started() { state.withLock { $0.running = true } }

        func takeWaiting() -> [DispatchSemaphore] {
            state.withLock { s -> [DispatchSemaphore] in
                defer { s.waiting = [] }
                return s.waiting
            }
        }

        func ended() {
            let waiting = state.withLock { s -> [DispatchSemaphore] in
                s.running = false
                defer { s.waiting = [] }
                return s.waiting
            }
            for w in waiting { w.signal() }
        }
    }

    /// Keeps every location of a library live: inotify watches on all its folders, events turned into
    /// targeted changes (renames paired by cookie), applied in batches through `LiveIndexer`. At start, each
    /// location is brought up to date by offline recovery's first pass, then swept in the background.
    ///
    /// Runs on the calling thread until stopped.
    public final class Watcher {
        let library: Library
        let options: WatchOptions
        let report: (WatchEvent) -> Void
        let live: LiveIndexer
        let inotify: Inotify
        let table: WatchTable

        struct Watched {
            var location: Location
            var online: Bool
            var sweepQueue: [Int64] = []
            var sweepTotal = 0
            var sweepReport = LiveReport()
            var unwatched: Set<Int64> = []
            /// The filesystem (st_dev) of the root when it was checked in full: while it is the same, the
            /// mount table need not be read again.
            var rootDevice: UInt64?
        }
        var locations: [Int64: Watched] = [:]
        /// Watch descriptor -> (location id, folder entry id), and back.
        var folders: [Int32: (location: Int64, folder: Int64)] = [:]
        var watchOf: [Int64: Int32] = [:]
        var limitWarned = false
        /// Locations whose last batch failed: they get a recovery pass at the next quiet moment.
        var needsRescan: Set<Int64> = []
        /// Locations whose rescan failed too: tried again at the next periodic rescan, not at once.
        var retryLater: Set<Int64> = []

        public init(library: Library, options: WatchOptions = WatchOptions(), report: @escaping (WatchEvent) -> Void)
            throws
        {
            self.library = library
            self.options = options
            self.report = report
            self.live = LiveIndexer(library: library, options: options.index)
            self.inotify = try Inotify()
            self.table = WatchTable(inotify: inotify, limit: options.maxWatches)
        }

        /// Watches until `control.stop()`.
        public func run(_ control: WatchControl) throws {
            for location in try library.fetchLocations() { try start(location) }
            var lastRescan = ContinuousClock.now
            var moves: [UInt32: (location: Int64, folder: Int64, name: [UInt8])] = [:]
            control.started()
            defer { control.ended() }
            while !control.isStopped {
                if control.isPaused {
                    Thread.sleep(forTimeInterval: 0.05)
                    continue
                }
                let waiting = control.takeWaiting()
                if !waiting.isEmpty {
                    // Someone waits for changes already made: everything queued now, applied at once.
                    var events: [InotifyEvent] = []
                    while case let more = try inotify.read(timeoutMilliseconds: 0), !more.isEmpty { events += more }
                    if !events.isEmpty { try apply(events, moves: &moves) }
                    for w in waiting { w.signal() }
                    continue
                }
                var events = try inotify.read(timeoutMilliseconds: 100)
                if events.isEmpty {
                    try idle(&lastRescan)
                    continue
                }
                // Gather a batch: until quiet, or the batch is old enough.
                let first = ContinuousClock.now
                while ContinuousClock.now - first < options.maxDelay && !control.isStopped {
                    let more = try inotify.read(timeoutMilliseconds: Int32(options.quiet.milliseconds))
                    if more.isEmpty { break }
                    events += more
                }
                try apply(events, moves: &moves)
            }
        }

        // MARK: - Locations

        private func start(_ location: Location) throws {
            var watched = Watched(location: location, online: false)
            if let reason = Indexer(library: library).offlineReason(location) {
                try library.setLocationState(id: location.id, state: "offline", reason: reason)
                report(.offline(location: location.name, reason: reason))
                locations[location.id] = watched
                return
            }
            var recovery = LiveReport()
            let unfinished = try library.fetchUnfinishedJob(kind: "index", target: location.uuid) != nil
            if location.rootEntryID == nil || unfinished {
                // Never indexed, or an index run was interrupted: finish that first.
                var indexOptions = options.index
                indexOptions.allowMassDelete = false
                let indexed: IndexReport
                do {
                    indexed = try Indexer(library: library, options: indexOptions).index(location)
                } catch let error as IndexError {
                    report(.warning("\(location.name): not watched: \(error.message)"))
                    locations[location.id] = watched
                    return
                }
                recovery.counts = indexed.counts
                recovery.removals = indexed.removals
                recovery.hashed = indexed.hashed
            }
            let current = try library.fetchLocation(id: location.id) ?? location
            watched.location = current
            watched.rootDevice = try? Directory.stat(current.path).device
            // Watch first, so that nothing changed during recovery goes unseen.
            let all = try library.fetchFolders(location: current)
            for folder in all { register(folder.id, folder.path, in: current.id, watched: &watched) }
            locations[current.id] = watched
            do {
                let firstPass = try live.recover(
                    current,
                    watch: { [table] in _ = table.watch($0) },
                    registered: { self.register($0, $1, in: current.id) }
                )
                recovery.add(firstPass)
                recovery.foldersTotal = firstPass.foldersTotal
            } catch let error as IndexError {
                report(.warning("\(current.name): \(error.message)"))
                forget(location: current.id)
                return
            }
            try library.finishScan(location: current)
            locations[current.id]?.online = true
            if options.sweep { locations[current.id]?.sweepQueue = all.map(\.id) }
            locations[current.id]?.sweepTotal = all.count
            table.clearPaths()
            report(.watching(location: current.name, folders: all.count, recovery: recovery))
            warnIfLimited()
        }

        private func register(_ id: Int64, _ path: [UInt8], in location: Int64) {
            guard var watched = locations[location] else { return }
            register(id, path, in: location, watched: &watched)
            locations[location] = watched
        }

        private func register(_ id: Int64, _ path: [UInt8], in location: Int64, watched: inout Watched) {
            guard let wd = table.watch(path) else {
                watched.unwatched.insert(id)
                return
            }
            if let old = watchOf[id], old != wd { folders[old] = nil }
            folders[wd] = (location, id)
            watchOf[id] = wd
            watched.unwatched.remove(id)
        }

        private func forget(location id: Int64) {
            for (wd, owner) in folders where owner.location == id {
                folders[wd] = nil
                watchOf[owner.folder] = nil
                table.forget(wd)
            }
            locations[id]?.online = false
            locations[id]?.sweepQueue = []
            locations[id]?.unwatched = []
        }

        private func warnIfLimited() {
            let unwatched = locations.values.reduce(0) { $0 + $1.unwatched.count }
            guard unwatched > 0, !limitWarned else { return }
            limitWarned = true
            let kernel = Inotify.maxUserWatches.map { "fs.inotify.max_user_watches is \($0)" } ?? "the watch limit"
            report(
                .warning(
                    "\(unwatched) folders could not be watched (\(kernel)); they are rescanned every \(Int(options.rescanInterval.seconds)) s instead. Raise the limit, e.g. `sysctl fs.inotify.max_user_watches=1048576`"
                )
            )
        }

        /// Checks a location before changes are applied to it: one whose root is gone is marked offline and
        /// nothing is read as deleted.
        private func stillOnline(_ id: Int64) throws -> Bool {
            guard let watched = locations[id], watched.online else { return false }
            // Checked before every batch: a stat of the root, and the full check (which reads the mount table
            // and every volume's statvfs) only when the root is gone or on another filesystem than before.
            if let device = try? Directory.stat(watched.location.path).device, device == watched.rootDevice {
                return true
            }
            if let reason = Indexer(library: library).offlineReason(watched.location) {
                forget(location: id)
                try library.setLocationState(id: id, state: "offline", reason: reason)
                report(.offline(location: watched.location.name, reason: reason))
                return false
            }
            locations[id]?.rootDevice = try? Directory.stat(watched.location.path).device
            return true
        }

        // MARK: - Events

        private func apply(
            _ events: [InotifyEvent],
            moves: inout [UInt32: (location: Int64, folder: Int64, name: [UInt8])]
        )
            throws
        {
            var renames: [Int64: [FolderChange]] = [:]
            var names: [Int64: [Int64: [[UInt8]]]] = [:]
            var overflow = false
            var checkRoots: Set<Int64> = []
            func touch(_ location: Int64, _ folder: Int64, _ name: [UInt8]) {
                names[location, default: [:]][folder, default: []].append(name)
            }
            for event in events {
                if event.mask.contains(.queueOverflow) {
                    overflow = true
                    continue
                }
                guard let owner = folders[event.watch] else { continue }
                if event.mask.contains(.ignored) {
                    folders[event.watch] = nil
                    if watchOf[owner.folder] == event.watch { watchOf[owner.folder] = nil }
                    table.dropped(event.watch)
                    if owner.folder == locations[owner.location]?.location.rootEntryID {
                        checkRoots.insert(owner.location)
                    }
                    continue
                }
                if !event.mask.isDisjoint(with: [.deleteSelf, .moveSelf, .unmount]) {
                    if owner.folder == locations[owner.location]?.location.rootEntryID || event.mask.contains(.unmount)
                    {
                        checkRoots.insert(owner.location)
                    }
                    continue
                }
                // Events about the watched folder itself are seen as events on a child by its parent's watch.
                guard !event.name.isEmpty else { continue }
                if event.mask.contains(.movedFrom) {
                    moves[event.cookie] = (owner.location, owner.folder, event.name)
                } else if event.mask.contains(.movedTo) {
                    if let from = moves.removeValue(forKey: event.cookie), from.location == owner.location {
                        renames[owner.location, default: []].append(
                            .rename(
                                fromFolder: from.folder,
                                fromName: from.name,
                                toFolder: owner.folder,
                                toName: event.name
                            )
                        )
                    } else {
                        touch(owner.location, owner.folder, event.name)
                    }
                } else {
                    touch(owner.location, owner.folder, event.name)
                }
            }
            // A move whose other half did not come: moved out of (or into) the watched tree.
            for (_, from) in moves { touch(from.location, from.folder, from.name) }
            moves = [:]
            for id in checkRoots { _ = try stillOnline(id) }
            for id in Set(renames.keys).union(names.keys).sorted() {
                guard try stillOnline(id), let location = locations[id]?.location else { continue }
                var changes = renames[id] ?? []
                for (folder, list) in names[id] ?? [:] { changes.append(.names(folder: folder, list)) }
                do {
                    let result = try live.apply(
                        changes,
                        to: location,
                        watch: { [table] in _ = table.watch($0) },
                        registered: { self.register($0, $1, in: id) }
                    )
                    if result.changedIndex { report(.applied(location: location.name, result)) }
                } catch {
                    // Nothing is lost: the changes are on disk; a recovery pass reads the changed folders again.
                    report(.warning("\(location.name): applying changes failed (\(error)); it will be rescanned"))
                    needsRescan.insert(id)
                }
                table.clearPaths()
            }
            warnIfLimited()
            if overflow {
                report(.overflow)
                try rescanAll()
            }
        }

        /// After lost events: offline recovery's first pass on every location, then a new sweep.
        private func rescanAll() throws {
            for id in locations.keys.sorted() {
                guard try stillOnline(id), let location = locations[id]?.location else { continue }
                let result = try live.recover(
                    location,
                    allowMassDelete: true,
                    watch: { [table] in _ = table.watch($0) },
                    registered: { self.register($0, $1, in: id) }
                )
                table.clearPaths()
                if result.changedIndex { report(.applied(location: location.name, result)) }
                if options.sweep {
                    let all = try library.fetchFolders(location: location).map(\.id)
                    locations[id]?.sweepQueue = all
                    locations[id]?.sweepTotal = all.count
                    locations[id]?.sweepReport = LiveReport()
                }
            }
        }

        // MARK: - Idle work

        /// Between events: a step of the sweep; now and then, folders without a watch and offline locations.
        private func idle(_ lastRescan: inout ContinuousClock.Instant) throws {
            // Failed batches first, then the search index (a batch per step), then the sweep.
            if let id = needsRescan.min() {
                needsRescan.remove(id)
                guard try stillOnline(id), let location = locations[id]?.location else { return }
                do {
                    let result = try live.recover(
                        location,
                        allowMassDelete: true,
                        watch: { [table] in _ = table.watch($0) },
                        registered: { self.register($0, $1, in: id) }
                    )
                    if result.changedIndex { report(.applied(location: location.name, result)) }
                } catch {
                    report(.warning("\(location.name): rescan failed (\(error)); trying again later"))
                    retryLater.insert(id)
                }
                table.clearPaths()
                return
            }
            if try library.catchUpSearch() > 0 { return }
            if let id = locations.keys.sorted().first(where: { !(locations[$0]?.sweepQueue.isEmpty ?? true) }),
                let watched = locations[id]
            {
                let chunk = Array(watched.sweepQueue.prefix(options.sweepChunk))
                locations[id]?.sweepQueue.removeFirst(chunk.count)
                guard try stillOnline(id) else { return }
                let result = try live.sweep(
                    chunk,
                    of: watched.location,
                    watch: { [table] in _ = table.watch($0) },
                    registered: { self.register($0, $1, in: id) }
                )
                table.clearPaths()
                locations[id]?.sweepReport.add(result)
                if locations[id]?.sweepQueue.isEmpty == true {
                    var total = locations[id]?.sweepReport ?? LiveReport()
                    total.add(try live.completeSweep(of: watched.location))
                    report(.sweepDone(location: watched.location.name, folders: watched.sweepTotal, total))
                }
                return
            }
            guard ContinuousClock.now - lastRescan >= options.rescanInterval else { return }
            lastRescan = .now
            needsRescan.formUnion(retryLater)
            retryLater = []
            for id in locations.keys.sorted() {
                guard let watched = locations[id] else { continue }
                if !watched.online {
                    if Indexer(library: library).offlineReason(watched.location) == nil {
                        report(.online(location: watched.location.name))
                        try start(watched.location)
                    }
                    continue
                }
                guard !watched.unwatched.isEmpty, try stillOnline(id) else { continue }
                let result = try live.apply(
                    watched.unwatched.sorted().map { .relist(folder: $0) },
                    to: watched.location,
                    watch: { [table] in _ = table.watch($0) },
                    registered: { self.register($0, $1, in: id) }
                )
                table.clearPaths()
                if result.changedIndex { report(.applied(location: watched.location.name, result)) }
            }
        }
    }

    /// The watches, shared with the walker's threads (which watch new folders before reading them).
    final class WatchTable: Sendable {
        let inotify: Inotify
        let limit: Int?
        private let state = Mutex<(byPath: [[UInt8]: Int32], watches: Set<Int32>)>(([:], []))

        init(inotify: Inotify, limit: Int?) {
            self.inotify = inotify
            self.limit = limit
        }

        /// Watches `path` (or returns the watch made for it earlier in this batch); nil when no more watches
        /// may be made or the folder cannot be watched.
        func watch(_ path: [UInt8]) -> Int32? {
            state.withLock { state -> Int32? in
                if let wd = state.byPath[path] { return wd }
                if let limit, state.watches.count >= limit { return nil }
                guard let wd = try? inotify.addWatch(path) else { return nil }
                state.watches.insert(wd)
                state.byPath[path] = wd
                return wd
            }
        }

        func forget(_ wd: Int32) {
            state.withLock { _ = $0.watches.remove(wd) }
            inotify.removeWatch(wd)
        }

        /// The kernel removed the watch itself.
        func dropped(_ wd: Int32) { state.withLock { _ = $0.watches.remove(wd) } }

        /// Paths change with renames: the path map is only good within one batch.
        func clearPaths() { state.withLock { $0.byPath = [:] } }
    }

    extension Duration {
        var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
    }
#endif
