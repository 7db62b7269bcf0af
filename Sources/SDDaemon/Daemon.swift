import Foundation
import Hummingbird
import Logging
import NIOCore
import SDAPI
import SDActions
import SDCore
import SDIndexer
import SDJobs
import SDNet
import SDStore
import SDSync
import SDSystem
import ServiceLifecycle
import Synchronization
import UnixSignals

/// `sdd`: serves one library's API on a Unix socket (mode 0600: only its owner can use it).
///
/// Started, it refuses to run beside another daemon on the same socket, removes a stale socket a crashed one
/// left, and writes its pid file; SIGTERM or SIGINT stop it cleanly (in-flight requests finish), removing both.
public struct Daemon: Sendable {
    public let library: Library
    public let socket: String
    public let pidFile: String
    /// Keep the locations watched (off for a daemon that only answers).
    public var watch = true
    /// Also serve on loopback TCP at this port (0: any free port), with a bearer token kept in `tokenFile`.
    public var tcpPort: Int?
    public var tokenFile: String = API.tokenPath()
    /// Accept paired devices on this port (0: any free port; nil: no peers, no sync), on `peerHost`.
    public var peerPort: Int?
    public var peerHost = "0.0.0.0"
    /// LAN discovery's UDP port (nil: no announcements, nothing heard).
    public var discoveryPort: Int? = LANDiscovery.defaultPort
    let logger: Logger
    let hub = EventHub()
    let listening = TCPListening()
    let activity = Activity()
    /// `sd status` counts every entry (half a second at 100,000): computed once for all the requests that
    /// come while nothing changed (no event since) and within a second.
    let status = Fresh<IndexStatus>()

    public init(library: Library, socket: String = API.socketPath(), pidFile: String = API.pidPath(), logger: Logger) {
        self.library = library
        self.socket = socket
        self.pidFile = pidFile
        self.logger = logger
    }

    public var info: DaemonInfo {
        DaemonInfo(
            pid: getpid(),
            libraryID: library.manifest.id.description,
            libraryName: library.manifest.name,
            libraryPath: library.path,
            startedAt: Self.started,
            tcpPort: listening.port
        )
    }

    static let started = Int64(Date().timeIntervalSince1970 * 1000)

