import Dispatch
import Foundation
import SDCore
import SDStore
import SDSystem

/// What one live update (a batch of watcher events, a recovery pass, a sweep chunk) did.
public struct LiveReport: Sendable, Codable {
    public var counts = ScanCounts()
    public var removals = RemovalSummary()
    public var hashed = 0
    public var hashErrors = 0
    /// Folders read (listed) by this update, and how many folders the location has (recovery reports both).
    public var foldersRead = 0
    public var foldersTotal = 0
    public var seconds = 0.0
    public init() {}

    /// Whether anything in the index changed.
    public var changedIndex: Bool {
        counts.inserted + counts.updated + removals.removed + removals.moved + hashed > 0
    }

    public mutating func add(_ other: LiveReport) {
        counts.listed += other.counts.listed
        counts.inserted += other.counts.inserted
        counts.updated += other.counts.updated
        counts.unchanged += other.counts.unchanged
        counts.unreadableFolders += other.counts.unreadableFolders
        removals.removed += other.removals.removed
        removals.moved += other.removals.moved
        hashed += other.hashed
        hashErrors += other.hashErrors
        foldersRead += other.foldersRead
        seconds += other.seconds
    }
}

/// Keeps an indexed location true between full scans: applies targeted changes (from the watcher, from offline
/// recovery, from the sweep) through a live `ScanWriter`, walks folders that appeared, identifies the content
/// of new and changed files, and recomputes the aggregates of the folders touched and their ancestors.
///
/// Each update is several short transactions (changes, walks of new folders, removals, content, aggregates).
/// A crash between them loses nothing: a folder inserted but not yet listed carries an mtime that offline
/// recovery always relists, and the sweep completes content ids and aggregates.
public final class LiveIndexer: Sendable {
    let library: Library
    let options: IndexOptions

    public init(library: Library, options: IndexOptions = IndexOptions()) {
        self.library = library
        self.options = options
    }

    /// Applies `changes` to `location`.
    ///
    /// - Parameters:
    ///   - watch: called with each folder's path before it is first read (to watch it), then
    ///     `registered` with the folder's entry id once it is in the index.
    ///   - allowMassDelete: see `ScanWriter.finish`; the watcher allows it (deletions it saw happen), offline
    ///     recovery does not.
    /// Changes naming folders no longer in the index are skipped (their parents' changes cover them; a watch
    /// left on a folder moved out of the location is then simply unused).
    @discardableResult
    public func apply(
        _ changes: [FolderChange],
        to location: Location,
        allowMassDelete: Bool = true,
        watch: (@Sendable ([UInt8]) -> Void)? = nil,
        registered: (Int64, [UInt8]) -> Void = { _, _ in }
    ) throws -> LiveReport {
        let clock = ContinuousClock()
        let start = clock.now
        var report = LiveReport()
        let writer = try ScanWriter(live: library, location: location)
        try writer.applyChanges(changes)
        report.foldersRead = changes.reduce(0) {
            if case .relist = $1 { return $0 + 1 }
            return $0
        }
        var newFolders: Set<Int64> = []
        // Folders that appeared: watch them, then walk what is below them.
        while true {
            let (toWalk, toWatch) = writer.takeNewFolders()
            for folder in toWatch {
                newFolders.insert(folder.id)
                if toWalk.contains(where: { $0.id == folder.id }) { watch?(folder.path) }
                registered(folder.id, folder.path)
            }
            guard !toWalk.isEmpty else { break }
            report.foldersRead += try walk(toWalk, writer: writer, watch: watch)
        }
        report.counts = writer.counts
        report.removals = try writer.finish(allowMassDelete: allowMassDelete)
        if writer.location.indexContent { try identify(writer.contentPending, report: &report) }
        try library.aggregate(folders: writer.touchedFolders.union(newFolders))
        report.seconds = (clock.now - start).seconds
        return report
    }

    /// Walks new folders (already in the index) and merges what is below them.
    private func walk(
        _ roots: [(id: Int64, path: [UInt8])],
        writer: ScanWriter,
        watch: (@Sendable ([UInt8]) -> Void)?
    ) throws -> Int {
        guard let device = try? Directory.stat(writer.location.path).device else { return 0 }
        for (key, root) in roots.enumerated() { writer.seed(key: key, folderID: root.id) }
        let walker = try Walker(
            roots: roots.map(\.path),
            rootDevice: device,
            workers: options.walkers,
            statFolders: true,
            beforeList: { path in
                // The roots were watched by the caller already.
                if !roots.contains(where: { $0.path == path }) { watch?(path) }
            }
        )
        var read = 0
        do {
            while let listings = walker.take(upTo: options.batchEntries) {
                try writer.apply(listings)
                read += listings.count
            }
        } catch {
            walker.stop()
            throw error
        }
        return read
    }

