#if canImport(Glibc)
    @preconcurrency import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A file being received (a copy from another device): written by offset, flushed on demand, kept at a
/// known length so that a resumed transfer can cut it back to what was flushed and go on from there.
public struct PartFile: ~Copyable, Sendable {
    public let descriptor: Int32
    public let path: String

    /// Opens `path` for writing: created new (`resume` false: it must not exist), or opened as it is and
    /// cut to `resumeAt` bytes (`resume` true: the bytes before it were flushed by an earlier run).
    public init(path: String, mode: UInt32 = 0o644, resumeAt: Int64? = nil) throws(SystemError) {
        // (A temporary is never a symbolic link: one put in its place is not followed.)
        let flags = resumeAt == nil ? O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC : O_WRONLY | O_NOFOLLOW | O_CLOEXEC
        let fd = retryingEINTR { open(path, flags, mode_t(mode)) }
        guard fd >= 0 else { throw SystemError.current(resumeAt == nil ? "create" : "open", path: path) }
        if let resumeAt, ftruncate(fd, off_t(resumeAt)) != 0 {
            let error = SystemError.current("truncate", path: path)
            close(fd)
            throw error
        }
        descriptor = fd
        self.path = path
    }

    /// Takes `fd` (opened for writing, e.g. by `FolderHandle.open`).
    public init(descriptor fd: Int32, path: String) {
        descriptor = fd
        self.path = path
    }

    /// Opens an existing temporary for more writes, as it is.
    public init(existing path: String) throws(SystemError) {
        let fd = retryingEINTR { open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC) }
        guard fd >= 0 else { throw SystemError.current("open", path: path) }
        descriptor = fd
        self.path = path
    }

    deinit { close(descriptor) }

    /// Writes all of `bytes` at `offset`.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(SystemError) {
        var done = 0
        while done < bytes.count {
            let n = retryingEINTR {
                pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
            }
            if n < 0 { throw SystemError.current("write", path: path) }
            done += n
        }
    }

    /// Flushes the written bytes to the disk.
    public func sync() throws(SystemError) {
        guard fdatasync(descriptor) == 0 else { throw SystemError.current("sync", path: path) }
    }

    /// Sets the access and modification times (nanoseconds since 1970) to the original's modification time.
    public func setModificationTime(_ nanoseconds: Int64) throws(SystemError) {
        let mtime = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        var times = [mtime, mtime]
        guard futimens(descriptor, &times) == 0 else { throw SystemError.current("set times", path: path) }
    }

    /// Sets its permission bits (once written: a read-only original's copy is made writable until then): read,
    /// write and execute only; setuid, setgid and sticky are never given to a received or copied file.
    public func setMode(_ mode: UInt32) throws(SystemError) {
        guard fchmod(descriptor, mode_t(mode & 0o777)) == 0 else { throw SystemError.current("chmod", path: path) }
    }

    /// Its size now.
    public func size() throws(SystemError) -> Int64 {
        var st = stat()
        guard fstat(descriptor, &st) == 0 else { throw SystemError.current("stat", path: path) }
        return Int64(st.st_size)
    }
}
