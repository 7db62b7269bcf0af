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
    func refusal(_ path: String) -> String? { refusal(path, rootToo: false) }

    /// Why `path` is not a plain absolute path inside one of this device's locations (or, with `rootToo`, one
    /// of their roots), really (a symbolic link must not lead out); nil when it is.
    func refusal(_ path: String, rootToo: Bool) -> String? {
        guard path.hasPrefix("/"), !path.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }),
            !path.contains("//"), path.count == 1 || !path.hasSuffix("/")
        else { return "'\(path)' is not a plain absolute path" }
        let roots = ((try? library.fetchLocations()) ?? []).map { String(decoding: $0.path, as: UTF8.self) }
        func within(_ p: String, _ root: String) -> Bool {
            (rootToo && p == root) || Library.isInside(Array(p.utf8), Array(root.utf8))
        }
        guard roots.contains(where: { within(path, $0) }) else {
            return "\(path) is not inside a location of \(library.device.name)"
        }
        // Where it really is must be inside a location too (as its root really is): a symbolic link inside a
        // location must not lead out of it.
        func real(_ p: String) -> String { URL(fileURLWithPath: p).resolvingSymlinksInPath().path }
        let resolved = real(path)
        guard roots.contains(where: { within(resolved, real($0)) }) else {
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
            let bytes = try ReadOnlyFile(path: path).bytes(length, at: offset)
            return .fileData(id: id, offset: offset, bytes: bytes, error: nil)
        } catch {
            return .fileData(id: id, offset: offset, bytes: [], error: "\(error)")
        }
    }
}

/// Receives files another device sends (`sd cp SOURCE sd://DEVICE/path` run there): only into folders inside
/// this device's locations (their roots included), by plain path, really there (no symbolic link leading
/// out), checked again at every request. A file is received into a hidden temporary beside its target, named
/// by the sender's tag; it replaces nothing until it is whole, flushed, and equal to what the sender says
/// (content id or whole-file BLAKE3, read back from this disk), and an existing file only when the sender's
/// plan said so. Folders written into are noted in `written` (to bring the index up to date).
struct PeerFileReceiver: Sendable {
    let library: Library
    let written: WrittenFolders?

    /// Why files may not be written at `path`, or nil.
    func refusal(_ path: String) -> String? {
        let folder = FileSystem.parent(of: path)
        let name = String(path[path.index(after: path.lastIndex(of: "/") ?? path.startIndex)...])
        if name.isEmpty || name.utf8.starts(with: FolderListing.partPrefix) {
            return "'\(path)' is not a name a file can be given here"
        }
        guard path.hasPrefix("/"), name != ".", name != ".." else { return "'\(path)' is not a plain absolute path" }
        // The folder written into (which exists: its real place is checked, links resolved).
        if let reason = PeerFileServer(library: library).refusal(folder, rootToo: true) { return reason }
        guard FileSystem.isDirectory(folder) else {
            return "\(folder) is not a folder on \(library.device.name)"
        }
        return nil
    }

