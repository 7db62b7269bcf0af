import Dispatch
import Foundation
import SDCore
import SDStore
import SDSystem

/// The indexer's five phases, in order.
public enum IndexPhase: String, Sendable, Codable {
    case discovery, processing, aggregation, contentIdentification = "content", analysisQueueing = "analysis", done
}

/// Progress of an indexing run, for progress bars.
public struct IndexProgress: Sendable {
    public var location: String
    public var phase: IndexPhase
    public var entries: Int
    public var hashed: Int
    public var toHash: Int
    public var elapsed: Duration
}

public struct IndexOptions: Sendable {
    public var indexContent = true
    public var allowMassDelete = false
    /// Whether the search index catches up at the end (else searches read the new names until `sd watch` or a
    /// later run catches it up): off only to measure what the search index costs.
    public var searchIndex = true
    public var walkers = max(1, ProcessInfo.processInfo.activeProcessorCount)
    /// Hashing threads: more than the cores, so that reads of files not in the page cache overlap (measured on
    /// the 1M-file tree, which does not fit in this machine's cache); when warm, the extra threads cost little.
    public var hashers = max(4, 4 * ProcessInfo.processInfo.activeProcessorCount)
    /// Entries per processing transaction.
    public var batchEntries = 20_000
    /// Files per content-identification transaction (each one a checkpoint).
    public var hashBatch = 2_000
    public init() {}
}

/// What one run did.
public struct IndexReport: Sendable, Codable {
    public var location: String
    public var epoch: Int64 = 0
    public var resumed = false
    public var offline: String?
    public var counts = ScanCounts()
    public var removals = RemovalSummary()
    public var hashed = 0
    public var hashErrors = 0
    public var analysisQueued = 0
    public var seconds = 0.0
    /// Wall-clock seconds per phase ("processing" covers discovery too: they run together).
    public var phaseSeconds: [String: Double] = [:]

    public init(location: String, offline: String? = nil) {
        self.location = location
        self.offline = offline
    }
}

/// The checkpoint an index job keeps in its row: the scan's epoch and the phase it is in.
struct IndexCheckpoint: Codable {
    var epoch: Int64
    var phase: IndexPhase
    var lastHashedID: Int64 = 0
    /// Content checks changed some file's category, so folder per-kind counts need recomputing.
    var kindsChanged = false

    var json: String { String(decoding: try! JSONEncoder().encode(self), as: UTF8.self) }
    static func parse(_ text: String?) -> IndexCheckpoint? {
        text.flatMap { try? JSONDecoder().decode(IndexCheckpoint.self, from: Data($0.utf8)) }
    }
}

/// Turns a location's folders into entries: discovery and processing (one pass: threads walk, one writer
/// batches into SQLite), aggregation, content identification, analysis queueing. Each phase checkpoints in
/// the job row; a run after a crash resumes the interrupted job at its phase.
public final class Indexer: Sendable {
    let library: Library
    let options: IndexOptions
    let progress: (@Sendable (IndexProgress) -> Void)?

    public init(
        library: Library,
        options: IndexOptions = IndexOptions(),
        progress: (@Sendable (IndexProgress) -> Void)? = nil
    ) {
        self.library = library
        self.options = options
        self.progress = progress
    }

