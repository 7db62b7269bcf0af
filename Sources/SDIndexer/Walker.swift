import Foundation
import SDStore
import SDSystem

/// Walks a folder tree with several threads and hands each folder's listing to one consumer, in an order
/// where every folder's listing comes after its parent's.
///
/// Workers take folders from a shared stack (depth first, which keeps the stack small), list them, publish the
/// listing, and only then push the subfolders, so a subfolder cannot be listed before its parent's listing is
/// published. The output queue is bounded: when the consumer (the SQLite writer) falls behind, workers wait,
/// so memory stays flat however large the tree. Folders on another filesystem (mount points inside the tree)
/// are recorded but not entered.
final class Walker: @unchecked Sendable {
    // @unchecked: every mutable field is guarded by `condition`.
    private let condition = NSCondition()
    private var stack: [(key: Int, path: [UInt8])] = []
    private var output: [FolderListing] = []
    private var outputHead = 0
    private var outputEntries = 0
    private var busy = 0
    private var nextKey = 1
    private var stopped = false
    private var threadsRunning = 0
    private let maxQueuedEntries: Int
    private let rootDevice: UInt64
    private let statFolders: Bool
    private let beforeList: (@Sendable ([UInt8]) -> Void)?

    /// Walks from `roots` (keys 0, 1, ... in order). `statFolders` reads each folder's own metadata just before
    /// listing it (`FolderListing.selfStat`); `beforeList` is called with each folder's path before it is read
    /// (the watcher watches it there, so nothing created after the listing goes unseen).
    ///
    /// #### Errors
    /// `SystemError` when not one worker thread could be started.
    init(
        roots: [[UInt8]],
        rootDevice: UInt64,
        workers: Int,
        maxQueuedEntries: Int = 50_000,
        statFolders: Bool = false,
        beforeList: (@Sendable ([UInt8]) -> Void)? = nil
    ) throws(SystemError) {
        self.maxQueuedEntries = maxQueuedEntries
        self.rootDevice = rootDevice
        self.statFolders = statFolders
        self.beforeList = beforeList
        for (key, path) in roots.enumerated().reversed() { stack.append((key, path)) }
        nextKey = roots.count
        let workers = max(1, workers)
        threadsRunning = workers
        var started = 0
        var failure: SystemError?
        for n in 0..<workers {
            do {
                try Threads.start(name: "sd-walk-\(n)", stackSize: 1 << 20) { [self] in work() }
                started += 1
            } catch {
                failure = error
                condition.lock()
                threadsRunning -= 1
                condition.broadcast()
                condition.unlock()
            }
        }
        if started == 0, let failure { throw failure }
    }

    private func work() {
        while let (key, path) = nextFolder() {
            var listing: FolderListing
            beforeList?(path)
            let selfStat = statFolders ? try? Directory.stat(path) : nil
            do {
                let entries = try Directory.list(path)
                listing = FolderListing(
                    key: key,
                    path: path,
                    entries: entries,
                    childKeys: [],
                    error: nil,
                    selfStat: selfStat
                )
            } catch {
                listing = FolderListing(key: key, path: path, entries: [], childKeys: [], error: error)
            }
            var children: [(key: Int, path: [UInt8])] = []
            condition.lock()
            for (index, entry) in listing.entries.enumerated()
            where entry.type == .directory && entry.error == nil && entry.device == rootDevice {
                let childKey = nextKey
                nextKey += 1
                listing.childKeys.append((index, childKey))
                children.append((childKey, path + [0x2F] + entry.name))
            }
            while outputEntries > maxQueuedEntries && !stopped { condition.wait() }
            output.append(listing)
            outputEntries += listing.entries.count + 1
            stack.append(contentsOf: children.reversed())
            busy -= 1
            condition.broadcast()
            condition.unlock()
        }
        condition.lock()
        threadsRunning -= 1
        condition.broadcast()
        condition.unlock()
    }

    private func nextFolder() -> (Int, [UInt8])? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if stopped { return nil }
            if let next = stack.popLast() {
                busy += 1
                return next
            }
            if busy == 0 { return nil }
            condition.wait()
        }
    }

    /// The next listings (at least one, up to about `entries` entries), or nil when the walk is complete.
    func take(upTo entries: Int) -> [FolderListing]? {
        condition.lock()
        defer { condition.unlock() }
        while outputHead == output.count {
            if walkDone || threadsRunning == 0 { return nil }
            condition.wait()
        }
        var taken: [FolderListing] = []
        var count = 0
        while outputHead < output.count && (taken.isEmpty || count + output[outputHead].entries.count <= entries) {
            let listing = output[outputHead]
            outputHead += 1
            count += listing.entries.count + 1
            taken.append(listing)
        }
        if outputHead > 1024 && outputHead * 2 > output.count {
            output.removeFirst(outputHead)
            outputHead = 0
        }
        outputEntries -= count
        condition.broadcast()
        return taken
    }

    private var walkDone: Bool { stack.isEmpty && busy == 0 }

    /// Stops the workers (after an error in the consumer) and waits for them.
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        while threadsRunning > 0 { condition.wait() }
        condition.unlock()
    }
}
