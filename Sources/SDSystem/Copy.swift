import CSDPlatform

#if canImport(Glibc)
    @preconcurrency import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Copying files' bytes, for sd's copy and move actions.
extension FileSystem {
    /// Copies `from`'s bytes to a new file `to` (which must not exist), with `from`'s permission bits (read,
    /// write, execute: never setuid, setgid or sticky on a copy) and modification time; does not fsync (see `syncFileSystem`). Returns the bytes copied. A partial `to` is
    /// removed when a step fails.
    ///
    /// #### Implementation details
    /// `copy_file_range` (the kernel copies, or clones on filesystems that can), falling back to read/write
    /// in 1 MiB pieces where it is not supported (other filesystems, other systems).
    @discardableResult
    public static func copyFile(from: String, to: String) throws(SystemError) -> UInt64 {
        var copied: UInt64 = 0
        try makeCopy(from: from, to: to) { source, target -> SystemError? in
            var useKernel = true
            while true {
                guard useKernel else { return copyByReading(source, target, path: to, copied: &copied) }
                let n = retryingEINTR { csd_copy_file_range(source, target, 1 << 30) }
                if n > 0 {
                    copied += UInt64(n)
                    continue
                }
                if n == 0 { return nil }
                let code = Glibc_errno()
                if copied == 0 && (code == EXDEV || code == ENOSYS || code == EOPNOTSUPP || code == EINVAL) {
                    useKernel = false
                    continue
                }
                return SystemError.current("copy", path: to)
            }
        }
        return copied
    }

    /// Creates `to` (which must not exist) with `from`'s permission bits, lets `fill` write it from `from`
    /// (both open: source, target), then gives it `from`'s times. A failure of any step removes `to`.
    static func makeCopy(
        from: String,
        to: String,
        _ fill: (_ source: Int32, _ target: Int32) -> SystemError?
    ) throws(SystemError) {
        let source = retryingEINTR { open(from, O_RDONLY | O_CLOEXEC) }
        guard source >= 0 else { throw SystemError.current("open", path: from) }
        defer { close(source) }
        var st = stat()
        guard fstat(source, &st) == 0 else { throw SystemError.current("stat", path: from) }
        let target = retryingEINTR { open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 0o777) }
        guard target >= 0 else { throw SystemError.current("create", path: to) }
        var failure = fill(source, target)
        if failure == nil {
            var times = [st.st_atim, st.st_mtim]
            if futimens(target, &times) != 0 { failure = SystemError.current("set times", path: to) }
        }
        close(target)
        if let failure {
            unlink(to)
            throw failure
        }
    }

    private static func copyByReading(_ source: Int32, _ target: Int32, path: String, copied: inout UInt64)
        -> SystemError?
    {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        while true {
            let n = retryingEINTR { read(source, buffer, 1 << 20) }
            if n < 0 { return SystemError.current("read", path: path) }
            if n == 0 { return nil }
            var done = 0
            while done < n {
                let w = retryingEINTR { write(target, buffer + done, n - done) }
                if w < 0 { return SystemError.current("write", path: path) }
                done += w
            }
            copied += UInt64(n)
        }
    }

    /// Flushes every written file and folder entry of the filesystem holding `path` to its disk (`syncfs`):
    /// one call for a batch of copies instead of an fsync per file.
    public static func syncFileSystem(containing path: String) throws(SystemError) {
        let fd = retryingEINTR { open(path, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { throw SystemError.current("open", path: path) }
        defer { close(fd) }
        guard csd_syncfs(fd) == 0 else { throw SystemError.current("sync", path: path) }
    }

    /// Renames `from` over `to`, replacing it if it exists.
    public static func renameReplacing(_ from: String, to: String) throws(SystemError) {
        guard rename(from, to) == 0 else { throw SystemError.current("rename", path: to) }
    }

    /// Removes a file or symbolic link; one already gone is not an error.
    public static func removeFile(_ path: String) throws(SystemError) {
        if unlink(path) != 0 && Glibc_errno() != ENOENT { throw SystemError.current("remove", path: path) }
    }

    /// Removes a file tree for good (a user's `sd rm --permanent`): every entry it can, then throws the first
    /// error met (a part already gone is not an error).
    public static func removeTreeReporting(_ path: String) throws(SystemError) {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            if Glibc_errno() == ENOENT { return }
            throw SystemError.current("stat", path: path)
        }
        var first: SystemError?
        if (st.st_mode & S_IFMT) == S_IFDIR {
            do {
                for name in try list(path) {
                    do { try removeTreeReporting("\(path)/\(name)") } catch { first = first ?? error }
                }
            } catch {
                first = first ?? error
            }
            if rmdir(path) != 0 && Glibc_errno() != ENOENT {
                first = first ?? SystemError.current("remove", path: path)
            }
        } else if unlink(path) != 0 && Glibc_errno() != ENOENT {
            first = first ?? SystemError.current("remove", path: path)
        }
        if let first { throw first }
    }

    /// Removes a folder if it is empty; a folder gone or not empty is left as it is (returns false).
    @discardableResult
    public static func removeEmptyFolder(_ path: String) -> Bool { rmdir(path) == 0 }

    /// Whether the current user may create entries in the folder.
    public static func canWrite(folder: String) -> Bool { access(folder, W_OK | X_OK) == 0 }

    /// The file's identity (device, inode), or nil when it cannot be stat'ed.
    public static func identity(_ path: String) -> (device: UInt64, inode: UInt64)? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return (UInt64(st.st_dev), UInt64(st.st_ino))
    }
}