    /// Content ids for the files inserted or changed, then their identities and analysis tasks.
    private func identify(_ ids: Set<Int64>, report: inout LiveReport) throws {
        guard options.indexContent, !ids.isEmpty else { return }
        let pending = try library.fetchPendingFiles(ids: ids.sorted())
        guard !pending.isEmpty else { return }
        var folders: [Int64: [UInt8]] = [:]
        for (file, folder) in pending { folders[file.parentID] = folder }
        let files = pending.map(\.file)
        let frozen = folders
        let results = ContentHasher.parallelMap(count: files.count, workers: options.hashers) { i, hasher in
            Indexer.hashOne(files[i], folders: frozen, hasher: hasher)
        }
        report.hashed += results.filter { $0.contentID != nil }.count
        report.hashErrors += results.filter { $0.error != nil }.count
        try library.recordContents(results, job: nil, checkpoint: nil)
        let identified = results.filter { $0.contentID != nil }.map(\.entryID)
        try library.linkContentIdentities(entryIDs: identified)
        try library.queueAnalysis(entryIDs: identified)
    }

    // MARK: - Offline recovery

    /// The first pass of offline recovery: every indexed folder is stat'ed, and only those whose mtime (or
    /// inode) differs from the recorded one are listed again. On Linux a folder's mtime changes when entries
    /// are added to it, removed from it or renamed in it, so this finds every such change made while sd was
    /// not running; files modified in place are left to `sweep`.
    ///
    /// #### Errors
    /// `IndexError.massDelete` when the changes would remove more than half of the location (nothing removed).
    public func recover(
        _ location: Location,
        allowMassDelete: Bool = false,
        watch: (@Sendable ([UInt8]) -> Void)? = nil,
        registered: (Int64, [UInt8]) -> Void = { _, _ in }
    ) throws -> LiveReport {
        let clock = ContinuousClock()
        let start = clock.now
        let folders = try library.fetchFolders(location: location)
        let changed = Self.changedFolders(folders, workers: options.walkers)
        var report = try apply(
            changed.map { .relist(folder: $0) },
            to: location,
            allowMassDelete: allowMassDelete,
            watch: watch,
            registered: registered
        )
        report.foldersTotal = folders.count
        report.seconds = (clock.now - start).seconds
        return report
    }

    /// The folders whose mtime or inode on disk differs from the index (those that can no longer be stat'ed
    /// are left out: their parent's change covers them).
    static func changedFolders(_ folders: [IndexedFolder], workers: Int) -> [Int64] {
        let chunk = 512
        let chunks = (folders.count + chunk - 1) / chunk
        let found = ChangedSet()
        DispatchQueue.concurrentPerform(iterations: max(1, min(workers, chunks))) { worker in
            var c = worker
            var local: [Int64] = []
            while c < chunks {
                for folder in folders[(c * chunk)..<min(folders.count, (c + 1) * chunk)] {
                    guard let now = try? Directory.stat(folder.path), now.type == .directory else { continue }
                    if now.mtimeNanoseconds != folder.mtimeNanoseconds
                        || Int64(bitPattern: now.inode) != folder.inode
                    {
                        local.append(folder.id)
                    }
                }
                c += max(1, min(workers, chunks))
            }
            found.add(local)
        }
        return found.values.sorted()
    }

    /// One step of the background sweep: lists `folders` again in full (every entry stat'ed and compared), which
    /// finds files modified in place, whose folder's mtime did not move.
    public func sweep(
        _ folders: [Int64],
        of location: Location,
        watch: (@Sendable ([UInt8]) -> Void)? = nil,
        registered: (Int64, [UInt8]) -> Void = { _, _ in }
    ) throws -> LiveReport {
        try apply(folders.map { .relist(folder: $0) }, to: location, watch: watch, registered: registered)
    }

    /// The end of a sweep: content ids still missing (a crash cut an update short) and every aggregate.
    public func completeSweep(of location: Location) throws -> LiveReport {
        var report = LiveReport()
        if options.indexContent && location.indexContent {
            var cursor: Int64 = 0
            while true {
                let batch = try library.fetchFilesNeedingContent(
                    location: location,
                    after: cursor,
                    limit: options.hashBatch
                )
                guard let last = batch.last else { break }
                cursor = last.id
                try identify(Set(batch.map(\.id)), report: &report)
            }
        }
        try library.aggregate(location: location)
        return report
    }
}

/// Folder ids collected by several threads.
private final class ChangedSet: @unchecked Sendable {
    // @unchecked: `stored` is only touched under `lock`.
    private var stored: [Int64] = []
    private let lock = NSLock()
    func add(_ ids: [Int64]) { lock.withLock { stored += ids } }
    var values: [Int64] { lock.withLock { stored } }
}
