import CSDPlatform

#if canImport(Glibc)
    @preconcurrency import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A folder or file that another user could reach or may have planted: what is wrong and what to do.
public struct UnsafePathError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String
    public init(_ path: String, _ message: String) {
        self.path = path
        self.message = message
    }
    public var description: String { message }
}

/// Folders and files only this user may reach (the daemon's runtime folder, its token): checked with `lstat`
/// and `fstat`, never through a symbolic link, so that another account on the machine cannot plant them.
extension FileSystem {
    /// Makes `path` a folder only this user can reach (0700; missing parents 0700 too), or checks that it is
    /// one: a real folder (not a symbolic link), owned by this user, with no permission for group or others.
    ///
    /// #### Errors
    /// `UnsafePathError` saying what is wrong (a link, another owner, a loose mode) and what to do; sd then
    /// uses nothing in it.
    public static func makePrivateDirectory(_ path: String) throws(UnsafePathError) {
        var st = stat()
        if lstat(path, &st) != 0 {
            guard Glibc_errno() == ENOENT else {
                throw UnsafePathError(path, "cannot look at '\(path)': \(SystemError.current("lstat", path: path))")
            }
            let up = parent(of: path)
            do {
                if up != path && !isDirectory(up) { try makeDirectories(up, mode: 0o700) }
            } catch {
                throw UnsafePathError(path, "cannot create '\(up)': \(error)")
            }
            if mkdir(path, 0o700) == 0 {
                chmod(path, 0o700)  // ours, just made: whatever the umask took away
            } else if Glibc_errno() != EEXIST {
                throw UnsafePathError(path, "cannot create '\(path)': \(SystemError.current("mkdir", path: path))")
            }
            guard lstat(path, &st) == 0 else {
                throw UnsafePathError(path, "cannot look at '\(path)': \(SystemError.current("lstat", path: path))")
            }
        }
        try checkPrivate(path, st, folder: true)
    }

    /// Why `st` (of `path`, from `lstat` or `fstat`) is not this user's private folder or file.
    static func checkPrivate(_ path: String, _ st: stat, folder: Bool) throws(UnsafePathError) {
        let type = st.st_mode & S_IFMT
        if type == S_IFLNK {
            throw UnsafePathError(
                path,
                "'\(path)' is a symbolic link; sd uses only a real \(folder ? "folder" : "file") there: remove the link, or set SD_RUNTIME_DIR to a folder of your own"
            )
        }
        guard type == (folder ? S_IFDIR : S_IFREG) else {
            throw UnsafePathError(path, "'\(path)' is not a \(folder ? "folder" : "regular file")")
        }
        guard st.st_uid == geteuid() else {
            throw UnsafePathError(
                path,
                "'\(path)' is owned by uid \(st.st_uid), not by you (uid \(geteuid())): another user may have made it to reach sd; remove it (that may take root), or set SD_RUNTIME_DIR to a folder of your own"
            )
        }
        guard st.st_mode & 0o077 == 0 else {
            throw UnsafePathError(
                path,
                "'\(path)' has mode \(String(st.st_mode & 0o7777, radix: 8)): other users can reach into it; `chmod \(folder ? "700" : "600") '\(path)'` (sd makes it so when it creates it)"
            )
        }
    }

    /// The bytes of `path` if it is a regular file of this user's that nobody else can read or write (opened
    /// without following a link, checked on the open descriptor), at most `limit` bytes; nil otherwise.
    public static func readPrivateFile(_ path: String, limit: Int = 1 << 20) -> [UInt8]? {
        let fd = retryingEINTR { open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) }
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (try? checkPrivate(path, st, folder: false)) != nil, Int(st.st_size) <= limit
        else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { b in
                retryingEINTR { read(fd, b.baseAddress! + done, b.count - done) }
            }
            if n <= 0 { break }
            done += n
        }
        return Array(bytes[0..<done])
    }

    /// Creates `path` anew for writing (whatever was there, a planted symbolic link included, is removed first,
    /// never followed): `O_CREAT | O_EXCL | O_NOFOLLOW`. The open descriptor (the caller closes it).
    public static func createAnew(_ path: String, mode: mode_t = 0o600) throws(SystemError) -> Int32 {
        if unlink(path) != 0 && Glibc_errno() != ENOENT { throw SystemError.current("remove", path: path) }
        let fd = retryingEINTR { open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode) }
        guard fd >= 0 else { throw SystemError.current("create", path: path) }
        return fd
    }

    /// Creates an empty file that must not exist yet, with `mode` (never through a link).
    public static func createEmpty(_ path: String, mode: mode_t) throws(SystemError) {
        let fd = retryingEINTR { open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode) }
        guard fd >= 0 else { throw SystemError.current("create", path: path) }
        close(fd)
    }

    /// Sets the mode of `path` (not following a link) when it grants more than `mode` (an older sd's file).
    /// Whether it changed anything.
    @discardableResult
    public static func restrict(_ path: String, to mode: mode_t) -> Bool {
        var st = stat()
        guard lstat(path, &st) == 0, st.st_mode & S_IFMT != S_IFLNK, st.st_uid == geteuid(),
            st.st_mode & 0o777 & ~mode != 0
        else { return false }
        return chmod(path, st.st_mode & 0o7777 & mode) == 0
    }
}

/// This process's limits.
public enum ProcessLimits {
    /// Raises the soft limit of open descriptors to the hard limit (at most `ceiling`): a daemon holding many
    /// connections and files. The limit now, or nil when it cannot be read.
    @discardableResult
    public static func raiseOpenFiles(ceiling: Int = 65_536) -> Int? {
        let limit = csd_raise_open_files_limit(ceiling)
        return limit < 0 ? nil : limit
    }

    /// The name of process `pid` (`/proc/PID/comm`), or nil when there is no such process (or no /proc).
    public static func processName(_ pid: Int32) -> String? {
        let fd = retryingEINTR { open("/proc/\(pid)/comm", O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        var end = n
        while end > 0 && (buffer[end - 1] == 0x0A || buffer[end - 1] == 0) { end -= 1 }
        return String(decoding: buffer[0..<end], as: UTF8.self)
    }
}