    /// Indexes (or resumes indexing) one location.
    ///
    /// #### Errors
    /// `IndexError.massDelete` (nothing removed; see `IndexOptions.allowMassDelete`); library errors. A
    /// location whose root is missing or holds another volume is not an error: it is marked offline, its
    /// entries are kept, and the report says why.
    public func index(_ given: Location) throws -> IndexReport {
        let location = try library.fetchLocation(id: given.id) ?? given
        if let reason = offlineReason(location) {
            try library.setLocationState(id: location.id, state: "offline", reason: reason)
            var report = IndexReport(location: location.name)
            report.offline = reason
            return report
        }
        let job =
            try library.fetchUnfinishedJob(kind: "index", target: location.uuid)
            ?? library.createJob(kind: "index", target: location.uuid, checkpoint: nil)
        // Whoever holds the job's lock runs it: `sd jobs pause|cancel` ask through the job's row, which is read
        // between batches (a stop there is as safe as a kill: the scan resumes from its checkpoint).
        let jobLock = try library.acquireJobLock(job.id)
        defer { withExtendedLifetime(jobLock) {} }
        try library.setJobState(id: job.id, "running")
        do {
            let report = try scan(location, job: job) {
                if let stop = JobStop(request: try library.jobRequest(id: job.id)) { throw stop }
            }
            try library.setJobState(id: job.id, "completed")
            library.removeJobLock(job.id)
            return report
        } catch let stop as JobStop {
            try? library.setJobState(id: job.id, stop.state)
            if stop == .cancelled { library.removeJobLock(job.id) }
            throw stop
        } catch {
            try? library.setJobState(id: job.id, "failed", error: "\(error)")
            library.removeJobLock(job.id)
            throw error
        }
    }

    /// The work of an index job, from the checkpoint in its row (a first run starts a new scan epoch), without
    /// the job's bookkeeping (lock, state): `index(_:)` and `IndexJob` (the job runner) do that.
    /// `checkRequests` throws `JobStop` when the user asked to pause or cancel; it is called between batches,
    /// at most every 250 ms, and between phases.
    public func scan(_ given: Location, job: JobRecord, checkRequests: () throws -> Void) throws -> IndexReport {
        let clock = ContinuousClock()
        let start = clock.now
        let location = try library.fetchLocation(id: given.id) ?? given
        var report = IndexReport(location: location.name)
        if let reason = offlineReason(location) {
            try library.setLocationState(id: location.id, state: "offline", reason: reason)
            report.offline = reason
            return report
        }
        var checkpoint: IndexCheckpoint
        if let saved = IndexCheckpoint.parse(job.checkpoint) {
            checkpoint = saved
            report.resumed = true
        } else {
            checkpoint = IndexCheckpoint(epoch: location.scanEpoch + 1, phase: .processing)
            try library.updateJob(id: job.id, checkpoint: checkpoint.json)
        }
        report.epoch = checkpoint.epoch
        var lastRequestCheck = clock.now
        func stopIfAsked(throttled: Bool = true) throws {
            if throttled && clock.now - lastRequestCheck < .milliseconds(250) { return }
            lastRequestCheck = clock.now
            try checkRequests()
        }
        func notify(_ phase: IndexPhase, entries: Int = 0, hashed: Int = 0, toHash: Int = 0) {
            progress?(
                IndexProgress(
                    location: location.name,
                    phase: phase,
                    entries: entries,
                    hashed: hashed,
                    toHash: toHash,
                    elapsed: clock.now - start
                )
            )
        }
        do {
            var current = location
            var mark = clock.now
            func lap(_ name: String) {
                report.phaseSeconds[name, default: 0] += (clock.now - mark).seconds
                mark = clock.now
            }
            if checkpoint.phase == .processing {
                // A first scan inserts every entry: the search's date and size indexes are built once, sorted,
                // afterwards.
                if location.rootEntryID == nil { try library.dropSearchSortIndexes() }
                let writer = try ScanWriter(
                    library: library,
                    location: location,
                    epoch: checkpoint.epoch,
                    resuming: report.resumed
                )
                current = writer.location
                try walk(writer) {
                    notify(.processing, entries: $0)
                    try stopIfAsked()
                }
                lap("processing")
                report.counts = writer.counts
                report.removals = try writer.finish(allowMassDelete: options.allowMassDelete)
                lap("removals")
                checkpoint.phase = .aggregation
                try library.updateJob(id: job.id, checkpoint: checkpoint.json)
                try stopIfAsked(throttled: false)
            } else {
                current = try library.fetchLocation(id: location.id) ?? location
            }
            if checkpoint.phase == .aggregation {
                notify(.aggregation)
                try library.aggregate(location: current)
                lap("aggregation")
                checkpoint.phase =
                    options.indexContent && current.indexContent ? .contentIdentification : .analysisQueueing
                try library.updateJob(id: job.id, checkpoint: checkpoint.json)
                try stopIfAsked(throttled: false)
            }
            if checkpoint.phase == .contentIdentification {
                try identifyContent(current, job: job, checkpoint: &checkpoint, report: &report) { done, total in
                    notify(.contentIdentification, hashed: done, toHash: total)
                    try stopIfAsked()
                }
                lap("content")
                if checkpoint.kindsChanged { try library.aggregate(location: current) }
                lap("reaggregation")
                checkpoint.phase = .analysisQueueing
                try library.updateJob(id: job.id, checkpoint: checkpoint.json)
                try stopIfAsked(throttled: false)
            }
            if checkpoint.phase == .analysisQueueing {
                notify(.analysisQueueing)
                // A metadata-only run gives no file a new content id, so there is nothing new to queue.
                if options.indexContent && current.indexContent {
                    report.analysisQueued = try library.queueAnalysis(location: current)
                }
                lap("analysis")
                checkpoint.phase = .done
            }
            // The search index catches up last (entries not in it yet are found by name meanwhile): overlapping it
            // with content identification cost the 1M-file run 47 MB of peak memory (197 MB against the 150 MB
            // target) and stalled recording behind its index builds.
            if options.searchIndex { while try library.catchUpSearch() > 0 {} }
            lap("search")
            try library.finishScan(location: current)
        }
        report.seconds = (clock.now - start).seconds
        return report
    }

