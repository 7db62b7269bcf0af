import Foundation
import SDCore
import SDIndexer
import SDJobs
import SDStore
import SDSystem
import SDTestSupport
import Synchronization
import Testing

struct IndexerTests {
    @Test func indexesNamesExactlyWithNanosecondTimes() throws {
        let f = try IndexFixture()
        let photo = try f.write("Photos/IMG.JPG", "not really a jpeg")
        try f.write("Photos/notes.md", "# notes")
        try f.write("empty", "")
        let location = try f.addLocation()
        let report = try f.index(location)
        #expect(report.counts.inserted == 4)
        #expect(try f.names("Photos") == ["IMG.JPG", "notes.md"])
        let e = try #require(try f.entry("Photos/IMG.JPG"))
        var st = stat()
        #expect(stat(photo, &st) == 0)
        #expect(e.mtimeNanoseconds == Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec))
        #expect(e.category == "image")
        let id = try ContentHasher().contentID(of: LocalFileReader(path: photo))
        #expect(e.contentID == id?.hex)
        #expect(try f.entry("empty")?.contentID == nil)
        let folder = try #require(try f.entry("Photos"))
        #expect(folder.aggregateFiles == 2)
        #expect(folder.aggregateSize == Int64("not really a jpeg".utf8.count + "# notes".utf8.count))
    }

    /// An index job runs through the job runner like any job: from its row, under the location's lock, to the
    /// same index a direct run gives.
    @Test func indexJobsRunThroughTheJobRunner() async throws {
        let f = try IndexFixture()
        for i in 0..<20 { try f.write("d\(i % 3)/f\(i).txt", "file \(i)") }
        let location = try f.addLocation()
        let reports = Mutex<[IndexReport]>([])
        let runner = JobRunner(
            library: f.library,
            kinds: [IndexJob(finished: { r in reports.withLock { $0.append(r) } })]
        )
        let job = try runner.submit(kind: "index", target: location.uuid, input: [String: String]())
        do {
            // Another process watching the location: the job cannot write it and says so.
            let held = try f.library.lockLocation(location)
            await #expect(throws: IndexError.self) { try await runner.run(job.id) }
            withExtendedLifetime(held) {}
        }
        #expect(try f.library.fetchJob(job.id).state == "failed")
        let again = try runner.submit(kind: "index", target: location.uuid, input: [String: String]())
        #expect(try await runner.run(again.id).state == "completed")
        #expect(reports.withLock { $0.map(\.counts.inserted) } == [23], "20 files and 3 folders")
        #expect(try f.names() == ["d0", "d1", "d2"])
        #expect(try f.names("d1").count == 7)
    }

    /// sd's own files among the user's (a copy's temporaries, a trash folder) are never indexed, by a scan or
    /// by a live update.
    @Test func sdsOwnFilesAreNotIndexed() throws {
        let f = try IndexFixture()
        try f.write("photo.jpg", "p")
        try f.write(".sd-part-1234abcd-7", "half a copy")
        try f.write(".sd-trash-0/lib/item/old.txt", "trashed")
        let location = try f.addLocation()
        _ = try f.index(location)
        #expect(try f.names() == ["photo.jpg"])
        try f.write(".sd-part-1234abcd-8", "another")
        let root = try #require(try f.entry(""))
        let refreshed = try #require(try f.library.fetchLocation(id: location.id))
        try LiveIndexer(library: f.library).apply(
            [.relist(folder: root.id), .names(folder: root.id, [Array(".sd-part-1234abcd-8".utf8)])],
            to: refreshed
        )
        #expect(try f.names() == ["photo.jpg"])
    }

    @Test func metadataOnlyIndexListsEverythingWithoutContent() throws {
        let f = try IndexFixture()
        for i in 0..<50 { try f.write("d\(i % 5)/f\(i).txt", "file \(i)") }
        let location = try f.addLocation()
        _ = try f.index(location, content: false)
        let status = try f.library.status()
        #expect(status.files == 50)
        #expect(status.pendingContent == 50)
        #expect(status.contents == 0)
        _ = try f.index(location)
        #expect(try f.library.status().pendingContent == 0)
    }

