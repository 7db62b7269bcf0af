import Foundation
import SDCore
import SDNet
import SDStore
import SDSystem
import Synchronization

/// Where a path another device names is on this device: the location holding it (the deepest, when
/// locations nest) and the names below its root. The path is checked as bytes first (absolute, plain
/// components, no NUL or control byte), and everything below the root is then opened relative to the root's
/// held descriptor without following any link (`FolderHandle`): what was checked is what is opened.
struct PeerPath {
    let location: Location
    /// The names below the location's root (none: the root itself).
    let names: [[UInt8]]

    /// sd's own folders (config with the device key and paired devices, the data folder with the libraries, the
    /// runtime folder, this library), where they really are: never served nor written, even inside a location.
    static func protectedFolders(_ library: Library) -> [[[UInt8]]] {
        OwnFolders.list(library).compactMap { try? PlainPath.components(PathText.bytes($0), controlBytes: true) }
    }

    /// #### Errors
    /// `PeerFileError` when the path is not plain, not inside one of this device's locations (or, unless
    /// `rootToo`, is a location's root itself), or inside one of sd's own folders (`protected`).
    init(_ path: String, in library: Library, rootToo: Bool = false, protected: [[[UInt8]]] = [])
        throws(PeerFileError)
    {
        let components: [[UInt8]]
        do throws(PlainPathError) { components = try PlainPath.components(PathText.bytes(path)) } catch {
            throw PeerFileError(error.description)
        }
        var best: (Location, Int)?
        for location in (try? library.fetchLocations()) ?? [] {
            guard let root = try? PlainPath.components(location.path, controlBytes: true),
                PlainPath.isWithin(components, root), rootToo || components.count > root.count,
                root.count > best?.1 ?? -1
            else { continue }
            best = (location, root.count)
        }
        guard let (location, depth) = best else {
            throw PeerFileError(
                "\(PlainPath.shown(PathText.bytes(path))) is not inside a location of \(library.device.name)"
            )
        }
        self.location = location
        names = Array(components[depth...])
        // Where it really is (the root as it resolves, then the names, no link below it): not sd's own.
        let realRoot = FileSystem.resolved(PathText.string(location.path))
        if let root = try? PlainPath.components(PathText.bytes(realRoot), controlBytes: true) {
            let real = root + names
            if protected.contains(where: { PlainPath.isWithin(real, $0) })
                || names.contains(where: FolderListing.isLibraryFolder)
            {
                throw PeerFileError(
                    "\(PlainPath.shown(PathText.bytes(path))) is in sd's own folders on \(library.device.name)"
                )
            }
        }
    }

    /// The location's root, held.
    func root() throws(SystemError) -> FolderHandle { try FolderHandle(pathBytes: location.path) }
}

/// Serves this device's files to a device the library is shared with: only regular files inside one of this
/// device's locations where it has the `read` right, named by their plain absolute path, opened below the
/// location's root without following any link (a link inside a location is refused, as is a way out).
/// Checked again at every request: a path may be replaced by a link between two reads of one file.
struct PeerFileServer: Sendable {
    let library: Library
    let rights: @Sendable () -> PeerRights
    /// sd's own folders: never served.
    let protected: [[[UInt8]]]

    init(library: Library, rights: @escaping @Sendable () -> PeerRights) {
        self.library = library
        self.rights = rights
        protected = PeerPath.protectedFolders(library)
    }

    /// Opens `path` for reading, or says why not.
    func open(_ path: String) throws -> ReadOnlyFile {
        let place = try PeerPath(path, in: library, protected: protected)
        guard rights().allows(.read, location: place.location.uuid) else {
            throw PeerFileError(
                "\(library.device.name) does not let this device read files in location '\(place.location.name)'"
            )
        }
        let root = try place.root()
        let fd: Int32
        do throws(SystemError) { fd = try root.open(place.names, flags: O_RDONLY | O_NONBLOCK) } catch {
            throw PeerFileError(
                error.errno == ELOOP || error.errno == EXDEV
                    ? "\(path) goes through a symbolic link on \(library.device.name): only plain files are served"
                    : "\(error)"
            )
        }
        return try ReadOnlyFile(descriptor: fd, path: path)
    }

