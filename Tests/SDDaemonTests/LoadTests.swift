import Foundation
import SDAPI
import SDStore
import SDSystem
import SDTestSupport
import Synchronization
import Testing

/// 32 clients at once run searches, listings and status queries against sdd while it indexes a tree: no
/// request fails, and the daemon's memory does not keep growing. Prints the latency percentiles. In the test
/// suite (which runs other suites beside it) 20 s over a 20,000-file tree; `scripts/bench daemon` runs the
/// full size (SD_LOAD_SECONDS=60, SD_LOAD_FILES=100000) with release binaries on a quiet machine.
@Suite(.serialized) struct LoadTests {
    @Test(.timeLimit(.minutes(20))) func thirtyTwoClientsWhileIndexing() throws {
        let environment = ProcessInfo.processInfo.environment
        let seconds = Double(environment["SD_LOAD_SECONDS"] ?? "") ?? 20
        let files = Int(environment["SD_LOAD_FILES"] ?? "") ?? 20_000
        let dir = try TemporaryDirectory(prefix: "sd-load")
        try Scripts.makeTree(at: dir.file("tree"), files: files, large: 0, largeMiB: 1)
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        try #require(sd.run(["location", "add", dir.file("tree"), "--name", "tree"]).status == 0)
        let started = try sd.run(["daemon", "start"])
        try #require(started.status == 0, "\(started.stderr)")
        defer { _ = try? sd.run(["daemon", "stop"]) }
        let socket = sd.environment["SD_RUNTIME_DIR"]! + "/sdd.sock"
        let pid = try #require(APIClient(socket: socket).info()?.pid)
        let folders = try FileManager.default.contentsOfDirectory(atPath: dir.file("tree")).sorted().map {
            dir.file("tree/\($0)")
        }
        let startIndex = try UnixHTTP.request(
            socket: socket,
            method: "POST",
            target: "/v1/index",
            body: Array(#"{"locations": ["tree"]}"#.utf8)
        )
        try #require(startIndex.status == 202)
        let job = try #require(
            (try JSONSerialization.jsonObject(with: Data(startIndex.body)) as? [[String: Any]])?.first?["job"]
                as? String
        )

        struct Tally {
            /// Per request kind: (seconds since the start, milliseconds taken).
            var latencies: [String: [(at: Double, ms: Double)]] = [:]
            var errors: [String] = []
        }
        let tally = Mutex(Tally())
        let deadline = Date().addingTimeInterval(seconds)
        let origin = ContinuousClock.now
        let queries = ["file", "kind:image", "size:>10kB", "doc", "ext:txt", "modified:2026", "a", "zz9"]
        let done = DispatchGroup()
        for client in 0..<32 {
            done.enter()
            try Threads.start(name: "sd-test-client") {
                defer { done.leave() }
                var rng = SeededRNG(seed: UInt64(client + 1))
                while Date() < deadline {
                    let kind: String
                    let target: String
                    switch rng.next() % 3 {
                    case 0:
                        kind = "search"
                        let query = queries[Int(rng.next() % UInt64(queries.count))]
                        target = "/v1/search?q=\(APIClient.query(query))&limit=50"
                    case 1:
                        kind = "ls"
                        let folder = folders.isEmpty ? "/" : folders[Int(rng.next() % UInt64(folders.count))]
                        target = "/v1/ls?path=\(APIClient.query(folder))"
                    default:
                        kind = "status"
                        target = "/v1/status"
                    }
                    let began = ContinuousClock.now
                    do {
                        let answer = try UnixHTTP.request(socket: socket, method: "GET", target: target, body: nil)
                        let took = (ContinuousClock.now - began) / .milliseconds(1)
                        // A folder not indexed yet is a clean 404; anything else but 200 is an error.
                        let fine = answer.status == 200 || (kind == "ls" && answer.status == 404)
                        tally.withLock { t in
                            let at = (began - origin) / .seconds(1)
                            t.latencies[kind, default: []].append((at, took))
                            if !fine {
                                t.errors.append(
                                    "\(target): \(answer.status) \(String(decoding: answer.body, as: UTF8.self))"
                                )
                            }
                        }
                    } catch {
                        tally.withLock { $0.errors.append("\(target): \(error)") }
                    }
                }
            }
        }
        // Memory and the index job, once a second.
        var rss: [(second: Int, kib: Int)] = []
        var indexedAt: Double?
        while Date() < deadline {
            Thread.sleep(forTimeInterval: 1)
            let elapsed = (ContinuousClock.now - origin) / .seconds(1)
            if let kib = Self.residentKiB(pid) { rss.append((Int(elapsed), kib)) }
            if indexedAt == nil, let answer = try? APIClient(socket: socket).get("/v1/jobs/\(job)", JobAnswer.self),
                answer.job.isFinished
            {
                indexedAt = elapsed
                #expect(answer.job.state == "completed", "\(answer.job)")
            }
        }
        done.wait()
        let result = tally.withLock { $0 }
        #expect(result.errors.isEmpty, "\(result.errors.count) failed requests: \(result.errors.prefix(5))")
        #expect(APIClient(socket: socket).info()?.pid == pid)

        func percentile(_ values: [Double], _ p: Double) -> Double {
            let sorted = values.sorted()
            guard !sorted.isEmpty else { return 0 }
            return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
        }
        var lines = ["load: 32 clients, \(Int(seconds)) s, \(files)-file tree being indexed"]
        let indexEnd = indexedAt ?? seconds
        for kind in ["search", "ls", "status"] {
            let all = result.latencies[kind] ?? []
            for (phase, values) in [
                ("while indexing", all.filter { $0.at < indexEnd }.map(\.ms)),
                ("after", all.filter { $0.at >= indexEnd }.map(\.ms)),
            ] where !values.isEmpty {
                lines.append(
                    String(
                        format: "  %@ %@: %d requests, p50 %.1f ms, p99 %.1f ms, max %.1f ms",
                        kind,
                        phase,
                        values.count,
                        percentile(values, 0.5),
                        percentile(values, 0.99),
                        values.max() ?? 0
                    )
                )
            }
            #expect(!all.isEmpty, "no \(kind) request completed")
        }
        lines.append(
            "  index job: " + (indexedAt.map { String(format: "finished after %.0f s", $0) } ?? "still running")
        )
        lines.append(
            "  daemon RSS (MiB) per 5 s: "
                + rss.filter { $0.second % 5 == 0 }.map { "\($0.kib / 1024)" }.joined(separator: " ")
        )
        print(lines.joined(separator: "\n"))
        try? lines.joined(separator: "\n").write(
            toFile: dir.path + "/../sd-load-report.txt",
            atomically: true,
            encoding: .utf8
        )

        // Flat memory: the last third of the run holds no more than the middle third plus a margin (growth
        // that does not stop would show here).
        let third = rss.count / 3
        if third > 0 {
            let middle = rss[third..<(2 * third)].map(\.kib).max() ?? 0
            let last = rss[(2 * third)...].map(\.kib).max() ?? 0
            #expect(Double(last) <= Double(middle) * 1.25 + 16_384, "RSS grew from \(middle) KiB to \(last) KiB")
        }
    }

    static func residentKiB(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "")
        }
        return nil
    }
}
