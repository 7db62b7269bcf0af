import CSDPlatform
import Synchronization

#if canImport(Glibc)
    @preconcurrency import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The file operations sd needs to keep the library consistent on disk: atomic writes, no-replace renames,
/// fsync of files and folders, advisory locks.
public enum FileSystem {
    /// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsynced, renamed over
    /// `path`, then the folder fsynced. Readers see the old file or the new one, never a part.
    ///
    /// #### Implementation details
    /// `open(O_CREAT|O_EXCL)` on `.<name>.tmp-<pid>-<n>`, `write`, `fsync`, `rename`, `fsync(dir)`. The
    /// temporary file is removed if any step fails.
    public static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644) throws(SystemError) {
        let temporary = temporaryName(for: path)
        try writeNew(bytes, to: temporary, mode: mode)
        guard rename(temporary, path) == 0 else {
            let error = SystemError.current("rename", path: path)
            unlink(temporary)
            throw error
        }
        try syncDirectory(containing: path)
    }

    /// Writes a new file that must not exist yet, and fsyncs it.
    public static func writeNew(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644) throws(SystemError) {
        let fd = retryingEINTR { open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode) }
        guard fd >= 0 else { throw SystemError.current("create", path: path) }
        var ok = true
        var failure: SystemError?
        bytes.withUnsafeBytes { buffer in
            var done = 0
            while done < buffer.count {
                let n = retryingEINTR { write(fd, buffer.baseAddress! + done, buffer.count - done) }
                if n < 0 {
                    failure = SystemError.current("write", path: path)
                    ok = false
                    return
                }
                done += n
            }
        }
        if ok && fsync(fd) != 0 {
            failure = SystemError.current("fsync", path: path)
            ok = false
        }
        close(fd)
        if let failure {
            unlink(path)
            throw failure
        }
    }

    /// Renames `from` to `to`, failing with EEXIST instead of replacing an existing `to` (files and folders).
    public static func renameNoReplace(_ from: String, to: String) throws(SystemError) {
        if csd_renameat2(AT_FDCWD, from, AT_FDCWD, to, 1) != 0 {
            throw SystemError.current("rename", path: to)
        }
    }

    /// fsyncs a folder, so that entries created, renamed or removed in it survive a power loss.
    public static func syncDirectory(_ path: String) throws(SystemError) {
        let fd = retryingEINTR { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard fd >= 0 else { throw SystemError.current("open", path: path) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw SystemError.current("fsync", path: path) }
    }

    public static func syncDirectory(containing path: String) throws(SystemError) {
        try syncDirectory(parent(of: path))
    }

    /// Creates a folder and any missing parents (like `mkdir -p`).
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(SystemError) {
        if isDirectory(path) { return }
        let up = parent(of: path)
        if up != path && !up.isEmpty { try makeDirectories(up, mode: mode) }
        if mkdir(path, mode) != 0 && Glibc_errno() != EEXIST {
            throw SystemError.current("create folder", path: path)
        }
    }

    /// Removes a file if it exists (errors ignored: for sd's own temporary files).
    public static func remove(_ path: String) {
        unlink(path)
    }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// Removes a file tree (for cleaning up sd's own temporary folders, never user files).
    public static func removeTree(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for name in (try? list(path)) ?? [] { removeTree("\(path)/\(name)") }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    /// The names in a folder (without "." and "..").
    public static func list(_ path: String) throws(SystemError) -> [String] {
        guard let dir = opendir(path) else { throw SystemError.current("list", path: path) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            // In place: copying the declared 256-byte d_name reads past a short last record (see Directory.list).
            let start = (UnsafeRawPointer(entry) + Directory.nameOffset).assumingMemoryBound(to: UInt8.self)
            // Its bytes kept (`PathText`): a name that is not UTF-8 is not replaced.
            let name = PathText.string(UnsafeBufferPointer(start: start, count: strlen(start)))
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public static func parent(of path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return "." }
        if slash == path.utf8.startIndex { return "/" }
        return String(path[..<slash])
    }

    private static let counter = Counter()

    static func temporaryName(for path: String) -> String {
        let dir = parent(of: path)
        let name =
            path.utf8.split(separator: UInt8(ascii: "/")).last.map { String(decoding: $0, as: UTF8.self) } ?? "file"
        return "\(dir)/.\(name).tmp-\(getpid())-\(counter.next())"
    }
}

/// A process-wide counter for unique temporary names.
final class Counter: Sendable {
    private let value = Mutex(0)
    func next() -> Int {
        value.withLock {
            $0 += 1; return $0
        }
    }
}
