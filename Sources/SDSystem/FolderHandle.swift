import CSDPlatform

#if canImport(Glibc)
    @preconcurrency import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A folder held open, under which names from elsewhere (another device) are opened relative to the held
/// descriptor, component by component, never through a symbolic link and never out of the folder: what was
/// checked is what is opened, whatever is renamed or linked meanwhile.
///
/// #### Implementation details
/// Linux: `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`. Where there is none
/// (an older kernel, macOS): each folder on the way opened with `openat(O_DIRECTORY | O_NOFOLLOW)` from the
/// last, the file itself with `O_NOFOLLOW`.
public final class FolderHandle: Sendable {
    public let descriptor: Int32
    public let path: String

    /// Opens the folder at `path` (its own path may go through links: it is where the user put a location).
    public convenience init(path: String) throws(SystemError) {
        try self.init(pathBytes: Array(path.utf8))
    }

    public init(pathBytes: [UInt8]) throws(SystemError) {
        let shown = String(decoding: pathBytes, as: UTF8.self)
        guard !pathBytes.contains(0) else { throw SystemError("open folder", path: shown, errno: EINVAL) }
        let fd = (pathBytes + [0]).withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { c in
                retryingEINTR { Glibc.open(c.baseAddress!, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
            }
        }
        guard fd >= 0 else { throw SystemError.current("open folder", path: shown) }
        descriptor = fd
        path = shown
    }

    private init(descriptor: Int32, path: String) {
        self.descriptor = descriptor
        self.path = path
    }

    deinit { close(descriptor) }

    /// The path of `names` below this folder, for messages.
    public func shown(_ names: [[UInt8]]) -> String {
        names.isEmpty ? path : path + "/" + String(decoding: Array(names.joined(separator: [0x2F])), as: UTF8.self)
    }

    /// Opens `names` (each one plain name) below this folder with `flags` (and `mode` when creating). A link
    /// anywhere on the way is ELOOP, a way out EXDEV. The descriptor (the caller closes it).
    public func open(_ names: [[UInt8]], flags: Int32, mode: mode_t = 0) throws(SystemError) -> Int32 {
        let shown = shown(names)
        if names.isEmpty {
            let fd = retryingEINTR { openat(descriptor, ".", flags | O_CLOEXEC, mode) }
            guard fd >= 0 else { throw SystemError.current("open", path: shown) }
            return fd
        }
        let relative = Array(names.joined(separator: [0x2F])) + [0]
        let fd = relative.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { csd_open_beneath(descriptor, $0.baseAddress!, flags, UInt32(mode)) }
        }
        if fd >= 0 { return fd }
        guard Glibc_errno() == ENOSYS else { throw SystemError.current("open", path: shown) }
        // No openat2: one component at a time, never following a link.
        var current = retryingEINTR { openat(descriptor, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard current >= 0 else { throw SystemError.current("open", path: path) }
        for (i, name) in names.enumerated() {
            let last = i == names.count - 1
            let next = (name + [0]).withUnsafeBufferPointer { p in
                p.withMemoryRebound(to: CChar.self) { n in
                    retryingEINTR {
                        last
                            ? openat(current, n.baseAddress!, flags | O_NOFOLLOW | O_CLOEXEC, mode)
                            : openat(current, n.baseAddress!, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    }
                }
            }
            let error = Glibc_errno()
            close(current)
            guard next >= 0 else { throw SystemError("open", path: shown, errno: error) }
            current = next
        }
        return current
    }

    /// The folder `names` below this one, held.
    public func folder(_ names: [[UInt8]]) throws(SystemError) -> FolderHandle {
        let fd = try open(names, flags: O_RDONLY | O_DIRECTORY)
        return FolderHandle(descriptor: fd, path: shown(names))
    }

    /// What is at `name` in this folder (a link is described, not followed), or nil when nothing is.
    public func entry(_ name: [UInt8]) throws(SystemError) -> RawEntry? {
        var st = stat()
        let result = (name + [0]).withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { fstatat(descriptor, $0.baseAddress!, &st, AT_SYMLINK_NOFOLLOW) }
        }
        if result != 0 {
            if Glibc_errno() == ENOENT { return nil }
            throw SystemError.current("stat", path: shown([name]))
        }
        return Directory.makeEntry(name: name, st)
    }

    /// Makes the folder `name` here (`mode` as for mkdir).
    public func makeFolder(_ name: [UInt8], mode: mode_t = 0o755) throws(SystemError) {
        let result = (name + [0]).withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { mkdirat(descriptor, $0.baseAddress!, mode) }
        }
        guard result == 0 else { throw SystemError.current("create folder", path: shown([name])) }
    }

    /// Renames `from` to `to`, both in this folder: never over an existing `to` unless `replace`.
    public func rename(_ from: [UInt8], to: [UInt8], replace: Bool) throws(SystemError) {
        let result = (from + [0]).withUnsafeBufferPointer { f in
            (to + [0]).withUnsafeBufferPointer { t in
                f.withMemoryRebound(to: CChar.self) { fp in
                    t.withMemoryRebound(to: CChar.self) { tp in
                        csd_renameat2(descriptor, fp.baseAddress!, descriptor, tp.baseAddress!, replace ? 0 : 1)
                    }
                }
            }
        }
        guard result == 0 else { throw SystemError.current("rename", path: shown([to])) }
    }

    /// Removes the file `name` here (errors ignored: for sd's own temporaries). Whether it was removed.
    @discardableResult
    public func remove(_ name: [UInt8]) -> Bool {
        (name + [0]).withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { unlinkat(descriptor, $0.baseAddress!, 0) == 0 }
        }
    }

    /// Flushes the folder (entries made, renamed or removed in it).
    public func sync() throws(SystemError) {
        guard fsync(descriptor) == 0 else { throw SystemError.current("fsync", path: path) }
    }

    /// Bytes an unprivileged user may still write on the folder's filesystem.
    public func freeBytes() -> Int64? {
        var st = statvfs()
        guard fstatvfs(descriptor, &st) == 0 else { return nil }
        return Int64(st.f_bavail) &* Int64(st.f_frsize)
    }
}
