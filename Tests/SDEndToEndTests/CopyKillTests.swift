import Foundation
import SDSystem
import SDTestSupport
import Testing

/// `sd cp` killed with SIGKILL at random moments, resumed with `sd jobs resume` each time (and killed again):
/// at the end every file is at the target with the source's bytes, and no temporary file is left.
struct CopyKillTests {
    @Test(.timeLimit(.minutes(15))) func killedCopiesFinishExactly() throws {
        let dir = try TemporaryDirectory(prefix: "sd-copykill")
        try Scripts.makeTree(at: dir.file("src"), files: 2000, large: 2, largeMiB: 32)
        try FileManager.default.createDirectory(atPath: dir.file("dst"), withIntermediateDirectories: true)
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        let started = Date()
        let reference = try sd.run(["cp", "-y", dir.file("src"), dir.file("reference")])
        try #require(reference.status == 0, "\(reference.stderr)")
        let full = Date().timeIntervalSince(started)

        var rng = SeededRNG.announced("copy kill test")
        // What every finished copy must hold: the source's bytes, as b3sum reads them (never sd's own run alone).
        let expected = try Oracle.b3sums(dir.file("src"))
        #expect(try Oracle.b3sums(dir.file("reference")) == expected, "the uninterrupted copy")
        var victim = 0
        var jobID: String?
        var kills = 0
        var compared = 0
        var window = full
        func compare() throws {
            let copied = dir.file("dst-\(victim)/src")
            #expect(try Oracle.b3sums(copied) == expected, "victim \(victim)")
            let leftovers = try FileManager.default.subpathsOfDirectory(atPath: dir.file("dst-\(victim)")).filter {
                $0.contains(".sd-part")
            }
            #expect(leftovers.isEmpty, "temporary files left: \(leftovers.prefix(5))")
            compared += 1
            victim += 1
            jobID = nil
            try FileManager.default.createDirectory(
                atPath: dir.file("dst-\(victim)"),
                withIntermediateDirectories: true
            )
        }
        try FileManager.default.createDirectory(atPath: dir.file("dst-0"), withIntermediateDirectories: true)
        for _ in 0..<50 where kills < 10 {
            let process = try sd.start(
                jobID.map { ["jobs", "resume", $0] } ?? ["cp", "-y", dir.file("src"), dir.file("dst-\(victim)")]
            )
            Thread.sleep(forTimeInterval: Double(rng.next() % 1000) / 1000 * window)
            process.send(SIGKILL)
            process.wait()
            if let job = try Self.jobs(sd).first(where: { $0["kind"] as? String == "copy" }) {
                jobID = job["id"] as? String
                // Killed before its first step it is still queued; after, interrupted.
                #expect(["interrupted", "queued"].contains(job["state"] as? String ?? ""))
                kills += 1
                // Every third kill, kill the resumed run too (a fixed share, not a coin: with a coin, 8 of 10
                // kills could fall on resumed runs and leave too few finished copies to compare).
                if kills % 3 == 0 { continue }
                let finish = try sd.run(["jobs", "resume", jobID!])
                #expect(finish.status == 0, "\(finish.stderr)")
                try compare()
            } else if jobID != nil || FileManager.default.fileExists(atPath: dir.file("dst-\(victim)/src")) {
                // It finished before the kill.
                window *= 0.8
                try compare()
            }
        }
        if let jobID {
            #expect(try sd.run(["jobs", "resume", jobID]).status == 0)
            try compare()
        }
        #expect(try Self.jobs(sd).isEmpty)
        #expect(kills >= 8, "only \(kills) kills landed mid-copy")
        #expect(compared >= 4)
    }

    static func jobs(_ sd: SDBinary) throws -> [[String: Any]] {
        let out = try sd.run(["jobs", "list", "--json"]).stdout
        return (try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]]) ?? []
    }
}
