import Foundation
import SDCore
import SDNet
import SDStore
import SDSystem
import Synchronization

/// Serves this device's files to a device the library is shared with: only regular files inside one of this
/// device's locations, named by their plain absolute path (no `..`), and really there (a symbolic link that
/// leads out of every location is refused). Checked again at every request: a path may be replaced by a link
/// between two reads of one file.
struct PeerFileServer: Sendable {
    let library: Library

    /// Why `path` may not be served, or nil when it may.
    func refusal(_ path: String) -> String? {
        guard path.hasPrefix("/"), !path.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }),
            !path.contains("//"), path.count == 1 || !path.hasSuffix("/")
        else { return "'\(path)' is not a plain absolute path" }
        let roots = ((try? library.fetchLocations()) ?? []).map { String(decoding: $0.path, as: UTF8.self) }
        guard roots.contains(where: { Library.isInside(Array(path.utf8), Array($0.utf8)) }) else {
            return "\(path) is not inside a location of \(library.device.name)"
        }
        // Where it really is must be inside a location too (as its root really is): a symbolic link inside a
        // location must not lead out of it.
        func real(_ p: String) -> String { URL(fileURLWithPath: p).resolvingSymlinksInPath().path }
        let resolved = Array(real(path).utf8)
        guard roots.contains(where: { Library.isInside(resolved, Array(real($0).utf8)) }) else {
            return "\(path) leads out of \(library.device.name)'s locations through a symbolic link"
        }
        return nil
    }

    func info(_ path: String, fullHash: Bool) -> RemoteFileInfo {
        if let reason = refusal(path) { return .refused(reason) }
        do {
            let reader = try LocalFileReader(path: path)
            let size = try reader.size()
            let stat = try Directory.stat(Array(path.utf8))
            let id = try ContentHasher().contentID(of: reader)
            let full = fullHash ? try ContentHasher.integrityHash(mapping: reader).hex : nil
            return RemoteFileInfo(
                size: Int64(size),
                mtimeNanoseconds: stat.mtimeNanoseconds,
                contentID: id?.hex,
                fullHash: full,
                error: nil,
                mode: stat.mode & 0o7777
            )
        } catch {
            return .refused("\(error)")
        }
    }

    func read(_ id: UInt64, _ path: String, offset: Int64, length: Int) -> SyncMessage {
        if let reason = refusal(path) { return .fileData(id: id, offset: offset, bytes: [], error: reason) }
        do {
            let file = try ReadOnlyFile(path: path)
            var bytes = [UInt8](repeating: 0, count: length)
            var got = 0
            while got < length {
                let n = try bytes.withUnsafeMutableBytes { buffer in
                    try file.read(
                        into: UnsafeMutableRawBufferPointer(rebasing: buffer[got...]),
                        at: UInt64(offset) + UInt64(got)
                    )
                }
                if n == 0 { break }
                got += n
            }
            bytes.removeLast(length - got)
            return .fileData(id: id, offset: offset, bytes: bytes, error: nil)
        } catch {
            return .fileData(id: id, offset: offset, bytes: [], error: "\(error)")
        }
    }
}

/// A connection to another device's files (over the sync connection of a library shared with it): a file's
/// description, and its bytes by range, several reads in flight.
public final class PeerFileSession: Sendable {
    public let link: PeerLink
    private let ids = IDCounter()

    init(link: PeerLink) { self.link = link }

    /// The device's description of one of its files.
    ///
    /// #### Errors
    /// `PeerFileError` with the device's reason when it will not or cannot serve it; `NetError` when the
    /// connection fails.
    public func info(_ path: String, fullHash: Bool) async throws -> RemoteFileInfo {
        let id = ids.next()
        try await link.send(SyncMessage.fileInfoRequest(id: id, path: path, fullHash: fullHash).frame)
        guard case .fileInfo(let got, let info) = try await answer(), got == id else {
            throw NetError(.protocolError, "\(link.peer.name) answered out of turn")
        }
        if let error = info.error { throw PeerFileError("\(link.peer.name): \(error)") }
        return info
    }

    /// Reads `path` from `offset` to `end` in pieces of `piece` bytes, `window` requests in flight, handing each
    /// piece to `take` in order (it may throw to stop).
    public func read(
        _ path: String,
        from offset: Int64,
        to end: Int64,
        piece: Int = 1 << 20,
        window: Int = 8,
        _ take: (Int64, [UInt8]) throws -> Void
    ) async throws {
        var asked = offset
        var expected: [(id: UInt64, offset: Int64, length: Int)] = []
        var received = offset
        while received < end {
            while expected.count < window && asked < end {
                let length = Int(min(Int64(piece), end - asked))
                let id = ids.next()
                try await link.send(SyncMessage.readRequest(id: id, path: path, offset: asked, length: length).frame)
                expected.append((id, asked, length))
                asked += Int64(length)
            }
            let next = expected.removeFirst()
            guard case .fileData(let id, let at, let bytes, let error) = try await answer(), id == next.id,
                at == next.offset
            else { throw NetError(.protocolError, "\(link.peer.name) answered out of turn") }
            if let error { throw PeerFileError("\(link.peer.name): \(error)") }
            guard bytes.count == next.length else {
                throw PeerFileError("\(path) on \(link.peer.name) got shorter while it was being copied")
            }
            try take(at, bytes)
            received += Int64(bytes.count)
        }
    }

    private func answer() async throws -> SyncMessage { try await link.syncAnswer(timeout: .seconds(120)) }

    public func close() async { await link.close() }
}

/// A device would not or could not serve a file (its reason), or the file changed under the copy.
public struct PeerFileError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

final class IDCounter: Sendable {
    private let value = Mutex<UInt64>(0)
    func next() -> UInt64 {
        value.withLock {
            $0 += 1; return $0
        }
    }
}

extension SyncService {
    /// A file session with a device this library is shared with (connected, library opened).
    public func fileSession(_ device: DeviceID) async throws -> PeerFileSession {
        PeerFileSession(link: try await openLink(device))
    }
}

extension SyncService {
    /// Connects to `device` and measures one request's round trip on the opened connection (milliseconds).
    public func measureRoundTrip(_ device: DeviceID) async throws -> Double {
        let link = try await openLink(device)
        defer { Task { await link.close() } }
        let start = ContinuousClock.now
        // A request for changes after the newest possible: answered at once, with nothing.
        try await link.send(SyncMessage.sharedRequest(id: 1, after: Int64.max, limit: 1).frame)
        _ = try await link.syncAnswer(timeout: .seconds(10))
        return (ContinuousClock.now - start).milliseconds
    }
}

extension PeerLink {
    /// The next sync message from the other side, past any announcement of changes (which may come at any time
    /// on a sync connection); a closed connection is an error.
    func syncAnswer(timeout: Duration) async throws -> SyncMessage {
        while true {
            guard let frame = try await receive(timeout: timeout) else {
                throw NetError(.closed, "\(peer.name) closed the connection")
            }
            let message = try SyncMessage(frame)
            if message != .changed { return message }
        }
    }
}
