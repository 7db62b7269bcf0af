import Foundation
import SDCore
import SDNet
import SDStore

/// The sync protocol's messages (frame kinds from 100), encoded with `WireWriter`. Requests carry an id that
/// their answer repeats, and answers repeat where they start (a cursor or a watermark): a follower takes an
/// answer only if it starts where the follower is, so a delayed, duplicated or reordered answer changes
/// nothing.
public enum SyncMessage: Sendable, Equatable {
    /// "I follow library L": the first message on a sync connection.
    case open(library: LibraryID)
    case opened(library: LibraryID, name: String)
    /// Rows of the answering device itself, after `cursor`.
    case ownedRequest(id: UInt64, cursor: OwnedCursor, limit: Int)
    case owned(id: UInt64, start: OwnedCursor, batch: OwnedBatch)
    /// Shared metadata changes of the answering device's log, after `after`.
    case sharedRequest(id: UInt64, after: Int64, limit: Int)
    /// `horizon`: the answering device's compaction horizon (a follower that took its whole state before it
    /// moved must take it again).
    case shared(
        id: UInt64,
        after: Int64,
        changes: [SharedRecordChange],
        next: Int64,
        done: Bool,
        resyncNeeded: Bool,
        horizon: String
    )
    /// The whole shared state (registers), after `cursor` (for a follower whose watermark was compacted away).
    case registersRequest(id: UInt64, cursor: [String], limit: Int)
    case registers(
        id: UInt64,
        start: [String],
        registers: [SharedRegister],
        horizon: String,
        logSeq: Int64,
        done: Bool
    )
    /// "Something changed here": pull now.
    case changed
    /// Which libraries the answering device shares with the asking one.
    case listLibraries
    case libraries([SharedLibrary])
    /// A file of the answering device (inside one of its locations): size, modification time, content id, and
    /// the whole file's BLAKE3 when asked.
    case fileInfoRequest(id: UInt64, path: String, fullHash: Bool)
    case fileInfo(id: UInt64, info: RemoteFileInfo)
    /// Bytes of such a file (at most `maxRead` per request).
    case readRequest(id: UInt64, path: String, offset: Int64, length: Int)
    case fileData(id: UInt64, offset: Int64, bytes: [UInt8], error: String?)
    /// Files sent to the answering device (into one of its locations): a folder made there; a file received
    /// into a hidden temporary (`tag` names it) beside `path`: opened (cut back to `resumeAt` bytes, which an
    /// earlier attempt flushed), written by offset (flushed when `sync`), then committed (checked against the
    /// sender's content id or whole-file hash, renamed to `path`) or abandoned. Each is answered by `pushDone`:
    /// the temporary's length (open, data) or 0, or why not.
    case pushFolder(id: UInt64, path: String)
    /// The first message of a file sent before `pushBegin` existed: refused now (the receiver needs the size).
    case pushOpen(id: UInt64, path: String, tag: String, resumeAt: Int64)
    /// A file of `size` bytes will be sent to `path` (its temporary named by `tag`): the receiver checks the
    /// size against its free space, and data must stay within it.
    case pushBegin(id: UInt64, path: String, tag: String, resumeAt: Int64, size: Int64)
    case pushData(id: UInt64, path: String, tag: String, offset: Int64, bytes: [UInt8], sync: Bool)
    case pushCommit(id: UInt64, path: String, tag: String, commit: PushCommit)
    case pushAbort(id: UInt64, path: String, tag: String)
    case pushDone(id: UInt64, value: Int64, error: String?)

    public enum Kind {
        public static let open: UInt16 = 100
        public static let opened: UInt16 = 101
        public static let ownedRequest: UInt16 = 102
        public static let owned: UInt16 = 103
        public static let sharedRequest: UInt16 = 104
        public static let shared: UInt16 = 105
        public static let registersRequest: UInt16 = 106
        public static let registers: UInt16 = 107
        public static let changed: UInt16 = 108
        public static let listLibraries: UInt16 = 109
        public static let libraries: UInt16 = 110
        public static let fileInfoRequest: UInt16 = 111
        public static let fileInfo: UInt16 = 112
        public static let readRequest: UInt16 = 113
        public static let fileData: UInt16 = 114
        public static let pushFolder: UInt16 = 115
        public static let pushOpen: UInt16 = 116
        public static let pushData: UInt16 = 117
        public static let pushCommit: UInt16 = 118
        public static let pushAbort: UInt16 = 119
        public static let pushDone: UInt16 = 120
        public static let pushBegin: UInt16 = 121
    }