    /// Serves until SIGTERM or SIGINT.
    public func run() async throws {
        _ = Self.started  // a static is set on first use: take the start time now, not at the first /v1/info
        try prepareSocket()
        // Many connections and files at once (peers, clients, jobs): the hard limit, not the soft default.
        ProcessLimits.raiseOpenFiles()
        let conductor = Conductor(library: library, hub: hub, logger: logger, watch: watch)
        var peering: Peering?
        if let peerPort {
            peering = try Peering(
                library: library,
                host: peerHost,
                port: peerPort,
                discoveryPort: discoveryPort,
                logger: self.logger
            )
        }
        let router = Router()
        router.middlewares.add(ErrorMiddleware(logger: logger, activity: activity))
        let routes = Routes(daemon: self, conductor: conductor, peering: peering)
        let table = RouteTable(router)
        routes.add(to: table)
        routes.addPeers(to: table, peering: peering)
        let socket = self.socket
        let pidFile = self.pidFile
        let logger = self.logger
        // The socket is made under umask 177 (so 0600), never reachable by others, not even until a chmod; the
        // user's umask comes back once it is bound, and nothing else that makes files (jobs, peers) starts
        // before that.
        let ready = Gate()
        let userMask = umask(0o177)
        let app = Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: Self.idleTimeout)),
            configuration: .init(address: .unixDomainSocket(path: socket), serverName: "sdd"),
            onServerRunning: { _ in
                umask(userMask)
                try? FileSystem.writeAtomically(Array("\(getpid())\n".utf8), to: pidFile, mode: 0o600)
                logger.info("serving", metadata: ["socket": "\(socket)"])
                ready.open()
            },
            logger: logger
        )
        var services: [any Service] = [app]
        if let tcpPort {
            services.append(try tcpApplication(port: tcpPort, conductor: conductor, peering: peering))
        }
        defer {
            FileSystem.remove(socket)
            FileSystem.remove(pidFile)
            logger.info("stopped")
        }
        // Stopping goes in reverse order: the background work first (event streams end, the watcher and jobs
        // checkpoint), then the server, which waits for requests in flight (open event streams included).
        let group = ServiceGroup(
            configuration: .init(
                services: services + [BackgroundWork(conductor: conductor, hub: hub, activity: activity, ready: ready)]
                    + (peering.map { [PeeringService(peering: $0, ready: ready)] } ?? []),
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }

    /// The same API on 127.0.0.1: every request needs `Authorization: Bearer TOKEN`, the token being the
    /// content of `tokenFile` (made once, 0600, 256 random bits; kept across restarts).
    func tcpApplication(port: Int, conductor: Conductor, peering: Peering?) throws -> some Service {
        let token = try Self.token(at: tokenFile)
        let router = Router()
        router.middlewares.add(ErrorMiddleware(logger: logger, activity: activity))
        router.middlewares.add(BearerMiddleware(token: token))
        let routes = Routes(daemon: self, conductor: conductor, peering: peering)
        let table = RouteTable(router)
        routes.add(to: table)
        routes.addPeers(to: table, peering: peering)
        let logger = self.logger
        let listening = self.listening
        return Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: Self.idleTimeout)),
            configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "sdd"),
            onServerRunning: { channel in
                listening.set(channel.localAddress?.port)
                logger.info("serving on loopback TCP", metadata: ["port": "\(channel.localAddress?.port ?? 0)"])
            },
            logger: logger
        )
    }

    /// A connection that sends nothing for this long (a request's head or body included) is closed: a client
    /// cannot hold connections open with half-sent requests. A request being answered (an event stream) is
    /// not idle.
    static let idleTimeout: TimeAmount = .seconds(10)

    /// The bearer token in `path`, made when there is none. One there is used only if it is a regular file of
    /// this user's that nobody else can read (opened without following a link); otherwise a new one replaces it
    /// atomically.
    static func token(at path: String) throws -> String {
        if let bytes = FileSystem.readPrivateFile(path, limit: 4_096) {
            let token = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if token.utf8.count >= 32
                && token.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
            {
                return token
            }
        }
        var random = SystemRandomNumberGenerator()
        let token = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &random)) }.joined()
        try FileSystem.makePrivateDirectory(FileSystem.parent(of: path))
        try FileSystem.writeAtomically(Array((token + "\n").utf8), to: path, mode: 0o600)
        return token
    }

    /// The runtime folder (this user's only: 0700, checked, never a link), and no socket in the way: a live
    /// daemon there is an error, a dead one's socket is removed.
    func prepareSocket() throws {
        let folder = FileSystem.parent(of: socket)
        do { try FileSystem.makePrivateDirectory(folder) } catch { throw DaemonError(error.message) }
        guard FileSystem.exists(socket) else { return }
        if let other = try? APIClient(socket: socket).get("/v1/info", DaemonInfo.self) {
            throw DaemonError(
                "a daemon already serves \(socket) (pid \(other.pid), library \(other.libraryName)); "
                    + "`sd daemon stop` stops it"
            )
        }
        FileSystem.remove(socket)
    }
}

