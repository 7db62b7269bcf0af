import Foundation
import SDCore
import SDNet
import SDStore
import SDSync
import SDSystem
import SDTestSupport
import Testing

@Suite struct SyncRulesTests {
    /// Syncs `r` from each of `peers` until nothing more comes (each may change everything on the other).
    func pull(_ r: Replica, from peers: [Replica], batchLimit: Int = 3) throws {
        for p in peers {
            let follower = try SyncFollower(
                library: r.library,
                peer: p.identity.id,
                batchLimit: batchLimit,
                rights: .all
            )
            var steps = 0
            while let request = follower.request() {
                steps += 1
                guard steps < 1_000, let answer = try SyncServer(library: p.library).answer(request) else { break }
                #expect(answer.frame.encoded.count <= Frame.defaultMaximumLength, "an answer fits in a frame")
                try follower.take(try SyncMessage(answer.frame))
            }
        }
    }

    @Test func concurrentEditsKeepTheLoserAsAConflictThatCanBeRestored() throws {
        let a = try Replica(0)
        let b = try Replica(1)
        let tag = try a.library.createTag("draft")
        try pull(b, from: [a])
        #expect(try b.library.tags().map(\.name) == ["draft"])
        // Both rename it before hearing of the other's rename.
        try a.library.renameTag("draft", to: "final")
        Thread.sleep(forTimeInterval: 0.005)
        try b.library.renameTag("draft", to: "published")
        try pull(a, from: [b])
        try pull(b, from: [a])
        // Last writer (b) wins on both; the loser is kept on both, not silently dropped.
        #expect(try a.library.tags().map(\.name) == ["published"])
        #expect(try b.library.tags().map(\.name) == ["published"])
        #expect(try a.library.syncDump() == b.library.syncDump())
        let conflicts = try a.library.syncConflicts()
        #expect(conflicts.count == 1)
        #expect(conflicts.first?.key == tag && conflicts.first?.value == "\"final\"")
        #expect(conflicts.first?.winnerValue == "\"published\"")
        #expect(try b.library.syncConflicts().count == 1)

        // A later rename that saw the winner is no conflict.
        try b.library.renameTag("published", to: "out")
        try pull(a, from: [b])
        #expect(try a.library.syncConflicts().count == 1)

        // Restoring the loser makes it a new edit: it wins and syncs, and the conflict is closed.
        #expect(try a.library.resolveConflict(conflicts[0].id, restore: true))
        #expect(try a.library.tags().map(\.name) == ["final"])
        try pull(b, from: [a])
        #expect(try b.library.tags().map(\.name) == ["final"])
        #expect(try a.library.syncConflicts().isEmpty)
        #expect(try !a.library.resolveConflict(conflicts[0].id, restore: true), "only once")
    }

    @Test func bigNotesGoInAnswersThatFitFrames() throws {
        let a = try Replica(0)
        let b = try Replica(1)
        let note = String(repeating: "n", count: 60_000)
        var paths: [String] = []
        for i in 0..<150 {
            _ = try Data("\(i)".utf8).write(to: URL(fileURLWithPath: "\(a.root)/f\(i).txt"))
            paths.append("\(a.root)/f\(i).txt")
        }
        try a.rescan()
        #expect(try a.library.setMetadata(MetadataChange(note: .some(note)), on: paths).changed == 150)
        try pull(b, from: [a], batchLimit: 5_000)
        try pull(a, from: [b], batchLimit: 5_000)
        #expect(try a.library.syncDump() == b.library.syncDump())
        #expect(try b.library.syncDump().components(separatedBy: note).count == 301, "150 notes, as registers and rows")
    }

