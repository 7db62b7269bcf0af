import Foundation
import SDActions
import SDCore
import SDNet
import SDStore
import SDSync
import SDSystem
import SDTestSupport
import Testing

/// A paired device that turned hostile (or was stolen): every path, name, mode, offset and change it sends
/// is checked here against the real server and receiver of a real library on disk. Each test is a finding of
/// the security review, and each failed on the code before its fix.
@Suite struct SecurityTests {
    /// The answer of `server` to a push message: its value, or the refusal.
    static func ask(_ server: SyncServer, _ message: SyncMessage) throws -> Result<Int64, PeerFileError> {
        guard case .pushDone(_, let value, let error) = try server.answer(message) else {
            throw PeerFileError("no answer to \(message)")
        }
        return error.map { .failure(PeerFileError($0)) } ?? .success(value)
    }

    static func refused(_ result: Result<Int64, PeerFileError>) -> Bool {
        if case .failure = result { return true }
        return false
    }

    /// Every file name under `folder` (recursively), for "nothing landed outside".
    static func names(_ folder: String) -> Set<String> {
        Set((FileManager.default.enumerator(atPath: folder)?.allObjects as? [String]) ?? [])
    }

    @Test func aNulInAReadPathNeverOpensALinkLeadingOut() throws {
        let r = try Replica(0)
        _ = try r.dir.write("secret.txt", Array("outside every location".utf8))
        // A link inside the location to a file outside it: refused by the check, but "link\0" passed it and
        // open() stopped at the NUL.
        try FileManager.default.createSymbolicLink(
            atPath: r.root + "/link",
            withDestinationPath: r.dir.file("secret.txt")
        )
        try r.rescan()
        let server = SyncServer(library: r.library)
        for path in [r.root + "/link\u{0}", r.root + "/link\u{0}/x", r.root + "/link", r.root + "/\u{1}link"] {
            guard case .fileInfo(_, let info) = try server.answer(.fileInfoRequest(id: 1, path: path, fullHash: false))
            else {
                Issue.record("no info answer")
                continue
            }
            #expect(info.error != nil && info.size == 0, "\(path.debugDescription): \(info)")
            guard
                case .fileData(_, _, let bytes, let error) = try server.answer(
                    .readRequest(id: 2, path: path, offset: 0, length: 100)
                )
            else {
                Issue.record("no data answer")
                continue
            }
            #expect(bytes.isEmpty && error != nil, "\(path.debugDescription) read \(bytes.count) bytes")
        }
    }

