import CSDPlatform

#if canImport(Glibc)
    @preconcurrency import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A minimal HTTP/1.1 client over a Unix domain socket: one request per connection (`Connection: close`), the
/// whole response read. Enough for the CLI to talk to the daemon on its socket without an HTTP client stack.
/// It talks only to a server run by the same user (checked on the connection: SO_PEERCRED), so a socket
/// another account put in the way is never sent a request.
public enum UnixHTTP {
    public struct Response: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: [UInt8]
    }

    /// Sends `method target` with `body` (JSON) to the server on `socket`.
    ///
    /// #### Errors
    /// `SystemError` when nothing listens there (ENOENT, ECONNREFUSED), when the socket refuses us (EACCES), or
    /// EPROTO when the answer is not HTTP, EPERM when the server is another user's.
    public static func request(
        socket path: String,
        method: String,
        target: String,
        body: [UInt8]? = nil,
        headers: [String: String] = [:]
    ) throws(SystemError) -> Response {
        let fd = try connect(path)
        defer { close(fd) }
        var head = "\(method) \(target) HTTP/1.1\r\nHost: sd\r\nConnection: close\r\n"
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { head += "\(name): \(value)\r\n" }
        if let body {
            head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n"
        }
        head += "\r\n"
        return try exchange(fd, Array(head.utf8) + (body ?? []), path)
    }

    /// Writes the request while reading the answer (a server may answer, say 413, before it read the body, and
    /// stop reading): done when the answer is complete or the server closes. No progress for `timeout`
    /// seconds is an ETIMEDOUT error.
    static func exchange(_ fd: Int32, _ request: [UInt8], _ path: String, timeout: Int32 = 120)
        throws(SystemError) -> Response
    {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var sent = 0
        var writing = true
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            var events = Int16(POLLIN)
            if writing { events |= Int16(POLLOUT) }
            var poller = [pollfd(fd: fd, events: events, revents: 0)]
            let ready = poll(&poller, 1, timeout * 1000)
            if ready < 0 {
                if Glibc_errno() == EINTR { continue }
                throw SystemError.current("poll", path: path)
            }
            if ready == 0 { throw SystemError("wait for the answer", path: path, errno: ETIMEDOUT) }
            if writing && poller[0].revents & Int16(POLLOUT) != 0 {
                let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n > 0 {
                    sent += n
                    if sent == request.count { writing = false }
                } else if n < 0 && Glibc_errno() != EAGAIN && Glibc_errno() != EINTR {
                    writing = false  // the server stopped reading (it answered, or closed): read what it said
                }
            }
            if poller[0].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    data += buffer[0..<n]
                    // Parse only once the answer can be whole (a big body arrives in many reads).
                    if mayBeComplete(data), let response = try? parse(data, path, complete: true) { return response }
                } else if n == 0 || (Glibc_errno() != EAGAIN && Glibc_errno() != EINTR) {
                    if data.isEmpty { throw SystemError("read the answer", path: path, errno: ECONNRESET) }
                    return try parse(data, path, complete: false)
                }
            }
        }
    }

    /// The process and user serving `socket` (the kernel's answer for the connection, not the server's word).
    public static func server(of socket: String) throws(SystemError) -> (pid: Int32, uid: UInt32) {
        let fd = try connectAnyone(socket)
        defer { close(fd) }
        return try credentials(fd: fd, socket)
    }

    static func credentials(fd: Int32, _ path: String) throws(SystemError) -> (pid: Int32, uid: UInt32) {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        guard csd_peer_credentials(fd, &pid, &uid) == 0 else {
            throw SystemError.current("peer credentials", path: path)
        }
        return (pid, uid)
    }

    /// A connection to the server on `path`, refused (EPERM) when that server runs as another user.
    static func connect(_ path: String) throws(SystemError) -> Int32 {
        let fd = try connectAnyone(path)
        let server: (pid: Int32, uid: UInt32)
        do { server = try credentials(fd: fd, path) } catch {
            close(fd)
            throw error
        }
        guard server.uid == geteuid() else {
            close(fd)
            throw SystemError("connect (the server there is uid \(server.uid)'s, not yours)", path: path, errno: EPERM)
        }
        return fd
    }

    static func connectAnyone(_ path: String) throws(SystemError) -> Int32 {
        #if canImport(Glibc)
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
            let fd = socket(AF_UNIX, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw SystemError.current("socket", path: path) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else {
            close(fd)
            throw SystemError("connect", path: path, errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in bytes.enumerated() { raw[i] = byte }
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc_connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let error = SystemError.current("connect", path: path)
            close(fd)
            throw error
        }
        return fd
    }

    /// Status line, headers, and the body (by Content-Length, chunked, or to the end).
    /// Whether `data` may hold a whole answer: its head, and as many body bytes as Content-Length says (or the
    /// end of a chunked body).
    static func mayBeComplete(_ data: [UInt8]) -> Bool {
        guard let end = data.firstRange(of: [13, 10, 13, 10]) else { return false }
        let head = String(decoding: data[..<end.lowerBound], as: UTF8.self).lowercased()
        if let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
            let length = Int(line.dropFirst("content-length:".count).drop { $0 == " " })
        {
            return data.count - end.upperBound >= length
        }
        if head.contains("transfer-encoding: chunked") { return data.suffix(5).elementsEqual([48, 13, 10, 13, 10]) }
        return false
    }

    /// `complete`: throw unless the whole body is there (by Content-Length or the chunked end).
    static func parse(_ data: [UInt8], _ path: String, complete: Bool) throws(SystemError) -> Response {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = data.firstRange(of: separator) else {
            throw SystemError("read response", path: path, errno: EPROTO)
        }
        let lines = String(decoding: data[..<end.lowerBound], as: UTF8.self).split(separator: "\r\n").map(String.init)
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), let status = Int(statusParts[1]) else {
            throw SystemError("read response", path: path, errno: EPROTO)
        }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = String(line[line.index(after: colon)...].drop { $0 == " " })
        }
        var body = Array(data[end.upperBound...])
        let incomplete = SystemError("read the answer", path: path, errno: EPROTO)
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            var decoded: [UInt8] = []
            var index = 0
            var ended = false
            while let lineEnd = body[index...].firstRange(of: [13, 10]) {
                let sizeText = String(decoding: body[index..<lineEnd.lowerBound], as: UTF8.self)
                guard let size = Int(sizeText.split(separator: ";").first ?? "", radix: 16) else { break }
                if size == 0 {
                    ended = true
                    break
                }
                let start = lineEnd.upperBound
                guard start + size <= body.count else { throw SystemError("read response", path: path, errno: EPROTO) }
                decoded += body[start..<start + size]
                index = start + size + 2
                if index > body.count { break }
            }
            if complete && !ended { throw incomplete }
            body = decoded
        } else if let length = headers["content-length"].flatMap({ Int($0) }) {
            if complete && body.count < length { throw incomplete }
            if length < body.count { body = Array(body[..<length]) }
        } else if complete {
            throw incomplete  // the body ends when the server closes
        }
        return Response(status: status, headers: headers, body: body)
    }
}

@inline(__always)
private func Glibc_connect(_ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32 {
    connect(fd, address, length)
}