extension FileSystem {
    /// The largest file `copySmallFile` takes.
    public static let smallFileLimit = 1 << 20

    /// Copies a small file through memory to a new file `to`, with `from`'s permission bits and times, then
    /// reads the new file back and compares every byte with what was read from `from`. Returns the bytes
    /// copied. Two opens per file instead of four (copy, then open both again to verify).
    ///
    /// #### Errors
    /// `SystemError` for a failed step; `CopyMismatch` when the bytes read back differ (the new file is removed
    /// either way).
    @discardableResult
    public static func copySmallFile(from: String, to: String) throws -> UInt64 {
        let source = retryingEINTR { open(from, O_RDONLY | O_CLOEXEC) }
        guard source >= 0 else { throw SystemError.current("open", path: from) }
        defer { close(source) }
        var st = stat()
        guard fstat(source, &st) == 0 else { throw SystemError.current("stat", path: from) }
        let size = Int(st.st_size)
        guard size <= smallFileLimit else { return try copyFile(from: from, to: to) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, size * 2), alignment: 64)
        defer { buffer.deallocate() }
        var read = 0
        while read < size {
            let n = retryingEINTR { pread(source, buffer.baseAddress! + read, size - read, off_t(read)) }
            if n < 0 { throw SystemError.current("read", path: from) }
            if n == 0 { break }
            read += n
        }
        guard read == size else { throw SystemError("read", path: from, errno: EIO) }
        let target = retryingEINTR { open(to, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 0o777) }
        guard target >= 0 else { throw SystemError.current("create", path: to) }
        do {
            var written = 0
            while written < size {
                let n = retryingEINTR { pwrite(target, buffer.baseAddress! + written, size - written, off_t(written)) }
                if n < 0 { throw SystemError.current("write", path: to) }
                written += n
            }
            var times = [st.st_atim, st.st_mtim]
            if futimens(target, &times) != 0 { throw SystemError.current("set times", path: to) }
            let back = buffer.baseAddress! + size
            var got = 0
            while got < size {
                let n = retryingEINTR { pread(target, back + got, size - got, off_t(got)) }
                if n < 0 { throw SystemError.current("read back", path: to) }
                if n == 0 { break }
                got += n
            }
            guard got == size && memcmp(buffer.baseAddress!, back, size) == 0 else { throw CopyMismatch(path: to) }
        } catch {
            close(target)
            unlink(to)
            throw error
        }
        close(target)
        return UInt64(size)
    }
}

/// A copy whose bytes read back differ from its source's.
public struct CopyMismatch: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var description: String { "\(path): the bytes read back differ from the source's" }
}