    /// Limits on what one message may hold (a larger count is malformed).
    static let maxRows = 100_000
    /// Bytes one read may ask for.
    public static let maxRead = 4 << 20
}

/// What a device says of one of its files when another asks (`error` set instead when it cannot or will not
/// serve it).
public struct RemoteFileInfo: Sendable, Equatable {
    public var size: Int64
    public var mtimeNanoseconds: Int64
    public var contentID: String?
    public var fullHash: String?
    public var error: String?
    /// Its permission bits (a copy gets them too).
    public var mode: UInt32

    public init(
        size: Int64,
        mtimeNanoseconds: Int64,
        contentID: String?,
        fullHash: String?,
        error: String?,
        mode: UInt32 = 0o644
    ) {
        self.size = size
        self.mtimeNanoseconds = mtimeNanoseconds
        self.contentID = contentID
        self.fullHash = fullHash
        self.error = error
        self.mode = mode
    }

    public static func refused(_ reason: String) -> RemoteFileInfo {
        RemoteFileInfo(size: 0, mtimeNanoseconds: 0, contentID: nil, fullHash: nil, error: reason)
    }
}

/// What a sent file must be once received: its size and either its content id or (`fullHash`) its whole-file
/// BLAKE3, as the sender computed them from its file; the modification time and permission bits to give
/// it; whether it replaces what is at its path (else it must not exist).
public struct PushCommit: Sendable, Equatable {
    public var size: Int64
    public var contentID: String?
    public var fullHash: String?
    public var mtimeNanoseconds: Int64
    public var mode: UInt32
    public var replace: Bool

    public init(
        size: Int64,
        contentID: String?,
        fullHash: String?,
        mtimeNanoseconds: Int64,
        mode: UInt32,
        replace: Bool
    ) {
        self.size = size
        self.contentID = contentID
        self.fullHash = fullHash
        self.mtimeNanoseconds = mtimeNanoseconds
        self.mode = mode
        self.replace = replace
    }
}

/// A library one device shares with another.
public struct SharedLibrary: Sendable, Equatable, Codable {
    public var id: LibraryID
    public var name: String

    public init(id: LibraryID, name: String) {
        self.id = id
        self.name = name
    }
}

/// A shared change with the stamp of the value it replaced.
public struct SharedRecordChange: Sendable, Equatable {
    public var change: SharedChange
    public var prev: String?

    public init(change: SharedChange, prev: String?) {
        self.change = change
        self.prev = prev
    }
}

