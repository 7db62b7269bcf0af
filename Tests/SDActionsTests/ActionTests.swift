import Foundation
import GRDB
import SDActions
import SDCore
import SDIndexer
import SDJobs
import SDSystem
import SDTestSupport
import Testing

@testable import SDStore

/// Moves, renames, the trash, permanent deletion under `min-copies`, and undo: each previewed, committed as a
/// job, and compared with what its preview said.
struct ActionTests {
    /// A move on one filesystem: one rename, the preview's counts are the job's, and undo puts it back.
    @Test func moveOnOneFilesystemThenUndo() async throws {
        let f = try CopyFixture(CopyTests.files)
        let before = try f.tree("src")
        let preview = TransferPlanner.preview(move: f.request(["src"], "dst"), library: f.library)
        #expect(preview.canCommit, "\(preview.problems)")
        #expect(preview.operations.map(\.kind) == [.rename])
        #expect(preview.files == 4 && preview.folders == 4 && preview.bytes == 5 + 300_000 + 1 + 1_500_000)
        #expect(preview.bytesToWrite == 0)
        let job = try await f.commit(preview)
        #expect(job.state == "completed")
        #expect(job.progressDone == preview.bytes)
        #expect(try f.tree("dst/src") == before)
        #expect(!FileSystem.exists(f.dir.file("src")))

        let undo = try #require(try f.library.undoRecord(jobPrefix: nil))
        #expect(undo.jobID == job.id && undo.action == "move")
        let back = UndoPlanner.preview(try UndoRecord.decode(undo.record), jobID: undo.jobID, library: f.library)
        #expect(back.canCommit, "\(back.problems)")
        #expect(try await f.commit(back).state == "completed")
        #expect(try f.tree("src") == before)
        #expect(!FileSystem.exists(f.dir.file("dst/src")))
        #expect(try f.library.undoRecord(jobPrefix: job.id)?.undone == true)
    }

    /// Across filesystems: every file copied and verified, then the sources removed, folders too; the preview's
    /// bytes to write are what the job wrote; undo brings everything back across again.
    @Test func moveAcrossFilesystemsThenUndo() async throws {
        guard let other = try TemporaryDirectory.onOtherFilesystem(prefix: "sd-move") else {
            Issue.record("needs /dev/shm on another filesystem than the temporary folder")
            return
        }
        let f = try CopyFixture(CopyTests.files)
        let before = try f.tree("src")
        let request = TransferRequest(sources: [f.dir.file("src")], destination: other.path)
        let preview = TransferPlanner.preview(move: request, library: f.library)
        #expect(preview.canCommit, "\(preview.problems)")
        #expect(preview.bytesToWrite == preview.bytes && preview.files == 4)
        #expect(preview.operations.filter { $0.kind == .file }.allSatisfy { $0.removeSource })
        #expect(preview.operations.filter { $0.kind == .removeFolder }.count == 4)
        let job = try await f.commit(preview)
        #expect(job.state == "completed" && job.progressDone == preview.bytesToWrite)
        #expect(!FileSystem.exists(f.dir.file("src")))
        let moved = try TemporaryDirectory.tree(other.file("src"))
        #expect(moved == before)

        let undo = try #require(try f.library.undoRecord(jobPrefix: job.id))
        let back = UndoPlanner.preview(try UndoRecord.decode(undo.record), jobID: undo.jobID, library: f.library)
        #expect(back.canCommit, "\(back.problems)")
        #expect(try await f.commit(back).state == "completed")
        #expect(try f.tree("src") == before)
        #expect(!FileSystem.exists(other.file("src")))
    }

