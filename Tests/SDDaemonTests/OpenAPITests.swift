import Foundation
import Logging
import SDAPI
import SDDaemon
import SDStore
import SDSystem
import SDTestSupport
import Testing

/// The API document (API/openapi.json) and the server agree: the same routes, the same request fields, and
/// every answer the real daemon gives to every documented operation has a documented status and conforms
/// to the documented schema.
@Suite(.serialized) struct OpenAPITests {
    static func document() throws -> JSONValue {
        let path = Fixtures.repositoryRoot.appendingPathComponent("API/openapi.json").path
        return try JSONValue.parse(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
    }

    /// "GET /v1/info", ... as the document lists them.
    static func operations(_ document: JSONValue) -> Set<String> {
        var found: Set<String> = []
        for (path, item) in document["paths"]?.objectValue ?? [:] {
            for method in item.objectValue?.keys ?? [:].keys { found.insert("\(method.uppercased()) \(path)") }
        }
        return found
    }

    @Test func theServerServesExactlyTheDocumentedRoutes() throws {
        let dir = try TemporaryDirectory(prefix: "sd-openapi")
        let device = try DeviceIdentity.loadOrCreate(configDirectory: dir.file("config"))
        let library = try Library.create(name: "Doc", in: dir.path, device: device)
        defer { try? library.close() }
        let daemon = Daemon(
            library: library,
            socket: dir.file("sdd.sock"),
            pidFile: dir.file("sdd.pid"),
            logger: Logger(label: "test")
        )
        let served = daemon.routes
        #expect(Set(served).count == served.count, "a route registered twice")
        let documented = Self.operations(try Self.document())
        #expect(Set(served).subtracting(documented).isEmpty, "served, not documented")
        #expect(documented.subtracting(served).isEmpty, "documented, not served")
        #expect(
            served.count == documented.count && !documented.isEmpty,
            "\(served.count) served, \(documented.count) documented"
        )
    }

    @Test func requestBodiesHaveTheDocumentedFields() throws {
        let document = try Self.document()
        let validator = SchemaValidator(document: document)
        let bodies: [(String, any APIBody)] = [
            ("ActionRequest", ActionRequest.example), ("IndexRequest", IndexRequest.example),
            ("TagRequest", TagRequest.example), ("TagEdit", TagEdit.example), ("MetaRequest", MetaRequest.example),
            ("LocationRequest", LocationRequest.example), ("PairRequest", PairRequest.example),
            ("JoinRequest", JoinRequest.example), ("AddressRequest", AddressRequest.example),
            ("DeviceRequest", DeviceRequest.example),
        ]
        for (name, example) in bodies {
            let schema = try #require(document["components"]?["schemas"]?[name], "\(name) is not documented")
            let fields = Set(Mirror(reflecting: example).children.compactMap(\.label))
            #expect(Set(schema["properties"]?.objectValue?.keys ?? [:].keys) == fields, "\(name)")
            let encoded = try JSONValue.parse(Array(try JSONEncoder().encode(example)))
            #expect(validator.errors(encoded, schema) == [], "\(name)")
        }
        // Every documented request body is one of these.
        for (path, item) in document["paths"]?.objectValue ?? [:] {
            for (method, operation) in item.objectValue ?? [:] {
                guard let body = operation["requestBody"] else { continue }
                let ref = body["content"]?["application/json"]?["schema"]?["$ref"]?.string ?? ""
                #expect(bodies.contains { ref == "#/components/schemas/\($0.0)" }, "\(method) \(path): \(ref)")
            }
        }
    }