    @Test func aPeerCannotWriteAnotherDevicesRows() throws {
        let a = try Replica(0)
        let b = try Replica(1)
        let c = try Replica(2)
        try a.library.createTag("x")
        _ = try Data("hello".utf8).write(to: URL(fileURLWithPath: "\(a.root)/f.txt"))
        try a.rescan()
        // b serves rows as if they were c's: refused, nothing applied.
        var batch = try b.library.ownedBatch(after: OwnedCursor(), limit: 100)
        #expect(batch.device?.id == b.identity.id)
        #expect(throws: SyncRefusal.self) { try a.library.applyOwned(batch, from: c.identity.id) }
        // Or as if they were a's own: refused.
        batch.device = nil
        #expect(throws: SyncRefusal.self) { try a.library.applyOwned(batch, from: a.identity.id) }
        // A follower of b that receives c's rows records the refusal and applies nothing.
        let follower = try SyncFollower(library: a.library, peer: b.identity.id)
        guard case .ownedRequest(let id, let cursor, _)? = follower.request() else {
            Issue.record("no request")
            return
        }
        let forged = try c.library.ownedBatch(after: cursor, limit: 100)
        #expect(throws: SyncRefusal.self) { try follower.take(.owned(id: id, start: cursor, batch: forged)) }
        #expect(try a.library.syncPeer(b.identity.id).lastError?.contains("sent rows of device") == true)
        #expect(try !a.library.syncDump().contains(c.identity.id.description))
        // An entry whose uuid is one of a's own entries is not written over a's entry.
        var hostile = try b.library.ownedBatch(after: OwnedCursor(), limit: 100)
        let mine = try a.library.ownedBatch(after: OwnedCursor(), limit: 100).entries.first!
        hostile.entries = hostile.entries.map { e in
            var e = e
            e.uuid = mine.uuid
            return e
        }
        try a.library.applyOwned(hostile, from: b.identity.id)
        let dump = try a.library.syncDump()
        #expect(dump.contains(a.root.utf8.map { String(format: "%02x", $0) }.joined()), "a's root entry is intact")
        // A clock far ahead is refused.
        let future = HLCTimestamp(
            physical: UInt64(Date().timeIntervalSince1970 * 1000) + 3_600_000,
            logical: 0,
            device: b.identity.id
        )
        #expect(throws: SyncRefusal.self) {
            try a.library.mergeSharedChanges([
                (
                    SharedChange(
                        seq: 1,
                        hlc: future.description,
                        record: "tag",
                        key: "k",
                        field: "name",
                        value: "\"x\"",
                        device: b.identity.id.description
                    ), nil
                )
            ])
        }
    }

    @Test func aDeviceAwayPastCompactionPullsWholeStates() throws {
        let a = try Replica(0)
        let b = try Replica(1)
        try a.library.createTag("keep")
        try a.library.createTag("gone")
        for name in ["1.txt", "2.txt", "3.txt"] {
            _ = try Data(name.utf8).write(to: URL(fileURLWithPath: "\(a.root)/\(name)"))
        }
        try a.rescan()
        try pull(b, from: [a])
        try pull(a, from: [b])
        #expect(try b.library.syncDump() == a.library.syncDump())
        // b goes away; a deletes a file and a tag, then compacts its history.
        try FileManager.default.removeItem(atPath: "\(a.root)/2.txt")
        try a.rescan()
        try a.library.deleteTag("gone")
        let compacted = try a.library.compactSync(before: Int64(Date().timeIntervalSince1970 * 1000) + 1)
        #expect(compacted.changes > 0 && compacted.tombstones > 0)
        // Deltas are no longer possible: b pulls whole states, and ends with a's state (2.txt and the tag gone).
        try pull(b, from: [a])
        try pull(a, from: [b])
        #expect(try b.library.syncDump() == a.library.syncDump())
        #expect(try b.library.tags().map(\.name) == ["keep"])
        #expect(try !b.library.syncDump().contains(Hex.encode(Array("2.txt".utf8))))
        #expect(try b.library.syncPeer(a.identity.id).pass == 2, "a second whole-state pull")
        // And the deleted tag does not come back from b's old log when a follows b.
        try pull(a, from: [b])
        #expect(try a.library.tags().map(\.name) == ["keep"])
    }

    /// A device serves its files to a peer only inside its locations, by plain path: not a path outside them,
    /// not one with `..`, not one through a symbolic link leading out; what it serves is the file's bytes and
    /// content id (a link that stays inside a location is followed).
    @Test func filesAreServedOnlyFromLocationsByPlainPaths() throws {
        let r = try Replica(0)
        let text = Array(String(repeating: "served bytes ", count: 1_000).utf8)
        _ = try r.dir.write("files/doc.txt", text)
        _ = try r.dir.write("secret.txt", Array("not in a location".utf8))
        try FileManager.default.createSymbolicLink(atPath: r.root + "/link", withDestinationPath: r.dir.path)
        try r.rescan()
        let server = SyncServer(library: r.library)
        func info(_ path: String) throws -> RemoteFileInfo? {
            guard case .fileInfo(1, let info) = try server.answer(.fileInfoRequest(id: 1, path: path, fullHash: true))
            else { return nil }
            return info
        }
        let served = try #require(try info(r.root + "/doc.txt"))
        #expect(served.error == nil && served.size == Int64(text.count))
        #expect(
            served.contentID == (try ContentHasher().contentID(of: LocalFileReader(path: r.root + "/doc.txt")))?.hex
        )
        #expect(served.fullHash == BLAKE3.hash(text).hex)
        guard
            case .fileData(2, 5, let bytes, nil) = try server.answer(
                .readRequest(id: 2, path: r.root + "/doc.txt", offset: 5, length: 7)
            )
        else {
            Issue.record("no data")
            return
        }
        #expect(bytes == Array(text[5..<12]))
        // A link inside a location is not followed either, even one that stays inside (the index never
        // follows links, so no indexed path goes through one).
        try FileManager.default.createSymbolicLink(atPath: r.root + "/inner", withDestinationPath: r.root)
        for refused in [
            r.dir.file("secret.txt"), r.root + "/../secret.txt", r.root + "/link/secret.txt", "relative/doc.txt",
            r.root + "/inner/doc.txt", r.root + "//doc.txt", r.root + "/./doc.txt", r.root + "/doc.txt/",
        ] {
            #expect(try info(refused)?.error != nil, "\(refused)")
            guard
                case .fileData(3, 0, let none, let error?) = try server.answer(
                    .readRequest(id: 3, path: refused, offset: 0, length: 10)
                )
            else {
                Issue.record("\(refused) was read")
                continue
            }
            #expect(none.isEmpty && !error.isEmpty)
        }
    }

    /// Files another device sends are received only into folders inside this device's locations, by plain
    /// path (a link leading out, `..`, a temporary's name or a malformed tag: refused), and land only whole,
    /// flushed, and equal to what the sender described; nothing is replaced unless asked.
    @Test func filesAreReceivedOnlyIntoLocationsAndOnlyWhole() throws {
        let r = try Replica(0)
        try FileManager.default.createSymbolicLink(atPath: r.root + "/link", withDestinationPath: r.dir.path)
        try FileManager.default.createDirectory(atPath: r.root + "/in", withIntermediateDirectories: true)
        try r.rescan()
        var rights = PeerRights.defaults
        rights.allow(.write)
        rights.allow(.overwrite)
        let server = SyncServer(library: r.library, rights: rights)
        var next: UInt64 = 0
        /// The answer's value, or its refusal.
        func ask(_ make: (UInt64) -> SyncMessage) throws -> Result<Int64, PeerFileError> {
            next += 1
            guard case .pushDone(let id, let value, let error) = try server.answer(make(next)), id == next else {
                throw PeerFileError("no answer")
            }
            return error.map { .failure(PeerFileError($0)) } ?? .success(value)
        }
        let bytes = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let id = try #require(try ContentHasher().contentID(of: MemoryReader(bytes)))
        func commit(_ content: String?, replace: Bool = false) -> PushCommit {
            PushCommit(
                size: Int64(bytes.count),
                contentID: content,
                fullHash: nil,
                mtimeNanoseconds: 1_600_000_000_123_456_789,
                mode: 0o640,
                replace: replace
            )
        }
        /// Sends `bytes` to `path` in two pieces (the first flushed), then commits.
        func send(_ path: String, tag: String, _ c: PushCommit) throws -> Result<Int64, PeerFileError> {
            if case .failure(let refused) = try ask({
                .pushBegin(id: $0, path: path, tag: tag, resumeAt: 0, size: Int64(bytes.count))
            }) {
                return .failure(refused)
            }
            _ = try ask {
                .pushData(id: $0, path: path, tag: tag, offset: 0, bytes: Array(bytes[..<100_000]), sync: true)
            }
            _ = try ask {
                .pushData(id: $0, path: path, tag: tag, offset: 100_000, bytes: Array(bytes[100_000...]), sync: false)
            }
            return try ask { .pushCommit(id: $0, path: path, tag: tag, commit: c) }
        }
        func leftovers(_ folder: String) -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasPrefix(".sd-part-") }
        }

        // Received whole: in place with the sender's time and permissions.
        #expect(try send(r.root + "/in/a.bin", tag: "ab12-0", commit(id.hex)).get() == 0)
        #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: r.root + "/in/a.bin"))) == bytes)
        let landed = try Directory.stat(Array((r.root + "/in/a.bin").utf8))
        #expect(landed.mtimeNanoseconds == 1_600_000_000_123_456_789 && landed.mode & 0o777 == 0o640)
        // Not equal to what the sender described: nothing lands, nothing is left.
        guard case .failure(let mismatch) = try send(r.root + "/in/b.bin", tag: "ab12-1", commit("0123456789abcdef"))
        else { throw PeerFileError("a file unlike its description landed") }
        #expect(mismatch.message.contains("does not match"))
        #expect(!FileSystem.exists(r.root + "/in/b.bin") && leftovers(r.root + "/in").isEmpty)
        // Onto an existing file: refused unless replacing was asked.
        try Data("mine".utf8).write(to: URL(fileURLWithPath: r.root + "/in/c.txt"))
        guard case .failure = try send(r.root + "/in/c.txt", tag: "ab12-2", commit(id.hex)) else {
            throw PeerFileError("an existing file was replaced")
        }
        #expect(try String(contentsOfFile: r.root + "/in/c.txt", encoding: .utf8) == "mine")
        #expect(try send(r.root + "/in/c.txt", tag: "ab12-3", commit(id.hex, replace: true)).get() == 0)
        #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: r.root + "/in/c.txt"))) == bytes)
        // A resumed file goes on from what was flushed (never beyond what is there).
        _ = try ask { .pushBegin(id: $0, path: r.root + "/in/d.bin", tag: "ab12-4", resumeAt: 0, size: 10_000) }
        _ = try ask {
            .pushData(
                id: $0,
                path: r.root + "/in/d.bin",
                tag: "ab12-4",
                offset: 0,
                bytes: Array(bytes[..<1_000]),
                sync: true
            )
        }
        #expect(
            try ask { .pushBegin(id: $0, path: r.root + "/in/d.bin", tag: "ab12-4", resumeAt: 600, size: 10_000) }.get()
                == 600
        )
        #expect(
            try ask { .pushBegin(id: $0, path: r.root + "/in/d.bin", tag: "ab12-4", resumeAt: 5_000, size: 10_000) }
                .get()
                == 600
        )
        #expect(try ask { .pushAbort(id: $0, path: r.root + "/in/d.bin", tag: "ab12-4") }.get() == 0)
        #expect(leftovers(r.root + "/in").isEmpty)
        // Folders: made inside locations only.
        #expect(try ask { .pushFolder(id: $0, path: r.root + "/in/new") }.get() == 0)
        #expect(FileSystem.isDirectory(r.root + "/in/new"))

        for path in [
            r.dir.file("outside.bin"), r.root + "/../outside.bin", r.root + "/link/outside.bin", "relative.bin",
            r.root + "/no/such/x", r.root + "/in/.sd-part-in-x",
        ] {
            if case .success = try ask({ .pushBegin(id: $0, path: path, tag: "ab12-5", resumeAt: 0, size: 1) }) {
                Issue.record("\(path) was opened for writing")
            }
            if case .success = try ask({ .pushFolder(id: $0, path: path) }) {
                Issue.record("\(path): a folder was made")
            }
        }
        for tag in ["../../x", "", "AB", String(repeating: "a", count: 65)] {
            if case .success = try ask({
                .pushBegin(id: $0, path: r.root + "/in/e.bin", tag: tag, resumeAt: 0, size: 1)
            }) {
                Issue.record("tag '\(tag)' was taken")
            }
        }
        #expect(!FileSystem.exists(r.dir.file("outside.bin")))
        #expect(leftovers(r.dir.path).isEmpty && leftovers(r.root).isEmpty && leftovers(r.root + "/in").isEmpty)
    }

    /// A change made after a compaction emptied the log gets a seq after every seq used before, so a peer
    /// that had pulled past them still pulls it (found by the convergence test, seed 737993: SQLite handed the
    /// first seq out again and the rename was never pulled).
    @Test func changesAfterACompactionAreStillPulled() throws {
        let a = try Replica(0), b = try Replica(1)
        try a.library.createTag("red")
        try a.library.createTag("green")
        try pull(b, from: [a])
        #expect(try b.library.tags().map(\.name) == ["green", "red"])
        _ = try a.library.compactSync(before: Int64(Date().timeIntervalSince1970 * 1000) + 1)
        try a.library.renameTag("red", to: "blue")
        try pull(b, from: [a])
        #expect(try b.library.tags().map(\.name) == ["blue", "green"], "the rename after the compaction reached b")
    }

    /// Library settings are shared metadata: set on one device, they hold on the others; the last edit wins,
    /// and a removal too.
    @Test func librarySettingsAreShared() throws {
        let a = try Replica(0), b = try Replica(1)
        try a.library.setSetting("min-copies", "2")
        try a.library.setSetting("sync-retention-days", "30")
        try pull(b, from: [a])
        #expect(try b.library.setting("min-copies") == "2")
        #expect(try b.library.syncRetentionDays() == 30)
        try b.library.setSetting("min-copies", "3")
        try pull(a, from: [b])
        #expect(try a.library.setting("min-copies") == "3", "the later edit won")
        try a.library.setSetting("sync-retention-days", nil)
        try pull(b, from: [a])
        #expect(try b.library.setting("sync-retention-days") == nil, "the removal reached b")
        #expect(try a.library.syncDump() == (try b.library.syncDump()))
    }

    /// The history kept is the library's `sync-retention-days` (default 90): what is older is compacted.
    @Test func historyOlderThanTheRetentionIsCompacted() throws {
        let a = try Replica(0)
        try a.library.createTag("kept")
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        #expect(try a.library.syncRetentionDays() == 90)
        // 30 days on: nothing is older than 90 days.
        #expect(try a.library.compactSyncHistory(nowMilliseconds: now + 30 * 86_400_000).changes == 0)
        try a.library.setSetting("sync-retention-days", "7")
        let done = try a.library.compactSyncHistory(nowMilliseconds: now + 30 * 86_400_000)
        #expect(done.changes > 0)
        #expect(try a.library.sharedChanges().isEmpty)
        #expect(try a.library.sharedLogBounds().compacted > 0)
        #expect(try a.library.tags().map(\.name) == ["kept"], "compaction forgets history, not the tag")
    }
}
