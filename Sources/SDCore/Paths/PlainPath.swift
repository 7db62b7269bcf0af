/// Paths and names that come from elsewhere (another device, a request), checked as bytes before anything is
/// opened with them: an absolute path of plain components, each a name a file can have.
public enum PlainPath {
    /// The longest name (bytes), as on Linux and macOS.
    public static let maximumName = 255
    /// The longest path (bytes).
    public static let maximumPath = 4_096

    /// Why `name` is not one name a file can have, or nil: not empty, not `.` or `..`, no `/`, no NUL, at most
    /// 255 bytes, and (unless `controlBytes`) no control byte (0x01-0x1F, 0x7F).
    public static func nameProblem(_ name: some Collection<UInt8>, controlBytes: Bool = false) -> String? {
        if name.isEmpty { return "an empty name" }
        if name.count > maximumName { return "a name longer than \(maximumName) bytes" }
        if name.elementsEqual([0x2E]) || name.elementsEqual([0x2E, 0x2E]) { return "'.' or '..' as a name" }
        for byte in name {
            if byte == 0x2F { return "'/' inside a name" }
            if byte == 0 { return "a NUL byte in a name" }
            if !controlBytes && (byte < 0x20 || byte == 0x7F) { return "a control byte in a name" }
        }
        return nil
    }

    /// The names of an absolute plain path (`/` alone: none): no empty component (`//`, a trailing `/`), each
    /// a name a file can have (no control byte unless `controlBytes`), at most 4,096 bytes in all.
    ///
    /// #### Errors
    /// `PlainPathError` saying what is wrong (shown to whoever sent it).
    public static func components(_ path: some Collection<UInt8>, controlBytes: Bool = false) throws(PlainPathError)
        -> [[UInt8]]
    {
        let bytes = Array(path)
        guard bytes.first == 0x2F else { throw PlainPathError(bytes, "not an absolute path") }
        guard bytes.count <= maximumPath else { throw PlainPathError(bytes, "longer than \(maximumPath) bytes") }
        if bytes.count == 1 { return [] }
        var names: [[UInt8]] = []
        for part in bytes.dropFirst().split(separator: 0x2F, omittingEmptySubsequences: false) {
            if let problem = nameProblem(part, controlBytes: controlBytes) { throw PlainPathError(bytes, problem) }
            names.append(Array(part))
        }
        return names
    }

    /// Whether the plain path `path` is `folder` or below it, component by component (`/a/bc` is not in `/a/b`).
    public static func isWithin(_ path: [[UInt8]], _ folder: [[UInt8]]) -> Bool {
        path.count >= folder.count && zip(path, folder).allSatisfy { $0 == $1 }
    }
}

/// A path that is not plain (relative, `..`, a NUL or control byte, an empty component, too long).
public struct PlainPathError: Error, Sendable, CustomStringConvertible {
    public var path: [UInt8]
    public var reason: String
    public init(_ path: [UInt8], _ reason: String) {
        self.path = path
        self.reason = reason
    }
    public var description: String { "'\(PlainPath.shown(path))' is not a plain absolute path: \(reason)" }
}

extension PlainPath {
    /// Bytes as text to show: printable ASCII and UTF-8 as they are, anything else escaped (`\x00`).
    public static func shown(_ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes, as: UTF8.self)
        if String(validating: bytes, as: UTF8.self) != nil,
            !bytes.contains(where: { $0 < 0x20 || $0 == 0x7F })
        {
            return text
        }
        var out = ""
        for byte in bytes {
            if byte >= 0x20 && byte < 0x7F {
                out.unicodeScalars.append(UnicodeScalar(byte))
            } else {
                let hex = Array("0123456789ABCDEF")
                out += "\\x" + String(hex[Int(byte >> 4)]) + String(hex[Int(byte & 0xF)])
            }
        }
        return out
    }
}