    static func validTag(_ tag: String) -> Bool {
        (1...64).contains(tag.utf8.count)
            && tag.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D }
    }

    /// The temporary a file is received into.
    static func partPath(_ path: String, _ tag: String) -> String {
        FileSystem.parent(of: path) + "/" + String(decoding: FolderListing.partPrefix, as: UTF8.self) + "in-" + tag
    }

    /// The answer (`pushDone`) to a push request, or nil for another message.
    func answer(_ message: SyncMessage) -> SyncMessage? {
        let id: UInt64
        let path: String
        switch message {
        case .pushFolder(let i, let p), .pushOpen(let i, let p, _, _), .pushData(let i, let p, _, _, _, _),
            .pushCommit(let i, let p, _, _), .pushAbort(let i, let p, _):
            id = i
            path = p
        default:
            return nil
        }
        do {
            return .pushDone(id: id, value: try handle(message, path), error: nil)
        } catch {
            return .pushDone(id: id, value: 0, error: "\(error)")
        }
    }

    private func handle(_ message: SyncMessage, _ path: String) throws -> Int64 {
        if let reason = refusal(path) { throw PeerFileError(reason) }
        switch message {
        case .pushFolder:
            if !FileSystem.isDirectory(path) {
                if FileSystem.exists(path) { throw PeerFileError("\(path) exists and is not a folder") }
                try FileSystem.makeDirectories(path)
                try FileSystem.syncDirectory(containing: path)
            }
            written?.insert(FileSystem.parent(of: path))
            return 0
        case .pushOpen(_, _, let tag, let resumeAt):
            let part = try Self.part(path, tag)
            if resumeAt > 0, let size = (try? Directory.stat(Array(part.utf8)))?.size {
                let start = min(resumeAt, Int64(size))
                _ = try PartFile(path: part, mode: 0o600, resumeAt: start)
                return start
            }
            FileSystem.remove(part)
            _ = try PartFile(path: part, mode: 0o600)
            return 0
        case .pushData(_, _, let tag, let offset, let bytes, let sync):
            let part = try Self.part(path, tag)
            guard FileSystem.exists(part) else { throw PeerFileError("no file is being received for \(path)") }
            let file = try PartFile(existing: part)
            try bytes.withUnsafeBytes { try file.write($0, at: offset) }
            if sync { try file.sync() }
            return offset + Int64(bytes.count)
        case .pushCommit(_, _, let tag, let commit):
            let part = try Self.part(path, tag)
            guard FileSystem.exists(part) else { throw PeerFileError("no file is being received for \(path)") }
            do {
                let file = try PartFile(existing: part)
                try file.sync()
                let reader = try LocalFileReader(path: part)
                let size = Int64(try reader.size())
                guard size == commit.size else {
                    throw PeerFileError("\(path): \(size) bytes arrived of \(commit.size); nothing was replaced")
                }
                let same =
                    commit.fullHash != nil
                    ? try ContentHasher.integrityHash(mapping: reader).hex == commit.fullHash
                    : try ContentHasher().contentID(of: reader)?.hex == commit.contentID
                guard same else {
                    throw PeerFileError(
                        "\(path): what arrived does not match the sender's file (read back from the disk); nothing was replaced"
                    )
                }
                // Times and permissions once it was read back (a mode without read permission would stop that).
                try file.setModificationTime(commit.mtimeNanoseconds)
                try file.setMode(commit.mode)
                try file.sync()
            } catch {
                FileSystem.remove(part)
                throw error
            }
            if commit.replace {
                try FileSystem.renameReplacing(part, to: path)
            } else {
                do { try FileSystem.renameNoReplace(part, to: path) } catch {
                    FileSystem.remove(part)
                    throw PeerFileError("\(path) exists on \(library.device.name); nothing was replaced")
                }
            }
            try FileSystem.syncDirectory(containing: path)
            written?.insert(FileSystem.parent(of: path))
            return 0
        case .pushAbort(_, _, let tag):
            FileSystem.remove(try Self.part(path, tag))
            return 0
        default:
            return 0
        }
    }

    private static func part(_ path: String, _ tag: String) throws -> String {
        guard validTag(tag) else { throw PeerFileError("'\(tag)' is not a transfer tag") }
        return partPath(path, tag)
    }
}

