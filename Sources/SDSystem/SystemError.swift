#if canImport(Glibc)
    @preconcurrency import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A failed system call: which operation, on which path, the errno, and a message that says what it means.
public struct SystemError: Error, Sendable, CustomStringConvertible {
    public var operation: String
    public var path: String?
    public var errno: Int32

    public init(_ operation: String, path: String?, errno: Int32) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    /// The file does not exist.
    public var isNotFound: Bool { errno == ENOENT || errno == ENOTDIR }
    /// Permission was refused.
    public var isPermissionDenied: Bool { errno == EACCES || errno == EPERM }
    /// The target already exists.
    public var isExists: Bool { errno == EEXIST }

    public var description: String {
        let reason = String(cString: strerror(errno))
        if let path { return "\(operation) '\(path)': \(reason)" }
        return "\(operation): \(reason)"
    }

    /// Builds the error for the current `errno`.
    static func current(_ operation: String, path: String?) -> SystemError {
        SystemError(operation, path: path, errno: Glibc_errno())
    }
}

@inline(__always)
func Glibc_errno() -> Int32 {
    #if canImport(Glibc)
        return Glibc.errno
    #else
        return Darwin.errno
    #endif
}

/// Retries a system call interrupted by a signal.
@inline(__always)
func retryingEINTR<T: BinaryInteger>(_ body: () -> T) -> T {
    while true {
        let r = body()
        if r == -1 && Glibc_errno() == EINTR { continue }
        return r
    }
}