    /// Why the location cannot be scanned now, if it cannot: its root is gone (an unmounted disk), or a
    /// different volume is mounted there. Either way nothing may be read as deleted.
    public func offlineReason(_ location: Location) -> String? {
        guard let root = try? Directory.stat(location.path), root.type == .directory else {
            return
                "the folder '\(location.pathString)' is not there (disk unmounted?); its entries are kept until it returns"
        }
        if let recorded = location.volumeIdentity,
            let now = Mounts.volume(containing: location.pathString, in: Mounts.list()), now.identity != recorded
        {
            return
                "a different volume (\(now.identity)) is mounted at '\(location.pathString)' than when it was added (\(recorded)); its entries are kept"
        }
        return nil
    }

    // MARK: - Phases 1 and 2

    private func walk(_ writer: ScanWriter, progress: (Int) throws -> Void) throws {
        let root = try Directory.stat(writer.location.path)
        let walker = try Walker(roots: [writer.location.path], rootDevice: root.device, workers: options.walkers)
        var entries = 0
        let trace = ProcessInfo.processInfo.environment["SD_TRACE"] != nil
        let clock = ContinuousClock()
        var waiting = Duration.zero, writing = Duration.zero, batches = 0
        defer {
            if trace {
                FileHandle.standardError.write(
                    Data("walk: waited \(waiting), wrote \(writing) in \(batches) batches\n".utf8)
                )
            }
        }
        do {
            while true {
                let t0 = clock.now
                guard let listings = walker.take(upTo: options.batchEntries) else { break }
                let t1 = clock.now
                try writer.apply(listings)
                waiting += t1 - t0
                writing += clock.now - t1
                batches += 1
                entries += listings.reduce(0) { $0 + $1.entries.count }
                try progress(entries)
            }
        } catch {
            walker.stop()
            throw error
        }
    }

    // MARK: - Phase 4

