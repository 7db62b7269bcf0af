import Foundation
import SDActions
import SDCore
import SDIndexer
import SDStore
import SDSystem
import SDTestSupport
import Testing

/// Duplicate groups against make-tree's manifest (which records which file each duplicate copies), and
/// verification by full hash against a planted collision of sampled content ids.
struct DuplicatesTests {
    @Test func groupsMatchTheManifestAndVerifySplitsCollisions() throws {
        let f = try CopyFixture([:])
        let tree = f.dir.file("tree/data")
        try Scripts.makeTree(at: tree, files: 800, large: 0, largeMiB: 1)
        // The manifest: path, size, the row of the file it duplicates (or -1).
        let rows = try String(contentsOfFile: tree + ".manifest.tsv", encoding: .utf8)
            .split(separator: "\n").dropFirst().map { $0.split(separator: "\t").map(String.init) }
        var manifestGroups: [Int: Set<String>] = [:]
        for row in rows where Int(row[2])! >= 0 && Int64(row[1])! > 0 {
            let original = Int(row[2])!
            manifestGroups[original, default: [tree + "/" + rows[original][0]]].insert(tree + "/" + row[0])
        }
        // The truth is the bytes: files shorter than their kind's header are that header's first bytes, so a few
        // the manifest calls unique are equal too. Every manifest group must be inside one group of equal bytes.
        var byBytes: [Data: Set<String>] = [:]
        for row in rows where Int64(row[1])! > 0 {
            let path = tree + "/" + row[0]
            byBytes[try Data(contentsOf: URL(fileURLWithPath: path)), default: []].insert(path)
        }
        let equalGroups = byBytes.filter { $0.value.count > 1 }
        for group in manifestGroups.values {
            #expect(equalGroups.values.contains { group.isSubset(of: $0) }, "\(group)")
        }
        let expected = Dictionary(uniqueKeysWithValues: equalGroups.enumerated().map { ($0.offset, $0.element.value) })
        let expectedWasted = equalGroups.reduce(Int64(0)) { $0 + Int64($1.key.count) * Int64($1.value.count - 1) }
        #expect(expected.count > 10, "the tree has duplicate groups to find")

        // A planted collision: equal sampled ranges, one byte apart elsewhere.
        var bytes = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31 >> 2) }
        try f.dir.write("tree/planted/a.bin", bytes)
        let sampled = ContentHasher.sampledRanges(size: UInt64(bytes.count))
        bytes[Int(sampled[2].offset) + sampled[2].length + 10] ^= 1
        try f.dir.write("tree/planted/b.bin", bytes)
        // A hard link is the same file, not a duplicate.
        let linked = tree + "/" + rows.first { Int($0[2])! < 0 && Int64($0[1])! > 0 }![0]
        #expect(link(linked, f.dir.file("tree/planted/link")) == 0)

        let location = try f.library.addLocation(path: Array(f.dir.file("tree").utf8), name: "tree", volume: nil)
        _ = try Indexer(library: f.library).index(location)
        let groups = try f.library.duplicateGroups()
        let found = Set(groups.map { Set($0.members.map(\.path)) })
        let plantedGroup: Set = [f.dir.file("tree/planted/a.bin"), f.dir.file("tree/planted/b.bin")]
        #expect(found == Set(expected.values).union([plantedGroup]))
        #expect(groups.reduce(0) { $0 + $1.wastedBytes } == expectedWasted + 300_000)
        #expect(groups.map(\.wastedBytes) == groups.map(\.wastedBytes).sorted(by: >), "largest first")

        let verified = try DuplicateVerifier.verify(groups, library: f.library)
        #expect(Set(verified.groups.map { Set($0.members.map(\.path)) }) == Set(expected.values))
        #expect(verified.groups.reduce(0) { $0 + $1.wastedBytes } == expectedWasted)
        #expect(
            verified.splits.map(\.parts) == [[[f.dir.file("tree/planted/a.bin")], [f.dir.file("tree/planted/b.bin")]]]
        )
        #expect(verified.hashed == groups.reduce(0) { $0 + $1.members.count })
        // Kept: a second verification hashes nothing; a file changed since it was indexed is left out.
        #expect(try DuplicateVerifier.verify(groups, library: f.library).hashed == 0)
        let changed = try #require(verified.groups.first?.members.first?.path)
        try Array("changed".utf8).write(to: changed)
        let again = try DuplicateVerifier.verify(groups, library: f.library)
        #expect(again.skipped.map(\.path) == [changed])

        // Filters: kind and minimum size.
        let images = try f.library.duplicateGroups(category: "image")
        #expect(!images.isEmpty && images.count < groups.count)
        #expect(
            try f.library.duplicateGroups(minSize: 250_000).map(\.contentID) == [
                groups.first { $0.size == 300_000 }!.contentID
            ]
        )
    }
}

