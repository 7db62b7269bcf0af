#if canImport(Glibc)
    @preconcurrency import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An open, read-only file, read by offset (`pread`), so one handle can serve concurrent readers.
///
/// The descriptor is closed when the value is deinitialized; the type is not copyable so that exactly one
/// owner closes it.
public struct ReadOnlyFile: ~Copyable, Sendable {
    public let descriptor: Int32
    public let path: String
    /// The size when the file was opened (one `fstat` serves both the folder check and this).
    public let sizeAtOpen: UInt64

    /// Opens `path` for reading. Symbolic links are followed (as `cat` and `b3sum` do).
    ///
    /// #### Errors
    /// `SystemError` with ENOENT when missing, EACCES when unreadable, EISDIR when a folder, EINVAL when not a
    /// regular file (a fifo, socket or device: sd never reads those).
    public init(path: String) throws(SystemError) {
        try self.init(pathBytes: Array(path.utf8))
    }

    /// Opens the file at `pathBytes` (any bytes: Linux paths need not be UTF-8).
    ///
    /// #### Implementation details
    /// `open(O_RDONLY | O_NONBLOCK)` so that a fifo put where a file was cannot block the caller, then `fstat`
    /// to refuse anything but a regular file.
    public init(pathBytes: [UInt8]) throws(SystemError) {
        let display = String(decoding: pathBytes, as: UTF8.self)
        let fd = pathBytes.withCString { p in retryingEINTR { open(p, O_RDONLY | O_CLOEXEC | O_NONBLOCK) } }
        guard fd >= 0 else { throw SystemError.current("open", path: display) }
        try self.init(descriptor: fd, path: display)
    }

    /// Takes `fd` (opened for reading, e.g. by `FolderHandle.open`): refused (and closed) unless it is a
    /// regular file.
    public init(descriptor fd: Int32, path display: String) throws(SystemError) {
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let error = SystemError.current("stat", path: display)
            close(fd)
            throw error
        }
        switch st.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR:
            close(fd)
            throw SystemError("read", path: display, errno: EISDIR)
        default:
            close(fd)
            throw SystemError("read (not a regular file)", path: display, errno: EINVAL)
        }
        self.descriptor = fd
        self.path = display
        self.sizeAtOpen = UInt64(st.st_size)
    }

    deinit { close(descriptor) }

    /// The file's size in bytes now.
    public func size() throws(SystemError) -> UInt64 {
        var st = stat()
        guard fstat(descriptor, &st) == 0 else { throw SystemError.current("stat", path: path) }
        return UInt64(st.st_size)
    }

    /// Reads up to `buffer.count` bytes at `offset`; returns the count read, short only at end of file.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(SystemError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = retryingEINTR {
                pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            }
            if n < 0 { throw SystemError.current("read", path: path) }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Maps the whole file read-only and calls `body` with its bytes.
    ///
    /// #### Implementation details
    /// `mmap(PROT_READ, MAP_PRIVATE)` plus `MADV_SEQUENTIAL`. If another process truncates the file while it
    /// is mapped, touching the lost pages raises SIGBUS: use this only where that risk is accepted (as
    /// `b3sum` does), and `read(into:at:)` elsewhere.
    public func withMappedBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let length = Int(try size())
        if length == 0 { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        guard let base = mmap(nil, length, PROT_READ, MAP_PRIVATE, descriptor, 0), base != MAP_FAILED else {
            throw SystemError.current("mmap", path: path)
        }
        defer { munmap(base, length) }
        _ = madvise(base, length, MADV_SEQUENTIAL)
        return try body(UnsafeRawBufferPointer(start: base, count: length))
    }
}