    @Test func rescanWritesOnlyWhatChanged() throws {
        let f = try IndexFixture()
        for i in 0..<20 { try f.write("a/f\(i).txt", "file \(i)") }
        let location = try f.addLocation()
        _ = try f.index(location)
        let again = try f.index(location)
        #expect(again.counts.unchanged == 21)
        #expect(again.counts.updated == 0 && again.counts.inserted == 0)
        #expect(again.hashed == 0)

        let before = try #require(try f.entry("a/f3.txt"))
        try f.write("a/f3.txt", "changed content, longer")
        try FileManager.default.removeItem(atPath: "\(f.root)/a/f4.txt")
        let third = try f.index(location)
        #expect(third.removals.removed == 1)
        #expect(third.hashed == 1)
        let after = try #require(try f.entry("a/f3.txt"))
        #expect(after.uuid == before.uuid)
        #expect(after.contentID != before.contentID)
        #expect(try f.entry("a/f4.txt") == nil)
    }

    /// A rename keeps the entry's identity (UUID, content id); a new hard link is a second entry, not a move.
    @Test func movesKeepIdentityAndHardLinksDoNot() throws {
        let f = try IndexFixture()
        try f.write("a/photo.jpg", "pixels")
        try f.write("a/sub/deep.txt", "deep")
        let location = try f.addLocation()
        _ = try f.index(location)
        let photo = try #require(try f.entry("a/photo.jpg"))
        let deep = try #require(try f.entry("a/sub/deep.txt"))
        try FileManager.default.createDirectory(atPath: "\(f.root)/b", withIntermediateDirectories: true)
        try FileManager.default.moveItem(atPath: "\(f.root)/a/photo.jpg", toPath: "\(f.root)/b/renamed.jpg")
        try FileManager.default.moveItem(atPath: "\(f.root)/a/sub", toPath: "\(f.root)/b/sub")
        let report = try f.index(location)
        #expect(report.removals.moved == 3)
        #expect(report.removals.removed == 0)
        let moved = try #require(try f.entry("b/renamed.jpg"))
        #expect(moved.uuid == photo.uuid)
        #expect(moved.contentID == photo.contentID)
        #expect(try f.entry("b/sub/deep.txt")?.uuid == deep.uuid)

        #expect(link("\(f.root)/b/renamed.jpg", "\(f.root)/hardlink.jpg") == 0)
        let linked = try f.index(location)
        #expect(linked.removals.moved == 0)
        let twin = try #require(try f.entry("hardlink.jpg"))
        #expect(twin.uuid != moved.uuid)
        #expect(twin.contentID == moved.contentID)
        // Two names of one inode are one file: not a duplicate.
        #expect(try f.library.status().duplicateGroups == 0)
    }

    @Test func nonUTF8NamesAreStoredExactlyAndMapBackToTheirFile() throws {
        let f = try IndexFixture()
        let name: [UInt8] = Array("caf".utf8) + [0xE9, 0xFF] + Array(".txt".utf8)
        let path = Array(f.root.utf8) + [0x2F] + name
        let fd = path.withCString { open($0, O_CREAT | O_WRONLY, 0o644) }
        #expect(fd >= 0)
        _ = "latin-1 name".withCString { write(fd, $0, 12) }
        close(fd)
        let location = try f.addLocation()
        _ = try f.index(location)
        let e = try #require(try f.entry(bytes: name))
        #expect(e.name == name)
        let expected = try ContentHasher().contentID(of: LocalFileReader(pathBytes: path))
        #expect(e.contentID == expected?.hex)
    }

