import Foundation
import SDCore
import SDIndexer
import SDNet
import SDStore
import SDSync
import SDSystem
import SDTestSupport
import Testing

/// One device in a simulated network: its library, its folder (indexed for real), and a follower per peer.
final class Replica {
    let index: Int
    let dir: TemporaryDirectory
    let identity: DeviceIdentity
    var library: Library
    let root: String
    var location: Location
    var followers: [Int: SyncFollower] = [:]

    init(_ index: Int) throws {
        self.index = index
        dir = try TemporaryDirectory(prefix: "sd-sync-\(index)")
        root = dir.file("files")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        identity = try DeviceIdentity.loadOrCreate(configDirectory: dir.file("config"))
        library = try Library.create(name: "Shared", in: dir.file("data"), device: identity)
        location = try library.addLocation(path: Array(root.utf8), name: "files", volume: nil)
        try rescan()
    }

    deinit { try? library.close() }

    func rescan() throws {
        var options = IndexOptions()
        options.allowMassDelete = true
        options.walkers = 1
        options.hashers = 1
        location = try library.fetchLocation(id: location.id)!
        _ = try Indexer(library: library, options: options, progress: nil).index(location)
    }

    /// Closes and opens the library again, and makes its followers again from their saved state (what a
    /// restart after a crash does; answers in flight to the old followers are then ignored).
    func restart(peers: [Replica]) throws {
        try library.close()
        library = try Library.open(at: library.path, device: identity)
        for peer in peers where peer.index != index {
            followers[peer.index] = try SyncFollower(
                library: library,
                peer: peer.identity.id,
                batchLimit: followers[peer.index]?.batchLimit ?? 7,
                rights: .all
            )
        }
    }
}

/// A message in flight: a request to `to`'s server, or an answer to `to`'s follower of `from`.
struct InFlight {
    var from: Int
    var to: Int
    var frame: Frame
    var isRequest: Bool
    var due: Int
}

@Suite struct ConvergenceTests {
    /// Random file changes, tags, ratings and notes on 3 to 5 replicas, with sync messages delayed,
    /// duplicated, reordered and dropped, partitions that heal, restarts, and compaction of the history (so
    /// that replicas that were away pull whole states): once the network heals, every replica's canonical
    /// dump is the same. Seeds: `SD_SYNC_SEEDS` (default 200), starting at `SD_SYNC_SEED` (default random).
    @Test func replicasConverge() async throws {
        let count = Int(ProcessInfo.processInfo.environment["SD_SYNC_SEEDS"] ?? "") ?? 200
        let first =
            UInt64(ProcessInfo.processInfo.environment["SD_SYNC_SEED"] ?? "") ?? UInt64.random(in: 0..<1_000_000)
        let started = Date()
        let totals = try await onOwnThread {
            var totals = Stats()
            for seed in first..<(first + UInt64(count)) {
                let stats = try runScenario(seed: seed)
                totals.messages += stats.messages
                totals.dropped += stats.dropped
                totals.duplicated += stats.duplicated
                totals.restarts += stats.restarts
                totals.compactions += stats.compactions
                totals.conflicts += stats.conflicts
            }
            return totals
        }
        print(
            "sync convergence: \(count) seeds from \(first) in \(Int(Date().timeIntervalSince(started))) s: \(totals.messages) messages, \(totals.dropped) dropped, \(totals.duplicated) duplicated, \(totals.restarts) restarts, \(totals.compactions) compactions, \(totals.conflicts) conflicts kept"
        )
    }

    struct Stats: Sendable {
        var messages = 0
        var dropped = 0
        var duplicated = 0
        var restarts = 0
        var compactions = 0
        var conflicts = 0
    }