extension SyncMessage {
    public var frame: Frame {
        var w = WireWriter(capacity: 256)
        let kind: UInt16
        switch self {
        case .open(let library):
            kind = Kind.open
            w.text(library.description)
        case .opened(let library, let name):
            kind = Kind.opened
            w.text(library.description)
            w.text(name)
        case .ownedRequest(let id, let cursor, let limit):
            kind = Kind.ownedRequest
            w.varint(id)
            Self.write(cursor, &w)
            w.int(limit)
        case .owned(let id, let start, let batch):
            kind = Kind.owned
            w.varint(id)
            Self.write(start, &w)
            Self.write(batch, &w)
        case .sharedRequest(let id, let after, let limit):
            kind = Kind.sharedRequest
            w.varint(id)
            w.signed(after)
            w.int(limit)
        case .shared(let id, let after, let changes, let next, let done, let resync, let horizon):
            kind = Kind.shared
            w.varint(id)
            w.signed(after)
            w.varint(UInt64(changes.count))
            for c in changes {
                w.signed(c.change.seq)
                w.text(c.change.hlc)
                w.text(c.change.record)
                w.text(c.change.key)
                w.optionalText(c.change.field)
                w.optionalText(c.change.value)
                w.text(c.change.device)
                w.optionalText(c.prev)
            }
            w.signed(next)
            w.bool(done)
            w.bool(resync)
            w.text(horizon)
        case .registersRequest(let id, let cursor, let limit):
            kind = Kind.registersRequest
            w.varint(id)
            w.varint(UInt64(cursor.count))
            for c in cursor { w.text(c) }
            w.int(limit)
        case .registers(let id, let start, let registers, let horizon, let logSeq, let done):
            kind = Kind.registers
            w.varint(id)
            w.varint(UInt64(start.count))
            for c in start { w.text(c) }
            w.varint(UInt64(registers.count))
            for r in registers {
                w.text(r.record)
                w.text(r.key)
                w.text(r.field)
                w.optionalText(r.value)
                w.text(r.hlc)
                w.optionalText(r.prev)
            }
            w.text(horizon)
            w.signed(logSeq)
            w.bool(done)
        case .changed:
            kind = Kind.changed
        case .listLibraries:
            kind = Kind.listLibraries
        case .libraries(let list):
            kind = Kind.libraries
            w.varint(UInt64(list.count))
            for l in list {
                w.text(l.id.description)
                w.text(l.name)
            }
        case .fileInfoRequest(let id, let path, let full):
            kind = Kind.fileInfoRequest
            w.varint(id)
            w.text(path)
            w.bool(full)
        case .fileInfo(let id, let info):
            kind = Kind.fileInfo
            w.varint(id)
            w.signed(info.size)
            w.signed(info.mtimeNanoseconds)
            w.optionalText(info.contentID)
            w.optionalText(info.fullHash)
            w.optionalText(info.error)
            w.varint(UInt64(info.mode))
        case .readRequest(let id, let path, let offset, let length):
            kind = Kind.readRequest
            w.varint(id)
            w.text(path)
            w.signed(offset)
            w.int(length)
        case .fileData(let id, let offset, let bytes, let error):
            kind = Kind.fileData
            w.varint(id)
            w.signed(offset)
            w.data(bytes)
            w.optionalText(error)
        case .pushFolder(let id, let path):
            kind = Kind.pushFolder
            w.varint(id)
            w.text(path)
        case .pushOpen(let id, let path, let tag, let resumeAt):
            kind = Kind.pushOpen
            w.varint(id)
            w.text(path)
            w.text(tag)
            w.signed(resumeAt)
        case .pushBegin(let id, let path, let tag, let resumeAt, let size):
            kind = Kind.pushBegin
            w.varint(id)
            w.text(path)
            w.text(tag)
            w.signed(resumeAt)
            w.signed(size)
        case .pushData(let id, let path, let tag, let offset, let bytes, let sync):
            kind = Kind.pushData
            w.varint(id)
            w.text(path)
            w.text(tag)
            w.signed(offset)
            w.data(bytes)
            w.bool(sync)
        case .pushCommit(let id, let path, let tag, let c):
            kind = Kind.pushCommit
            w.varint(id)
            w.text(path)
            w.text(tag)
            w.signed(c.size)
            w.optionalText(c.contentID)
            w.optionalText(c.fullHash)
            w.signed(c.mtimeNanoseconds)
            w.varint(UInt64(c.mode))
            w.bool(c.replace)
        case .pushAbort(let id, let path, let tag):
            kind = Kind.pushAbort
            w.varint(id)
            w.text(path)
            w.text(tag)
        case .pushDone(let id, let value, let error):
            kind = Kind.pushDone
            w.varint(id)
            w.signed(value)
            w.optionalText(error)
        }
        return Frame(kind, w.bytes)
    }

