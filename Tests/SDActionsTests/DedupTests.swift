import Foundation
import SDActions
import SDCore
import SDIndexer
import SDStore
import SDSystem
import SDTestSupport
import Testing

/// Deduplication on a make-tree tree: the bytes freed are the duplicates' blocks, every path keeps its bytes,
/// a planted collision of sampled ids is never touched, and undo gives the space back.
struct DedupTests {
    /// The tree's files: path -> (device, inode, blocks in bytes, mode, mtime).
    static func files(_ root: String) throws -> [String: (id: String, blocks: Int64, mode: UInt32, mtime: Int64)] {
        var result: [String: (id: String, blocks: Int64, mode: UInt32, mtime: Int64)] = [:]
        let enumerator = FileManager.default.enumerator(atPath: root)
        while let relative = enumerator?.nextObject() as? String {
            var st = stat()
            guard lstat(root + "/" + relative, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            result[relative] = (
                "\(st.st_dev):\(st.st_ino)", Int64(st.st_blocks) * 512, UInt32(st.st_mode & 0o7777),
                Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
            )
        }
        return result
    }

    /// Bytes of blocks held by the distinct files.
    static func used(_ files: [String: (id: String, blocks: Int64, mode: UInt32, mtime: Int64)]) -> Int64 {
        var seen = Set<String>()
        return files.values.reduce(Int64(0)) { $0 + (seen.insert($1.id).inserted ? $1.blocks : 0) }
    }

    @Test func hardLinksAndTrashFreeTheDuplicatesAndUndoGivesThemBack() async throws {
        let f = try CopyFixture([:])
        let root = f.dir.file("tree")
        try Scripts.makeTree(at: root + "/data", files: 600, large: 0, largeMiB: 1)
        // A planted collision of sampled ids: equal sampled ranges, one byte apart elsewhere.
        var bytes = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31 >> 2) }
        try f.dir.write("tree/planted/a.bin", bytes)
        let sampled = ContentHasher.sampledRanges(size: UInt64(bytes.count))
        bytes[Int(sampled[2].offset) + sampled[2].length + 10] ^= 1
        try f.dir.write("tree/planted/b.bin", bytes)
        let contents = try TemporaryDirectory.tree(root)
        let before = try Self.files(root)
        // Independently: files with equal bytes, and the blocks all but one of each group hold.
        var byBytes: [String: [String]] = [:]
        for (path, text) in contents where !text.isEmpty { byBytes[text, default: []].append(path) }
        let groups = byBytes.values.filter { $0.count > 1 }
        func size(_ path: String) -> Int64 { Int64((try? Directory.stat(Array((root + "/" + path).utf8)).size) ?? 0) }
        let wastedBytes = groups.reduce(Int64(0)) { $0 + size($1[0]) * Int64($1.count - 1) }
        let wastedBlocks = groups.reduce(Int64(0)) { $0 + before[$1[0]]!.blocks * Int64($1.count - 1) }
        #expect(groups.count > 5 && wastedBlocks > 0)

        let location = try f.library.addLocation(path: Array(root.utf8), name: "tree", volume: nil)
        _ = try Indexer(library: f.library).index(location)
        func verified() throws -> VerifiedDuplicates {
            try DuplicateVerifier.verify(try f.library.duplicateGroups(), library: f.library)
        }

