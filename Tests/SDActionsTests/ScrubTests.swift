import Foundation
import SDActions
import SDCore
import SDIndexer
import SDJobs
import SDStore
import SDSystem
import SDTestSupport
import Testing

/// Scrubbing: a byte flipped behind the filesystem's back (mtime restored) is found and repaired from its copy;
/// a stopped scrub goes on where it stopped; the rate limit holds.
struct ScrubTests {
    static func scrub(_ f: CopyFixture, _ request: ScrubRequest = ScrubRequest()) async throws -> ScrubState {
        let runner = JobRunner(library: f.library, kinds: [ScrubJob()])
        let job = try runner.submit(kind: "scrub", target: nil, input: request)
        let done = try await runner.run(job.id)
        #expect(done.state == "completed")
        return try JSONDecoder().decode(ScrubState.self, from: Data(try #require(done.checkpoint).utf8))
    }

    /// Flips one bit of `path` at `offset` and puts its modification time back: what bit rot looks like.
    static func rot(_ path: String, at offset: Int) throws {
        var st = stat()
        #expect(stat(path, &st) == 0)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[offset] ^= 0x10
        let fd = open(path, O_WRONLY)
        #expect(pwrite(fd, &bytes[offset], 1, off_t(offset)) == 1)
        var times = [st.st_atim, st.st_mtim]
        #expect(futimens(fd, &times) == 0)
        close(fd)
    }

    @Test func aFlippedByteIsFoundAndRepairedFromItsCopy() async throws {
        let f = try CopyFixture([:])
        let photo = (0..<400_000).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 13) }
        try f.dir.write("tree/photos/beach.jpg", photo)
        let backup = try f.dir.write("tree/backup/beach.jpg", photo)
        // An older backup: file times are coarse (a clock tick), so two files written one after the other can
        // share an mtime, and the repaired file (which takes its copy's mtime) would then look unchanged.
        try FileManager.default.setAttributes(
            [.modificationDate: Date(timeIntervalSinceNow: -3_600)],
            ofItemAtPath: backup
        )
        try f.dir.write("tree/notes.txt", Array("unique".utf8))
        let location = try f.library.addLocation(path: Array(f.dir.file("tree").utf8), name: "tree", volume: nil)
        _ = try Indexer(library: f.library).index(location)

        let first = try await Self.scrub(f)
        #expect(first.files == 3 && first.baselined == 3 && first.corruptions.isEmpty)
        #expect(first.bytes == Int64(2 * photo.count + 6))

        // Outside the sampled ranges, so the content id does not see it either.
        let victim = f.dir.file("tree/photos/beach.jpg")
        try Self.rot(victim, at: 150_001)
        let second = try await Self.scrub(f)
        #expect(second.baselined == 0 && second.changed == 0)
        let corruption = try #require(second.corruptions.first)
        #expect(second.corruptions.count == 1)
        #expect(corruption.path == victim)
        #expect(corruption.goodCopies == [f.dir.file("tree/backup/beach.jpg")])
        #expect(corruption.expected == BLAKE3.hash(photo).hex)

        let repair = ScrubRepair.preview(second.corruptions)
        #expect(repair.canCommit, "\(repair.refusals)")
        #expect(repair.operations.map(\.target) == [victim])
        #expect(try await f.commit(repair).state == "completed")
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: victim))) == photo)
        _ = try Indexer(library: f.library).index(location)  // the repaired file has its copy's mtime
        let third = try await Self.scrub(f)
        #expect(third.corruptions.isEmpty && third.baselined == 1)

        // Both copies rotten: neither is named as the other's good copy, and the repair is refused.
        try Self.rot(victim, at: 10)
        try Self.rot(f.dir.file("tree/backup/beach.jpg"), at: 20)
        let both = try await Self.scrub(f)
        #expect(both.corruptions.count == 2 && both.corruptions.allSatisfy { $0.goodCopies.isEmpty })
        let refused = ScrubRepair.preview(both.corruptions)
        #expect(!refused.canCommit && refused.problems.allSatisfy { $0.reason == "no good copy is known" })
    }

    @Test func aStoppedScrubGoesOnWhereItStoppedAndTheRateHolds() async throws {
        let f = try CopyFixture([:])
        for i in 0..<300 { try f.dir.write("tree/f\(i).bin", [UInt8](repeating: UInt8(i % 251), count: 1_000 + i)) }
        let location = try f.library.addLocation(path: Array(f.dir.file("tree").utf8), name: "tree", volume: nil)
        _ = try Indexer(library: f.library).index(location)
        let runner = JobRunner(library: f.library, kinds: [ScrubJob()])
        let job = try runner.submit(kind: "scrub", target: nil, input: ScrubRequest(locations: [location.uuid]))
        let paused = try await runner.run(job.id) { _ in _ = try? runner.pause(job.id) }
        #expect(paused.state == "paused")
        let stoppedAt = try JSONDecoder().decode(ScrubState.self, from: Data(try #require(paused.checkpoint).utf8))
        #expect(stoppedAt.files > 0 && stoppedAt.files < 300)
        let resumed = try await runner.run(job.id)
        #expect(resumed.state == "completed")
        let end = try JSONDecoder().decode(ScrubState.self, from: Data(try #require(resumed.checkpoint).utf8))
        #expect(end.files == 300 && end.baselined == 300, "every file read once over both runs")

        // 300 files of about 1.1 kB at 200 kB/s: at least 1.5 s (a lower bound: a slow machine only adds).
        let started = Date()
        let throttled = try await Self.scrub(f, ScrubRequest(maxBytesPerSecond: 200_000))
        #expect(throttled.files == 300)
        #expect(Date().timeIntervalSince(started) >= 1.5)
    }
}