public struct DaemonError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Every failure becomes a JSON answer `{"error": "..."}` with a 4xx status for the client's mistakes, 500 for
/// ours (logged); the daemon goes on.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    let logger: Logger
    var activity: Activity?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        activity?.touch()
        let response = await answer(request, context: context, next: next)
        logger.debug("\(request.method) \(request.uri.path) \(response.status.code)")
        return response
    }

    func answer(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async
        -> Response
    {
        // No query parameter (paths, words, ids) may hold a NUL or control byte: refused before any handler.
        for (name, value) in request.uri.queryParameters {
            if let problem = Body.pathProblem(String(value)) {
                return JSON.error(.badRequest, "query parameter '\(name)': \(problem)")
            }
        }
        do {
            return try await next(request, context)
        } catch let error as BadRequest {
            return JSON.error(.badRequest, error.message)
        } catch let error as NotInIndex {
            return JSON.error(.notFound, error.message)
        } catch let error as BadQuery {
            return JSON.error(.badRequest, error.message)
        } catch let error as RequestError {
            return JSON.error(.badRequest, error.message)
        } catch let error as TagError {
            return JSON.error(.badRequest, error.message)
        } catch let error as ActionRefused {
            return JSON.error(.conflict, error.message)
        } catch let error as JobError {
            let status: HTTPResponse.Status =
                switch error.code {
                case .notFound: .notFound
                case .busy, .finished: .conflict
                default: .badRequest
                }
            return JSON.error(status, error.message)
        } catch let error as NetError {
            let status: HTTPResponse.Status =
                switch error.kind {
                case .pairing, .refused, .protocolError: .conflict
                case .unreachable, .closed, .timeout: .badGateway
                case .identity: .internalServerError
                }
            return JSON.error(status, error.message)
        } catch let error as HTTPError {
            return JSON.error(error.status, error.body ?? "\(error.status.reasonPhrase)")
        } catch {
            if let damage = LibraryError.damage(error) {
                logger.error("the library is damaged", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
                return JSON.error(.internalServerError, damage.message)
            }
            logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return JSON.error(.internalServerError, "\(error)")
        }
    }
}

/// A request the client got wrong, in words.
struct BadRequest: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

enum JSON {
    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        let data = try encoder.encode(value)
        return Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }

    static func error(_ status: HTTPResponse.Status, _ message: String) -> Response {
        (try? response(APIErrorBody(error: message), status: status)) ?? Response(status: status)
    }
}

/// The router, and the list of what it serves (for the API document's test). Handlers run on the request
/// threads (they read SQLite and the disk, which blocks), never on the cooperative pool.
final class RouteTable {
    let router: Router<BasicRequestContext>
    private(set) var served: [String] = []
    static let requestThreads = ThreadExecutor(
        name: "sdd-request",
        threads: max(16, 4 * ProcessInfo.processInfo.activeProcessorCount)
    )

    init(_ router: Router<BasicRequestContext>) { self.router = router }

    private func onRequestThreads<Output: ResponseGenerator>(
        _ handler: @escaping @Sendable (Request, BasicRequestContext) async throws -> Output
    ) -> @Sendable (Request, BasicRequestContext) async throws -> Response {
        { request, context in
            try await withTaskExecutorPreference(Self.requestThreads) {
                try await handler(request, context).response(from: request, context: context)
            }
        }
    }

    func get(
        _ path: String,
        use handler: @escaping @Sendable (Request, BasicRequestContext) async throws -> some ResponseGenerator
    ) {
        served.append("GET \(path)")
        router.get(RouterPath(path), use: onRequestThreads(handler))
    }

    func post(
        _ path: String,
        use handler: @escaping @Sendable (Request, BasicRequestContext) async throws -> some ResponseGenerator
    ) {
        served.append("POST \(path)")
        router.post(RouterPath(path), use: onRequestThreads(handler))
    }
}

extension Daemon {
    /// What the API serves: "GET /v1/info", ...
    public var routes: [String] {
        let table = RouteTable(Router())
        let routes = Routes(
            daemon: self,
            conductor: Conductor(library: library, hub: hub, logger: logger, watch: false),
            peering: nil
        )
        routes.add(to: table)
        routes.addPeers(to: table, peering: nil)
        return table.served
    }
}

/// The API's routes.
extension Routes {
    /// A path parameter, percent-decoded (a location's path travels escaped, `/` as %2F).
    static func pathParameter(_ context: BasicRequestContext, _ name: String) throws -> String {
        let raw = try context.parameters.require(name)
        guard let decoded = raw.removingPercentEncoding else { throw BadRequest("\(name): bad escaping in '\(raw)'") }
        return decoded
    }
}

struct Routes {
    let daemon: Daemon
    let conductor: Conductor
    /// The daemon on the network (nil with --peer-port off): how other devices can be reached now.
    let peering: Peering?

