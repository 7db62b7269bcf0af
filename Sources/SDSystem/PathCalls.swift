import CSDPlatform

#if canImport(Glibc)
    @preconcurrency import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// The system calls this target makes with a path held in a `String` get the bytes the string carries
// (`PathText`): a name that is not UTF-8, or holds control bytes, reaches the kernel exactly. These overloads
// are chosen over the C functions' implicit String-to-pointer conversion, which would pass the stand-ins' UTF-8.

@inline(__always) func open(_ path: String, _ flags: Int32) -> Int32 {
    PathText.withCPath(path) { open($0, flags) }
}

@inline(__always) func open(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 {
    PathText.withCPath(path) { open($0, flags, mode) }
}

@inline(__always) func stat(_ path: String, _ buffer: UnsafeMutablePointer<stat>) -> Int32 {
    PathText.withCPath(path) { stat($0, buffer) }
}

@inline(__always) func lstat(_ path: String, _ buffer: UnsafeMutablePointer<stat>) -> Int32 {
    PathText.withCPath(path) { lstat($0, buffer) }
}

@inline(__always) func rename(_ from: String, _ to: String) -> Int32 {
    PathText.withCPath(from) { f in PathText.withCPath(to) { t in rename(f, t) } }
}

@inline(__always) func link(_ existing: String, _ new: String) -> Int32 {
    PathText.withCPath(existing) { e in PathText.withCPath(new) { n in link(e, n) } }
}

@inline(__always) @discardableResult func unlink(_ path: String) -> Int32 {
    PathText.withCPath(path) { unlink($0) }
}

@inline(__always) @discardableResult func rmdir(_ path: String) -> Int32 {
    PathText.withCPath(path) { rmdir($0) }
}

@inline(__always) func mkdir(_ path: String, _ mode: mode_t) -> Int32 {
    PathText.withCPath(path) { mkdir($0, mode) }
}

@inline(__always) func access(_ path: String, _ mode: Int32) -> Int32 {
    PathText.withCPath(path) { access($0, mode) }
}

@inline(__always) @discardableResult func chmod(_ path: String, _ mode: mode_t) -> Int32 {
    PathText.withCPath(path) { chmod($0, mode) }
}

@inline(__always) func utimensat(
    _ fd: Int32,
    _ path: String,
    _ times: UnsafePointer<timespec>,
    _ flags: Int32
) -> Int32 {
    PathText.withCPath(path) { utimensat(fd, $0, times, flags) }
}

@inline(__always) func opendir(_ path: String) -> OpaquePointer? {
    PathText.withCPath(path) { opendir($0) }
}

@inline(__always) func statvfs(_ path: String, _ buffer: UnsafeMutablePointer<statvfs>) -> Int32 {
    PathText.withCPath(path) { statvfs($0, buffer) }
}

@inline(__always) func csd_renameat2(_ fromFD: Int32, _ from: String, _ toFD: Int32, _ to: String, _ flags: UInt32)
    -> Int32
{
    PathText.withCPath(from) { f in PathText.withCPath(to) { t in csd_renameat2(fromFD, f, toFD, t, flags) } }
}

extension FileSystem {
    /// The working directory, its bytes kept (`PathText`).
    public static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return "/" }
        return PathText.string(buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) })
    }
}

extension FileSystem {
    /// Where `path` really is, every link resolved (`realpath(3)` on its bytes), or nil when it does not exist.
    public static func realPath(_ path: String) -> String? {
        PathText.withCPath(path) { p -> String? in
            guard let resolved = realpath(p, nil) else { return nil }
            defer { free(resolved) }
            let bytes = UnsafeBufferPointer(
                start: UnsafeRawPointer(resolved).assumingMemoryBound(to: UInt8.self),
                count: strlen(resolved)
            )
            return PathText.string(bytes)
        }
    }

    /// Where `path` would really be: its longest existing ancestor resolved (`realPath`), then the rest of its
    /// names as they are.
    public static func resolved(_ path: String) -> String {
        var head = path
        var rest: [String] = []
        while true {
            if let real = realPath(head) {
                return rest.isEmpty ? real : (real == "/" ? "" : real) + "/" + rest.reversed().joined(separator: "/")
            }
            let parent = FileSystem.parent(of: head)
            if parent == head || head.isEmpty { return path }
            rest.append(String(head.dropFirst(parent == "/" ? 1 : parent.count + 1)))
            head = parent
        }
    }

    /// The target a symbolic link holds, its bytes kept.
    public static func linkTarget(_ path: String) throws(SystemError) -> String {
        var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = PathText.withCPath(path) { p in
            buffer.withUnsafeMutableBufferPointer { b in
                b.withMemoryRebound(to: CChar.self) { readlink(p, $0.baseAddress!, $0.count - 1) }
            }
        }
        guard n >= 0 else { throw SystemError.current("read link", path: path) }
        return PathText.string(buffer.prefix(n))
    }

    /// Makes a symbolic link at `path` holding `target` (bytes kept); fails if `path` exists.
    public static func makeLink(at path: String, to target: String) throws(SystemError) {
        let rc = PathText.withCPath(target) { t in PathText.withCPath(path) { p in symlink(t, p) } }
        guard rc == 0 else { throw SystemError.current("make link", path: path) }
    }
}

extension FileSystem {
    /// Swaps `a` and `b` in one step (`renameat2(RENAME_EXCHANGE)`): both must exist; at every moment each name
    /// holds one of the two.
    public static func exchange(_ a: String, _ b: String) throws(SystemError) {
        if csd_renameat2(AT_FDCWD, a, AT_FDCWD, b, 2) != 0 { throw SystemError.current("exchange", path: b) }
    }
}
