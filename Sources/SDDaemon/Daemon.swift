import Foundation
import Hummingbird
import Logging
import SDAPI
import SDCore
import SDStore
import SDSystem
import ServiceLifecycle
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
    let logger: Logger
    let hub = EventHub()

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
            startedAt: Self.started
        )
    }

    static let started = Int64(Date().timeIntervalSince1970 * 1000)

    /// Serves until SIGTERM or SIGINT.
    public func run() async throws {
        _ = Self.started  // a static is set on first use: take the start time now, not at the first /v1/info
        try prepareSocket()
        let router = Router()
        router.middlewares.add(ErrorMiddleware(logger: logger))
        Routes(daemon: self).add(to: router)
        let socket = self.socket
        let pidFile = self.pidFile
        let logger = self.logger
        let app = Application(
            router: router,
            configuration: .init(address: .unixDomainSocket(path: socket), serverName: "sdd"),
            onServerRunning: { _ in
                chmod(socket, 0o600)
                try? FileSystem.writeAtomically(Array("\(getpid())\n".utf8), to: pidFile, mode: 0o600)
                logger.info("serving", metadata: ["socket": "\(socket)"])
            },
            logger: logger
        )
        defer {
            FileSystem.remove(socket)
            FileSystem.remove(pidFile)
            logger.info("stopped")
        }
        // Stopping goes in reverse order: the background work first (event streams end, the watcher and jobs
        // checkpoint), then the server, which waits for requests in flight (open event streams included).
        let group = ServiceGroup(
            configuration: .init(
                services: [app, BackgroundWork(library: library, hub: hub, logger: logger, watch: watch)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }

    /// The runtime folder (0700), and no socket in the way: a live daemon there is an error, a dead one's
    /// socket is removed.
    func prepareSocket() throws {
        let folder = FileSystem.parent(of: socket)
        try FileSystem.makeDirectories(folder, mode: 0o700)
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

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch let error as BadRequest {
            return JSON.error(.badRequest, error.message)
        } catch let error as NotInIndex {
            return JSON.error(.notFound, error.message)
        } catch let error as BadQuery {
            return JSON.error(.badRequest, error.message)
        } catch let error as HTTPError {
            return JSON.error(error.status, error.body ?? "\(error.status.reasonPhrase)")
        } catch {
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

/// The API's routes.
struct Routes {
    let daemon: Daemon

    func add(to router: Router<BasicRequestContext>) {
        let daemon = self.daemon
        let library = daemon.library
        router.get("/v1/info") { _, _ in try JSON.response(daemon.info) }
        router.get("/v1/status") { _, _ in try JSON.response(try library.status()) }
        router.get("/v1/ls") { request, _ in
            guard let path = request.uri.queryParameters["path"].map(String.init), path.hasPrefix("/") else {
                throw BadRequest("give an absolute path: /v1/ls?path=/home/me")
            }
            guard !path.split(separator: "/").contains("..") else {
                throw BadRequest("a path with '..' is not allowed; give it resolved")
            }
            return try JSON.response(try Operations.list(library, path: Array(path.utf8)))
        }
        let hub = daemon.hub
        // Server-sent events: one `data: {json}` per event (job progress, index changes), until shutdown.
        router.get("/v1/events") { _, _ in
            let events = hub.subscribe().map { ByteBuffer(string: "data: \($0)\n\n") }
            return Response(
                status: .ok,
                headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                body: .init(asyncSequence: events)
            )
        }
        router.get("/v1/locations") { _, _ in try JSON.response(try library.fetchLocations()) }
        // GET /v1/search?q=TEXT[&sort=relevance|name|size|modified][&limit=N][&cursor=C]
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
            return try JSON.response(try await Operations.search(library, search))
        }
        router.get("/v1/jobs") { request, _ in
            let all = request.uri.queryParameters["all"] == "true"
            return try JSON.response(try library.listJobs(all: all))
        }
    }
}