    func add(to router: RouteTable) {
        let daemon = self.daemon
        let library = daemon.library
        let peering = self.peering
        router.get("/v1/info") { _, _ in
            var info = daemon.info
            info.peerAddress = peering.flatMap { p in p.listeningPort.map { "\(p.host):\($0)" } }
            info.network = peering?.described ?? "peers off (--peer-port off): no sync, no pairing"
            return try JSON.response(info)
        }
        let hub = daemon.hub
        let status = daemon.status
        router.get("/v1/status") { _, _ in
            try JSON.response(try status.get(generation: hub.generation, maxAge: .seconds(1)) { try library.status() })
        }
        router.get("/v1/ls") { request, _ in
            let path = try Query.path(request)
            guard path.hasPrefix("sd://") else {
                return try JSON.response(try Operations.list(library, path: PathText.bytes(path)))
            }
            let parsed: SDPath
            do { parsed = try SDPath(parsing: path) } catch { throw BadRequest("\(error)") }
            guard case .physical(let device, let bytes) = parsed else {
                throw BadRequest("'\(path)' is a content path; give a folder: sd://DEVICE/abs/path")
            }
            return try JSON.response(try Operations.list(library, path: bytes, device: device))
        }
        // Server-sent events: `: subscribed` at once, then one `data: {json}` per event (job progress, index
        // changes), until shutdown.
        router.get("/v1/events") { _, _ in
            let events = hub.subscribe().map { ByteBuffer(string: $0) }
            return Response(
                status: .ok,
                headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                body: .init(asyncSequence: events)
            )
        }
        router.get("/v1/locations") { _, _ in try JSON.response(try library.fetchLocations()) }
        router.post("/v1/locations") { request, context in
            let asked = try await Body.decode(LocationRequest.self, request, context)
            return try JSON.response(try Operations.addLocation(asked, library))
        }
        let conductor = self.conductor
        // Its entries go, never its files; the watcher lets go of it first.
        // (The key is escaped in the path, `/` included: a location's path is a key too.)
        router.get("/v1/locations/{key}/removal") { _, context in
            let location = try Operations.location(try Self.pathParameter(context, "key"), library)
            return try JSON.response(try Operations.locationRemoval(location, library))
        }
        router.post("/v1/locations/{key}/remove") { _, context in
            let location = try Operations.location(try Self.pathParameter(context, "key"), library)
            let removed = try await conductor.withWatcherStopped { try Operations.removeLocation(location, library) }
            return try JSON.response(removed)
        }
        // GET /v1/search?q=TEXT[&sort=relevance|name|size|modified][&limit=N][&cursor=C]
        let searches = AsyncSemaphore(permits: max(1, ProcessInfo.processInfo.activeProcessorCount))
        router.get("/v1/search") { request, _ in
            let parameters = request.uri.queryParameters
            guard let text = parameters["q"].map(String.init) else {
                throw BadRequest("give the query: /v1/search?q=...")
            }
            let sortText = parameters["sort"].map(String.init) ?? "relevance"
            guard let sort = SearchSort(rawValue: sortText) else {
                throw BadRequest("sort is one of \(SearchSort.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let limitText = parameters["limit"].map(String.init) ?? "50"
            guard let limit = Int(limitText) else { throw BadRequest("limit is a number, not '\(limitText)'") }
            let cursor = parameters["cursor"].map(String.init)
            let search = try Operations.searchRequest(text, sort: sort, limit: limit, cursor: cursor)
            // A search can take a core for a while (a query most names match, before the search index caught
            // up): at most one per core at once, so that quick requests still get the CPU.
            return try await searches.withPermit { try JSON.response(try await Operations.search(library, search)) }
        }
        router.get("/v1/jobs") { request, _ in
            let all = request.uri.queryParameters["all"] == "true"
            return try JSON.response(try library.listJobs(all: all))
        }
        addJobs(to: router)
        addActions(to: router)
        addContent(to: router)
    }
}

extension Routes {
    /// Jobs: index runs, one job's state, pause, resume, cancel.
    func addJobs(to router: RouteTable) {
        let library = daemon.library
        let conductor = self.conductor
        // POST /v1/index {"locations": [...]}: an index job per location (resumed if one was left), run here.
        router.post("/v1/index") { request, context in
            let asked = try await Body.decode(IndexRequest.self, request, context)
            var starts: [IndexStart] = []
            for location in try Operations.locations(asked.locations, library: library) {
                if let reason = Indexer(library: library).offlineReason(location) {
                    try library.setLocationState(id: location.id, state: "offline", reason: reason)
                    let report = IndexReport(location: location.name, offline: reason)
                    starts.append(IndexStart(location: location.name, job: nil, report: report))
                    continue
                }
                let input = IndexJobInput(
                    indexContent: asked.noContent.map { !$0 },
                    allowMassDelete: asked.allowMassDelete,
                    searchIndex: asked.noSearchIndex.map { !$0 }
                )
                let job =
                    try library.fetchUnfinishedJob(kind: "index", target: location.uuid)
                    ?? library.createJob(
                        kind: "index",
                        target: location.uuid,
                        input: Operations.jsonText(input),
                        checkpoint: nil,
                        state: "queued"
                    )
                await conductor.launch(job)
                starts.append(IndexStart(location: location.name, job: job.id, report: nil))
            }
            return try JSON.response(starts, status: .accepted)
        }
        router.get("/v1/jobs/{id}") { _, context in
            let job = try library.fetchJob(try context.parameters.require("id"))
            return try JSON.response(try await Self.answer(job, conductor))
        }
        router.post("/v1/jobs/{id}/pause") { _, context in
            let job = try library.fetchJob(try context.parameters.require("id"))
            return try JSON.response(try conductor.runner.pause(job.id))
        }
        router.post("/v1/jobs/{id}/cancel") { _, context in
            let job = try library.fetchJob(try context.parameters.require("id"))
            return try JSON.response(try conductor.runner.cancel(job.id))
        }
        // Runs a paused or interrupted job here; answers at once (GET /v1/jobs/ID follows it).
        router.post("/v1/jobs/{id}/resume") { _, context in
            let job = try library.fetchJob(try context.parameters.require("id"))
            if job.isFinished { throw JobError(.finished, "job \(job.id.prefix(8)) has already \(job.state)") }
            if library.isJobRunning(job.id), await !conductor.isRunning(job.id) {
                throw JobError(.busy, "job \(job.id.prefix(8)) is running in another sd process")
            }
            await conductor.launch(job)
            return try JSON.response(try await Self.answer(try library.fetchJob(job.id), conductor), status: .accepted)
        }
    }

    static func answer(_ job: JobRecord, _ conductor: Conductor) async throws -> JobAnswer {
        let running = await conductor.isRunning(job.id) || conductor.library.isJobRunning(job.id)
        var name: String?
        if job.kind == "index", let uuid = job.target { name = (try? conductor.library.fetchLocation(uuid))?.name }
        return JobAnswer(
            job: job,
            running: running,
            report: conductor.reports.withLock { $0[job.id] },
            targetName: name
        )
    }

    /// Actions: a preview (kept for 15 minutes), then its commit by id; the job runs here.
    func addActions(to router: RouteTable) {
        let peering = self.peering
        let library = daemon.library
        let conductor = self.conductor
        router.post("/v1/actions/preview") { request, context in
            let asked = try await Body.decode(ActionRequest.self, request, context)
            let notes = Mutex<[String]>([])
            let preview = try Operations.preview(
                asked,
                library: library,
                peers: try peering.map { Operations.reach(from: try $0.sync.status()) },
                notes: { n in notes.withLock { $0.append(n) } }
            )
            return try JSON.response(
                PreviewAnswer(id: conductor.keep(preview), preview: preview, notes: notes.withLock { $0 })
            )
        }
        router.post("/v1/actions/{id}/commit") { _, context in
            let id = try context.parameters.require("id")
            guard let preview = conductor.take(id) else {
                throw HTTPError(.notFound, message: "no preview '\(id)' (a preview commits once, within 15 minutes)")
            }
            let job = try Operations.commit(preview, runner: conductor.runner)
            conductor.summaries.withLock { $0[job.id] = Operations.summary(preview) }
            await conductor.launch(job)
            return try JSON.response(job, status: .accepted)
        }
    }
}

/// Request bodies: JSON objects of at most 1 MiB with only the fields their type knows.
enum Body {
    static let limit = 1 << 20

    static func decode<T: APIBody>(
        _ type: T.Type,
        _ request: Request,
        _ context: BasicRequestContext
    ) async throws -> T {
        var request = request
        let buffer: ByteBuffer
        do { buffer = try await request.collectBody(upTo: limit) } catch {
            throw HTTPError(.contentTooLarge, message: "the body is larger than \(limit) bytes")
        }
        let data = Data(buffer.readableBytesView)
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw BadRequest("the body is not a JSON object")
        }
        if let problem = pathProblem(in: object) { throw BadRequest(problem) }
        let known = Set(Mirror(reflecting: T.example).children.compactMap(\.label))
        let unknown = Set(object.keys).subtracting(known)
        guard unknown.isEmpty else {
            throw BadRequest(
                "unknown field(s): \(unknown.sorted().joined(separator: ", ")); known: \(known.sorted().joined(separator: ", "))"
            )
        }
        do { return try JSONDecoder().decode(T.self, from: data) } catch let error as DecodingError {
            throw BadRequest("bad body: \(describe(error))")
        }
    }

    /// Fields that hold paths: checked as bytes before anything uses them.
    static let pathFields: Set<String> = ["path", "paths", "destination", "location", "locations", "ifLost"]

    /// Why a path from a request cannot be one: a NUL or control byte (never in a real path sd handles from a
    /// request; a NUL would cut it where the system reads it).
    static func pathProblem(_ path: String) -> String? {
        guard let byte = path.utf8.first(where: { $0 < 0x20 || $0 == 0x7F }) else { return nil }
        return
            "a path with a control byte (0x\(String(byte, radix: 16))) is not allowed: '\(PlainPath.shown(PathText.bytes(path)))'"
    }

    /// A NUL anywhere in the body, or a control byte in a path field, refuses the request.
    static func pathProblem(in object: [String: Any]) -> String? {
        func strings(_ value: Any) -> [String] {
            if let s = value as? String { return [s] }
            if let a = value as? [Any] { return a.flatMap(strings) }
            if let o = value as? [String: Any] { return o.values.flatMap(strings) }
            return []
        }
        for (key, value) in object {
            for s in strings(value) {
                if s.utf8.contains(0) { return "'\(key)' holds a NUL byte; no value sd takes may" }
                if pathFields.contains(key), let problem = pathProblem(s) { return "'\(key)': \(problem)" }
            }
        }
        return nil
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            keys.isEmpty
                ? "the body" : keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context): return "'\(path(context.codingPath + [key]))' is missing"
        case .typeMismatch(let type, let context): return "\(path(context.codingPath)) should be \(type)"
        case .valueNotFound(let type, let context): return "\(path(context.codingPath)) should be \(type), not null"
        case .dataCorrupted(let context):
            return "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}

extension Routes {
    /// Tags, metadata, duplicates, redundancy, content paths, the audit log, the trash.
    func addContent(to router: RouteTable) {
        let library = daemon.library
        router.get("/v1/tags") { _, _ in try JSON.response(try library.tags()) }
        router.post("/v1/tags/edit") { request, context in
            let edit = try await Body.decode(TagEdit.self, request, context)
            return try JSON.response(MessageAnswer(message: try Operations.editTag(edit, library)))
        }
        router.post("/v1/tags/apply") { request, context in
            let asked = try await Body.decode(TagRequest.self, request, context)
            return try JSON.response(try Operations.setTag(asked, library))
        }
        router.get("/v1/tags/of") { request, _ in
            try JSON.response(try Operations.tags(of: try Query.path(request), library))
        }
        router.post("/v1/meta") { request, context in
            let asked = try await Body.decode(MetaRequest.self, request, context)
            return try JSON.response(try Operations.setMetadata(asked, library))
        }
        router.get("/v1/meta") { request, _ in
            try JSON.response(try Operations.metadata(of: try Query.path(request), library))
        }
        router.get("/v1/dupes") { request, _ in
            let report = try Operations.dupes(
                library,
                minSize: Query.string(request, "minSize"),
                kind: Query.string(request, "kind"),
                location: Query.string(request, "location"),
                verify: try Query.bool(request, "verify") ?? false
            )
            return try JSON.response(report)
        }
        router.get("/v1/redundancy") { request, _ in
            let kind = Query.string(request, "kind")
            if let what = Query.string(request, "ifLost") {
                return try JSON.response(try Operations.loss(library, what, kind: kind))
            }
            return try JSON.response(
                try Operations.redundancy(library, minCopies: try Query.int(request, "minCopies"), kind: kind)
            )
        }
        router.get("/v1/log") { request, _ in
            try JSON.response(try library.auditLog(limit: max(1, try Query.int(request, "limit") ?? 50)))
        }
        router.get("/v1/trash") { _, _ in try JSON.response(try library.trashItems()) }
    }
}

/// Query parameters, checked.
enum Query {
    static func string(_ request: Request, _ name: String) -> String? {
        request.uri.queryParameters[Substring(name)].map(String.init)
    }

    static func int(_ request: Request, _ name: String) throws -> Int? {
        guard let text = string(request, name) else { return nil }
        guard let value = Int(text) else { throw BadRequest("\(name) is a whole number, not '\(text)'") }
        return value
    }

    static func bool(_ request: Request, _ name: String) throws -> Bool? {
        guard let text = string(request, name) else { return nil }
        guard let value = Bool(text) else { throw BadRequest("\(name) is true or false, not '\(text)'") }
        return value
    }

    /// `path`: an absolute path (no '..'), or (when `sdPaths`) an SdPath.
    static func path(_ request: Request, sdPaths: Bool = true) throws -> String {
        guard let path = string(request, "path"), path.hasPrefix("/") || (sdPaths && path.hasPrefix("sd://")) else {
            throw BadRequest(
                sdPaths ? "give an absolute path or an SdPath: ?path=/home/me" : "give an absolute path: ?path=/home/me"
            )
        }
        guard !PathText.hasDotDot(path) else {
            throw BadRequest("a path with '..' is not allowed; give it resolved")
        }
        if let problem = Body.pathProblem(path) { throw BadRequest(problem) }
        return path
    }
}

/// The TCP port being served, once it is.
final class TCPListening: Sendable {
    private let value = Mutex<Int?>(nil)
    var port: Int? { value.withLock { $0 } }
    func set(_ port: Int?) { value.withLock { $0 = port } }
}

/// Refuses (401) every request without the daemon's bearer token; compared in constant time.
struct BearerMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    let token: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let given = request.headers[.authorization] ?? ""
        let expected = "Bearer " + token
        var difference = UInt8(given.utf8.count == expected.utf8.count ? 0 : 1)
        for (a, b) in zip(given.utf8, expected.utf8) { difference |= a ^ b }
        guard difference == 0 else {
            return JSON.error(.unauthorized, "give the token in sdd.token as 'Authorization: Bearer TOKEN'")
        }
        return try await next(request, context)
    }
}

