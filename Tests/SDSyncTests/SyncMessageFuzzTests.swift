import Foundation
import SDCore
import SDNet
import SDStore
import SDSync
import SDTestSupport
import Testing

@Suite struct SyncMessageFuzzTests {
    static func samples(_ rng: inout SeededRNG) -> [SyncMessage] {
        var cursor = OwnedCursor()
        cursor.entry = [5, 9]
        cursor.pass = [3, 1]
        var batch = OwnedBatch(cursor: cursor, done: false)
        batch.device = OwnedDevice(id: .random(), seq: 4, name: "laptop", os: "linux", createdAt: 1, lastSeenAt: 2)
        batch.locations = [
            OwnedLocation(
                uuid: UUID().lowercased,
                seq: 2,
                volume: nil,
                volumeIdentity: "v",
                name: "home",
                path: Array("/h".utf8),
                indexContent: true,
                state: "online",
                stateReason: nil,
                lastIndexedAt: 7,
                createdAt: 1
            )
        ]
        batch.entries = [
            OwnedEntry(
                id: 3,
                seq: 5,
                uuid: rng.bytes(16),
                location: "l",
                parent: 1,
                name: Array("a.txt".utf8),
                type: 0,
                category: "text",
                mime: nil,
                size: 10,
                inode: 4,
                deviceNumber: 1,
                mode: 0o644,
                linkCount: 1,
                mtime: 1,
                ctime: 2,
                symlinkTarget: nil,
                contentID: -7,
                error: nil
            )
        ]
        batch.tombstones = [OwnedTombstone(id: 1, seq: 2, kind: "entry", ref: "8")]
        let change = SharedChange(
            seq: 3,
            hlc: "0000000000000001-00000000-\(DeviceID.random())",
            record: "tag",
            key: "k",
            field: "name",
            value: "\"x\"",
            device: DeviceID.random().description
        )
        return [
            .open(library: .random()), .opened(library: .random(), name: "Photos"),
            .ownedRequest(id: 1, cursor: cursor, limit: 100), .owned(id: 1, start: cursor, batch: batch),
            .sharedRequest(id: 2, after: 9, limit: 10),
            .shared(
                id: 2,
                after: 9,
                changes: [SharedRecordChange(change: change, prev: nil)],
                next: 10,
                done: true,
                resyncNeeded: false,
                horizon: ""
            ),
            .registersRequest(id: 3, cursor: ["tag", "k", ""], limit: 5),
            .registers(
                id: 3,
                start: [],
                registers: [SharedRegister(record: "tag", key: "k", field: "", value: "true", hlc: "h")],
                horizon: "h",
                logSeq: 4,
                done: false
            ),
            .changed, .listLibraries, .libraries([SharedLibrary(id: .random(), name: "Default")]),
            .fileInfoRequest(id: 4, path: "/home/ana/a.txt", fullHash: true),
            .fileInfo(
                id: 4,
                info: RemoteFileInfo(
                    size: 12,
                    mtimeNanoseconds: 1_700_000_000_000_000_000,
                    contentID: "9c1e5d0a1b2c3d4e",
                    fullHash: nil,
                    error: nil
                )
            ),
            .fileInfo(id: 5, info: .refused("not inside a location")),
            .readRequest(id: 6, path: "/home/ana/a.txt", offset: 1 << 20, length: 1 << 20),
            .fileData(id: 6, offset: 1 << 20, bytes: rng.bytes(40), error: nil),
            .fileData(id: 7, offset: 0, bytes: [], error: "gone"),
            .pushFolder(id: 8, path: "/srv/media/new"),
            .pushOpen(id: 9, path: "/srv/media/new/a.bin", tag: "ab12cd34-0", resumeAt: 64 << 20),
            .pushBegin(id: 9, path: "/srv/media/new/a.bin", tag: "ab12cd34-0", resumeAt: 64 << 20, size: 1 << 30),
            .pushData(
                id: 10,
                path: "/srv/media/new/a.bin",
                tag: "ab12cd34-0",
                offset: 5,
                bytes: rng.bytes(30),
                sync: true
            ),
            .pushCommit(
                id: 11,
                path: "/srv/media/new/a.bin",
                tag: "ab12cd34-0",
                commit: PushCommit(
                    size: 35,
                    contentID: "0123456789abcdef",
                    fullHash: nil,
                    mtimeNanoseconds: -5,
                    mode: 0o640,
                    replace: false
                )
            ),
            .pushAbort(id: 12, path: "/srv/media/new/a.bin", tag: "ab12cd34-0"),
            .pushDone(id: 12, value: 35, error: nil),
            .pushDone(id: 13, value: 0, error: "refused"),
        ]
    }

    @Test func everyMessageRoundTrips() throws {
        var rng = SeededRNG(seed: 1)
        for message in Self.samples(&rng) {
            #expect(try SyncMessage(message.frame) == message, "\(message)")
        }
    }

    /// Truncated, mutated and random payloads of every sync message kind: each decodes or is refused with a
    /// `WireError`; never a crash or a huge allocation.
    @Test func hostilePayloadsAreRefusedCleanly() throws {
        let seed = UInt64.random(in: 0...UInt64(UInt32.max))
        print("sync message fuzz seed \(seed)")
        var rng = SeededRNG(seed: seed)
        let frames = Self.samples(&rng).map(\.frame)
        var decoded = 0
        var refused = 0
        for round in 0..<30_000 {
            let base = frames[Int(rng.next() % UInt64(frames.count))]
            var payload = base.payload
            switch round % 3 {
            case 0:
                payload = Array(payload.prefix(Int(rng.next() % UInt64(payload.count + 1))))
            case 1:
                for _ in 0..<(1 + Int(rng.next() % 4)) where !payload.isEmpty {
                    payload[Int(rng.next() % UInt64(payload.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
            default:
                payload = rng.bytes(Int(rng.next() % 64))
            }
            do {
                _ = try SyncMessage(Frame(base.kind, payload))
                decoded += 1
            } catch {
                refused += 1
            }
        }
        #expect(refused > 10_000 && decoded > 100, "decoded \(decoded), refused \(refused) (seed \(seed))")
    }
}
