import Foundation
import SDSystem
import SDTestSupport
import Testing

/// sdd as a real process on its Unix socket: the CLI's answers are the same through it, bad requests get
/// 4xx answers and never stop it, only its owner can reach it, and it stops cleanly.
@Suite(.serialized) struct DaemonTests {
    @Test(.timeLimit(.minutes(10))) func sameAnswersThroughTheDaemon() throws {
        let dir = try TemporaryDirectory(prefix: "sd-daemon")
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        try dir.write("home/docs/report.txt", Array("quarterly".utf8))
        try dir.write("home/docs/notes.md", Array("# notes".utf8))
        try dir.write("home/photo.jpg", [0xFF, 0xD8, 0xFF, 0xE0] + [UInt8](repeating: 7, count: 2_000))
        #expect(try sd.run(["location", "add", dir.file("home")]).status == 0)
        #expect(try sd.run(["index"]).status == 0)
        #expect(try sd.run(["tag", "create", "work"]).status == 0)
        #expect(try sd.run(["tag", "add", "work", dir.file("home/docs/report.txt")]).status == 0)
        #expect(try sd.run(["meta", "set", dir.file("home/photo.jpg"), "--rating", "5", "--note", "sea"]).status == 0)
        let commands: [[String]] = [
            ["status"], ["status", "--json"], ["ls", dir.file("home"), "-l"], ["ls", dir.file("home/docs"), "--json"],
            ["ls", dir.file("home/nope")], ["ls", "relative-and-missing"], ["location", "list"],
            ["search", "report"], ["search", "kind:document", "--sort", "name"],
            ["search", "size:>1kB"], ["search", "--limit", "1", "o"], ["search", "size:>>1"], ["search"],
            ["tag", "list"], ["tag", "show", dir.file("home/docs/report.txt")], ["tag", "show", dir.file("nope")],
            ["meta", "show", dir.file("home/photo.jpg"), "--json"], ["dupes"], ["dupes", "--verify", "--json"],
            ["redundancy"], ["redundancy", "--if-lost", dir.file("home")], ["redundancy", "--kind", "spaceship"],
            ["resolve", dir.file("home/docs/notes.md")], ["log"], ["trash", "list"], ["jobs", "--all", "--json"],
            ["mv", "--preview", dir.file("home/docs"), dir.file("home/photo.jpg")],
            ["rename", "--preview", dir.file("home/docs/notes.md"), "n.md"],
            ["rm", "--preview", "--permanent", dir.file("home/docs/report.txt")],
        ]
        // (Not `location list --json`: the daemon's watcher sweeps at start, which moves lastIndexedAt. Not a
        // copy's preview: it shows the free space, which other tests running meanwhile change.)
        let direct = try commands.map { try sd.run($0) }
        #expect(direct[0].status == 0 && direct[4].status == 1)

        let socket = sd.environment["SD_RUNTIME_DIR"]! + "/sdd.sock"
        let started = try sd.run(["daemon", "start"])
        #expect(started.status == 0, "\(started.stderr)")
        defer { _ = try? sd.run(["daemon", "stop"]) }
        #expect(try sd.run(["daemon", "status"]).stdout.contains("sdd runs"))
        var st = stat()
        #expect(stat(socket, &st) == 0 && st.st_mode & 0o777 == 0o600, "only the owner can connect")
        #expect(try sd.run(["daemon", "start"]).status == 1, "one daemon per socket")

        // (A next page's cursor carries the clock its first page scored with: compared by what follows it.)
        func masked(_ text: String) -> String {
            text.replacingOccurrences(of: #"--cursor [A-Za-z0-9+/=]+"#, with: "--cursor C", options: .regularExpression)
        }
        for (command, expected) in zip(commands, direct) {
            let through = try sd.run(command)
            #expect(through.status == expected.status, "\(command)")
            #expect(through.stdout == expected.stdout, "\(command)")
            #expect(masked(through.stderr) == masked(expected.stderr), "\(command)")
        }

        // Bad requests: a clear 4xx in JSON, and the daemon goes on.
        func request(_ method: String, _ target: String, _ body: [UInt8]? = nil) throws -> UnixHTTP.Response {
            try UnixHTTP.request(socket: socket, method: method, target: target, body: body)
        }
        for (method, target, status) in [
            ("GET", "/v1/ls", 400), ("GET", "/v1/ls?path=relative", 400), ("GET", "/v1/ls?path=/a/../etc", 400),
            ("GET", "/v1/ls?path=%2Fnope", 404), ("GET", "/v1/no-such-route", 404), ("DELETE", "/v1/status", 404),
            ("GET", "/v1/search", 400), ("GET", "/v1/search?q=x&sort=sideways", 400),
            ("GET", "/v1/search?q=x&limit=-1", 400),
        ] {
            let answer = try request(method, target)
            #expect(answer.status == status, "\(method) \(target)")
            let text = String(decoding: answer.body, as: UTF8.self)
            #expect(text.hasPrefix("{\"error\":"), "\(method) \(target): \(text)")
        }
        // Live events: a file made in the watched location is streamed as an `applied` event.
        let events = try ChildProcess.pipe()
        let curl = try ChildProcess.start(
            Run.which("curl") ?? "/usr/bin/curl",
            ["-sN", "--unix-socket", socket, "http://sd/v1/events"],
            standardOutput: .descriptor(events.write)
        )
        close(events.write)
        var streamed = ""
        var buffer = [UInt8](repeating: 0, count: 4_096)
        _ = fcntl(events.read, F_SETFL, O_NONBLOCK)
        func readStream(until marker: String, seconds: Double) {
            let deadline = Date().addingTimeInterval(seconds)
            while !streamed.contains(marker) && Date() < deadline {
                let n = read(events.read, &buffer, buffer.count)
                if n > 0 {
                    streamed += String(decoding: buffer[0..<n], as: UTF8.self)
                } else {
                    Thread.sleep(forTimeInterval: 0.05)
                }
            }
        }
        // The stream says when it is subscribed: from then on no event is missed.
        readStream(until: ": subscribed\n\n", seconds: 30)
        #expect(streamed.hasPrefix(": subscribed\n\n"), "\(streamed)")
        try dir.write("home/docs/live.txt", Array("appeared".utf8))
        readStream(until: "\"event\":\"applied\"", seconds: 30)
        #expect(streamed.contains("data: {") && streamed.contains("\"inserted\":1"), "\(streamed)")
        #expect(try sd.run(["ls", dir.file("home/docs")]).stdout.contains("live.txt"))

        let huge = try request("POST", "/v1/status", [UInt8](repeating: 0x7B, count: 8_000_000))
        #expect((400..<500).contains(huge.status))
        #expect(try request("GET", "/v1/status").status == 200, "still serving")

        let stopped = try sd.run(["daemon", "stop"])
        #expect(stopped.status == 0 && stopped.stdout.contains("sdd stopped"))
        #expect(curl.wait(seconds: 10), "the event stream ends when the daemon stops")
        close(events.read)
        #expect(!FileManager.default.fileExists(atPath: socket))
        #expect(try sd.run(["daemon", "status"]).stdout.contains("no daemon runs"))
        // Direct again (the new file is in the index now).
        #expect(try sd.run(["status"]).status == 0)
    }

    /// Loopback TCP: only with the bearer token from the 0600 token file; the same answers as the socket.
    @Test(.timeLimit(.minutes(10))) func tcpNeedsTheToken() throws {
        let dir = try TemporaryDirectory(prefix: "sd-daemon-tcp")
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        try dir.write("home/a.txt", Array("alpha".utf8))
        #expect(try sd.run(["location", "add", dir.file("home")]).status == 0)
        #expect(try sd.run(["index"]).status == 0)
        let started = try sd.run(["daemon", "start", "--tcp-port", "0", "--json"])
        #expect(started.status == 0, "\(started.stderr)")
        defer { _ = try? sd.run(["daemon", "stop"]) }
        let info = try JSONSerialization.jsonObject(with: Data(started.stdout.utf8)) as? [String: Any]
        let port = try #require(info?["tcpPort"] as? Int)
        let tokenFile = sd.environment["SD_RUNTIME_DIR"]! + "/sdd.token"
        var st = stat()
        #expect(stat(tokenFile, &st) == 0 && st.st_mode & 0o777 == 0o600)
        let token = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(
            in: .whitespacesAndNewlines
        )
        #expect(token.count == 64)
        let curl = Run.which("curl") ?? "/usr/bin/curl"
        func get(_ headers: [String]) throws -> (code: String, body: String) {
            let r = try Run.program(
                curl,
                ["-s", "-w", "\n%{http_code}"] + headers.flatMap { ["-H", $0] } + ["http://127.0.0.1:\(port)/v1/status"]
            )
            let text = String(decoding: r.out, as: UTF8.self)
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            return (String(lines.last ?? ""), lines.dropLast().joined(separator: "\n"))
        }
        let none = try get([])
        #expect(none.code == "401" && none.body.hasPrefix("{\"error\":"), "\(none)")
        #expect(try get(["Authorization: Bearer " + String(repeating: "0", count: 64)]).code == "401")
        #expect(try get(["Authorization: Bearer " + token + "0"]).code == "401")
        let good = try get(["Authorization: Bearer " + token])
        #expect(good.code == "200")
        let socket = sd.environment["SD_RUNTIME_DIR"]! + "/sdd.sock"
        let viaSocket = try UnixHTTP.request(socket: socket, method: "GET", target: "/v1/status", body: nil)
        #expect(good.body == String(decoding: viaSocket.body, as: UTF8.self))
    }
}