    /// Decodes a sync frame.
    ///
    /// #### Errors
    /// `WireError` for anything malformed: unknown kind, truncation, bad counts or values, trailing bytes.
    public init(_ frame: Frame) throws(WireError) {
        var r = WireReader(frame.payload)
        switch frame.kind {
        case Kind.open:
            self = .open(library: try Self.library(&r))
        case Kind.opened:
            self = .opened(library: try Self.library(&r), name: try r.text(limit: 1_024))
        case Kind.ownedRequest:
            self = .ownedRequest(
                id: try r.varint(),
                cursor: try Self.cursor(&r),
                limit: try r.count(limit: Self.maxRows)
            )
        case Kind.owned:
            self = .owned(id: try r.varint(), start: try Self.cursor(&r), batch: try Self.batch(&r))
        case Kind.sharedRequest:
            self = .sharedRequest(id: try r.varint(), after: try r.signed(), limit: try r.count(limit: Self.maxRows))
        case Kind.shared:
            let id = try r.varint()
            let after = try r.signed()
            let n = try r.count(limit: Self.maxRows)
            var changes: [SharedRecordChange] = []
            changes.reserveCapacity(min(n, 1_024))
            for _ in 0..<n {
                let change = SharedChange(
                    seq: try r.signed(),
                    hlc: try r.text(limit: 128),
                    record: try r.text(limit: 64),
                    key: try r.text(limit: 512),
                    field: try r.optionalText(limit: 64),
                    value: try r.optionalText(limit: 1 << 20),
                    device: try r.text(limit: 64)
                )
                changes.append(SharedRecordChange(change: change, prev: try r.optionalText(limit: 128)))
            }
            self = .shared(
                id: id,
                after: after,
                changes: changes,
                next: try r.signed(),
                done: try r.bool(),
                resyncNeeded: try r.bool(),
                horizon: try r.text(limit: 128)
            )
        case Kind.registersRequest:
            let id = try r.varint()
            let cursor = try Self.strings(&r)
            self = .registersRequest(id: id, cursor: cursor, limit: try r.count(limit: Self.maxRows))
        case Kind.registers:
            let id = try r.varint()
            let start = try Self.strings(&r)
            let n = try r.count(limit: Self.maxRows)
            var registers: [SharedRegister] = []
            for _ in 0..<n {
                registers.append(
                    SharedRegister(
                        record: try r.text(limit: 64),
                        key: try r.text(limit: 512),
                        field: try r.text(limit: 64),
                        value: try r.optionalText(limit: 1 << 20),
                        hlc: try r.text(limit: 128),
                        prev: try r.optionalText(limit: 128)
                    )
                )
            }
            self = .registers(
                id: id,
                start: start,
                registers: registers,
                horizon: try r.text(limit: 128),
                logSeq: try r.signed(),
                done: try r.bool()
            )
        case Kind.changed:
            self = .changed
        case Kind.listLibraries:
            self = .listLibraries
        case Kind.libraries:
            var list: [SharedLibrary] = []
            for _ in 0..<(try r.count(limit: 1_024)) {
                list.append(SharedLibrary(id: try Self.library(&r), name: try r.text(limit: 1_024)))
            }
            self = .libraries(list)
        case Kind.fileInfoRequest:
            self = .fileInfoRequest(id: try r.varint(), path: try r.text(limit: 8_192), fullHash: try r.bool())
        case Kind.fileInfo:
            let id = try r.varint()
            let size = try r.signed()
            guard size >= 0 else { throw WireError("file size \(size)") }
            self = .fileInfo(
                id: id,
                info: RemoteFileInfo(
                    size: size,
                    mtimeNanoseconds: try r.signed(),
                    contentID: try r.optionalText(limit: 128),
                    fullHash: try r.optionalText(limit: 128),
                    error: try r.optionalText(limit: 8_192),
                    mode: UInt32(try r.count(limit: 0o7777))
                )
            )
        case Kind.readRequest:
            let id = try r.varint()
            let path = try r.text(limit: 8_192)
            let offset = try r.signed()
            guard offset >= 0 else { throw WireError("read offset \(offset)") }
            self = .readRequest(id: id, path: path, offset: offset, length: try r.count(limit: Self.maxRead))
        case Kind.fileData:
            let id = try r.varint()
            let offset = try r.signed()
            guard offset >= 0 else { throw WireError("data offset \(offset)") }
            self = .fileData(
                id: id,
                offset: offset,
                bytes: try r.data(limit: Self.maxRead),
                error: try r.optionalText(limit: 8_192)
            )
        case Kind.pushFolder:
            self = .pushFolder(id: try r.varint(), path: try r.text(limit: 8_192))
        case Kind.pushOpen:
            let id = try r.varint()
            let path = try r.text(limit: 8_192)
            let tag = try r.text(limit: 64)
            let resumeAt = try r.signed()
            guard resumeAt >= 0 else { throw WireError("resume offset \(resumeAt)") }
            self = .pushOpen(id: id, path: path, tag: tag, resumeAt: resumeAt)
        case Kind.pushBegin:
            let id = try r.varint()
            let path = try r.text(limit: 8_192)
            let tag = try r.text(limit: 64)
            let resumeAt = try r.signed()
            let size = try r.signed()
            guard resumeAt >= 0, size >= 0 else { throw WireError("resume offset \(resumeAt), size \(size)") }
            self = .pushBegin(id: id, path: path, tag: tag, resumeAt: resumeAt, size: size)
        case Kind.pushData:
            let id = try r.varint()
            let path = try r.text(limit: 8_192)
            let tag = try r.text(limit: 64)
            let offset = try r.signed()
            guard offset >= 0 else { throw WireError("data offset \(offset)") }
            self = .pushData(
                id: id,
                path: path,
                tag: tag,
                offset: offset,
                bytes: try r.data(limit: Self.maxRead),
                sync: try r.bool()
            )
        case Kind.pushCommit:
            let id = try r.varint()
            let path = try r.text(limit: 8_192)
            let tag = try r.text(limit: 64)
            let size = try r.signed()
            guard size >= 0 else { throw WireError("file size \(size)") }
            self = .pushCommit(
                id: id,
                path: path,
                tag: tag,
                commit: PushCommit(
                    size: size,
                    contentID: try r.optionalText(limit: 128),
                    fullHash: try r.optionalText(limit: 128),
                    mtimeNanoseconds: try r.signed(),
                    mode: UInt32(try r.count(limit: 0o7777)),
                    replace: try r.bool()
                )
            )
        case Kind.pushAbort:
            self = .pushAbort(id: try r.varint(), path: try r.text(limit: 8_192), tag: try r.text(limit: 64))
        case Kind.pushDone:
            self = .pushDone(id: try r.varint(), value: try r.signed(), error: try r.optionalText(limit: 8_192))
        default:
            throw WireError("unknown sync message kind \(frame.kind)")
        }
        try r.finish()
    }