    func info(_ path: String, fullHash: Bool) -> RemoteFileInfo {
        do {
            let reader = LocalFileReader(file: try open(path))
            var st = stat()
            guard fstat(reader.file.descriptor, &st) == 0 else { throw SystemError("stat", path: path, errno: errno) }
            let id = try ContentHasher().contentID(of: reader)
            let full = fullHash ? try ContentHasher.integrityHash(mapping: reader).hex : nil
            return RemoteFileInfo(
                size: Int64(st.st_size),
                mtimeNanoseconds: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec),
                contentID: id?.hex,
                fullHash: full,
                error: nil,
                mode: UInt32(st.st_mode) & 0o7777
            )
        } catch {
            return .refused("\(error)")
        }
    }

    func read(_ id: UInt64, _ path: String, offset: Int64, length: Int) -> SyncMessage {
        do {
            let bytes = try open(path).bytes(length, at: offset)
            return .fileData(id: id, offset: offset, bytes: bytes, error: nil)
        } catch {
            return .fileData(id: id, offset: offset, bytes: [], error: "\(error)")
        }
    }
}

/// Receives files another device sends (`sd cp SOURCE sd://DEVICE/path` run there): only where it has the
/// `write` right, into folders inside this device's locations (their roots included), by plain path, opened
/// below the location's root without following any link. A file is announced with its size (`pushBegin`:
/// refused beyond the free space), received into a hidden temporary beside its target named by the
/// sender's tag, written only within that size and without holes, and it replaces nothing until it is whole,
/// flushed, and equal to what the sender says (content id or whole-file BLAKE3, read back from this disk); an
/// existing file only when the sender's plan said so and this device lets it (`overwrite`). Received files
/// get read/write/execute bits only (never setuid, setgid or sticky). Temporaries are noted in the library
/// (`peer_incoming`) so that abandoned ones are removed. Folders written into are noted in `written` (to bring
/// the index up to date).
public final class PeerFileReceiver: Sendable {
    let library: Library
    let written: WrittenFolders?
    let rights: @Sendable () -> PeerRights
    /// The sending device (noted with its temporaries).
    let sender: DeviceID?
    /// Files announced on this connection, by tag: the path it goes to and its announced size (later messages
    /// with the tag must name the same path).
    private let announced = Mutex<[String: (path: String, size: Int64)]>([:])
    /// sd's own folders: never written.
    let protected: [[[UInt8]]]
    /// Files of one device not finished here (their temporaries) at most.
    static let unfinishedPerDevice = 256
    /// At most this many files received at once on one connection.
    static let maximumAtOnce = 64
    /// Space left free on a volume whatever is sent.
    static let reserve: Int64 = 64 << 20
    /// A temporary untouched for this long was abandoned by its sender.
    public static let abandonedAfter: Duration = .seconds(48 * 3600)

    init(library: Library, written: WrittenFolders?, rights: @escaping @Sendable () -> PeerRights, sender: DeviceID?) {
        self.library = library
        self.written = written
        self.rights = rights
        self.sender = sender
        protected = PeerPath.protectedFolders(library)
    }