    @Test(.timeLimit(.minutes(10))) func everyAnswerConformsToTheDocument() throws {
        let document = try Self.document()
        let validator = SchemaValidator(document: document)
        let dir = try TemporaryDirectory(prefix: "sd-openapi-live")
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        try dir.write("home/docs/report.txt", Array("quarterly".utf8))
        try dir.write("home/docs/report copy.txt", Array("quarterly".utf8))
        try dir.write("home/photo.jpg", [0xFF, 0xD8, 0xFF, 0xE0] + [UInt8](repeating: 7, count: 2_000))
        try #require(sd.run(["location", "add", dir.file("home")]).status == 0)
        try #require(sd.run(["index"]).status == 0)
        try #require(sd.run(["rm", "-y", dir.file("home/photo.jpg")]).status == 0)
        let session = try sd.begin(.daemon)
        defer { session.end() }
        let socket = sd.environment["SD_RUNTIME_DIR"]! + "/sdd.sock"
        let home = dir.file("home")
        let report = dir.file("home/docs/report.txt")
        func q(_ text: String) -> String { APIClient.query(text) }

        var covered: Set<String> = []
        var ids: [String: String] = [:]
        /// Calls an operation, checks the status is documented for it and the body conforms; returns the body.
        @discardableResult
        func call(
            _ method: String,
            _ template: String,
            _ target: String,
            _ body: String? = nil,
            expect status: Int? = nil
        ) throws -> JSONValue {
            let answer = try UnixHTTP.request(
                socket: socket,
                method: method,
                target: target,
                body: body.map { Array($0.utf8) }
            )
            let text = String(decoding: answer.body, as: UTF8.self)
            if let status { #expect(answer.status == status, "\(method) \(target): \(text)") }
            covered.insert("\(method) \(template)")
            let operation = document["paths"]?[template]?[method.lowercased()]
            let documented = operation?["responses"]?[String(answer.status)]
            #expect(documented != nil, "\(method) \(target) answered \(answer.status), not documented: \(text)")
            let schema = documented?["content"]?["application/json"]?["schema"]
            let value: JSONValue
            do { value = try JSONValue.parse(answer.body) } catch {
                Issue.record("\(method) \(target) answered \(answer.status) with no JSON: \(text)")
                return .null
            }
            if let schema {
                let problems = validator.errors(value, schema)
                #expect(problems.isEmpty, "\(method) \(target): \(problems.prefix(5)) in \(text.prefix(600))")
            }
            return value
        }

        try call("GET", "/v1/info", "/v1/info", expect: 200)
        try call("GET", "/v1/status", "/v1/status", expect: 200)
        try call("GET", "/v1/ls", "/v1/ls?path=\(q(home))", expect: 200)
        try call("GET", "/v1/ls", "/v1/ls?path=relative", expect: 400)
        try call("GET", "/v1/ls", "/v1/ls?path=\(q(home + "/nope"))", expect: 404)
        try call("GET", "/v1/locations", "/v1/locations", expect: 200)
        try FileManager.default.createDirectory(atPath: dir.file("more"), withIntermediateDirectories: true)
        let more = #"{"path": "\#(dir.file("more"))", "name": "more"}"#
        try call("POST", "/v1/locations", "/v1/locations", more, expect: 200)
        try call("POST", "/v1/locations", "/v1/locations", more, expect: 400)
        try call("POST", "/v1/locations", "/v1/locations", #"{"path": "relative"}"#, expect: 400)
        try call("GET", "/v1/locations/{key}/removal", "/v1/locations/more/removal", expect: 200)
        try call("GET", "/v1/locations/{key}/removal", "/v1/locations/nowhere/removal", expect: 404)
        try call("POST", "/v1/locations/{key}/remove", "/v1/locations/more/remove", expect: 200)
        try call("POST", "/v1/locations/{key}/remove", "/v1/locations/more/remove", expect: 404)
        try call("GET", "/v1/search", "/v1/search?q=report&limit=1", expect: 200)
        try call("GET", "/v1/search", "/v1/search?q=size:%3E%3E1", expect: 400)
        let jobs = try call("GET", "/v1/jobs", "/v1/jobs?all=true", expect: 200)
        let finished = try #require(jobs.arrayValue?.first?["id"]?.string)
        try call("GET", "/v1/jobs/{id}", "/v1/jobs/\(finished)", expect: 200)
        try call("GET", "/v1/jobs/{id}", "/v1/jobs/ffffffff", expect: 404)
        try call("POST", "/v1/jobs/{id}/resume", "/v1/jobs/\(finished)/resume", expect: 409)
        try call("POST", "/v1/index", "/v1/index", #"{"locations": []}"#, expect: 202)
        let starts = try call("POST", "/v1/index", "/v1/index", #"{"locations": ["home"], "noContent": false}"#)
        if let job = starts.arrayValue?.first?["job"]?.string { ids["index"] = job }
        try call("POST", "/v1/index", "/v1/index", #"{"locations": ["home"], "bogus": 1}"#, expect: 400)
        try call("POST", "/v1/index", "/v1/index", #"{"locations": ["nowhere"]}"#, expect: 400)
        // A job to pause and cancel: the index job just started (finished already, or not).
        if let job = ids["index"] {
            try call("POST", "/v1/jobs/{id}/pause", "/v1/jobs/\(job)/pause")
            try call("POST", "/v1/jobs/{id}/cancel", "/v1/jobs/\(job)/cancel")
        }
        try call("POST", "/v1/jobs/{id}/pause", "/v1/jobs/ffffffff/pause", expect: 404)
        try call("POST", "/v1/jobs/{id}/cancel", "/v1/jobs/ffffffff/cancel", expect: 404)

        let mkdir = #"{"action": "mkdir", "paths": ["\#(home)/new"]}"#
        let preview = try call("POST", "/v1/actions/preview", "/v1/actions/preview", mkdir, expect: 200)
        let previewID = try #require(preview["id"]?.string)
        try call("POST", "/v1/actions/{id}/commit", "/v1/actions/\(previewID)/commit", "{}", expect: 202)
        try call("POST", "/v1/actions/{id}/commit", "/v1/actions/\(previewID)/commit", "{}", expect: 404)
        let refused = #"{"action": "copy", "paths": ["\#(report)"], "destination": "\#(home)/docs"}"#
        let conflict = try call("POST", "/v1/actions/preview", "/v1/actions/preview", refused, expect: 200)
        let conflictID = try #require(conflict["id"]?.string)
        try call("POST", "/v1/actions/{id}/commit", "/v1/actions/\(conflictID)/commit", "{}", expect: 409)
        try call("POST", "/v1/actions/preview", "/v1/actions/preview", #"{"action": "fly", "paths": []}"#, expect: 400)
        try call("POST", "/v1/actions/preview", "/v1/actions/preview", #"{"action": "copy"}"#, expect: 400)
        try call("POST", "/v1/actions/preview", "/v1/actions/preview", "not json", expect: 400)

        try call("POST", "/v1/tags/edit", "/v1/tags/edit", #"{"action": "create", "name": "work"}"#, expect: 200)
        try call("POST", "/v1/tags/edit", "/v1/tags/edit", #"{"action": "create", "name": "work"}"#, expect: 400)
        try call(
            "POST",
            "/v1/tags/apply",
            "/v1/tags/apply",
            #"{"tag": "work", "paths": ["\#(report)"], "present": true}"#,
            expect: 200
        )
        try call("GET", "/v1/tags", "/v1/tags", expect: 200)
        try call("GET", "/v1/tags/of", "/v1/tags/of?path=\(q(report))", expect: 200)
        try call("GET", "/v1/tags/of", "/v1/tags/of?path=\(q(home + "/nope"))", expect: 404)
        try call("POST", "/v1/meta", "/v1/meta", #"{"paths": ["\#(report)"], "rating": 4}"#, expect: 200)
        try call("POST", "/v1/meta", "/v1/meta", #"{"paths": ["\#(report)"], "rating": "four"}"#, expect: 400)
        try call("GET", "/v1/meta", "/v1/meta?path=\(q(report))", expect: 200)
        try call("GET", "/v1/dupes", "/v1/dupes?verify=true", expect: 200)
        try call("GET", "/v1/dupes", "/v1/dupes?kind=nonsense", expect: 400)
        try call("GET", "/v1/redundancy", "/v1/redundancy?minCopies=3", expect: 200)
        try call("GET", "/v1/redundancy", "/v1/redundancy?ifLost=\(q(home))", expect: 200)
        try call("GET", "/v1/redundancy", "/v1/redundancy?minCopies=many", expect: 400)
        let listing = try call("GET", "/v1/ls", "/v1/ls?path=\(q(home + "/docs"))", expect: 200)
        let content = try #require(listing.arrayValue?.first?["contentID"]?.string)
        try call("GET", "/v1/resolve", "/v1/resolve?path=\(q("sd://content/" + content))", expect: 200)
        try call("GET", "/v1/resolve", "/v1/resolve?path=\(q(report))", expect: 200)
        try call("GET", "/v1/log", "/v1/log?limit=5", expect: 200)
        try call("GET", "/v1/trash", "/v1/trash", expect: 200)

        // Peers and sync (nothing is paired: the daemon does not listen until a pairing code is asked for; then on
        // a free loopback port).
        let peers = try call("GET", "/v1/peers", "/v1/peers", expect: 200)
        #expect(peers["listening"] == nil, "nothing paired, nothing listening: \(peers)")
        try call("GET", "/v1/pair", "/v1/pair", expect: 200)
        let opened = try call("POST", "/v1/pair", "/v1/pair", #"{"host": "127.0.0.1", "minutes": 1}"#, expect: 200)
        #expect(opened["state"]?.string == "waiting" && opened["code"]?.string?.hasPrefix("127.0.0.1:") == true)
        let listening = try call("GET", "/v1/peers", "/v1/peers", expect: 200)
        if case .integer(let port)? = listening["listening"] {
            #expect(port > 0, "sdd accepts peers once a code is open")
        } else {
            Issue.record("sdd does not accept peers with a code open: \(listening)")
        }
        try call("POST", "/v1/pair", "/v1/pair", #"{"minutes": 99}"#, expect: 400)
        try call("POST", "/v1/pair/join", "/v1/pair/join", #"{"code": "not a code"}"#, expect: 400)
        try call("POST", "/v1/pair/join", "/v1/pair/join", #"{"code": "127.0.0.1:1/0000-0000-0000-0000"}"#, expect: 502)
        try call("POST", "/v1/peers/add", "/v1/peers/add", #"{"address": "127.0.0.1:1"}"#, expect: 502)
        try call("POST", "/v1/sync/share", "/v1/sync/share", #"{"device": "nobody"}"#, expect: 400)
        try call("GET", "/v1/sync", "/v1/sync", expect: 200)
        try call("GET", "/v1/sync/conflicts", "/v1/sync/conflicts", expect: 200)

        // The event stream: its type (it never ends by itself; curl stops reading after a second).
        let curl = try Run.program(
            Run.which("curl") ?? "/usr/bin/curl",
            [
                "-s", "-m", "1", "-o", "/dev/null", "-w", "%{content_type}", "--unix-socket", socket,
                "http://sd/v1/events",
            ]
        )
        #expect(String(decoding: curl.out, as: UTF8.self).hasPrefix("text/event-stream"))
        covered.insert("GET /v1/events")

        let documented = Self.operations(document)
        #expect(documented.subtracting(covered).isEmpty, "documented operations this test does not call")
    }
}
