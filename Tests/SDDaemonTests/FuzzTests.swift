import Foundation
import SDAPI
import SDSystem
import SDTestSupport
import Testing

/// Thousands of malformed requests to the real daemon (mutated bodies, broken JSON, random bytes, odd query
/// strings and ids, deep nesting, unknown methods): every answer is a 2xx or a 4xx with a JSON error, never a
/// 5xx, and the same daemon answers at the end.
@Suite(.serialized) struct FuzzTests {
    @Test(.timeLimit(.minutes(15))) func requestDecodersNeverFailTheDaemon() throws {
        let seed = UInt64(Date().timeIntervalSince1970)
        var rng = SeededRNG(seed: seed)
        let dir = try TemporaryDirectory(prefix: "sd-fuzz")
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        try dir.write("home/a.txt", Array("alpha".utf8))
        try dir.write("home/b.txt", Array("alpha".utf8))
        try #require(sd.run(["location", "add", dir.file("home")]).status == 0)
        try #require(sd.run(["index"]).status == 0)
        let session = try sd.begin(.daemon)
        defer { session.end() }
        let socket = sd.environment["SD_RUNTIME_DIR"]! + "/sdd.sock"
        let pid = try #require(APIClient(socket: socket).info()?.pid)

        let home = dir.file("home")
        let routes: [(String, String)] = [
            ("GET", "/v1/info"), ("GET", "/v1/status"), ("GET", "/v1/ls"), ("GET", "/v1/locations"),
            ("GET", "/v1/search"), ("GET", "/v1/jobs"), ("GET", "/v1/jobs/{id}"), ("POST", "/v1/jobs/{id}/pause"),
            ("POST", "/v1/jobs/{id}/cancel"), ("POST", "/v1/jobs/{id}/resume"), ("POST", "/v1/index"),
            ("POST", "/v1/actions/preview"), ("POST", "/v1/actions/{id}/commit"), ("GET", "/v1/tags"),
            ("POST", "/v1/tags/edit"), ("POST", "/v1/tags/apply"), ("GET", "/v1/tags/of"), ("GET", "/v1/meta"),
            ("POST", "/v1/meta"), ("GET", "/v1/dupes"), ("GET", "/v1/redundancy"), ("GET", "/v1/resolve"),
            ("GET", "/v1/log"), ("GET", "/v1/trash"), ("POST", "/v1/locations"),
            ("POST", "/v1/locations/{id}/remove"),
        ]
        let bodies: [String] = [
            #"{"action": "copy", "paths": ["\#(home)/a.txt"], "destination": "\#(home)/c.txt"}"#,
            #"{"action": "delete", "paths": ["\#(home)/a.txt"], "permanent": true}"#,
            #"{"action": "rename", "paths": ["\#(home)/a.txt"], "newName": "z.txt"}"#,
            #"{"action": "dedup", "paths": [], "mode": "hardlink", "minSize": "1"}"#,
            #"{"locations": ["home"], "noContent": true}"#,
            #"{"tag": "t", "paths": ["\#(home)/a.txt"], "present": true}"#,
            ##"{"action": "create", "name": "fuzz", "color": "#123456"}"##, #"{"path": "\#(home)/new", "name": "n"}"#,
            #"{"paths": ["\#(home)/a.txt"], "rating": 3, "favorite": true, "note": "n"}"#,
        ]
        let strangeValues: [String] = [
            "null", "true", "-1", "1e309", "9223372036854775808", "\"\"", "[]", "{}", "\"../../etc/passwd\"",
            "\"\\u0000\"", "\"sd://content/zz\"", "\"sd://\"", "[[[[[[[[[[]]]]]]]]]]",
            "\"\(String(repeating: "x", count: 5000))\"",
            "\"/\(String(repeating: "a/", count: 2000))\"", "0.5", "\"\\ud800\"",
        ]
        func mutate(_ body: String) -> [UInt8] {
            var bytes = Array(body.utf8)
            switch rng.next() % 9 {
            case 0:  // truncated
                bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count + 1))))
            case 1:  // bytes flipped
                for _ in 0..<(1 + rng.next() % 4) where !bytes.isEmpty {
                    bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
            case 2:  // an unknown field
                bytes = Array(body.dropLast().utf8) + Array(#", "surprise": 1}"#.utf8)
            case 3, 4:  // a value replaced by a strange one
                if let colon = body.firstIndex(of: ":") {
                    let end = body[colon...].firstIndex(where: { $0 == "," || $0 == "}" }) ?? body.endIndex
                    let value = strangeValues[Int(rng.next() % UInt64(strangeValues.count))]
                    bytes = Array((body[..<body.index(after: colon)] + " " + value + body[end...]).utf8)
                }
            case 5:  // random bytes
                bytes = rng.bytes(Int(rng.next() % 300))
            case 6:  // deep nesting
                let depth = Int(1 + rng.next() % 100_000)
                bytes =
                    Array(String(repeating: "[", count: depth).utf8) + Array(String(repeating: "]", count: depth).utf8)
            case 7:  // not an object
                bytes = Array(strangeValues[Int(rng.next() % UInt64(strangeValues.count))].utf8)
            default:
                break
            }
            return bytes
        }
        func randomQuery() -> String {
            let names = [
                "path", "q", "limit", "sort", "cursor", "all", "verify", "minSize", "kind", "ifLost", "minCopies",
                "location", "in",
            ]
            // Hostile paths among them: NUL and control bytes (escaped, as a client would send them), `..`, `.`,
            // empty components, another device's paths, a link in the location leading out.
            let values = [
                home, "/etc/../etc", "relative", "sd://content/0000000000000000", "%00", "%FF%FE", "-1",
                "99999999999999999999",
                "true", "name", "", String(repeating: "%41", count: 3000), "size:>>>", "kind:", "\"unclosed", "*",
                "\(home)/a.txt%00.jpg", "\(home)%01", "\(home)/%0A", "\(home)//a.txt", "\(home)/./a.txt",
                "\(home)/out/passwd", "sd://00000000-0000-0000-0000-000000000000/etc/passwd",
                "/\(String(repeating: "a/", count: 3000))",
            ]
            return (0..<(rng.next() % 4)).map { _ in
                let name = names[Int(rng.next() % UInt64(names.count))]
                let value = values[Int(rng.next() % UInt64(values.count))]
                return "\(name)=\(value.contains("%") ? value : APIClient.query(value))"
            }.joined(separator: "&")
        }

        try FileManager.default.createSymbolicLink(atPath: home + "/out", withDestinationPath: "/etc")
        var answered: [Int: Int] = [:]
        let rounds = 2_500
        for round in 0..<rounds {
            var (method, path) = routes[Int(rng.next() % UInt64(routes.count))]
            if rng.next() % 20 == 0 { method = ["PUT", "DELETE", "PATCH", "HEAD"][Int(rng.next() % 4)] }
            let id = ["ffffffff", "", "..", "%2e%2e", String(repeating: "a", count: 500), "0"][Int(rng.next() % 6)]
            path = path.replacingOccurrences(of: "{id}", with: id)
            let query = randomQuery()
            let target = query.isEmpty ? path : path + "?" + query
            let body = method == "POST" ? mutate(bodies[Int(rng.next() % UInt64(bodies.count))]) : nil
            let answer: UnixHTTP.Response
            do {
                answer = try UnixHTTP.request(socket: socket, method: method, target: target, body: body)
            } catch {
                Issue.record("round \(round) (seed \(seed)): \(method) \(target): no answer: \(error)")
                break
            }
            answered[answer.status, default: 0] += 1
            #expect(answer.status < 500, "round \(round) (seed \(seed)): \(method) \(target) -> \(answer.status)")
            // A NUL or control byte in any query value of a served route is refused before anything uses it.
            if ["GET", "POST"].contains(method), routes.contains(where: { $0.1 == path || $0.1.contains("{id}") }),
                ["%00", "%01", "%0A"].contains(where: { query.contains($0) })
            {
                #expect(
                    [400, 404, 405].contains(answer.status),
                    "round \(round) (seed \(seed)): \(method) \(target) -> \(answer.status)"
                )
            }
            if answer.status >= 400 && method != "HEAD" {
                let text = String(decoding: answer.body, as: UTF8.self)
                #expect(text.hasPrefix("{\"error\":"), "round \(round) (seed \(seed)): \(method) \(target): \(text)")
            }
        }
        #expect(APIClient(socket: socket).info()?.pid == pid, "the daemon that answers at the end is the first one")
        print("fuzz (seed \(seed)): \(rounds) requests, answers by status: \(answered.sorted { $0.key < $1.key })")
        #expect((answered[400] ?? 0) > rounds / 4, "most requests should be refused as bad")
    }
}
