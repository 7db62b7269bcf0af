import Foundation
import SDCore
import SDNet
import SDStore
import SDSync
import SDSystem
import SDTestSupport
import Testing

/// Hostile paths in every peer message that carries one, against a real server and receiver that grant the
/// sender every right: whatever the path (`..`, `.`, empty components, NUL and control bytes, links inside the
/// location leading out, long names, relative paths, sd's own temporary names), nothing outside the location
/// is ever read or written.
@Suite struct PeerPathFuzzTests {
    @Test func hostilePathsNeverReachOutsideALocation() throws {
        let seed = UInt64.random(in: 0...UInt64(UInt32.max))
        print("peer path fuzz seed \(seed)")
        var rng = SeededRNG(seed: seed)
        let r = try Replica(0)
        let marker = Array("SECRET-MARKER-\(seed)-".utf8) + [UInt8](repeating: 0x53, count: 200)
        let secret = try r.dir.write("outside/secret.txt", marker)
        let secretID = try ContentHasher().contentID(of: MemoryReader(marker))?.hex
        _ = try r.dir.write("files/doc.txt", Array("doc".utf8))
        try FileManager.default.createDirectory(atPath: r.root + "/in", withIntermediateDirectories: true)
        let links = ["out": r.dir.file("outside"), "secret": secret, "up": "..", "loop": "loop", "abs": "/"]
        for (name, target) in links {
            try FileManager.default.createSymbolicLink(atPath: r.root + "/" + name, withDestinationPath: target)
        }
        try r.rescan()
        let before = Set(try FileManager.default.contentsOfDirectory(atPath: r.dir.path))
        let server = SyncServer(library: r.library, rights: .all)
        let names = [
            "in", "doc.txt", "out", "secret", "up", "loop", "abs", "..", ".", "", "a\u{0}b", "\u{0}", "x\u{1}",
            "secret\u{0}",
            "out\u{0}",
            String(repeating: "n", count: 300), "new.bin", ".sd-part-in-t", "secret.txt", "outside", "files",
        ]
        let prefixes = [r.root, r.root + "/", r.dir.path, "/", "", r.root + "/in", r.dir.file("outside")]
        let payload = Array("pushed".utf8)
        let payloadID = try ContentHasher().contentID(of: MemoryReader(payload))?.hex
        var refused = 0
        for round in 0..<4_000 {
            var path = prefixes[Int(rng.next() % UInt64(prefixes.count))]
            for _ in 0..<Int(rng.next() % 5) {
                path += (rng.next() % 8 == 0 ? "//" : "/") + names[Int(rng.next() % UInt64(names.count))]
            }
            let tag = ["t", "t2", "../t", "T", ""][Int(rng.next() % 5)]
            let message: SyncMessage =
                switch round % 8 {
                case 0: .fileInfoRequest(id: 1, path: path, fullHash: rng.next() % 2 == 0)
                case 1: .readRequest(id: 2, path: path, offset: Int64(rng.next() % 64), length: 4_096)
                case 2: .pushFolder(id: 3, path: path)
                case 3: .pushBegin(id: 4, path: path, tag: tag, resumeAt: Int64(rng.next() % 8), size: 6)
                case 4:
                    .pushData(id: 5, path: path, tag: tag, offset: Int64(rng.next() % 4), bytes: payload, sync: true)
                case 5:
                    .pushCommit(
                        id: 6,
                        path: path,
                        tag: tag,
                        commit: PushCommit(
                            size: 6,
                            contentID: payloadID,
                            fullHash: nil,
                            mtimeNanoseconds: 0,
                            mode: 0o7777,
                            replace: rng.next() % 2 == 0
                        )
                    )
                case 6: .pushAbort(id: 7, path: path, tag: tag)
                default: .pushOpen(id: 8, path: path, tag: tag, resumeAt: 0)
                }
            guard let answer = try server.answer(message) else {
                Issue.record("no answer to \(message)")
                continue
            }
            switch answer {
            case .fileInfo(_, let info):
                #expect(
                    info.contentID == nil || info.contentID != secretID,
                    "\(path.debugDescription) described the secret"
                )
                if info.error != nil { refused += 1 }
            case .fileData(_, _, let bytes, let error):
                #expect(
                    !bytes.starts(with: marker.prefix(6)) && bytes.firstRange(of: marker.prefix(20)) == nil,
                    "\(path.debugDescription) read the secret"
                )
                if error != nil { refused += 1 }
            case .pushDone(_, _, let error):
                if error != nil { refused += 1 }
            default:
                Issue.record("unexpected answer \(answer)")
            }
        }
        // Outside the location: the secret as it was, nothing new beside it or beside the location.
        #expect(try FileManager.default.contentsOfDirectory(atPath: r.dir.file("outside")) == ["secret.txt"])
        #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: secret))) == marker)
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: r.dir.path)) == before)
        for (name, target) in links {
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: r.root + "/" + name) == target)
        }
        // Nothing received has special bits, wherever it landed.
        for name in (FileManager.default.enumerator(atPath: r.root)?.allObjects as? [String]) ?? [] {
            if let entry = try? Directory.stat(Array((r.root + "/" + name).utf8)), entry.type == .regular {
                #expect(entry.mode & 0o7000 == 0, "\(name)")
            }
        }
        print("peer path fuzz: \(refused) of 4000 refused")
        #expect(refused > 1_000)
    }
}
