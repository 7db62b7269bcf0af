import Foundation
import SDCore
import SDIndexer
import SDStore
import SDSystem
import SDTestSupport
import Synchronization
import Testing

/// A watcher running on its own thread over a fixture's library, with the events it reported.
final class RunningWatcher: Sendable {
    let control = WatchControl()
    private let events = Mutex<[WatchEvent]>([])
    private let finished = Mutex<(done: Bool, error: String?)>((false, nil))

    init(_ f: IndexFixture, options: WatchOptions = WatchOptions()) throws {
        let library = f.library
        try Threads.start(name: "sd-test-watch") { [self] in
            do {
                let watcher = try Watcher(library: library, options: options) { event in
                    self.events.withLock { $0.append(event) }
                }
                try watcher.run(control)
                finished.withLock { $0.done = true }
            } catch {
                finished.withLock { $0 = (true, "\(error)") }
            }
        }
        // Wait until every location is watched (or the watcher failed).
        try waitFor("the watcher to start", seconds: 30) {
            self.reported.contains { if case .watching = $0 { return true } else { return false } }
        }
    }

    var reported: [WatchEvent] { events.withLock { $0 } }
    var failure: String? { finished.withLock { $0.error } }

    func waitFor(_ what: String, seconds: Double = 20, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let failure { throw WatchTestError("watcher failed: \(failure)") }
            if try condition() { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
        throw WatchTestError("timed out waiting for \(what)")
    }

    func stop() throws {
        control.stop()
        try waitFor("the watcher to stop") { finished.withLock { $0.done } }
    }

    var sweepsDone: Int { reported.filter { if case .sweepDone = $0 { return true } else { return false } }.count }
}

struct WatchTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension IndexFixture {
    /// The canonical dump a fresh library gets by indexing this fixture's tree from scratch.
    func freshDump(content: Bool = true) throws -> String {
        let other = try Library.create(
            name: "Fresh\(UUID().uuidString.prefix(6))",
            in: dir.file("fresh"),
            device: try DeviceIdentity.loadOrCreate(configDirectory: dir.file("config"))
        )
        defer { try? other.close() }
        let location = try other.addLocation(path: Array(root.utf8), name: "tree", volume: nil, indexContent: content)
        var options = IndexOptions()
        options.indexContent = content
        options.allowMassDelete = true
        _ = try Indexer(library: other, options: options).index(location)
        return try other.canonicalDump(location: try #require(try other.fetchLocation(id: location.id)))
    }

    func dump(_ location: Location) throws -> String {
        try library.canonicalDump(location: try #require(try library.fetchLocation(id: location.id)))
    }

    func uuid(_ relative: String) throws -> String? { try entry(relative)?.uuid }

    /// Waits until the watched index equals a fresh scan; on timeout, records the lines that differ.
    func waitUntilEqualToFreshScan(_ w: RunningWatcher, _ location: Location, _ what: String, seconds: Double = 20)
        throws
    {
        let expected = try freshDump()
        do {
            try w.waitFor(what, seconds: seconds) { try dump(location) == expected }
        } catch {
            let got = Set(try dump(location).split(separator: "\n"))
            let want = Set(expected.split(separator: "\n"))
            Issue.record("index lacks:\n\(want.subtracting(got).joined(separator: "\n"))")
            Issue.record("index has extra:\n\(got.subtracting(want).joined(separator: "\n"))")
            throw error
        }
    }
}

@Suite(.serialized) struct WatcherTests {
    /// Creates, modifies, deletes, renames (files and folders, paired by cookie), atomic saves, new nested
    /// folders, a folder replaced by a file: after each round the watched index equals a fresh full scan.
    @Test func watchedIndexEqualsAFreshScan() throws {
        let f = try IndexFixture(prefix: "sd-watch")
        for i in 0..<20 { try f.write("docs/d\(i % 4)/note\(i).txt", "note \(i)") }
        try f.write("photos/IMG_0001.JPG", String(repeating: "j", count: 5000))
        try f.write("keep/a.txt", "a")
        let location = try f.addLocation()
        _ = try f.index(location)
        let movedFileUUID = try f.uuid("docs/d1/note1.txt")
        let movedFolderChildUUID = try f.uuid("docs/d2/note2.txt")
        let w = try RunningWatcher(f)
        defer { try? w.stop() }

        // Round 1: the common changes.
        try f.write("new/deep/er/file.md", "# new")
        try f.write("docs/d0/note0.txt", "note 0, edited and longer")
        try FileManager.default.removeItem(atPath: "\(f.root)/docs/d3/note3.txt")
        try FileManager.default.moveItem(atPath: "\(f.root)/docs/d1/note1.txt", toPath: "\(f.root)/keep/renamed.txt")
        try FileManager.default.moveItem(atPath: "\(f.root)/docs/d2", toPath: "\(f.root)/photos/d2-moved")
        try f.waitUntilEqualToFreshScan(w, location, "round 1 to be applied")
        // Renames keep identity; the moved folder's files kept theirs without being read again.
        #expect(try f.uuid("keep/renamed.txt") == movedFileUUID)
        #expect(try f.uuid("photos/d2-moved/note2.txt") == movedFolderChildUUID)

        // Round 2: an atomic save (write a temporary, rename over), a folder replaced by a file, a symlink,
        // a chmod, and a folder tree deleted.
        try f.write(".note.tmp", "saved atomically")
        _ = rename("\(f.root)/.note.tmp", "\(f.root)/docs/d0/note4.txt")
        try FileManager.default.removeItem(atPath: "\(f.root)/new/deep")
        try f.write("new/deep", "now a file")
        try FileManager.default.createSymbolicLink(atPath: "\(f.root)/keep/link", withDestinationPath: "a.txt")
        _ = chmod("\(f.root)/keep/a.txt", 0o600)
        try FileManager.default.removeItem(atPath: "\(f.root)/photos/d2-moved")
        try f.waitUntilEqualToFreshScan(w, location, "round 2 to be applied")
        #expect(w.failure == nil)
    }

    /// A burst (untarring 10,000 files, then renaming 1,000 of them as a checkout would) is applied in
    /// batches, and the index ends equal to a fresh scan.
    @Test func burstsAreAppliedInBatches() throws {
        let f = try IndexFixture(prefix: "sd-burst")
        try f.write("readme.txt", "hello")
        let source = f.dir.file("source")
        for i in 0..<10_000 {
            try f.dir.write("source/pkg/m\(i % 50)/file\(i).c", Array("int x\(i);\n".utf8))
        }
        let archive = f.dir.file("burst.tar")
        try #require(try Run.program("/usr/bin/tar", ["-C", source, "-cf", archive, "pkg"]).status == 0)
        let location = try f.addLocation()
        _ = try f.index(location)
        let w = try RunningWatcher(f)
        defer { try? w.stop() }
        try #require(try Run.program("/usr/bin/tar", ["-C", f.root, "-xf", archive]).status == 0)
        for i in 0..<1000 {
            _ = rename("\(f.root)/pkg/m\(i % 50)/file\(i).c", "\(f.root)/pkg/m\(i % 50)/file\(i).h")
        }
        try f.waitUntilEqualToFreshScan(w, location, "the burst to be applied", seconds: 60)
        let batches = w.reported.filter { if case .applied = $0 { return true } else { return false } }.count
        #expect(batches >= 1 && batches < 200, "\(batches) batches for 11,000 changes")
        #expect(try f.library.status().files == 10_001)
    }

    /// Lost events (the kernel queue overflows while the watcher is paused) lead to a rescan that finds
    /// everything.
    @Test func queueOverflowTriggersARescan() throws {
        let f = try IndexFixture(prefix: "sd-overflow")
        for i in 0..<10 { try f.write("d\(i)/seed.txt", "\(i)") }
        let location = try f.addLocation()
        _ = try f.index(location)
        let w = try RunningWatcher(f)
        defer { try? w.stop() }
        w.control.pause()
        Thread.sleep(forTimeInterval: 0.2)
        // Each new file is at least two events (create, close-write): more than the default 16,384 queued.
        for i in 0..<12_000 { try f.write("d\(i % 10)/n\(i)", "") }
        try f.write("d3/seed.txt", "rewritten in place, longer")
        w.control.resume()
        try f.waitUntilEqualToFreshScan(w, location, "the rescan", seconds: 60)
        #expect(w.reported.contains { if case .overflow = $0 { return true } else { return false } })
    }

    /// With no watches left, the watcher says so and finds changes in unwatched folders by periodic rescans.
    @Test func watchLimitFallsBackToPeriodicRescans() throws {
        let f = try IndexFixture(prefix: "sd-limit")
        for i in 0..<6 { try f.write("f\(i)/a.txt", "\(i)") }
        let location = try f.addLocation()
        _ = try f.index(location)
        var options = WatchOptions()
        options.maxWatches = 2
        options.rescanInterval = .milliseconds(300)
        let w = try RunningWatcher(f, options: options)
        defer { try? w.stop() }
        let warning = w.reported.compactMap { if case .warning(let m) = $0 { return m } else { return nil } }
        #expect(warning.contains { $0.contains("could not be watched") })
        for i in 0..<6 { try f.write("f\(i)/b.txt", "new \(i)") }
        try f.waitUntilEqualToFreshScan(w, location, "the periodic rescan")
    }

    /// The location's folder disappearing while watched (an unmounted disk) marks it offline and keeps every
    /// entry; when it returns, what changed meanwhile is found.
    @Test func aVanishedRootGoesOfflineAndComesBack() throws {
        let f = try IndexFixture(prefix: "sd-unplug")
        for i in 0..<10 { try f.write("f\(i).txt", "\(i)") }
        let location = try f.addLocation()
        _ = try f.index(location)
        var options = WatchOptions()
        options.rescanInterval = .milliseconds(200)
        let w = try RunningWatcher(f, options: options)
        defer { try? w.stop() }
        try FileManager.default.moveItem(atPath: f.root, toPath: f.dir.file("unplugged"))
        try w.waitFor("the location to go offline") {
            try f.library.fetchLocation(id: location.id)?.state == "offline"
        }
        #expect(try f.library.status().files == 10)
        try f.dir.write("unplugged/added.txt", Array("while away".utf8))
        try FileManager.default.moveItem(atPath: f.dir.file("unplugged"), toPath: f.root)
        let expected = try f.freshDump()
        try w.waitFor("the location to come back") {
            try f.library.fetchLocation(id: location.id)?.state == "online" && f.dump(location) == expected
        }
    }
}

/// Offline recovery: what changed while sd was not running.
struct RecoveryTests {
    /// One file added to a 100,000-file location: the first pass reads only the folder it was added to.
    @Test func oneAddedFileReadsOnlyAHandfulOfFolders() throws {
        let f = try IndexFixture(prefix: "sd-recover")
        for folder in 0..<500 {
            let path = "\(f.root)/g\(folder / 50)/f\(folder)"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            for i in 0..<200 { _ = FileManager.default.createFile(atPath: "\(path)/x\(i)", contents: nil) }
        }
        let location = try f.addLocation()
        _ = try f.index(location, content: false)
        #expect(try f.library.status().files == 100_000)
        try f.write("g3/f170/added.txt", "new")
        let live = LiveIndexer(library: f.library)
        let report = try live.recover(try #require(try f.library.fetchLocation(id: location.id)))
        #expect(report.foldersTotal == 511)
        #expect(report.foldersRead >= 1 && report.foldersRead <= 3, "read \(report.foldersRead) folders")
        #expect(report.counts.inserted == 1)
        #expect(try f.entry("g3/f170/added.txt")?.contentID != nil)
        #expect(try f.library.status().files == 100_001)
    }

    /// Adds, deletes, renames and a file rewritten in place while not running: the first pass finds all but the
    /// rewrite (its folder's mtime did not move), and the sweep finds that one; the index then equals a fresh
    /// scan.
    @Test func theSweepFindsAFileRewrittenInPlace() throws {
        let f = try IndexFixture(prefix: "sd-sweep")
        for i in 0..<30 { try f.write("a\(i % 3)/f\(i).txt", "file \(i)") }
        let location = try f.addLocation()
        _ = try f.index(location)
        let before = try #require(try f.entry("a1/f4.txt"))
        // Rewritten in place: same size, new bytes; its folder is untouched.
        let handle = try #require(FileHandle(forWritingAtPath: "\(f.root)/a1/f4.txt"))
        handle.write(Data("FILE 4".utf8))
        try handle.close()
        try f.write("a0/new.txt", "new")
        try FileManager.default.removeItem(atPath: "\(f.root)/a2/f5.txt")
        try FileManager.default.moveItem(atPath: "\(f.root)/a2", toPath: "\(f.root)/a0/a2")
        let live = LiveIndexer(library: f.library)
        let current = try #require(try f.library.fetchLocation(id: location.id))
        let first = try live.recover(current)
        #expect(first.foldersRead <= 3)
        #expect(try f.entry("a0/new.txt") != nil)
        #expect(try f.entry("a0/a2/f8.txt") != nil)
        #expect(try f.entry("a1/f4.txt")?.contentID == before.contentID)
        let folders = try f.library.fetchFolders(location: current).map(\.id)
        var swept = try live.sweep(folders, of: current)
        swept.add(try live.completeSweep(of: current))
        #expect(swept.counts.updated >= 1)
        let after = try #require(try f.entry("a1/f4.txt"))
        #expect(after.contentID != before.contentID)
        #expect(after.uuid == before.uuid)
        #expect(try f.dump(location) == (try f.freshDump()))
    }
}