/// `redundancy` against a count made here from the bytes: content on one filesystem only is at risk, however
/// many copies that filesystem holds.
struct RedundancyTests {
    @Test func contentOnOneDiskIsAtRiskWhateverItsCopies() throws {
        guard let other = try TemporaryDirectory.onOtherFilesystem(prefix: "sd-redundancy") else {
            Issue.record("needs /dev/shm on another filesystem than the temporary folder")
            return
        }
        let f = try CopyFixture([:])
        var rng = SeededRNG(seed: 7)
        var files: [(path: String, bytes: [UInt8])] = []
        let contents = (0..<40).map { i in (0..<(200 + i * 37)).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
        for i in 0..<120 {
            let content = contents[Int(rng.next() % 40)]
            let root = rng.next() % 3 == 0 ? other.path : f.dir.file("here")
            let path = "\(root)/f\(i)\(i % 2 == 0 ? ".jpg" : ".txt")"
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            try Data(content).write(to: URL(fileURLWithPath: path))
            files.append((path, content))
        }
        // The independent count: per content, the filesystems holding it.
        var disks: [[UInt8]: Set<String>] = [:]
        for file in files { disks[file.bytes, default: []].insert(file.path.hasPrefix(other.path) ? "shm" : "tmp") }
        let atRisk = disks.filter { $0.value.count < 2 }
        for root in [f.dir.file("here"), other.path] {
            let location = try f.library.addLocation(path: Array(root.utf8), name: root, volume: nil)
            _ = try Indexer(library: f.library).index(location)
        }
        let report = try f.library.redundancy(minCopies: 2)
        #expect(report.contents == atRisk.count)
        #expect(report.bytesAtRisk == atRisk.keys.reduce(Int64(0)) { $0 + Int64($1.count) })
        #expect(report.byLocation.reduce(0) { $0 + $1.contents } == atRisk.count, "each content in one place here")
        #expect(try f.library.redundancy(minCopies: 1).contents == 0)
        #expect(try f.library.redundancy(minCopies: 3).contents == disks.count)

        // If a disk were lost: the content only it holds.
        for (disk, path) in [("shm", other.path), ("tmp", f.dir.path)] {
            let only = disks.filter { $0.value == [disk] }
            let lost = try f.library.redundancy(
                minCopies: 2,
                ifLost: .filesystem(try #require(FileSystem.identity(path)?.device))
            )
            #expect(lost.contents == only.count, "\(disk)")
            #expect(lost.bytesAtRisk == only.keys.reduce(Int64(0)) { $0 + Int64($1.count) })
        }
        let everything = try f.library.redundancy(minCopies: 2, ifLost: .device(f.library.device.id.description))
        #expect(everything.contents == disks.count)
        #expect(try f.library.redundancy(minCopies: 2, ifLost: .device("another")).contents == 0)
    }
}

/// Content paths resolve to the best reachable copy: reachable first, then the faster filesystem; copies in
/// an offline location, or changed on disk, are listed last with the reason.
struct ResolveTests {
    @Test func copiesAreRankedAndTheBestReachableChosen() throws {
        guard let memory = try TemporaryDirectory.onOtherFilesystem(prefix: "sd-resolve") else {
            Issue.record("needs /dev/shm on another filesystem than the temporary folder")
            return
        }
        let f = try CopyFixture([:])
        let body = Array("the same bytes in four places".utf8)
        for path in [f.dir.file("disk/a.txt"), f.dir.file("gone/b.txt"), f.dir.file("disk/changed.txt")] {
            try f.dir.write(String(path.dropFirst(f.dir.path.count + 1)), body)
        }
        try FileManager.default.createDirectory(atPath: memory.file("m"), withIntermediateDirectories: true)
        try Data(body).write(to: URL(fileURLWithPath: memory.file("m/c.txt")))
        for root in [f.dir.file("disk"), f.dir.file("gone"), memory.file("m")] {
            let location = try f.library.addLocation(path: Array(root.utf8), name: root, volume: nil)
            _ = try Indexer(library: f.library).index(location)
        }
        let content = try #require(try f.library.indexedContentID(ofFileAt: f.dir.file("disk/a.txt")))
        // One location goes offline (its root vanishes), one copy changes size.
        try FileManager.default.removeItem(atPath: f.dir.file("gone"))
        let gone = try #require(try f.library.fetchLocation(f.dir.file("gone")))
        _ = try Indexer(library: f.library).index(gone)
        try Array("edited: now a longer text than the others".utf8).write(to: f.dir.file("disk/changed.txt"))

        let copies = try ContentResolver.copies(of: content, library: f.library)
        #expect(
            copies.map(\.path) == [
                memory.file("m/c.txt"), f.dir.file("disk/a.txt"), f.dir.file("disk/changed.txt"),
                f.dir.file("gone/b.txt"),
            ]
        )
        #expect(copies.map(\.reachable) == [true, true, false, false])
        #expect(copies[0].speed == .memory && copies[1].speed == .local)
        #expect(copies[2].why == "changed on disk since it was indexed")
        #expect(copies[3].why == "its location is offline")
        // The policy alone: a peer's copy comes after every local one, the nearer peer first.
        let peers = CopyRanking().rank([
            CopyCandidate(
                path: "/far",
                device: "p1",
                local: false,
                reachable: true,
                speed: .unknown,
                roundTripMilliseconds: 80
            ),
            CopyCandidate(
                path: "/near",
                device: "p2",
                local: false,
                reachable: true,
                speed: .unknown,
                roundTripMilliseconds: 5
            ),
            CopyCandidate(path: "/slow-local", device: "me", local: true, reachable: true, speed: .network),
        ])
        #expect(peers.map(\.path) == ["/slow-local", "/near", "/far"])
    }
}