    static func library(_ r: inout WireReader) throws(WireError) -> LibraryID {
        guard let id = LibraryID(try r.text(limit: 64)) else { throw WireError("bad library id") }
        return id
    }

    static func strings(_ r: inout WireReader) throws(WireError) -> [String] {
        let n = try r.count(limit: 8)
        var out: [String] = []
        for _ in 0..<n { out.append(try r.text(limit: 512)) }
        return out
    }

    static func write(_ c: OwnedCursor, _ w: inout WireWriter) {
        w.signed(c.tombstone)
        for pair in [c.device, c.volume, c.location, c.entry] {
            w.signed(pair.first ?? 0)
            w.signed(pair.count > 1 ? pair[1] : 0)
        }
        w.bool(c.pass != nil)
        if let pass = c.pass {
            w.signed(pass.first ?? 0)
            w.signed(pass.count > 1 ? pass[1] : 0)
        }
    }

    static func cursor(_ r: inout WireReader) throws(WireError) -> OwnedCursor {
        var c = OwnedCursor()
        c.tombstone = try r.signed()
        c.device = [try r.signed(), try r.signed()]
        c.volume = [try r.signed(), try r.signed()]
        c.location = [try r.signed(), try r.signed()]
        c.entry = [try r.signed(), try r.signed()]
        if try r.bool() { c.pass = [try r.signed(), try r.signed()] }
        return c
    }

    static func write(_ b: OwnedBatch, _ w: inout WireWriter) {
        write(b.cursor, &w)
        w.bool(b.done)
        w.bool(b.resyncNeeded)
        w.bool(b.device != nil)
        if let d = b.device {
            w.text(d.id.description)
            w.signed(d.seq)
            w.text(d.name)
            w.text(d.os)
            w.signed(d.createdAt)
            w.signed(d.lastSeenAt)
        }
        w.varint(UInt64(b.volumes.count))
        for v in b.volumes {
            w.text(v.uuid)
            w.signed(v.seq)
            w.text(v.identity)
            w.text(v.name)
            w.data(v.mountPoint)
            w.text(v.filesystem)
            w.bool(v.readOnly)
            w.optionalSigned(v.totalBytes)
            w.optionalSigned(v.freeBytes)
            w.optionalText(v.speedClass)
            w.signed(v.lastSeenAt)
        }
        w.varint(UInt64(b.locations.count))
        for l in b.locations {
            w.text(l.uuid)
            w.signed(l.seq)
            w.optionalText(l.volume)
            w.optionalText(l.volumeIdentity)
            w.text(l.name)
            w.data(l.path)
            w.bool(l.indexContent)
            w.text(l.state)
            w.optionalText(l.stateReason)
            w.optionalSigned(l.lastIndexedAt)
            w.signed(l.createdAt)
        }
        w.varint(UInt64(b.entries.count))
        for e in b.entries {
            w.signed(e.id)
            w.signed(e.seq)
            w.raw(e.uuid.count == 16 ? e.uuid : [UInt8](repeating: 0, count: 16))
            w.text(e.location)
            w.optionalSigned(e.parent)
            w.data(e.name)
            w.signed(e.type)
            w.optionalText(e.category)
            w.optionalText(e.mime)
            w.signed(e.size)
            w.optionalSigned(e.inode)
            w.optionalSigned(e.deviceNumber)
            w.optionalSigned(e.mode)
            w.optionalSigned(e.linkCount)
            w.optionalSigned(e.mtime)
            w.optionalSigned(e.ctime)
            w.optionalData(e.symlinkTarget)
            w.optionalSigned(e.contentID)
            w.optionalText(e.error)
        }
        w.varint(UInt64(b.tombstones.count))
        for t in b.tombstones {
            w.signed(t.id)
            w.signed(t.seq)
            w.text(t.kind)
            w.text(t.ref)
        }
    }