    @Test func namesFromAPeerAreRefusedWhenApplied() throws {
        let a = try Replica(0)
        let b = try Replica(1)
        _ = try a.dir.write("files/doc.txt", Array("doc".utf8))
        try a.rescan()
        let batch = try a.library.ownedBatch(after: OwnedCursor(), limit: 1_000)
        let index = try #require(batch.entries.firstIndex { $0.name == Array("doc.txt".utf8) })
        let long = [UInt8](repeating: 0x61, count: 300)
        for name in ["../../x", "a/b", "", ".", "..", "x\u{0}y"].map({ Array($0.utf8) }) + [long] {
            var forged = batch
            forged.entries[index].name = name
            #expect(throws: (any Error).self, "\(String(decoding: name, as: UTF8.self).debugDescription)") {
                try b.library.applyOwned(forged, from: a.identity.id)
            }
        }
        var badLocation = batch
        badLocation.locations[0].path = Array((a.root + "/../elsewhere").utf8)
        #expect(throws: (any Error).self, "a location path with '..'") {
            try b.library.applyOwned(badLocation, from: a.identity.id)
        }
        // The real batch applies.
        try b.library.applyOwned(batch, from: a.identity.id)
    }

    @Test func aForgedNameNeverLeadsACopyOutOfItsDestination() throws {
        let a = try Replica(0)
        let b = try Replica(1)
        _ = try a.dir.write("files/sub/doc.txt", Array("doc".utf8))
        try a.rescan()
        try b.library.applyOwned(try a.library.ownedBatch(after: OwnedCursor(), limit: 1_000), from: a.identity.id)
        try b.library.close()
        // A row planted before names were checked (another tool, an older sd): the file is called "../../escaped".
        let python = Run.which("python3") ?? "/usr/bin/python3"
        let planted = try Run.program(
            python,
            [
                "-c",
                "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(\"UPDATE entries SET name = CAST('../../escaped' AS BLOB) WHERE name = CAST('doc.txt' AS BLOB)\"); c.commit(); print(c.total_changes)",
                b.library.databasePath,
            ]
        )
        #expect(
            planted.status == 0 && !String(decoding: planted.out, as: UTF8.self).hasPrefix("0"),
            "\(String(decoding: planted.err, as: UTF8.self))"
        )
        b.library = try Library.open(at: b.library.path, device: b.identity)
        let destination = b.dir.file("inbox")
        try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
        let preview = PeerCopyPlanner.preview(
            device: a.identity.id,
            paths: [a.root + "/sub"],
            destination: destination,
            onConflict: .fail,
            verifyFull: false,
            library: b.library
        )
        let outside = preview.operations.filter {
            !$0.target.hasPrefix(destination + "/") || $0.target.contains("/../")
        }
        #expect(
            outside.isEmpty || !preview.problems.isEmpty,
            "targets outside \(destination): \(outside.map(\.target))"
        )
        #expect(preview.problems.contains { $0.reason.contains("name") }, "\(preview.problems)")
    }

    /// Sends `bytes` to `path` (opened at 0, one piece, committed); the answer to the commit.
    static func push(
        _ server: SyncServer,
        _ path: String,
        _ bytes: [UInt8],
        tag: String,
        mode: UInt32 = 0o644,
        replace: Bool = false
    ) throws -> Result<Int64, PeerFileError> {
        let open = try ask(server, .pushBegin(id: 1, path: path, tag: tag, resumeAt: 0, size: Int64(bytes.count)))
        if case .failure = open { return open }
        let data = try ask(server, .pushData(id: 2, path: path, tag: tag, offset: 0, bytes: bytes, sync: true))
        if case .failure = data { return data }
        let id = try #require(try ContentHasher().contentID(of: MemoryReader(bytes)))
        return try ask(
            server,
            .pushCommit(
                id: 3,
                path: path,
                tag: tag,
                commit: PushCommit(
                    size: Int64(bytes.count),
                    contentID: id.hex,
                    fullHash: nil,
                    mtimeNanoseconds: 1_600_000_000_000_000_000,
                    mode: mode,
                    replace: replace
                )
            )
        )
    }

    @Test func aPeerWritesNothingWithoutTheRight() throws {
        let r = try Replica(0)
        try FileManager.default.createDirectory(atPath: r.root + "/in", withIntermediateDirectories: true)
        try r.rescan()
        // Paired with the defaults (read, sync, metadata): nothing may be written here.
        let server = SyncServer(library: r.library)
        #expect(Self.refused(try Self.push(server, r.root + "/in/new.bin", Array("x".utf8), tag: "t1")))
        #expect(!FileSystem.exists(r.root + "/in/new.bin"))
        #expect(Self.refused(try Self.ask(server, .pushFolder(id: 9, path: r.root + "/in/made"))))
        #expect(!FileSystem.exists(r.root + "/in/made"))
    }

    /// A server for a peer this device lets write files (and, with `overwrite`, replace them).
    static func writer(_ library: Library, overwrite: Bool = false) -> SyncServer {
        var rights = PeerRights.defaults
        rights.allow(.write)
        if overwrite { rights.allow(.overwrite) }
        return SyncServer(library: library, rights: rights)
    }

    @Test func receivedFilesNeverKeepSetuidSetgidOrSticky() throws {
        let r = try Replica(0)
        try FileManager.default.createDirectory(atPath: r.root + "/in", withIntermediateDirectories: true)
        try r.rescan()
        let server = Self.writer(r.library)
        for (i, mode) in [UInt32(0o4755), 0o2755, 0o1777, 0o7777].enumerated() {
            let path = r.root + "/in/f\(i)"
            _ = try Self.push(server, path, Array("x".utf8), tag: "m\(i)", mode: mode).get()
            let landed = try Directory.stat(Array(path.utf8)).mode
            #expect(
                landed & 0o7000 == 0 && landed & 0o777 == mode & 0o777,
                "sent \(String(mode, radix: 8)), landed \(String(landed, radix: 8))"
            )
        }
    }

    @Test func overwritingNeedsThisDevicesOwnPolicy() throws {
        let r = try Replica(0)
        _ = try r.dir.write("files/in/mine.txt", Array("mine".utf8))
        try r.rescan()
        let server = Self.writer(r.library)
        #expect(
            Self.refused(try Self.push(server, r.root + "/in/mine.txt", Array("theirs".utf8), tag: "o1", replace: true))
        )
        #expect(try String(contentsOfFile: r.root + "/in/mine.txt", encoding: .utf8) == "mine")
        let allowed = Self.writer(r.library, overwrite: true)
        _ = try Self.push(allowed, r.root + "/in/mine.txt", Array("theirs".utf8), tag: "o2", replace: true).get()
        #expect(try String(contentsOfFile: r.root + "/in/mine.txt", encoding: .utf8) == "theirs")
    }

    @Test func offsetsStayWithinTheAnnouncedSizeAndNothingIsSparse() throws {
        let r = try Replica(0)
        try FileManager.default.createDirectory(atPath: r.root + "/in", withIntermediateDirectories: true)
        try r.rescan()
        let server = Self.writer(r.library)
        let path = r.root + "/in/bomb.bin"
        _ = try Self.ask(server, .pushBegin(id: 1, path: path, tag: "b1", resumeAt: 0, size: 10_000)).get()
        let part = r.root + "/in/.sd-part-in-b1"
        for offset in [Int64(1) << 43, 4_096, 9_999] {
            let answer = try Self.ask(
                server,
                .pushData(id: 2, path: path, tag: "b1", offset: offset, bytes: [1], sync: true)
            )
            #expect(Self.refused(answer), "offset \(offset)")
            let size = (try? Directory.stat(Array(part.utf8)).size) ?? 0
            #expect(size <= 1, "the temporary grew to \(size) bytes")
        }
        // Within the announced size and following what is there: taken; past the size: refused.
        #expect(
            try Self.ask(server, .pushData(id: 3, path: path, tag: "b1", offset: 0, bytes: [1, 2], sync: false)).get()
                == 2
        )
        let tooMuch = [UInt8](repeating: 0, count: 9_999)
        #expect(
            Self.refused(
                try Self.ask(server, .pushData(id: 4, path: path, tag: "b1", offset: 2, bytes: tooMuch, sync: false))
            )
        )
        // More than the volume's free space is refused when the file is announced (nothing is made).
        let huge = try Self.ask(
            server,
            .pushBegin(id: 5, path: r.root + "/in/huge.bin", tag: "b2", resumeAt: 0, size: 1 << 60)
        )
        #expect(Self.refused(huge))
        #expect(!FileSystem.exists(r.root + "/in/.sd-part-in-b2"))
        // Data for a file not begun on this connection (or the old open without a size) is refused.
        #expect(
            Self.refused(
                try Self.ask(server, .pushData(id: 6, path: path, tag: "zz", offset: 0, bytes: [1], sync: false))
            )
        )
        #expect(Self.refused(try Self.ask(server, .pushOpen(id: 7, path: path, tag: "b3", resumeAt: 0))))
    }

    @Test func abandonedTemporariesAreRemoved() throws {
        let r = try Replica(0)
        try FileManager.default.createDirectory(atPath: r.root + "/in", withIntermediateDirectories: true)
        try r.rescan()
        let server = Self.writer(r.library)
        for tag in ["old", "new"] {
            _ = try Self.ask(
                server,
                .pushBegin(id: 1, path: r.root + "/in/\(tag).bin", tag: tag, resumeAt: 0, size: 10)
            ).get()
            _ = try Self.ask(
                server,
                .pushData(id: 2, path: r.root + "/in/\(tag).bin", tag: tag, offset: 0, bytes: [1], sync: true)
            ).get()
        }
        // The sender of "old" went away three days ago; "new" is being sent now. Something that only looks like
        // a temporary (a user's file) is never touched.
        let old = Date().addingTimeInterval(-3 * 86_400)
        try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: r.root + "/in/.sd-part-in-old")
        _ = try r.dir.write("files/in/.sd-part-in-mine", [7])
        try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: r.root + "/in/.sd-part-in-mine")
        #expect(try r.library.peerIncoming().count == 2)
        #expect(PeerFileReceiver.removeAbandoned(r.library) == 1)
        #expect(!FileSystem.exists(r.root + "/in/.sd-part-in-old"))
        #expect(FileSystem.exists(r.root + "/in/.sd-part-in-new"))
        #expect(FileSystem.exists(r.root + "/in/.sd-part-in-mine"))
        #expect(try r.library.peerIncoming().map(\.part) == [".sd-part-in-new"])
    }

    @Test func aNulOrControlByteInAPushedNameIsRefused() throws {
        let r = try Replica(0)
        try FileManager.default.createDirectory(atPath: r.root + "/in", withIntermediateDirectories: true)
        try r.rescan()
        let server = Self.writer(r.library)
        for (i, name) in ["a.txt\u{0}.jpg", "b\u{7}", "c\nd", "..", "."].enumerated() {
            #expect(
                Self.refused(try Self.push(server, r.root + "/in/" + name, Array("x".utf8), tag: "n\(i)")),
                "\(name.debugDescription)"
            )
        }
        #expect(Self.names(r.root + "/in").isEmpty, "\(Self.names(r.root + "/in"))")
    }

    @Test func metadataAndSettingsChangeOnlyWithTheRights() throws {
        let a = try Replica(0)
        let b = try Replica(1)
        _ = try a.library.createTag("keep")
        try a.library.setSetting("min-copies", "2")
        // b follows a with the rights of a new pairing: metadata yes, settings no.
        let follower = try SyncFollower(library: b.library, peer: a.identity.id)
        func pull() throws {
            follower.startRound()
            while let request = follower.request() {
                guard let answer = try SyncServer(library: a.library).answer(request) else { break }
                try follower.take(try SyncMessage(answer.frame))
            }
        }
        try pull()
        #expect(try b.library.tags().map(\.name) == ["keep"], "metadata is merged")
        #expect(try b.library.setting("min-copies") == nil, "a setting from a peer without the right is not applied")
        #expect(try b.library.syncConflicts().contains { $0.record == "setting" }, "it is kept for the owner to see")
        // A lower min-copies from the peer changes nothing here either.
        try a.library.setSetting("min-copies", "1")
        try pull()
        #expect(try b.library.setting("min-copies") == nil)

        // A device without the metadata right cannot delete or rename tags here either.
        var noMetadata = PeerRights.defaults
        noMetadata.deny(.metadata)
        let limited = try SyncFollower(library: b.library, peer: a.identity.id, rights: noMetadata)
        try a.library.deleteTag("keep")
        limited.startRound()
        while let request = limited.request() {
            guard let answer = try SyncServer(library: a.library).answer(request) else { break }
            try limited.take(try SyncMessage(answer.frame))
        }
        #expect(try b.library.tags().map(\.name) == ["keep"], "the deletion was not applied")
        #expect(try b.library.syncConflicts().contains { $0.record == "tag" && $0.reason != nil }, "but kept to see")
    }

    /// A tag is one file's: it cannot be begun for one path and then carry data for another (the other's announced
    /// size would then bound the first's temporary); aborting needs the right to write there and a temporary of
    /// the sender's own.
    @Test func aTagIsOneFilesAndAbortsNeedTheirOwnTemporary() throws {
        let r = try Replica(0)
        for folder in ["small", "big"] {
            try FileManager.default.createDirectory(atPath: r.root + "/" + folder, withIntermediateDirectories: true)
        }
        try r.rescan()
        let server = Self.writer(r.library)
        _ = try Self.ask(server, .pushBegin(id: 1, path: r.root + "/small/x", tag: "t", resumeAt: 0, size: 1)).get()
        #expect(
            Self.refused(
                try Self.ask(server, .pushBegin(id: 2, path: r.root + "/big/y", tag: "t", resumeAt: 0, size: 1 << 30))
            )
        )
        let data = [UInt8](repeating: 7, count: 4_096)
        #expect(
            Self.refused(
                try Self.ask(
                    server,
                    .pushData(id: 3, path: r.root + "/small/x", tag: "t", offset: 0, bytes: data, sync: false)
                )
            )
        )
        #expect(
            Self.refused(
                try Self.ask(
                    server,
                    .pushData(id: 4, path: r.root + "/big/y", tag: "t", offset: 0, bytes: [1], sync: false)
                )
            )
        )
        let part = r.root + "/small/.sd-part-in-t"
        #expect((try? Directory.stat(Array(part.utf8)).size) == 0)
        // Another device (default rights, no write) cannot abort it; this one can.
        let reader = SyncServer(library: r.library)
        #expect(Self.refused(try Self.ask(reader, .pushAbort(id: 5, path: r.root + "/small/x", tag: "t"))))
        #expect(FileSystem.exists(part))
        // A writer on another connection that did not begin it cannot either.
        let other = Self.writer(r.library)
        #expect(Self.refused(try Self.ask(other, .pushAbort(id: 6, path: r.root + "/small/x", tag: "t"))))
        #expect(FileSystem.exists(part))
        _ = try Self.ask(server, .pushAbort(id: 7, path: r.root + "/small/x", tag: "t")).get()
        #expect(!FileSystem.exists(part))
    }

    /// sd's own folders are never served nor written, even inside a location (a location on the home folder
    /// holds the device key and the libraries).
    @Test func sdsOwnFoldersAreNeverServedNorWritten() throws {
        let r = try Replica(0)
        // A location that holds this library's folder.
        _ = try r.library.addLocation(path: Array(r.dir.file("data").utf8), name: "data", volume: nil)
        let database = r.library.databasePath
        let server = Self.writer(r.library, overwrite: true)
        guard case .fileInfo(_, let info) = try server.answer(.fileInfoRequest(id: 1, path: database, fullHash: false))
        else {
            Issue.record("no answer")
            return
        }
        #expect(info.error?.contains("sd's own folders") == true, "\(info)")
        guard
            case .fileData(_, _, let bytes, let error) = try server.answer(
                .readRequest(id: 2, path: database, offset: 0, length: 100)
            )
        else {
            Issue.record("no answer")
            return
        }
        #expect(bytes.isEmpty && error != nil)
        #expect(Self.refused(try Self.push(server, r.library.path + "/planted.txt", [1], tag: "p1")))
        #expect(!FileSystem.exists(r.library.path + "/planted.txt"))
        // Elsewhere in that location: served.
        _ = try r.dir.write("data/notes.txt", Array("fine".utf8))
        guard
            case .fileInfo(_, let fine) = try server.answer(
                .fileInfoRequest(id: 3, path: r.dir.file("data/notes.txt"), fullHash: false)
            )
        else { return }
        #expect(fine.error == nil && fine.size == 4, "\(fine)")
    }
}