    @Test func deepTreesAndHugeFolders() throws {
        let f = try IndexFixture()
        var deep = f.root
        for i in 0..<300 { deep += "/d\(i % 10)" }
        try FileManager.default.createDirectory(atPath: deep, withIntermediateDirectories: true)
        try Data("bottom".utf8).write(to: URL(fileURLWithPath: deep + "/bottom.txt"))
        let wide = f.dir.file("tree/wide")
        try FileManager.default.createDirectory(atPath: wide, withIntermediateDirectories: true)
        for i in 0..<100_000 {
            let fd = open("\(wide)/f\(i)", O_CREAT | O_WRONLY, 0o644)
            close(fd)
        }
        let location = try f.addLocation()
        _ = try f.index(location, content: false)
        let relative = String(deep.dropFirst(f.root.count + 1)) + "/bottom.txt"
        #expect(try f.entry(relative) != nil)
        let s = try f.library.status()
        #expect(s.files == 100_001)
        #expect(s.folders == 1 + 300 + 1)
        #expect(try f.entry("wide")?.aggregateFiles == 100_000)
    }

    /// fifos, sockets and device nodes are recorded with their type and never opened (opening a fifo
    /// would block the indexer forever). The time limit turns such a hang into a failure; it is generous because
    /// it counts from the test's start, and with two cores a test can wait minutes for a thread while the
    /// process tests block theirs.
    @Test(.timeLimit(.minutes(10))) func specialFilesAreRecordedNeverOpened() throws {
        let f = try IndexFixture()
        try f.write("plain.txt", "x")
        #expect(mkfifo("\(f.root)/pipe", 0o644) == 0)
        let python = Run.which("python3") ?? "/usr/bin/python3"
        try Run.program(python, ["-c", "import socket; s = socket.socket(socket.AF_UNIX); s.bind('\(f.root)/sock')"])
        let isRoot = getuid() == 0
        if isRoot { #expect(mknod("\(f.root)/null", S_IFCHR | 0o600, dev_t((1 << 8) | 3)) == 0) }
        let location = try f.addLocation()
        _ = try f.index(location)
        #expect(try f.entry("pipe")?.type == .fifo)
        #expect(try f.entry("sock")?.type == .socket)
        #expect(try f.entry("pipe")?.contentID == nil)
        if isRoot { #expect(try f.entry("null")?.type == .characterDevice) }
        #expect(try f.library.status().pendingContent == 0)
    }

    /// A file that vanishes, and one that grows, between the walk and hashing: neither gets a wrong id, and the
    /// next scan sets both right.
    @Test func filesChangingDuringTheScan() throws {
        let f = try IndexFixture()
        try f.write("vanishing.txt", "here now")
        let growing = try f.write("growing.txt", "short")
        let location = try f.addLocation()
        let root = f.root
        let mutated = Mutex(false)
        _ = try f.index(location) { p in
            guard p.phase == .contentIdentification else { return }
            mutated.withLock { done in
                guard !done else { return }
                done = true
                try? FileManager.default.removeItem(atPath: "\(root)/vanishing.txt")
                let handle = FileHandle(forWritingAtPath: growing)!
                handle.seekToEndOfFile()
                handle.write(Data(" and longer".utf8))
                try? handle.close()
            }
        }
        #expect(try f.entry("growing.txt")?.contentID == nil)
        #expect(try f.entry("vanishing.txt")?.error != nil)
        _ = try f.index(location)
        #expect(try f.entry("vanishing.txt") == nil)
        let grown = try #require(try f.entry("growing.txt"))
        #expect(grown.size == Int64("short and longer".utf8.count))
        #expect(grown.contentID == (try ContentHasher().contentID(of: LocalFileReader(path: growing)))?.hex)
    }

    @Test func massDeletionStopsBeforeRemovingAnything() throws {
        let f = try IndexFixture()
        for i in 0..<100 { try f.write("f\(i).txt", "\(i)") }
        let location = try f.addLocation()
        _ = try f.index(location)
        for i in 0..<60 { try FileManager.default.removeItem(atPath: "\(f.root)/f\(i).txt") }
        let error = #expect(throws: IndexError.self) { try f.index(location) }
        #expect(error?.code == .massDelete)
        #expect(try f.library.status().files == 100)
        let report = try f.index(location, allowMassDelete: true)
        #expect(report.removals.removed == 60)
        #expect(try f.library.status().files == 40)
    }

    /// After a refused mass deletion, the files coming back (a disk reconnected) must not be removed by the
    /// refused scan's leftover removals.
    @Test func filesBackAfterARefusedMassDeleteAreKept() throws {
        let f = try IndexFixture()
        for i in 0..<100 { try f.write("f\(i).txt", "\(i)") }
        let location = try f.addLocation()
        _ = try f.index(location)
        try FileManager.default.moveItem(atPath: "\(f.root)", toPath: f.dir.file("aside"))
        try FileManager.default.createDirectory(atPath: f.root, withIntermediateDirectories: true)
        for i in 0..<40 { try f.write("f\(i).txt", "\(i)") }
        #expect(throws: IndexError.self) { try f.index(location) }
        try FileManager.default.removeItem(atPath: f.root)
        try FileManager.default.moveItem(atPath: f.dir.file("aside"), toPath: "\(f.root)")
        let report = try f.index(location)
        #expect(report.removals.removed == 0)
        #expect(try f.library.status().files == 100)
    }

    /// Every folder's aggregates equal what the disk holds below it, at every depth.
    @Test func aggregatesAddUpAtEveryLevel() throws {
        let f = try IndexFixture()
        var rng = SeededRNG(seed: 7)
        for i in 0..<300 {
            let depth = Int(rng.next() % 6)
            let path = (0..<depth).map { "d\((i + $0) % 3)" }.joined(separator: "/")
            try f.write(
                (path.isEmpty ? "" : path + "/") + "f\(i).\(["txt", "jpg", "mp3"][i % 3])",
                String(repeating: "x", count: i)
            )
        }
        let location = try f.addLocation()
        _ = try f.index(location, content: false)
        func expected(_ folder: String) throws -> (files: Int64, bytes: Int64) {
            var files: Int64 = 0, bytes: Int64 = 0
            let enumerator = FileManager.default.enumerator(atPath: folder)
            while let name = enumerator?.nextObject() as? String {
                let attributes = try FileManager.default.attributesOfItem(atPath: "\(folder)/\(name)")
                if attributes[.type] as? FileAttributeType == .typeRegular {
                    files += 1
                    bytes += (attributes[.size] as? NSNumber)?.int64Value ?? 0
                }
            }
            return (files, bytes)
        }
        var checked = 0
        let enumerator = FileManager.default.enumerator(atPath: f.root)
        var folders = [""]
        while let name = enumerator?.nextObject() as? String {
            if FileSystem.isDirectory("\(f.root)/\(name)") { folders.append(name) }
        }
        for folder in folders {
            let entry = try #require(try f.entry(folder))
            let want = try expected(folder.isEmpty ? f.root : "\(f.root)/\(folder)")
            #expect(entry.aggregateFiles == want.files, "files below '\(folder)'")
            #expect(entry.aggregateSize == want.bytes, "bytes below '\(folder)'")
            checked += 1
        }
        #expect(checked > 10)
    }

    @Test func aMissingRootIsOfflineNotDeleted() throws {
        let f = try IndexFixture()
        for i in 0..<10 { try f.write("f\(i).txt", "\(i)") }
        let location = try f.addLocation()
        _ = try f.index(location)
        try FileManager.default.moveItem(atPath: f.root, toPath: f.dir.file("unplugged"))
        let report = try f.index(location)
        #expect(report.offline != nil)
        #expect(try f.library.fetchLocation(id: location.id)?.state == "offline")
        #expect(try f.library.status().files == 10)
        try FileManager.default.moveItem(atPath: f.dir.file("unplugged"), toPath: f.root)
        let back = try f.index(location)
        #expect(back.offline == nil)
        #expect(back.counts.unchanged == 10)
        #expect(try f.library.fetchLocation(id: location.id)?.state == "online")
    }

    /// Another disk mounted at the location's path (a different volume identity) must not read as deletions.
    @Test func anotherVolumeAtThePathIsOffline() throws {
        let f = try IndexFixture()
        try f.write("f.txt", "x")
        let mounted = try #require(Mounts.volume(containing: f.root, in: Mounts.list()))
        var other = mounted
        other.identity = "some-other-disk"
        let location = try f.library.addLocation(path: Array(f.root.utf8), name: "t", volume: other)
        let report = try f.index(location)
        #expect(report.offline?.contains("different volume") == true)
        #expect(try f.library.status().files == 0)
    }
}
