import Foundation
import SDSystem

/// A fresh directory under the system's temporary folder, removed when the value goes away.
public final class TemporaryDirectory: Sendable {
    public let path: String

    /// `base`: where to make it (default: the system's temporary folder).
    public init(prefix: String = "sd-test", base: String? = nil) throws {
        let base = base ?? FileManager.default.temporaryDirectory.path
        let candidate = "\(base)/\(prefix)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: candidate, withIntermediateDirectories: true)
        path = candidate
    }

    public func file(_ name: String) -> String { "\(path)/\(name)" }

    /// Writes `bytes` to `name` (creating folders on the way) and returns the file's path.
    @discardableResult
    public func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let full = file(name)
        try FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent,
            withIntermediateDirectories: true
        )
        try Data(bytes).write(to: URL(fileURLWithPath: full))
        return full
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// A folder on another filesystem than the system's temporary folder (the RAM disk `/dev/shm`), for
    /// cross-filesystem tests; nil where there is none.
    public static func onOtherFilesystem(prefix: String) throws -> TemporaryDirectory? {
        var shm = stat()
        var tmp = stat()
        guard stat("/dev/shm", &shm) == 0, stat(FileManager.default.temporaryDirectory.path, &tmp) == 0,
            shm.st_dev != tmp.st_dev, access("/dev/shm", W_OK) == 0
        else { return nil }
        return try TemporaryDirectory(prefix: prefix, base: "/dev/shm")
    }
}

/// Runs a program and returns its exit status and standard output.
public enum Run {
    @discardableResult
    public static func program(
        _ path: String,
        _ arguments: [String],
        input: Data? = nil,
        environment: [String: String]? = nil
    ) throws -> (status: Int32, out: Data, err: Data) {
        let result = try ChildProcess.run(
            path,
            arguments,
            input: input.map { [UInt8]($0) } ?? [],
            environment: environment
        )
        return (result.termination.code, Data(result.out), Data(result.err))
    }

    /// Finds `name` on PATH.
    public static func which(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}

extension TemporaryDirectory {
    /// Every file below `root`: relative path -> contents.
    public static func tree(_ root: String) throws -> [String: String] {
        var result: [String: String] = [:]
        for relative in try FileManager.default.subpathsOfDirectory(atPath: root) {
            let full = "\(root)/\(relative)"
            var isDir: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: full, isDirectory: &isDir)
            guard !isDir.boolValue else { continue }
            // A file's text, or (not UTF-8) its bytes in base64; a link that points nowhere reads as "<link>".
            guard let data = FileManager.default.contents(atPath: full) else {
                result[relative] = "<link>"
                continue
            }
            result[relative] = String(data: data, encoding: .utf8) ?? "<bytes> " + data.base64EncodedString()
        }
        return result
    }
}

/// Independent oracles for what files hold.
public enum Oracle {
    /// Every file below `root` (relative path) with its BLAKE3 as `b3sum` computes it (not sd's code).
    ///
    /// #### Errors
    /// `ScriptError` when b3sum is missing or fails (scripts/test installs it).
    public static func b3sums(_ root: String) throws -> [String: String] {
        guard let b3sum = Run.which("b3sum") else { throw ScriptError("b3sum is needed: scripts/test installs it") }
        let files = (FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? []).filter {
            var isDir: ObjCBool = false
            return FileManager.default.fileExists(atPath: root + "/" + $0, isDirectory: &isDir) && !isDir.boolValue
        }
        var result: [String: String] = [:]
        for chunk in stride(from: 0, to: files.count, by: 500).map({ Array(files[$0..<min($0 + 500, files.count)]) }) {
            let r = try Run.program(b3sum, ["--no-names"] + chunk.map { root + "/" + $0 })
            guard r.status == 0 else { throw ScriptError("b3sum failed: \(String(decoding: r.err, as: UTF8.self))") }
            let hashes = String(decoding: r.out, as: UTF8.self).split(separator: "\n").map(String.init)
            guard hashes.count == chunk.count else {
                throw ScriptError("b3sum answered \(hashes.count) of \(chunk.count)")
            }
            for (name, hash) in zip(chunk, hashes) { result[name] = hash }
        }
        return result
    }
}
