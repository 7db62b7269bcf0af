#if canImport(Glibc)
    @preconcurrency import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An advisory lock on a file (`flock`), held until `unlock()` or deinit. The kernel drops it if the process
/// dies, so a SIGKILLed holder never leaves a stale lock behind.
public struct FileLock: ~Copyable {
    private let descriptor: Int32
    public let path: String

    public enum Mode { case shared, exclusive }

    /// Opens (creating if needed) `path` and takes the lock, waiting for other holders unless `wait` is false
    /// (then a held lock throws `SystemError` with `isWouldBlock`).
    public init(path: String, mode: Mode, wait: Bool = true) throws(SystemError) {
        let fd = retryingEINTR { open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600) }
        guard fd >= 0 else { throw SystemError.current("open lock file", path: path) }
        let operation = (mode == .shared ? LOCK_SH : LOCK_EX) | (wait ? 0 : LOCK_NB)
        guard retryingEINTR({ flock(fd, operation) }) == 0 else {
            let error = SystemError.current("lock", path: path)
            close(fd)
            throw error
        }
        descriptor = fd
        self.path = path
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}

extension SystemError {
    /// A lock asked for without waiting is held by someone else.
    public var isWouldBlock: Bool { errno == EWOULDBLOCK }
}

extension FileLock {
    /// Runs `body` while holding the lock on `path`; the lock is released when `body` returns or throws.
    public static func withLock<R>(path: String, mode: Mode, _ body: () throws -> R) throws -> R {
        let lock = try FileLock(path: path, mode: mode)
        let result = try body()
        _ = consume lock
        return result
    }
}