/// Folders files were received into, waiting for the index to be brought up to date.
final class WrittenFolders: Sendable {
    private let folders = Mutex<Set<String>>([])
    func insert(_ folder: String) { _ = folders.withLock { $0.insert(folder) } }
    func take() -> [String] {
        folders.withLock { f in
            defer { f.removeAll() }; return f.sorted()
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

    /// Makes a folder on the device (its parent must be there, inside one of its locations).
    public func makeFolder(_ path: String) async throws {
        _ = try await ask { .pushFolder(id: $0, path: path) }
    }

    /// Sends a file to the device, to be received at `path` (in its temporary named by `tag`): from `resumeAt`
    /// bytes when the device still has them (else from the start), 1 MiB a message with `window` in flight;
    /// every `flushEvery` bytes the device flushes them and `flushed` is told how far. Then asks the device to
    /// commit it. The file must stay `commit.size` bytes long.
    ///
    /// #### Errors
    /// `PeerFileError` with the device's reason (refused, or what arrived does not match: the device then
    /// keeps no temporary); `NetError` when the connection fails (the device keeps what it flushed).
    public func send(
        _ source: String,
        to path: String,
        tag: String,
        resumeAt: Int64,
        commit: () throws -> PushCommit,
        size: Int64,
        flushEvery: Int64,
        window: Int = 8,
        flushed: (Int64) throws -> Void
    ) async throws {
        let file = try ReadOnlyFile(path: source)
        let start = try await ask { .pushOpen(id: $0, path: path, tag: tag, resumeAt: resumeAt) }
        var asked = start
        var marked = start
        var expected: [(id: UInt64, end: Int64, sync: Bool)] = []
        var acknowledged = start
        while acknowledged < size {
            while expected.count < window && asked < size {
                let length = Int(min(Int64(1 << 20), size - asked))
                let bytes = try file.bytes(length, at: asked)
                if bytes.count < length { throw PeerFileError("\(source) got shorter while it was being sent") }
                let end = asked + Int64(length)
                let sync = end - marked >= flushEvery
                if sync { marked = end }
                let id = ids.next()
                try await link.send(
                    SyncMessage.pushData(id: id, path: path, tag: tag, offset: asked, bytes: bytes, sync: sync).frame
                )
                expected.append((id, end, sync))
                asked = end
            }
            let next = expected.removeFirst()
            let end = try await done(next.id)
            guard end == next.end else { throw NetError(.protocolError, "\(link.peer.name) answered out of turn") }
            acknowledged = end
            if next.sync { try flushed(end) }
        }
        let c = try commit()
        _ = try await ask { .pushCommit(id: $0, path: path, tag: tag, commit: c) }
    }

    /// Asks the device to drop what it received of a file under `tag` (it keeps nothing else of it).
    public func abandon(_ path: String, tag: String) async throws {
        _ = try await ask { .pushAbort(id: $0, path: path, tag: tag) }
    }

    private func ask(_ make: (UInt64) -> SyncMessage) async throws -> Int64 {
        let id = ids.next()
        try await link.send(make(id).frame)
        return try await done(id)
    }

    private func done(_ id: UInt64) async throws -> Int64 {
        guard case .pushDone(let got, let value, let error) = try await answer(), got == id else {
            throw NetError(.protocolError, "\(link.peer.name) answered out of turn")
        }
        if let error { throw PeerFileError("\(link.peer.name): \(error)") }
        return value
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

/// A job's connections to other devices' files: one per device, made on first use, made again after one broke.
final class PeerSessions {
    private let connect: @Sendable (DeviceID) async throws -> PeerFileSession
    private var open: [DeviceID: PeerFileSession] = [:]

    init(_ connect: @escaping @Sendable (DeviceID) async throws -> PeerFileSession) { self.connect = connect }

    /// Runs `body` with a connection to `device`. After a broken connection (`NetError`) it connects again and
    /// runs it again, `attempts` times in all, pausing 1, 2, 4... s between; `body` is told when it is a retry.
    func run(
        _ device: DeviceID,
        attempts: Int,
        _ body: (PeerFileSession, _ retry: Bool) async throws -> Void
    ) async throws {
        var attempt = 1
        while true {
            do {
                let session: PeerFileSession
                if let existing = open[device] {
                    session = existing
                } else {
                    session = try await connect(device)
                    open[device] = session
                }
                try await body(session, attempt > 1)
                return
            } catch is NetError where attempt < attempts {
                if let broken = open.removeValue(forKey: device) { await broken.close() }
                try await Task.sleep(for: .seconds(Double(1 << (attempt - 1))))
                attempt += 1
            }
        }
    }

    func closeAll() {
        let all = Array(open.values)
        open = [:]
        Task { for s in all { await s.close() } }
    }
}

extension ReadOnlyFile {
    /// Up to `length` bytes from `offset` (fewer at the end of the file).
    func bytes(_ length: Int, at offset: Int64) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: length)
        var got = 0
        while got < length {
            let n = try bytes.withUnsafeMutableBytes { buffer in
                try read(
                    into: UnsafeMutableRawBufferPointer(rebasing: buffer[got...]),
                    at: UInt64(offset) + UInt64(got)
                )
            }
            if n == 0 { break }
            got += n
        }
        bytes.removeLast(length - got)
        return bytes
    }
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
