import Foundation
import Logging

/// swift-log lines appended to a file (the library's `logs/sdd.log`): time, level, message, metadata.
public struct FileLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let label: String
    let file: LogFile

    public init(label: String, path: String) throws {
        self.label = label
        file = try LogFile(path: path)
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        let fields = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let time = ISO8601DateFormatter().string(from: Date())
        file.append("\(time) \(event.level) \(label): \(event.message)\(fields.isEmpty ? "" : " " + fields)\n")
    }
}

/// An append-only file shared by the handlers (one write per line, O_APPEND: lines never interleave).
final class LogFile: Sendable {
    let handle: FileHandle

    init(path: String) throws {
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent,
            withIntermediateDirectories: true
        )
        // Appended to, created 0600, never through a symbolic link put in its place.
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
        }
        handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    func append(_ line: String) { handle.write(Data(line.utf8)) }
}