    /// Undo refuses, and says why, when a file changed since, or when its old place is taken.
    @Test func undoRefusesWhenFilesChanged() async throws {
        let f = try CopyFixture(CopyTests.files)
        let job = try await f.commit(TransferPlanner.preview(move: f.request(["src"], "dst"), library: f.library))
        let record = try UndoRecord.decode(try #require(try f.library.undoRecord(jobPrefix: job.id)).record)
        try f.dir.write("dst/src/sub/deeper/c.bin", Array("changed".utf8))
        let changed = UndoPlanner.preview(record, jobID: job.id, library: f.library)
        #expect(!changed.canCommit)
        #expect(changed.problems.map(\.reason).contains { $0.contains("sub/deeper/c.bin changed") })
        try f.dir.write("dst/src/sub/deeper/c.bin", Array("c".utf8))
        try f.dir.write("src", Array("a new file where the folder was".utf8))
        let taken = UndoPlanner.preview(record, jobID: job.id, library: f.library)
        #expect(taken.problems.map(\.reason) == ["something else is there now; left where it is"])
        try FileManager.default.removeItem(atPath: f.dir.file("src"))
        #expect(UndoPlanner.preview(record, jobID: job.id, library: f.library).canCommit)
    }

    /// Renames keep the name rules; a rename is undone like a move.
    @Test func renameChecksNamesAndUndoes() async throws {
        let f = try CopyFixture(CopyTests.files)
        for bad in ["", "..", "a/b", String(repeating: "x", count: 256)] {
            #expect(!RenamePlanner.preview(path: f.dir.file("src/a.txt"), newName: bad).canCommit, "'\(bad)'")
        }
        let taken = RenamePlanner.preview(path: f.dir.file("src/a.txt"), newName: "sub")
        #expect(taken.problems.map(\.reason) == ["already exists (see --on-conflict)"])
        let preview = RenamePlanner.preview(path: f.dir.file("src/sub"), newName: "renamed")
        #expect(preview.files == 3 && preview.folders == 2)
        let job = try await f.commit(preview)
        #expect(job.state == "completed")
        #expect(try f.tree("src")["renamed/deeper/c.bin"] == "c")
        let record = try UndoRecord.decode(try #require(try f.library.undoRecord(jobPrefix: job.id)).record)
        #expect(try await f.commit(UndoPlanner.preview(record, jobID: job.id, library: f.library)).state == "completed")
        #expect(try f.tree("src")["sub/deeper/c.bin"] == "c")
    }

    /// `rm` moves into the trash (recorded with a manifest), restore puts it back, and emptying the trash is a
    /// permanent deletion under `min-copies`: refused for content with no other copy unless forced.
    @Test func trashRestoreAndEmpty() async throws {
        let f = try CopyFixture(CopyTests.files)
        let before = try f.tree("src")
        let preview = DeletePlanner.preview(
            DeleteRequest(paths: [f.dir.file("src/sub"), f.dir.file("src/a.txt"), f.dir.file("src/sub/b.txt")]),
            library: f.library
        )
        #expect(preview.canCommit, "\(preview.problems)")
        #expect(preview.operations.count == 2, "a path inside another one goes with it")
        #expect(preview.files == 4 && preview.bytes == 5 + 300_000 + 1 + 1_500_000)
        #expect(preview.lastCopies.isEmpty, "the trash keeps the content")
        let job = try await f.commit(preview)
        #expect(job.state == "completed" && job.progressDone == preview.bytes)
        #expect(try f.tree("src").isEmpty)
        let items = try f.library.trashItems()
        #expect(items.count == 2)
        #expect(items.allSatisfy { $0.trashPath.hasPrefix(f.library.path + "/trash/") })
        #expect(items.first { $0.originalPath.hasSuffix("/sub") }?.manifest?.count == 3)

        let record = try UndoRecord.decode(try #require(try f.library.undoRecord(jobPrefix: job.id)).record)
        #expect(try await f.commit(UndoPlanner.preview(record, jobID: job.id, library: f.library)).state == "completed")
        #expect(try f.tree("src") == before)
        #expect(try f.library.trashItems().isEmpty)
        #expect(try f.library.trashItems(states: ["restored"]).count == 2)
        #expect(try FileSystem.list(f.library.path + "/trash").isEmpty)

        _ = try await f.commit(DeletePlanner.preview(DeleteRequest(paths: [f.dir.file("src/sub")]), library: f.library))
        let trashed = try f.library.trashItems()
        let refused = DeletePlanner.preview(emptying: trashed, forceLastCopy: false, library: f.library)
        #expect(!refused.canCommit && refused.lastCopies.count == 3)
        let forced = DeletePlanner.preview(emptying: trashed, forceLastCopy: true, library: f.library)
        #expect(try await f.commit(forced).state == "completed")
        #expect(try f.library.trashItems(states: ["purged"]).count == 1)
        #expect(try FileSystem.list(f.library.path + "/trash").isEmpty)
    }

    /// A trashing cut short after its rename but before its row said so (as a crash would leave it) resumes to
    /// the same end: the item recorded as trashed, with its manifest, and undoable.
    @Test func interruptedTrashingResumes() async throws {
        let f = try CopyFixture(CopyTests.files)
        let preview = DeletePlanner.preview(DeleteRequest(paths: [f.dir.file("src/sub")]), library: f.library)
        let job = try f.runner.submit(kind: "trash", target: nil, input: preview.plan)
        let op = try #require(preview.operations.first)
        try FileSystem.makeDirectories(FileSystem.parent(of: op.target))
        try FileSystem.renameNoReplace(op.source, to: op.target)
        try f.library.setJobState(id: job.id, "running")
        #expect(try await f.runner.run(job.id).state == "completed")
        let items = try f.library.trashItems()
        #expect(items.count == 1 && items.first?.manifest?.count == 3)
        #expect(!FileSystem.exists(f.dir.file("src/sub")))
        let record = try UndoRecord.decode(try #require(try f.library.undoRecord(jobPrefix: job.id)).record)
        #expect(try await f.commit(UndoPlanner.preview(record, jobID: job.id, library: f.library)).state == "completed")
        #expect(try f.tree("src")["sub/deeper/c.bin"] == "c")
    }

    /// A permanent delete counts copies on the index by content id in its preview, then confirms them by full
    /// BLAKE3 before deleting: a planted collision of sampled ids (two files that differ only outside the
    /// sampled ranges) is not a copy, and the job refuses, deleting nothing. A true copy lets it go ahead.
    /// min-copies per tag raises what a tagged file needs.
    @Test func permanentDeleteNeverRemovesTheLastCopy() async throws {
        let f = try CopyFixture([:])
        var bytes = (0..<400_000).map { UInt8(truncatingIfNeeded: $0 &* 7919 >> 3) }
        try f.dir.write("tree/keep/original.bin", bytes)
        let size = UInt64(bytes.count)
        let sampled = ContentHasher.sampledRanges(size: size)
        let outside = Int(sampled[1].offset) + sampled[1].length + 100
        #expect(!sampled.contains { UInt64(outside) >= $0.offset && UInt64(outside) < $0.offset + UInt64($0.length) })
        bytes[outside] ^= 0xFF
        try f.dir.write("tree/other/impostor.bin", bytes)
        let location = try f.library.addLocation(path: Array(f.dir.file("tree").utf8), name: "tree", volume: nil)
        _ = try Indexer(library: f.library).index(location)
        let original = try f.library.indexedContentID(ofFileAt: f.dir.file("tree/keep/original.bin"))
        #expect(original != nil)
        #expect(original == (try f.library.indexedContentID(ofFileAt: f.dir.file("tree/other/impostor.bin"))))

        let request = DeleteRequest(paths: [f.dir.file("tree/keep/original.bin")], permanent: true)
        let preview = DeletePlanner.preview(request, library: f.library)
        #expect(preview.lastCopies.isEmpty, "the index counts the impostor as a copy")
        let submitted = try f.runner.submit(kind: preview.action, target: nil, input: preview.plan)
        await #expect(throws: ActionError.self) { try await f.runner.run(submitted.id) }
        let job = try f.library.fetchJob(submitted.id)
        #expect(job.state == "failed")
        #expect(job.error?.contains("only 0 verified copies") == true, "\(job.error ?? "")")
        #expect(FileSystem.exists(f.dir.file("tree/keep/original.bin")))

        // Per tag: files tagged 'precious' need three copies.
        try await f.library.database.write { db in
            try db.execute(sql: "INSERT INTO tags (uuid, name, hlc) VALUES ('t1', 'precious', '0')")
            try db.execute(
                sql: """
                    INSERT INTO entry_tags (entry_uuid, tag_uuid, hlc)
                    SELECT uuid, 't1', '0' FROM entries WHERE name = CAST('original.bin' AS BLOB)
                    """
            )
        }
        try FileSystem.copyFile(from: f.dir.file("tree/keep/original.bin"), to: f.dir.file("tree/other/copy.bin"))
        _ = try Indexer(library: f.library).index(location)
        try f.library.setSetting("min-copies", "3", scope: "tag:t1")
        let tagged = DeletePlanner.preview(request, library: f.library)
        #expect(tagged.lastCopies.map(\.required) == [3] && tagged.lastCopies.map(\.remaining) == [2])
        #expect(!tagged.canCommit)
        try f.library.setSetting("min-copies", nil, scope: "tag:t1")
        let allowed = DeletePlanner.preview(request, library: f.library)
        #expect(allowed.canCommit && allowed.lastCopies.isEmpty)
        #expect(try await f.commit(allowed).state == "completed")
        #expect(!FileSystem.exists(f.dir.file("tree/keep/original.bin")))
        #expect(FileSystem.exists(f.dir.file("tree/other/copy.bin")))
    }
}