/// A value computed once for every caller that asks while it is fresh: same generation, younger than
/// `maxAge`. While it is being computed again, callers get the previous value at once (the first callers,
/// with none yet, wait): a slow computation never holds more than one request thread.
final class Fresh<T: Sendable>: @unchecked Sendable {
    // @unchecked: the fields are only touched under `lock`.
    private let lock = NSCondition()
    private var value: T?
    private var generation = -1
    private var at = ContinuousClock.now
    private var computing = false

    func get(generation current: Int, maxAge: Duration, _ compute: () throws -> T) throws -> T {
        lock.lock()
        while true {
            if let value, generation == current, ContinuousClock.now - at < maxAge {
                lock.unlock()
                return value
            }
            if !computing { break }
            if let value {
                lock.unlock()
                return value
            }
            lock.wait()
        }
        computing = true
        lock.unlock()
        defer {
            lock.lock()
            computing = false
            lock.broadcast()
            lock.unlock()
        }
        let fresh = try compute()
        lock.lock()
        (value, generation, at) = (fresh, current, ContinuousClock.now)
        lock.unlock()
        return fresh
    }
}

/// At most `permits` holders at once; the others wait suspended (holding no thread), first come first served.
actor AsyncSemaphore {
    private var free: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(permits: Int) { free = permits }

    func withPermit<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        if free > 0 {
            free -= 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    private func release() {
        if waiting.isEmpty {
            free += 1
        } else {
            waiting.removeFirst().resume()
        }
    }
}
