import Foundation
import SDSystem
import SDTestSupport
import Testing

/// sd against a hostile local user (another account on this machine, played by uid 65534 through `setpriv`):
/// the daemon's runtime folder, its files and socket, the pid it signals, and libraries' permissions. Each test
/// is one finding of the security review; each failed on the code before its fix.
@Suite(.serialized) struct SecurityTests {
    /// The account that plays the other user.
    static let otherUser = "65534"

    /// Runs a command as the other user.
    static func asOtherUser(_ command: [String]) throws {
        let setpriv = Run.which("setpriv") ?? "/usr/bin/setpriv"
        let r = try Run.program(
            setpriv,
            ["--reuid=\(otherUser)", "--regid=\(otherUser)", "--clear-groups"] + command
        )
        try #require(r.status == 0, "as uid \(otherUser): \(command): \(String(decoding: r.err, as: UTF8.self))")
    }

    static func text(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

    static func mode(_ path: String) -> mode_t? {
        var st = stat()
        return lstat(path, &st) == 0 ? st.st_mode & 0o7777 : nil
    }

    /// A folder anyone may write in (as /tmp), for the other user's plants.
    static func sharedFolder(_ prefix: String) throws -> TemporaryDirectory {
        let dir = try TemporaryDirectory(prefix: prefix)
        chmod(dir.path, 0o1777)
        return dir
    }

    @Test func aRuntimeFolderMadeByAnotherUserIsRefused() throws {
        let dir = try Self.sharedFolder("sd-sec-runtime")
        let victim = try dir.write("victim.txt", Array("precious".utf8))
        let runtime = dir.file("run")
        // The other user makes the folder first (open to everyone) and plants sd's output file as a link.
        try Self.asOtherUser(["mkdir", "-m", "0777", runtime])
        try Self.asOtherUser(["ln", "-s", victim, runtime + "/sdd.out"])
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        let environment = ["SD_RUNTIME_DIR": runtime]
        let started = try sd.run(["daemon", "start", "--peer-port", "off"], environment: environment)
        defer { _ = try? sd.run(["daemon", "stop"], environment: environment) }
        #expect(started.status == 1, "refused: \(started.stdout) \(started.stderr)")
        #expect(started.stderr.contains(runtime) && started.stderr.contains("owned by"), "\(started.stderr)")
        #expect(Self.text(victim) == "precious", "the planted link was not followed")
        #expect(!FileSystem.exists(runtime + "/sdd.sock"), "no socket where another user can reach it")
        // sdd itself (as a service manager would start it) refuses it too.
        let sdd = URL(fileURLWithPath: sd.path).deletingLastPathComponent().appendingPathComponent("sdd").path
        let direct = try Run.program(
            sdd,
            ["--peer-port", "off"],
            environment: sd.environment.merging(environment) { $1 }
        )
        #expect(direct.status == 1, "sdd refuses the folder")
        #expect(!FileSystem.exists(runtime + "/sdd.sock"))
    }

    @Test func aLooseOrLinkedRuntimeFolderIsRefused() throws {
        let dir = try TemporaryDirectory(prefix: "sd-sec-loose")
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        let loose = dir.file("loose")
        try #require(mkdir(loose, 0o700) == 0)
        chmod(loose, 0o755)
        let real = dir.file("real")
        try #require(mkdir(real, 0o700) == 0)
        let linked = dir.file("linked")
        try #require(symlink(real, linked) == 0)
        for (folder, why) in [(loose, "mode"), (linked, "link")] {
            let environment = ["SD_RUNTIME_DIR": folder]
            let started = try sd.run(["daemon", "start", "--peer-port", "off"], environment: environment)
            defer { _ = try? sd.run(["daemon", "stop"], environment: environment) }
            #expect(started.status == 1, "\(why): \(started.stdout)")
            #expect(started.stderr.contains(folder), "\(why): \(started.stderr)")
            #expect(!FileSystem.exists(folder + "/sdd.sock") && !FileSystem.exists(real + "/sdd.sock"), "\(why)")
        }
        // A folder of its own that does not exist yet is made private.
        let fresh = dir.file("made/run")
        let environment = ["SD_RUNTIME_DIR": fresh]
        let started = try sd.run(["daemon", "start", "--peer-port", "off"], environment: environment)
        defer { _ = try? sd.run(["daemon", "stop"], environment: environment) }
        #expect(started.status == 0, "\(started.stderr)")
        #expect(Self.mode(fresh) == 0o700)
        #expect(Self.mode(fresh + "/sdd.sock") == 0o600)
        #expect(Self.mode(fresh + "/sdd.out") == 0o600)
    }

    @Test func aPlantedTokenOrOutputLinkIsNeverUsed() throws {
        let dir = try TemporaryDirectory(prefix: "sd-sec-token")
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        let runtime = sd.environment["SD_RUNTIME_DIR"]!
        try #require(mkdir(runtime, 0o700) == 0)
        // A token whose mode lets others read it (left from an older sd, or planted), and sd's output file as a
        // link to a file of the user's.
        let known = String(repeating: "a", count: 64)
        try dir.write("token-planted", Array((known + "\n").utf8))
        try FileManager.default.moveItem(atPath: dir.file("token-planted"), toPath: runtime + "/sdd.token")
        chmod(runtime + "/sdd.token", 0o644)
        let victim = try dir.write("victim.txt", Array("precious".utf8))
        try #require(symlink(victim, runtime + "/sdd.out") == 0)
        let started = try sd.run(["daemon", "start", "--peer-port", "off", "--tcp-port", "0", "--json"])
        defer { _ = try? sd.run(["daemon", "stop"]) }
        try #require(started.status == 0, "\(started.stderr)")
        #expect(Self.text(victim) == "precious", "the link was not followed")
        let info = try JSONSerialization.jsonObject(with: Data(started.stdout.utf8)) as? [String: Any]
        let port = try #require(info?["tcpPort"] as? Int)
        let token = try #require(Self.text(runtime + "/sdd.token")).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(token != known, "a token others could read is replaced")
        #expect(Self.mode(runtime + "/sdd.token") == 0o600)
        let curl = Run.which("curl") ?? "/usr/bin/curl"
        func status(_ bearer: String) throws -> String {
            let r = try Run.program(
                curl,
                [
                    "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer \(bearer)",
                    "http://127.0.0.1:\(port)/v1/info",
                ]
            )
            return String(decoding: r.out, as: UTF8.self)
        }
        #expect(try status(known) == "401", "the planted token opens nothing")
        #expect(try status(token) == "200")
    }

    @Test func stopSignalsOnlyTheUsersOwnDaemon() throws {
        let dir = try TemporaryDirectory(prefix: "sd-sec-stop")
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        let runtime = sd.environment["SD_RUNTIME_DIR"]!
        try #require(mkdir(runtime, 0o700) == 0)
        // Something that is not sdd answers on the socket and names another process (a bystander, which notes
        // any SIGTERM it gets) as sdd.
        let python = Run.which("python3") ?? "/usr/bin/python3"
        let marker = dir.file("signalled")
        let bystander = try ChildProcess.start(
            python,
            [
                "-c",
                """
                import signal, sys, time
                signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
                signal.signal(signal.SIGTERM, lambda *_: open(sys.argv[1], "w").write("TERM"))
                open(sys.argv[1] + ".ready", "w").close()
                while True: time.sleep(1)
                """,
                marker,
            ]
        )
        defer {
            bystander.send(SIGKILL)
            _ = bystander.wait()
        }
        let ready = Date().addingTimeInterval(10)
        while !FileSystem.exists(marker + ".ready") && Date() < ready { Thread.sleep(forTimeInterval: 0.02) }
        let info: [String: Any] = [
            "pid": bystander.pid, "libraryID": "00000000-0000-0000-0000-000000000000", "libraryName": "Default",
            "libraryPath": dir.file("data/Default.sdlibrary"), "startedAt": 0, "apiVersion": 1,
        ]
        let body = String(decoding: try JSONSerialization.data(withJSONObject: info), as: UTF8.self)
        let script = """
            import socket, sys
            s = socket.socket(socket.AF_UNIX)
            s.bind(sys.argv[1])
            s.listen(8)
            body = sys.argv[2].encode()
            while True:
                c, _ = s.accept()
                c.recv(65536)
                c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(body) + body)
                c.close()
            """
        let impostor = try ChildProcess.start(python, ["-c", script, runtime + "/sdd.sock", body])
        defer {
            impostor.send(SIGKILL)
            _ = impostor.wait()
        }
        let deadline = Date().addingTimeInterval(10)
        while !FileSystem.exists(runtime + "/sdd.sock") && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        let stopped = try sd.run(["daemon", "stop"])
        Thread.sleep(forTimeInterval: 0.5)
        #expect(!FileSystem.exists(marker), "the bystander was not signalled")
        #expect(stopped.status == 1, "\(stopped.stdout) \(stopped.stderr)")
        #expect(stopped.stderr.contains("not sdd"), "\(stopped.stderr)")
    }

    @Test func theSocketNeverHasALooseMode() throws {
        let dir = try TemporaryDirectory(prefix: "sd-sec-socket")
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        let socket = sd.environment["SD_RUNTIME_DIR"]! + "/sdd.sock"
        // Started with a permissive umask: the socket must still never be reachable by others, not even for
        // the moment between its creation and a chmod. The socket is watched from the moment it appears.
        let shell = try ChildProcess.start(
            "/bin/sh",
            ["-c", "umask 000; exec \"$0\" daemon start --peer-port off", sd.path],
            environment: sd.environment
        )
        defer { _ = try? sd.run(["daemon", "stop"]) }
        var first: mode_t?
        let deadline = Date().addingTimeInterval(30)
        while first == nil && Date() < deadline {
            var st = stat()
            if lstat(socket, &st) == 0 { first = st.st_mode & 0o777 }
        }
        _ = shell.wait()
        #expect(first == 0o600, "the socket's first mode: \(first.map { String($0, radix: 8) } ?? "never seen")")
    }

    @Test func librariesArePrivate() throws {
        let dir = try TemporaryDirectory(prefix: "sd-sec-private")
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        try #require(sd.run(["library", "create", "Diary"]).status == 0)
        try #require(sd.run(["status"]).status == 0)
        let library = dir.file("data/Diary.sdlibrary")
        let expected: [(String, mode_t)] = [
            (dir.file("data"), 0o700), (library, 0o700), (library + "/library.db", 0o600),
            (library + "/library.json", 0o600), (library + "/logs", 0o700), (dir.file("config"), 0o700),
            (dir.file("config/device.json"), 0o600), (dir.file("data/Default.sdlibrary/library.db"), 0o600),
        ]
        for (path, mode) in expected {
            #expect(Self.mode(path) == mode, "\(path): \(Self.mode(path).map { String($0, radix: 8) } ?? "missing")")
        }
        // A library made by an older sd (readable by others) is made private when opened.
        chmod(library, 0o755)
        chmod(library + "/library.db", 0o644)
        chmod(library + "/library.json", 0o644)
        try #require(sd.run(["status", "--library", "Diary"]).status == 0)
        #expect(Self.mode(library) == 0o700)
        #expect(Self.mode(library + "/library.db") == 0o600)
        #expect(Self.mode(library + "/library.json") == 0o600)
        for name in ["library.db-wal", "library.db-shm"] where FileSystem.exists(library + "/" + name) {
            #expect(Self.mode(library + "/" + name) == 0o600, "\(name)")
        }
    }

    /// Every API route that takes a path refuses one with a NUL or control byte (a NUL cuts a path where the
    /// system reads it) or `..`, with a 400 that says why; the daemon goes on.
    @Test func everyRouteWithAPathRefusesNulControlBytesAndDotDot() throws {
        let dir = try TemporaryDirectory(prefix: "sd-sec-routes")
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        let home = dir.file("home")
        try dir.write("home/a.txt", Array("alpha".utf8))
        try #require(sd.run(["location", "add", home]).status == 0)
        try #require(sd.run(["index"]).status == 0)
        let session = try sd.begin(.daemon)
        defer { session.end() }
        let socket = sd.environment["SD_RUNTIME_DIR"]! + "/sdd.sock"
        func status(_ method: String, _ target: String, _ body: String? = nil) throws -> Int {
            try UnixHTTP.request(socket: socket, method: method, target: target, body: body.map { Array($0.utf8) })
                .status
        }
        let escapedHome = home.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(["/", "-", "."]))!
        for bad in ["\(escapedHome)/a.txt%00.jpg", "\(escapedHome)%00", "\(escapedHome)/a%01b", "\(escapedHome)/%0A"] {
            for route in [
                "/v1/ls?path=", "/v1/tags/of?path=", "/v1/meta?path=", "/v1/resolve?path=",
                "/v1/dupes?location=", "/v1/redundancy?ifLost=", "/v1/search?q=a&in=",
            ] {
                #expect(try status("GET", route + bad) == 400, "GET \(route)\(bad)")
            }
        }
        for route in ["/v1/ls?path=", "/v1/tags/of?path=", "/v1/meta?path=", "/v1/resolve?path="] {
            #expect(try status("GET", route + escapedHome + "/../etc") == 400, "\(route) with ..")
        }
        let nul = "\\u0000"
        let control = "\\u0001"
        let bodies: [(String, String)] = [
            (
                "/v1/actions/preview",
                #"{"action": "copy", "paths": ["\#(home)/a.txt\#(nul)x"], "destination": "\#(home)/b"}"#
            ),
            (
                "/v1/actions/preview",
                #"{"action": "copy", "paths": ["\#(home)/a.txt"], "destination": "\#(home)/b\#(control)"}"#
            ),
            ("/v1/actions/preview", #"{"action": "delete", "paths": ["\#(home)/a.txt\#(nul)"], "permanent": true}"#),
            ("/v1/locations", #"{"path": "\#(home)\#(control)x"}"#),
            ("/v1/index", #"{"locations": ["home\#(nul)"]}"#),
            ("/v1/tags/apply", #"{"tag": "t", "paths": ["\#(home)/a.txt\#(nul)"], "present": true}"#),
            ("/v1/meta", #"{"paths": ["\#(home)/a.txt\#(nul)"], "rating": 3}"#),
        ]
        for (route, body) in bodies {
            #expect(try status("POST", route, body) == 400, "POST \(route) \(body)")
        }
        #expect(try status("GET", "/v1/info") == 200, "the daemon goes on")
    }
}