        // Hard links: the preview's bytes are the duplicates' sizes; the job frees their blocks.
        let preview = try DedupPlanner.preview(try verified(), mode: .hardlink, library: f.library)
        #expect(preview.canCommit, "\(preview.problems)")
        #expect(preview.bytesFreed == wastedBytes)
        #expect(
            !preview.operations.contains {
                $0.target.hasSuffix("planted/a.bin") || $0.target.hasSuffix("planted/b.bin")
            }
        )
        #expect(try await f.commit(preview).state == "completed")
        let linked = try Self.files(root)
        #expect(Self.used(before) - Self.used(linked) == wastedBlocks)
        #expect(Set(linked.values.map(\.id)).count == before.count - groups.reduce(0) { $0 + $1.count - 1 })
        #expect(try TemporaryDirectory.tree(root) == contents, "every path keeps its bytes")
        #expect(linked["planted/a.bin"]!.id != linked["planted/b.bin"]!.id, "a collision is never deduplicated")

        // Undo: each name its own file again, with its own permissions and time.
        let undo = try #require(try f.library.undoRecord(jobPrefix: nil))
        #expect(undo.action == "dedup-link")
        let back = UndoPlanner.preview(try UndoRecord.decode(undo.record), jobID: undo.jobID, library: f.library)
        #expect(back.canCommit, "\(back.problems)")
        #expect(try await f.commit(back).state == "completed")
        let separated = try Self.files(root)
        #expect(Set(separated.values.map(\.id)).count == before.count)
        #expect(Self.used(separated) == Self.used(before))
        #expect(separated.mapValues { "\($0.mode) \($0.mtime)" } == before.mapValues { "\($0.mode) \($0.mtime)" })
        #expect(try TemporaryDirectory.tree(root) == contents)

        // Trash: the extra copies go to the trash; emptying it frees their blocks.
        _ = try Indexer(library: f.library).index(location)
        let trashing = try DedupPlanner.preview(try verified(), mode: .trash, library: f.library)
        #expect(trashing.action == "trash" && trashing.canCommit, "\(trashing.problems)")
        #expect(trashing.bytesFreed == wastedBytes)
        #expect(try await f.commit(trashing).state == "completed")
        let left = try TemporaryDirectory.tree(root)
        #expect(Set(left.values) == Set(contents.values), "one copy of every content stays")
        #expect(left.count == contents.count - groups.reduce(0) { $0 + $1.count - 1 })
        // Undo puts them back; a second trashing is then emptied for good.
        let trashed = try #require(try f.library.undoRecord(jobPrefix: nil))
        #expect(trashed.action == "trash")
        let restore = UndoPlanner.preview(
            try UndoRecord.decode(trashed.record),
            jobID: trashed.jobID,
            library: f.library
        )
        #expect(try await f.commit(restore).state == "completed")
        #expect(try TemporaryDirectory.tree(root) == contents)
        #expect(
            try await f.commit(try DedupPlanner.preview(try verified(), mode: .trash, library: f.library)).state
                == "completed"
        )
        let trash = f.library.path + "/trash"
        #expect(Self.used(try Self.files(root)) + Self.used(try Self.files(trash)) == Self.used(before))
        let emptying = DeletePlanner.preview(
            emptying: try f.library.trashItems(),
            forceLastCopy: false,
            library: f.library
        )
        #expect(emptying.canCommit, "\(emptying.refusals)")
        #expect(try await f.commit(emptying).state == "completed")
        #expect(try Self.files(trash).isEmpty)
        #expect(Self.used(before) - Self.used(try Self.files(root)) == wastedBlocks)
    }

    /// A file changed after the preview is left alone and reported; reflinks are refused clearly where the
    /// filesystem cannot make them.
    @Test func changedFilesAreLeftAloneAndReflinksRefusedWhereUnsupported() async throws {
        let f = try CopyFixture([:])
        let payload = String(repeating: "duplicate ", count: 20_000)
        for name in ["a", "b", "c"] { try f.dir.write("tree/\(name).txt", Array(payload.utf8)) }
        let location = try f.library.addLocation(path: Array(f.dir.file("tree").utf8), name: "tree", volume: nil)
        _ = try Indexer(library: f.library).index(location)
        let verified = try DuplicateVerifier.verify(try f.library.duplicateGroups(), library: f.library)
        let preview = try DedupPlanner.preview(verified, mode: .hardlink, library: f.library)
        #expect(preview.operations.count == 2)
        // Same size, other bytes, after the preview.
        let victim = try #require(preview.operations.last?.target)
        try Array(payload.uppercased().utf8).write(to: victim)
        let job = try await f.commit(preview)
        #expect(job.state == "completed")
        let checkpoint = try JSONDecoder().decode(DedupJob.Checkpoint.self, from: Data(job.checkpoint!.utf8))
        #expect(checkpoint.skipped.map(\.path) == [victim])
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == payload.uppercased())

        let volume = try #require(Mounts.volume(containing: f.dir.path, in: Mounts.list()))
        let reflink = try DedupPlanner.preview(verified, mode: .reflink, library: f.library)
        if FileSystem.reflinkFilesystems.contains(volume.filesystem) {
            #expect(reflink.problems.isEmpty)
        } else {
            #expect(!reflink.canCommit)
            #expect(reflink.problems.contains { $0.reason.contains("cannot share blocks") })
            #expect(reflink.bytesFreed == 0)
        }
    }
}