    static func batch(_ r: inout WireReader) throws(WireError) -> OwnedBatch {
        var b = OwnedBatch(cursor: try cursor(&r), done: try r.bool())
        b.resyncNeeded = try r.bool()
        if try r.bool() {
            guard let id = DeviceID(try r.text(limit: 64)) else { throw WireError("bad device id") }
            b.device = OwnedDevice(
                id: id,
                seq: try r.signed(),
                name: try r.text(limit: 1_024),
                os: try r.text(limit: 64),
                createdAt: try r.signed(),
                lastSeenAt: try r.signed()
            )
        }
        for _ in 0..<(try r.count(limit: maxRows)) {
            b.volumes.append(
                OwnedVolume(
                    uuid: try r.text(limit: 64),
                    seq: try r.signed(),
                    identity: try r.text(limit: 1_024),
                    name: try r.text(limit: 4_096),
                    mountPoint: try r.data(limit: 4_096),
                    filesystem: try r.text(limit: 256),
                    readOnly: try r.bool(),
                    totalBytes: try r.optionalSigned(),
                    freeBytes: try r.optionalSigned(),
                    speedClass: try r.optionalText(limit: 64),
                    lastSeenAt: try r.signed()
                )
            )
        }
        for _ in 0..<(try r.count(limit: maxRows)) {
            b.locations.append(
                OwnedLocation(
                    uuid: try r.text(limit: 64),
                    seq: try r.signed(),
                    volume: try r.optionalText(limit: 64),
                    volumeIdentity: try r.optionalText(limit: 1_024),
                    name: try r.text(limit: 4_096),
                    path: try r.data(limit: 4_096),
                    indexContent: try r.bool(),
                    state: try r.text(limit: 64),
                    stateReason: try r.optionalText(limit: 4_096),
                    lastIndexedAt: try r.optionalSigned(),
                    createdAt: try r.signed()
                )
            )
        }
        for _ in 0..<(try r.count(limit: maxRows)) {
            b.entries.append(
                OwnedEntry(
                    id: try r.signed(),
                    seq: try r.signed(),
                    uuid: try r.raw(16),
                    location: try r.text(limit: 64),
                    parent: try r.optionalSigned(),
                    name: try r.data(limit: 4_096),
                    type: try r.signed(),
                    category: try r.optionalText(limit: 64),
                    mime: try r.optionalText(limit: 256),
                    size: try r.signed(),
                    inode: try r.optionalSigned(),
                    deviceNumber: try r.optionalSigned(),
                    mode: try r.optionalSigned(),
                    linkCount: try r.optionalSigned(),
                    mtime: try r.optionalSigned(),
                    ctime: try r.optionalSigned(),
                    symlinkTarget: try r.optionalData(limit: 4_096),
                    contentID: try r.optionalSigned(),
                    error: try r.optionalText(limit: 4_096)
                )
            )
        }
        for _ in 0..<(try r.count(limit: maxRows)) {
            b.tombstones.append(
                OwnedTombstone(
                    id: try r.signed(),
                    seq: try r.signed(),
                    kind: try r.text(limit: 16),
                    ref: try r.text(limit: 64)
                )
            )
        }
        return b
    }
}