    static func validTag(_ tag: String) -> Bool {
        (1...64).contains(tag.utf8.count)
            && tag.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D }
    }

    /// The temporary a file is received into, in its folder.
    static func partName(_ tag: String) -> [UInt8] { FolderListing.partPrefix + Array("in-\(tag)".utf8) }

    /// The answer (`pushDone`) to a push request, or nil for another message.
    func answer(_ message: SyncMessage) -> SyncMessage? {
        let id: UInt64
        let path: String
        switch message {
        case .pushFolder(let i, let p), .pushOpen(let i, let p, _, _), .pushBegin(let i, let p, _, _, _),
            .pushData(let i, let p, _, _, _, _), .pushCommit(let i, let p, _, _), .pushAbort(let i, let p, _):
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

    /// Where a file (or folder) sent to `path` goes: its folder, held, and its name; refused without the right
    /// (`overwrite` too when `replacing`).
    private func place(_ path: String, replacing: Bool = false) throws -> (PeerPath, FolderHandle, [UInt8]) {
        let place = try PeerPath(path, in: library, protected: protected)
        let granted = rights()
        guard granted.allows(.write, location: place.location.uuid) else {
            throw PeerFileError(
                "\(library.device.name) does not let this device write into location '\(place.location.name)' (there: `sd peer allow DEVICE write --location \(place.location.name)`)"
            )
        }
        if replacing && !granted.allows(.overwrite, location: place.location.uuid) {
            throw PeerFileError(
                "\(library.device.name) does not let this device replace files in location '\(place.location.name)'; nothing was replaced"
            )
        }
        let name = place.names[place.names.count - 1]
        if name.starts(with: FolderListing.partPrefix) {
            throw PeerFileError("'\(PlainPath.shown(name))' is not a name a file can be given here")
        }
        let folder: FolderHandle
        do throws(SystemError) { folder = try place.root().folder(Array(place.names.dropLast())) } catch {
            throw PeerFileError(
                error.errno == ELOOP || error.errno == EXDEV
                    ? "\(path): its folder goes through a symbolic link on \(library.device.name)"
                    : "\(FileSystem.parent(of: path)) is not a folder on \(library.device.name) (\(error))"
            )
        }
        return (place, folder, name)
    }

    private func tagged(_ tag: String) throws -> [UInt8] {
        guard Self.validTag(tag) else { throw PeerFileError("'\(tag)' is not a transfer tag") }
        return Self.partName(tag)
    }

    /// The size announced for `tag`, which must have been begun on this connection for this same `path`.
    private func reception(_ tag: String, _ path: String) throws -> Int64 {
        guard let begun = announced.withLock({ $0[tag] }), begun.path == path else {
            throw PeerFileError(
                "no file is being received for \(path) under this tag (it was not begun on this connection)"
            )
        }
        return begun.size
    }

    private func handle(_ message: SyncMessage, _ path: String) throws -> Int64 {
        switch message {
        case .pushFolder:
            let (_, folder, name) = try place(path)
            if let there = try folder.entry(name) {
                guard there.type == .directory else { throw PeerFileError("\(path) exists and is not a folder") }
            } else {
                try folder.makeFolder(name)
                try folder.sync()
            }
            written?.insert(folder.path)
            return 0
        case .pushOpen:
            throw PeerFileError(
                "\(library.device.name) needs a file's size before it takes it: update sd on the sending device"
            )
        case .pushBegin(_, _, let tag, let resumeAt, let size):
            let part = try tagged(tag)
            let (_, folder, _) = try place(path)
            // A tag is one file's: begun again only for the same path.
            let begun = announced.withLock { $0[tag] }
            if let begun, begun.path != path {
                throw PeerFileError("tag '\(tag)' is already in use on this connection for another file")
            }
            if begun == nil && announced.withLock({ $0.count }) >= Self.maximumAtOnce {
                throw PeerFileError("more than \(Self.maximumAtOnce) files at once on one connection")
            }
            let unfinished = try library.peerIncoming().filter { $0.device == sender?.description }.count
            if begun == nil && unfinished >= Self.unfinishedPerDevice {
                throw PeerFileError(
                    "\(unfinished) files from this device are unfinished on \(library.device.name) (they are removed after 48 hours); finish or abandon some first"
                )
            }
            var start: Int64 = 0
            let file: PartFile
            if resumeAt > 0, let there = try folder.entry(part), there.type == .regular {
                start = min(resumeAt, Int64(there.size), size)
                file = PartFile(descriptor: try folder.open([part], flags: O_WRONLY), path: folder.shown([part]))
                guard ftruncate(file.descriptor, off_t(start)) == 0 else {
                    throw SystemError("truncate", path: file.path, errno: errno)
                }
            } else {
                folder.remove(part)
                file = PartFile(
                    descriptor: try folder.open([part], flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600),
                    path: folder.shown([part])
                )
            }
            let free = folder.freeBytes() ?? Int64.max
            guard size - start <= free - Self.reserve else {
                folder.remove(part)
                throw PeerFileError(
                    "\(path): \(size - start) bytes to receive, \(max(0, free)) free on \(library.device.name) (it keeps \(Self.reserve >> 20) MiB free); nothing was received"
                )
            }
            try library.notePeerIncoming(
                folder: PathText.bytes(folder.path),
                part: String(decoding: part, as: UTF8.self),
                device: sender?.description,
                size: size
            )
            announced.withLock { $0[tag] = (path, size) }
            _ = consume file  // closed now; data messages open it again
            return start
        case .pushData(_, _, let tag, let offset, let bytes, let sync):
            let part = try tagged(tag)
            let size = try reception(tag, path)
            let (_, folder, _) = try place(path)
            // The volume keeps its reserve whatever was announced (several files announced at once could
            // otherwise fill it together).
            if let free = folder.freeBytes(), free - Self.reserve < Int64(bytes.count) {
                throw PeerFileError(
                    "\(path): \(library.device.name) keeps \(Self.reserve >> 20) MiB free on this volume; \(max(0, free)) bytes are"
                )
            }
            let file = PartFile(descriptor: try folder.open([part], flags: O_WRONLY), path: folder.shown([part]))
            let have = try file.size()
            // Only within the announced size, and never beyond what is there (no holes: a file grows only by
            // bytes really sent).
            guard offset <= have, offset + Int64(bytes.count) <= size else {
                throw PeerFileError(
                    "\(path): \(bytes.count) bytes at \(offset) do not follow the \(have) received, within the \(size) announced"
                )
            }
            try bytes.withUnsafeBytes { try file.write($0, at: offset) }
            if sync { try file.sync() }
            return offset + Int64(bytes.count)
        case .pushCommit(_, _, let tag, let commit):
            let part = try tagged(tag)
            let (_, folder, name) = try place(path, replacing: commit.replace)
            let size = try reception(tag, path)
            defer { forget(folder, part, tag) }
            do {
                guard commit.size == size else {
                    throw PeerFileError(
                        "\(path): \(commit.size) bytes committed, \(size) announced; nothing was replaced"
                    )
                }
                let file = PartFile(descriptor: try folder.open([part], flags: O_RDWR), path: folder.shown([part]))
                try file.sync()
                let reader = LocalFileReader(
                    file: try ReadOnlyFile(descriptor: try folder.open([part], flags: O_RDONLY), path: file.path)
                )
                let arrived = Int64(try reader.size())
                guard arrived == commit.size else {
                    throw PeerFileError("\(path): \(arrived) bytes arrived of \(commit.size); nothing was replaced")
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
                folder.remove(part)
                throw error
            }
            do { try folder.rename(part, to: name, replace: commit.replace) } catch {
                folder.remove(part)
                throw PeerFileError("\(path) exists on \(library.device.name); nothing was replaced")
            }
            try folder.sync()
            written?.insert(folder.path)
            return 0
        case .pushAbort(_, _, let tag):
            // Only with the right to write there, and only a temporary this device began (on this connection,
            // or on an earlier one: noted with it).
            let part = try tagged(tag)
            let (_, folder, _) = try place(path)
            let partName = String(decoding: part, as: UTF8.self)
            let noted = try library.peerIncoming().contains {
                $0.folder == PathText.bytes(folder.path) && $0.part == partName && sender != nil
                    && $0.device == sender?.description
            }
            guard (try? reception(tag, path)) != nil || noted else {
                throw PeerFileError("no file this device began is being received for \(path) under this tag")
            }
            folder.remove(part)
            forget(folder, part, tag)
            return 0
        default:
            return 0
        }
    }

    private func forget(_ folder: FolderHandle, _ part: [UInt8], _ tag: String) {
        announced.withLock { $0[tag] = nil }
        try? library.forgetPeerIncoming(
            folder: PathText.bytes(folder.path),
            part: String(decoding: part, as: UTF8.self)
        )
    }

    /// Removes the temporaries of files other devices began sending and left: untouched (no byte written) for
    /// `olderThan`, or gone already. Only sd's own temporary names are ever removed. How many were removed.
    @discardableResult
    public static func removeAbandoned(_ library: Library, olderThan age: Duration = abandonedAfter) -> Int {
        let cutoff = Int64(Date().timeIntervalSince1970 * 1e9) - Int64(age.components.seconds) * 1_000_000_000
        var removed = 0
        for incoming in (try? library.peerIncoming()) ?? [] {
            let part = Array(incoming.part.utf8)
            guard part.starts(with: FolderListing.partPrefix + Array("in-".utf8)),
                PlainPath.nameProblem(part) == nil
            else {
                try? library.forgetPeerIncoming(folder: incoming.folder, part: incoming.part)
                continue
            }
            guard let folder = try? FolderHandle(pathBytes: incoming.folder), let entry = try? folder.entry(part)
            else {
                try? library.forgetPeerIncoming(folder: incoming.folder, part: incoming.part)
                continue
            }
            guard entry.mtimeNanoseconds < cutoff else { continue }
            if entry.type == .regular && folder.remove(part) { removed += 1 }
            try? library.forgetPeerIncoming(folder: incoming.folder, part: incoming.part)
        }
        return removed
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
        let start: Int64
        do {
            start = try await ask { .pushBegin(id: $0, path: path, tag: tag, resumeAt: resumeAt, size: size) }
        } catch let error as NetError where error.kind == .closed || error.kind == .protocolError {
            // An sd from before files were announced with their size closes the connection on this message.
            throw PeerFileError(
                "\(link.peer.name) closed the connection when asked to take a file: it may run an older sd that cannot (update sd there); \(error.message)"
            )
        }
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
