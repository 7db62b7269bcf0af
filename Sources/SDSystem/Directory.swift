#if canImport(Glibc)
    @preconcurrency import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What a directory entry is. Only regular files are ever opened by sd; the rest are recorded.
public enum FileType: UInt8, Sendable, Codable {
    case regular = 0, directory = 1, symlink = 2, fifo = 3, socket = 4, characterDevice = 5, blockDevice = 6
    case unknown = 7

    init(mode: mode_t) {
        switch mode & S_IFMT {
        case S_IFREG: self = .regular
        case S_IFDIR: self = .directory
        case S_IFLNK: self = .symlink
        case S_IFIFO: self = .fifo
        case S_IFSOCK: self = .socket
        case S_IFCHR: self = .characterDevice
        case S_IFBLK: self = .blockDevice
        default: self = .unknown
        }
    }
}

/// The metadata of one directory entry, as `fstatat(AT_SYMLINK_NOFOLLOW)` gives it. Names are bytes, exactly
/// as the filesystem holds them.
public struct RawEntry: Sendable {
    public var name: [UInt8]
    public var type: FileType
    public var size: UInt64
    public var inode: UInt64
    public var device: UInt64
    public var mode: UInt32
    public var linkCount: UInt64
    public var mtimeNanoseconds: Int64
    public var ctimeNanoseconds: Int64
    public var symlinkTarget: [UInt8]?
    /// Set when the entry could be listed but not examined (it vanished, or stat was refused).
    public var error: SystemError?

    public init(
        name: [UInt8],
        type: FileType,
        size: UInt64 = 0,
        inode: UInt64 = 0,
        device: UInt64 = 0,
        mode: UInt32 = 0,
        linkCount: UInt64 = 0,
        mtimeNanoseconds: Int64 = 0,
        ctimeNanoseconds: Int64 = 0,
        symlinkTarget: [UInt8]? = nil,
        error: SystemError? = nil
    ) {
        self.name = name
        self.type = type
        self.size = size
        self.inode = inode
        self.device = device
        self.mode = mode
        self.linkCount = linkCount
        self.mtimeNanoseconds = mtimeNanoseconds
        self.ctimeNanoseconds = ctimeNanoseconds
        self.symlinkTarget = symlinkTarget
        self.error = error
    }
}

/// Reads directories with `openat` + `readdir` + `fstatat`, never following symbolic links.
public enum Directory {
    /// Metadata of the file or folder at `path` itself (not following a final symlink).
    public static func stat(_ path: [UInt8]) throws(SystemError) -> RawEntry {
        var st = Glibc.stat()
        let rc = path.withCString { lstat($0, &st) }
        guard rc == 0 else { throw SystemError.current("stat", path: String(decoding: path, as: UTF8.self)) }
        let name = path.split(separator: UInt8(ascii: "/")).last.map(Array.init) ?? path
        var entry = makeEntry(name: name, st)
        if entry.type == .symlink {
            entry.symlinkTarget = path.withCString { readLink(AT_FDCWD, $0, capacity: Int(st.st_size)) }
        }
        return entry
    }

    /// Lists the entries of the folder at `path` with their metadata.
    ///
    /// #### Errors
    /// `SystemError` when the folder itself cannot be opened or read (EACCES, ENOENT, ENOTDIR, ELOOP for a
    /// symlink). An entry that vanishes between readdir and fstatat, or whose fstatat fails, is returned with
    /// `error` set and the type from readdir.
    ///
    /// #### Implementation details
    /// `open(O_DIRECTORY | O_NOFOLLOW)`, `fdopendir`, `readdir`, `fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW)`,
    /// `readlinkat` for symlinks. Each name is copied once into its own array.
    public static func list(_ path: [UInt8]) throws(SystemError) -> [RawEntry] {
        let fd = path.withCString { p in retryingEINTR { open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) } }
        guard fd >= 0 else { throw SystemError.current("open folder", path: String(decoding: path, as: UTF8.self)) }
        guard let dir = fdopendir(fd) else {
            let error = SystemError.current("open folder", path: String(decoding: path, as: UTF8.self))
            close(fd)
            throw error
        }
        defer { closedir(dir) }
        var entries: [RawEntry] = []
        while true {
            errno = 0
            guard let dent = readdir(dir) else {
                if errno != 0 { throw SystemError.current("read folder", path: String(decoding: path, as: UTF8.self)) }
                break
            }
            // The name in place: a dirent is only as long as its name (d_reclen), so copying the declared
            // 256-byte `d_name` reads past the last record of readdir's buffer (AddressSanitizer caught it).
            let entry: RawEntry? = {
                let base = (UnsafeRawPointer(dent) + Self.nameOffset).assumingMemoryBound(to: CChar.self)
                let length = strlen(base)
                if length == 1 && base[0] == 0x2E { return nil }
                if length == 2 && base[0] == 0x2E && base[1] == 0x2E { return nil }
                let name = Array(UnsafeRawBufferPointer(start: base, count: length))
                var st = Glibc.stat()
                if fstatat(fd, base, &st, AT_SYMLINK_NOFOLLOW) != 0 {
                    let error = SystemError.current("stat", path: String(decoding: path + [0x2F] + name, as: UTF8.self))
                    return RawEntry(name: name, type: typeFromDirent(dent.pointee.d_type), error: error)
                }
                var entry = makeEntry(name: name, st)
                if entry.type == .symlink { entry.symlinkTarget = readLink(fd, base, capacity: Int(st.st_size)) }
                return entry
            }()
            if let entry { entries.append(entry) }
        }
        return entries
    }

    /// Where `d_name` starts in a `struct dirent`.
    static let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!

    static func makeEntry(name: [UInt8], _ st: Glibc.stat) -> RawEntry {
        RawEntry(
            name: name,
            type: FileType(mode: st.st_mode),
            size: UInt64(max(0, st.st_size)),
            inode: UInt64(st.st_ino),
            device: UInt64(st.st_dev),
            mode: UInt32(st.st_mode),
            linkCount: UInt64(st.st_nlink),
            mtimeNanoseconds: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec),
            ctimeNanoseconds: Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec)
        )
    }

    static func typeFromDirent(_ t: UInt8) -> FileType {
        switch Int32(t) {
        case Int32(DT_REG): .regular
        case Int32(DT_DIR): .directory
        case Int32(DT_LNK): .symlink
        case Int32(DT_FIFO): .fifo
        case Int32(DT_SOCK): .socket
        case Int32(DT_CHR): .characterDevice
        case Int32(DT_BLK): .blockDevice
        default: .unknown
        }
    }

    static func readLink(_ dirfd: Int32, _ name: UnsafePointer<CChar>, capacity: Int) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: max(capacity, 255) + 1)
        let n = buffer.withUnsafeMutableBytes {
            readlinkat(dirfd, name, $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count)
        }
        guard n >= 0 else { return nil }
        return Array(buffer[..<n])
    }
}

extension Array where Element == UInt8 {
    /// Calls `body` with a NUL-terminated copy of these bytes as a C string.
    @inlinable
    public func withCString<R>(_ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        var copy = self
        copy.append(0)
        return try copy.withUnsafeBufferPointer {
            try body(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self))
        }
    }
}
