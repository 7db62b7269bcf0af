import Foundation
import SDCore
import SDSystem
import SDTestSupport
import Testing

/// A large move (thousands of files and a multi-GiB file, across filesystems: copy, verify, delete) and a
/// large copy, run by the real `sd` and killed with SIGKILL at random moments, 50 kills or more in all
/// (`SD_KILL_TEST_KILLS`); each interrupted job is resumed with `sd jobs resume` (and sometimes killed again).
/// After every job: each file is present exactly once at the target (move) or at both places (copy) with
/// its original content id (and the large file with its full BLAKE3), and no temporary file is visible. At the
/// end the index of both locations equals a fresh index of the disk.
struct ActionKillTests {
    static let kills = Int(ProcessInfo.processInfo.environment["SD_KILL_TEST_KILLS"] ?? "") ?? 50
    static let largeMiB = Int(ProcessInfo.processInfo.environment["SD_KILL_TEST_LARGE_MIB"] ?? "") ?? 2048

    @Test(.timeLimit(.minutes(30))) func killedMovesAndCopiesFinishExactly() throws {
        guard let shm = try TemporaryDirectory.onOtherFilesystem(prefix: "sd-actionkill") else {
            Issue.record("needs /dev/shm on another filesystem than the temporary folder")
            return
        }
        let dir = try TemporaryDirectory(prefix: "sd-actionkill")
        try Scripts.makeTree(at: dir.file("a/src"), files: 2000, large: 0, largeMiB: 1)
        try Self.writeLarge(dir.file("a/src/large.bin"), mib: Self.largeMiB)
        let expected = try Oracle.b3sums(dir.file("a/src"))
        let b3sum = try #require(Run.which("b3sum"), "b3sum is needed: scripts/test installs it")
        let largeHash = try Self.fullHash(dir.file("a/src/large.bin"), b3sum)
        try FileManager.default.createDirectory(atPath: shm.file("b"), withIntermediateDirectories: true)
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        for root in [dir.file("a"), shm.file("b")] {
            let added = try sd.run(["location", "add", root])
            try #require(added.status == 0, "\(added.stderr)")
        }
        try #require(try sd.run(["index"]).status == 0)

        var rng = SeededRNG.announced("action kill test")
        var kills = 0
        var jobsDone = 0
        var inA = true  // where src is now
        // How long each kind of job runs uninterrupted (copy, move to b, move to a): kills land uniformly in it.
        var window = [3.0, 3.0, 3.0]
        var round = 0
        while kills < Self.kills {
            let copying = round % 3 == 2
            round += 1
            let from = inA ? dir.file("a/src") : shm.file("b/src")
            let destination = copying ? dir.file("c") : (inA ? shm.file("b") : dir.file("a"))
            let target = destination + "/src"
            if copying {
                try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
            }
            let command = [copying ? "cp" : "mv", "-y", from, destination]
            let shape = copying ? 0 : (inA ? 1 : 2)
            var jobID: String?
            var attempts = 0
            while true {
                attempts += 1
                try #require(attempts < 200, "the job never finished")
                let started = Date()
                let process = try sd.start(jobID.map { ["jobs", "resume", $0] } ?? command)
                let finished = process.wait(seconds: Double(rng.next() % 1000) / 1000 * window[shape])
                if finished {
                    #expect(process.wait() == .exited(0), "\(command) \(process.wait())")
                    if jobID == nil { window[shape] = Date().timeIntervalSince(started) }
                } else {
                    process.send(SIGKILL)
                    process.wait()
                }
                let unfinished = try Self.jobs(sd).first { ["copy", "move"].contains($0["kind"] as? String) }
                if let unfinished {
                    #expect(!finished, "an sd that exited left its job unfinished")
                    #expect(["interrupted", "queued"].contains(unfinished["state"] as? String ?? ""))
                    jobID = unfinished["id"] as? String
                    kills += 1
                    if rng.next() % 2 == 0 { continue }  // kill the resumed run too
                    let finish = try sd.run(["jobs", "resume", jobID!])
                    #expect(finish.status == 0, "\(finish.stderr)")
                    break
                }
                // No job left: it completed, or it was killed before it made one (then nothing moved).
                if FileSystem.exists(target) && (copying || !FileSystem.exists(from)) { break }
                #expect(!finished, "sd exited without doing the job")
                #expect(FileSystem.exists(from) && jobID == nil, "a job vanished before it was done")
            }
            // Exactly once at the target (and still at the source for a copy), same content ids.
            #expect(try Oracle.b3sums(target) == expected, "round \(round): \(command)")
            if copying {
                #expect(try Oracle.b3sums(from) == expected)
                try FileManager.default.removeItem(atPath: destination)
            } else {
                #expect(!FileSystem.exists(from), "the move left its source")
                inA.toggle()
            }
            for root in [dir.file("a"), shm.file("b"), dir.file("c")] where FileSystem.exists(root) {
                let parts = try FileManager.default.subpathsOfDirectory(atPath: root).filter { $0.contains(".sd-part") }
                #expect(parts.isEmpty, "temporaries left: \(parts.prefix(3))")
            }
            jobsDone += 1
        }
        #expect(jobsDone >= 3)
        // Every byte of the large file, wherever it ended, is what it was.
        #expect(try Self.fullHash((inA ? dir.file("a") : shm.file("b")) + "/src/large.bin", b3sum) == largeHash)
        // The index, kept by the actions alone, equals a fresh index of the same disk.
        let fresh = try SDBinary(dataDirectory: dir.file("fresh-data"), configDirectory: dir.file("config"))
        for root in [dir.file("a"), shm.file("b")] {
            #expect(try fresh.run(["location", "add", root]).status == 0)
        }
        #expect(try fresh.run(["index"]).status == 0)
        for root in [dir.file("a"), shm.file("b")] {
            let kept = try sd.run(["debug", "dump-index", root])
            let rebuilt = try fresh.run(["debug", "dump-index", root])
            #expect(kept.status == 0 && rebuilt.status == 0, "\(kept.stderr)\(rebuilt.stderr)")
            #expect(kept.stdout == rebuilt.stdout, "the index of \(root) differs from the disk")
        }
        print("action kill test: \(kills) kills over \(jobsDone) jobs, \(round) rounds")
    }

    static func jobs(_ sd: SDBinary) throws -> [[String: Any]] {
        let out = try sd.run(["jobs", "list", "--json"]).stdout
        return (try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]]) ?? []
    }

    /// relative path -> content id (or the size, for empty files), of every file below `root`.

    /// The file's BLAKE3 by `b3sum` (this test's build is unoptimised; b3sum is not).
    static func fullHash(_ path: String, _ b3sum: String) throws -> String {
        let result = try Run.program(b3sum, ["--no-names", path])
        return String(decoding: result.out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A file of `mib` MiB whose every MiB differs (a seeded block, its index mixed into every 8 bytes).
    static func writeLarge(_ path: String, mib: Int) throws {
        var rng = SeededRNG(seed: 42)
        let base = (0..<(1 << 17)).map { _ in rng.next() }
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        var block = base
        for i in 0..<mib {
            for j in block.indices { block[j] = base[j] ^ (UInt64(i) &* 0x9E37_79B9_7F4A_7C15) }
            try handle.write(contentsOf: block.withUnsafeBytes { Data($0) })
        }
    }
}

enum FileSystem {
    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }
}
