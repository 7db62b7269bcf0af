import Foundation
import SDSystem
import SDTestSupport
import Testing

/// `sd watch` as a real process: live changes seen by other sd processes, a clean stop on SIGTERM, the
/// location held against `sd index`, and recovery of what changed while it was killed.
@Suite(.serialized) struct WatchProcessTests {
    /// `sd watch --json` running, its output read on a thread of its own until the process closes it.
    final class Watching {
        let process: ChildProcess
        private let lines = LockedLines()

        init(_ sd: SDBinary, _ arguments: [String] = []) throws {
            let pipe = try ChildProcess.pipe()
            defer { close(pipe.write) }
            do {
                process = try sd.start(["watch", "--json"] + arguments, output: pipe.write)
            } catch {
                close(pipe.read)
                throw error
            }
            let lines = self.lines
            try Threads.start(name: "sd-test-read") {
                var buffer = [UInt8](repeating: 0, count: 65_536)
                while true {
                    let n = buffer.withUnsafeMutableBytes { read(pipe.read, $0.baseAddress, $0.count) }
                    if n > 0 {
                        lines.append(Data(buffer[0..<n]))
                    } else if n == 0 || errno != EINTR {
                        break
                    }
                }
                close(pipe.read)
            }
        }

        deinit {
            // Never leave a watcher running past its test.
            process.send(SIGKILL)
            process.wait()
        }

        /// The JSON events printed so far.
        var events: [[String: Any]] {
            lines.all.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }

        func waitFor(_ what: String, seconds: Double = 30, _ condition: () throws -> Bool) throws {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if try condition() { return }
                if let ended = process.termination { throw WatchProcessError("sd watch \(ended)") }
                Thread.sleep(forTimeInterval: 0.05)
            }
            throw WatchProcessError("timed out waiting for \(what)")
        }

        func event(_ name: String) -> [String: Any]? { events.last { $0["event"] as? String == name } }
    }

    struct WatchProcessError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    final class LockedLines: @unchecked Sendable {
        // @unchecked: `buffer` is only touched under `lock`.
        private var buffer = Data()
        private let lock = NSLock()
        func append(_ data: Data) { lock.withLock { buffer.append(data) } }
        var all: [String] {
            lock.withLock { String(decoding: buffer, as: UTF8.self).split(separator: "\n").map(String.init) }
        }
    }

    @Test(.timeLimit(.minutes(15))) func watchRecoverAndStop() throws {
        let dir = try TemporaryDirectory(prefix: "sd-watch-e2e")
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        let tree = dir.file("tree")
        for i in 0..<50 { try dir.write("tree/d\(i % 5)/f\(i).txt", Array("file \(i)".utf8)) }
        #expect(try sd.run(["location", "add", tree]).status == 0)
        #expect(try sd.run(["index"]).status == 0)

        var watch = try Watching(sd)
        try watch.waitFor("watching") { watch.event("watching") != nil }
        // Another sd process cannot index the location while it is watched.
        let busy = try sd.run(["index"])
        #expect(busy.status == 1)
        #expect(busy.stderr.contains("watched"))
        // Live: a new file, a renamed folder, seen by `sd ls` from another process.
        try dir.write("tree/d1/live.txt", Array("live".utf8))
        try FileManager.default.moveItem(atPath: "\(tree)/d2", toPath: "\(tree)/renamed")
        try watch.waitFor("the live changes") {
            let top = try sd.run(["ls", tree]).stdout
            return try sd.run(["ls", "\(tree)/d1"]).stdout.contains("live.txt") && top.contains("renamed")
                && !top.contains("d2")
        }
        // SIGTERM stops it cleanly.
        watch.process.send(SIGTERM)
        #expect(watch.process.wait() == .exited(0))

        // Killed outright, then files change while nothing runs.
        watch = try Watching(sd)
        try watch.waitFor("watching again") { watch.event("watching") != nil }
        watch.process.send(SIGKILL)
        watch.process.wait()
        try dir.write("tree/d3/while-stopped.txt", Array("added while stopped".utf8))
        let handle = try #require(FileHandle(forWritingAtPath: "\(tree)/d4/f4.txt"))
        handle.write(Data("FILE 4".utf8))  // same size, in place: the folder's mtime does not move
        try handle.close()
        let before = try sd.run(["ls", "\(tree)/d4", "--long", "--json"]).stdout

        watch = try Watching(sd)
        try watch.waitFor("recovery and the sweep") { watch.event("sweepDone") != nil }
        let started = try #require(watch.event("watching"))
        let recovery = try #require(started["recovery"] as? [String: Any])
        #expect(recovery["inserted"] as? Int == 1)
        #expect((recovery["foldersRead"] as? Int ?? 99) <= 2)
        #expect(started["foldersTotal"] as? Int == 6)
        let sweep = try #require(watch.event("sweepDone")?["changes"] as? [String: Any])
        #expect(sweep["updated"] as? Int == 1)
        #expect(try sd.run(["ls", "\(tree)/d3"]).stdout.contains("while-stopped.txt"))
        #expect(try sd.run(["ls", "\(tree)/d4", "--long", "--json"]).stdout != before)
        watch.process.send(SIGTERM)
        #expect(watch.process.wait() == .exited(0))
    }
}