    func runScenario(seed: UInt64) throws -> Stats {
        var rng = SeededRNG(seed: seed)
        var stats = Stats()
        func pick(_ n: Int) -> Int { Int(rng.next() % UInt64(max(1, n))) }
        func chance(_ percent: Int) -> Bool { pick(100) < percent }
        let n = 3 + pick(3)
        let replicas = try (0..<n).map { try Replica($0) }
        for r in replicas {
            for p in replicas where p.index != r.index {
                // Every device may change everything on the others (settings too): convergence of all of it.
                r.followers[p.index] = try SyncFollower(
                    library: r.library,
                    peer: p.identity.id,
                    batchLimit: 1 + pick(12),
                    rights: .all
                )
            }
        }
        var network: [InFlight] = []
        var blocked: Set<[Int]> = []
        var now = 0
        let names = ["a", "b", "c.txt", "d.jpg"]
        let folders = ["", "x", "x/y", "z"]
        let tagNames = ["red", "blue", "work", "work/tax"]

        func localFiles(_ r: Replica) -> [String] {
            var out: [String] = []
            if let e = FileManager.default.enumerator(atPath: r.root) {
                while let p = e.nextObject() as? String { out.append(p) }
            }
            return out.sorted()
        }
        func ownedChange(_ r: Replica) throws {
            let existing = localFiles(r)
            switch pick(5) {
            case 0, 1:
                let folder = folders[pick(folders.count)]
                try FileManager.default.createDirectory(
                    atPath: folder.isEmpty ? r.root : "\(r.root)/\(folder)",
                    withIntermediateDirectories: true
                )
                let path = (folder.isEmpty ? "" : folder + "/") + names[pick(names.count)]
                if !FileSystem.isDirectory("\(r.root)/\(path)") {
                    try Data(rng.bytes(1 + pick(300))).write(to: URL(fileURLWithPath: "\(r.root)/\(path)"))
                }
            case 2 where !existing.isEmpty:
                try? FileManager.default.removeItem(atPath: "\(r.root)/\(existing[pick(existing.count)])")
            case 3 where !existing.isEmpty:
                let from = existing[pick(existing.count)]
                let folder = folders[pick(folders.count)]
                let to = (folder.isEmpty ? "" : folder + "/") + names[pick(names.count)] + "\(pick(3))"
                try? FileManager.default.createDirectory(
                    atPath: folder.isEmpty ? r.root : "\(r.root)/\(folder)",
                    withIntermediateDirectories: true
                )
                if !"\(to)/".hasPrefix("\(from)/") { _ = rename("\(r.root)/\(from)", "\(r.root)/\(to)") }
            default:
                let files = existing.filter { !FileSystem.isDirectory("\(r.root)/\($0)") }
                if !files.isEmpty {
                    try Data(rng.bytes(1 + pick(300))).write(
                        to: URL(fileURLWithPath: "\(r.root)/\(files[pick(files.count)])")
                    )
                }
            }
            try r.rescan()
        }
        func sharedChange(_ r: Replica) throws {
            let files = localFiles(r).map { "\(r.root)/\($0)" }
            let tags = try r.library.tags().map(\.name)
            switch pick(7) {
            case 6:
                // Library settings are shared metadata too.
                try r.library.setSetting(
                    ["min-copies", "sync-retention-days"][pick(2)],
                    chance(20) ? nil : "\(1 + pick(30))"
                )
            case 0: _ = try? r.library.createTag(tagNames[pick(tagNames.count)])
            case 1 where !tags.isEmpty:
                try? r.library.renameTag(tags[pick(tags.count)], to: tagNames[pick(tagNames.count)] + "\(pick(2))")
            case 2 where !tags.isEmpty && chance(40): try? r.library.deleteTag(tags[pick(tags.count)])
            case 3 where !tags.isEmpty && !files.isEmpty:
                _ = try r.library.setTag(tags[pick(tags.count)], on: [files[pick(files.count)]], present: chance(70))
            case 4 where !files.isEmpty:
                _ = try r.library.setMetadata(
                    MetadataChange(rating: .some(pick(6)), note: chance(50) ? .some("note \(pick(4))") : nil),
                    on: [files[pick(files.count)]]
                )
            default:
                if !files.isEmpty {
                    _ = try r.library.setMetadata(MetadataChange(favorite: chance(50)), on: [files[pick(files.count)]])
                }
            }
        }
        func send(_ m: InFlight, faults: Bool) {
            stats.messages += 1
            if faults && (blocked.contains([m.from, m.to]) || chance(10)) {
                stats.dropped += 1
                return
            }
            var m = m
            m.due = now + (faults ? pick(6) : 0)
            network.append(m)
            if faults && chance(8) {
                stats.duplicated += 1
                m.due = now + pick(10)
                network.append(m)
            }
        }
        func deliver(_ m: InFlight, faults: Bool) throws {
            let target = replicas[m.to]
            let message = try SyncMessage(m.frame)
            if m.isRequest {
                if let answer = try SyncServer(library: target.library).answer(message) {
                    send(
                        InFlight(from: m.to, to: m.from, frame: answer.frame, isRequest: false, due: 0),
                        faults: faults
                    )
                }
            } else if let follower = target.followers[m.from] {
                // Half the time, pipelined as over a connection: the next batch asked before this one is taken.
                if chance(50), let next = follower.requestAhead(of: message) {
                    send(InFlight(from: m.to, to: m.from, frame: next.frame, isRequest: true, due: 0), faults: faults)
                }
                _ = try follower.take(message)
            }
        }
        func ask(_ r: Replica, _ p: Int, faults: Bool) {
            guard let follower = r.followers[p] else { return }
            follower.startRound()
            if let request = follower.request() {
                send(InFlight(from: r.index, to: p, frame: request.frame, isRequest: true, due: 0), faults: faults)
            }
        }

        let steps = 25 + pick(30)
        // Half the scenarios compact their history: one replica goes away (cut off from all, what was in
        // flight to or from it lost), the others exchange everything and compact, then it comes back and must
        // pull whole states. (Compaction assumes what is older than its horizon reached every device not away.)
        let away = chance(50) ? pick(n) : nil
        let leaveAt = away == nil ? -1 : pick(steps / 2)
        let compactAt = away == nil ? -1 : leaveAt + 1 + pick(steps / 2 - 1)
        for step in 0..<steps {
            now += 1
            let r = replicas[pick(n)]
            switch pick(10) {
            case 0, 1: try ownedChange(r)
            case 2, 3: try sharedChange(r)
            case 4, 5, 6:
                let p = (r.index + 1 + pick(n - 1)) % n
                ask(r, p, faults: true)
            case 7:
                let a = pick(n)
                let b = (a + 1 + pick(n - 1)) % n
                if let away, (a == away || b == away), step >= leaveAt, step <= compactAt {
                    break
                } else if blocked.contains([a, b]) {
                    blocked.remove([a, b])
                    blocked.remove([b, a])
                } else {
                    blocked.insert([a, b])
                    blocked.insert([b, a])
                }
            case 8 where chance(30):
                stats.restarts += 1
                try r.restart(peers: replicas)
            default: break
            }
            // Deliver some of what is due, in random order.
            for _ in 0..<(1 + pick(4)) {
                let due = network.indices.filter { network[$0].due <= now }
                guard !due.isEmpty else { break }
                let i = due[pick(due.count)]
                let m = network.remove(at: i)
                try deliver(m, faults: true)
            }
            if step == leaveAt, let away {
                network.removeAll { $0.from == away || $0.to == away }
                for other in 0..<n where other != away {
                    blocked.insert([away, other])
                    blocked.insert([other, away])
                }
            }
            if step == compactAt, let away {
                try converge(replicas, except: away)
                for c in replicas where c.index != away {
                    try c.library.compactSync(before: Int64(Date().timeIntervalSince1970 * 1000) + 1)
                    stats.compactions += 1
                }
            }
        }
        // Heal: no partitions, no faults, everything delivered, until nothing changes.
        network.removeAll()
        blocked.removeAll()
        try converge(replicas, except: nil)
        let dumps = try replicas.map { try $0.library.syncDump() }
        for r in replicas.dropFirst() where dumps[r.index] != dumps[0] {
            let a = dumps[0].split(separator: "\n"), b = dumps[r.index].split(separator: "\n")
            let onlyA = Set(a).subtracting(b).sorted().prefix(8), onlyB = Set(b).subtracting(a).sorted().prefix(8)
            Issue.record(
                "seed \(seed): replica \(r.index) differs from replica 0 (\(n) replicas)\nonly in 0: \(onlyA.joined(separator: "\n"))\nonly in \(r.index): \(onlyB.joined(separator: "\n"))"
            )
        }
        // Every replica has every device's entries.
        let entries = dumps[0].split(separator: "\n").filter { $0.hasPrefix("entry ") }.count
        let files = replicas.reduce(0) { $0 + localFiles($1).count + 1 }
        #expect(entries == files, "seed \(seed): \(entries) entries in the dump, \(files) files and roots on disk")

        stats.conflicts += try replicas.reduce(0) { $0 + (try $1.library.syncConflicts().count) }
        return stats
    }

    /// Runs every follower to idle with direct, faultless delivery, until a whole pass changes nothing.
    func converge(_ replicas: [Replica], except away: Int?) throws {
        var rounds = 0
        while true {
            rounds += 1
            if rounds > 50 {
                Issue.record("no convergence after 50 rounds")
                return
            }
            var changed = false
            for r in replicas where r.index != away {
                for (p, follower) in r.followers.sorted(by: { $0.key < $1.key }) where p != away {
                    follower.resetApplied()
                    follower.startRound()
                    var guardSteps = 0
                    while let request = follower.request() {
                        guardSteps += 1
                        if guardSteps > 10_000 {
                            Issue.record("replica \(r.index) following \(p) does not finish its round: \(request)")
                            return
                        }
                        let asked = try SyncMessage(request.frame)
                        guard let answer = try SyncServer(library: replicas[p].library).answer(asked) else { break }
                        try follower.take(try SyncMessage(answer.frame))
                    }
                    if follower.applied > 0 { changed = true }
                }
            }
            if !changed { return }
        }
    }
}
