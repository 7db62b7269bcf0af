import Foundation
import SDCore
import SDStore
import SDSystem

/// The daemon's API: where it listens, what it answers, and the operations both the daemon and the CLI run
/// (the CLI runs them directly when no daemon runs, so the answers are the same either way).
public enum API {
    /// The folder of the daemon's socket and pid file: `$SD_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/sd`, else
    /// `/tmp/sd-UID` (made 0700).
    public static func runtimeDirectory(_ environment: [String: String] = ProcessInfo.processInfo.environment)
        -> String
    {
        DeviceIdentity.runtimeDirectory(environment: environment)
    }

    public static func socketPath(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        runtimeDirectory(environment) + "/sdd.sock"
    }

    /// The bearer token for the daemon's loopback TCP port (0600).
    public static func tokenPath(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        runtimeDirectory(environment) + "/sdd.token"
    }

    public static func pidPath(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        runtimeDirectory(environment) + "/sdd.pid"
    }
}

/// Who answers on the socket.
public struct DaemonInfo: Codable, Sendable, Equatable {
    public var pid: Int32
    public var libraryID: String
    public var libraryName: String
    public var libraryPath: String
    /// Milliseconds since 1970.
    public var startedAt: Int64
    public var apiVersion: Int
    /// The loopback TCP port also served (with the bearer token in sdd.token), if any.
    public var tcpPort: Int?
    /// Where it accepts paired devices now (`HOST:PORT`), if it does.
    public var peerAddress: String?
    /// What it does on the network, in words ("not listening for peers until a device is paired (sd pair)",
    /// "accepting paired devices on 0.0.0.0:7373; LAN discovery on UDP 7374", "peers off").
    public var network: String?

    public init(
        pid: Int32,
        libraryID: String,
        libraryName: String,
        libraryPath: String,
        startedAt: Int64,
        tcpPort: Int? = nil
    ) {
        self.pid = pid
        self.libraryID = libraryID
        self.libraryName = libraryName
        self.libraryPath = libraryPath
        self.startedAt = startedAt
        self.tcpPort = tcpPort
        apiVersion = 1
    }
}

/// The body of every 4xx and 5xx answer.
public struct APIErrorBody: Codable, Sendable, Equatable {
    public var error: String
    public init(error: String) { self.error = error }
}

/// An answer the daemon gave that is not a success: its status and message (said to the user as is).
public struct APIError: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var message: String
    public init(status: Int, message: String) {
        self.status = status
        self.message = message
    }
    public var description: String { message }
}

/// One child of a folder, as `sd ls` shows it.
public struct ListItem: Codable, Sendable, Equatable {
    public var name: String
    /// The name to show: as is when it is UTF-8, else with its odd bytes escaped (`\xFF`), never replaced.
    public var display: String
    public var type: String
    public var category: String?
    public var size: Int64
    public var modified: String?
    public var contentID: String?
    public var error: String?
}

/// What `ls` asks that the index cannot answer: said to the user as is (a 404 through the daemon).
public struct NotInIndex: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Operations shared by the daemon's handlers and the CLI's direct path.
public enum Operations {
    /// A folder's children from the index (or the entry itself when `path` is a file): of this device, or of
    /// another `device` the library is shared with (its entries as last synced).
    public static func list(_ library: Library, path: [UInt8], device: DeviceID? = nil) throws -> [ListItem] {
        let other = device.flatMap { $0 == library.device.id ? nil : $0 }
        guard let (_, entryID) = try library.resolveEntry(path: path, device: other) else {
            let shown = PathText.string(path)
            if let other {
                throw NotInIndex(
                    message: "'sd://\(other)\(shown)' is not in the index: that device has no location there, or "
                        + "its entries have not arrived yet (see `sd sync status`)"
                )
            }
            throw NotInIndex(
                message: "'\(shown)' is not in the index; see `sd location list`, then `sd index`"
            )
        }
        let entry = try library.fetchEntry(id: entryID)
        let children = entry?.type == .directory ? try library.fetchChildren(of: entryID) : (entry.map { [$0] } ?? [])
        let formatter = ISO8601DateFormatter()
        return children.map { c in
            ListItem(
                name: PathText.string(c.name),
                display: displayName(c.name),
                type: "\(c.type)",
                category: c.category,
                size: c.type == .directory ? (c.aggregateSize ?? 0) : c.size,
                modified: c.mtimeNanoseconds.map {
                    formatter.string(from: Date(timeIntervalSince1970: Double($0) / 1e9))
                },
                contentID: c.contentID,
                error: c.error
            )
        }
    }
}

extension Operations {
    /// A name as it may be shown: bytes that are not UTF-8, controls and direction characters escaped
    /// (`PathText.display`), never silently replaced.
    public static func displayName(_ bytes: [UInt8]) -> String {
        PathText.display(bytes: bytes).text
    }
}

/// The CLI's side of the API: requests over the daemon's Unix socket.
public struct APIClient: Sendable {
    public let socket: String

    public init(socket: String = API.socketPath()) { self.socket = socket }

    /// The daemon answering on the socket, or nil when none does (no socket, or nobody listening).
    public func info() -> DaemonInfo? {
        guard FileSystem.exists(socket) else { return nil }
        return try? get("/v1/info", DaemonInfo.self)
    }

    public func get<T: Decodable>(_ target: String, _ type: T.Type) throws -> T {
        try decode(try send("GET", target, nil), type)
    }

    public func post<T: Decodable>(_ target: String, _ body: some Encodable, _ type: T.Type) throws -> T {
        try decode(try send("POST", target, Array(try JSONEncoder().encode(body))), type)
    }

    func send(_ method: String, _ target: String, _ body: [UInt8]?) throws -> UnixHTTP.Response {
        let response = try UnixHTTP.request(socket: socket, method: method, target: target, body: body)
        guard (200..<300).contains(response.status) else {
            let message =
                (try? JSONDecoder().decode(APIErrorBody.self, from: Data(response.body)))?.error
                ?? "the daemon answered \(response.status)"
            throw APIError(status: response.status, message: message)
        }
        return response
    }

    func decode<T: Decodable>(_ response: UnixHTTP.Response, _ type: T.Type) throws -> T {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(T.self, from: Data(response.body))
    }

    /// `value` escaped for a query string.
    public static func query(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~/")))
            ?? value
    }
}