    private func identifyContent(
        _ location: Location,
        job: JobRecord,
        checkpoint: inout IndexCheckpoint,
        report: inout IndexReport,
        progress: (Int, Int) throws -> Void
    ) throws {
        let folders = try library.fetchFolderPaths(location: location)
        let total = try library.countFilesNeedingContent(location: location)
        // Many ids to record: rebuild the content-id index once at the end instead of inserting into it.
        if total > 20_000 { try library.dropContentIndex() }
        defer { try? library.ensureContentIndex() }
        var done = 0
        try progress(0, total)
        // Batch k is recorded (one transaction, with its checkpoint) on `recorder` while batch k+1 is hashed.
        let recorder = DispatchQueue(label: "sd.index.record")
        let recording = DispatchGroup()
        let failure = ErrorBox()
        var cursor = checkpoint.lastHashedID
        while true {
            let batch = try library.fetchFilesNeedingContent(
                location: location,
                after: cursor,
                limit: options.hashBatch
            )
            guard let last = batch.last else { break }
            cursor = last.id
            let results = hash(batch, folders: folders)
            report.hashed += results.filter { $0.contentID != nil }.count
            report.hashErrors += results.filter { $0.error != nil }.count
            if results.contains(where: { $0.kind.map { $0.method == .magic || $0.method == .content } ?? false }) {
                checkpoint.kindsChanged = true
            }
            checkpoint.lastHashedID = last.id
            recording.wait()
            if let error = failure.error { throw error }
            let saved = checkpoint.json
            let library = self.library
            let jobID = job.id
            recording.enter()
            recorder.async {
                do { try library.recordContents(results, job: jobID, checkpoint: saved) } catch { failure.set(error) }
                recording.leave()
            }
            done += batch.count
            do { try progress(done, total) } catch {
                // Stopping: the batch being recorded is part of the checkpoint the job resumes from.
                recording.wait()
                throw error
            }
        }
        recording.wait()
        if let error = failure.error { throw error }
        let t0 = ContinuousClock.now
        try library.linkContentIdentities(location: location)
        let t1 = ContinuousClock.now
        try library.ensureContentIndex()
        if ProcessInfo.processInfo.environment["SD_TRACE"] != nil {
            FileHandle.standardError.write(Data("content: link \(t1 - t0), index \(ContinuousClock.now - t1)\n".utf8))
        }
    }

    /// Hashes files over the cores; each worker keeps one hasher (and its buffer) for all its files.
    private func hash(_ files: [PendingFile], folders: [Int64: [UInt8]]) -> [ContentResult] {
        ContentHasher.parallelMap(count: files.count, workers: options.hashers) { i, hasher in
            Self.hashOne(files[i], folders: folders, hasher: hasher)
        }
    }

    static func hashOne(_ file: PendingFile, folders: [Int64: [UInt8]], hasher: borrowing ContentHasher)
        -> ContentResult
    {
        guard let folder = folders[file.parentID] else {
            return ContentResult(entryID: file.id, contentID: nil, kind: nil, error: "its folder is not in the index")
        }
        let path = folder + [0x2F] + file.name
        do {
            let reader = try LocalFileReader(pathBytes: path)
            if Int64(reader.file.sizeAtOpen) != file.size {
                // Changed since the scan: leave it for the next scan, which will see the new size.
                return ContentResult(entryID: file.id, contentID: nil, kind: nil, error: nil)
            }
            let (id, header) = try hasher.contentIDAndHeader(of: reader)
            var kind: FileKind?
            if file.needsKind {
                kind = FileKinds.identify(name: String(decoding: file.name, as: UTF8.self), header: header)
            }
            return ContentResult(entryID: file.id, contentID: id, kind: kind, error: nil)
        } catch let error as SystemError {
            return ContentResult(entryID: file.id, contentID: nil, kind: nil, error: error.description)
        } catch {
            return ContentResult(entryID: file.id, contentID: nil, kind: nil, error: "\(error)")
        }
    }
}

/// The first error of a background step.
final class ErrorBox: @unchecked Sendable {
    // @unchecked: `stored` is only touched under `lock`.
    private var stored: (any Error)?
    private let lock = NSLock()
    func set(_ error: any Error) { lock.withLock { if stored == nil { stored = error } } }
    var error: (any Error)? { lock.withLock { stored } }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
