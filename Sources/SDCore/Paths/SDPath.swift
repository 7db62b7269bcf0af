import Foundation
import SDSystem

/// sd's universal file address.
///
/// - `sd://<device-id>/<absolute path>`: a file on one device. The path's leading slash is the one after the
///   id, so `sd://<id>/home/me/a.txt` names `/home/me/a.txt`. Paths are bytes: bytes that are not valid UTF-8,
///   controls, space and `% ? # \` are percent-encoded, and come back exactly.
/// - `sd://content/<content-id>`: whatever file holds that content, resolved to the best reachable copy.
///   Spacedrive's own form, `sd://content/<content-uuid>`, is accepted too.
public enum SDPath: Hashable, Sendable, CustomStringConvertible {
    case physical(device: DeviceID, path: [UInt8])
    case content(ContentID)
    case contentUUID(UUID)

    public static let scheme = "sd://"

    /// A physical path from a `String` path.
    public static func physical(device: DeviceID, path: String) -> SDPath {
        .physical(device: device, path: PathText.bytes(path))
    }

    /// The path as text, when it is valid UTF-8 (physical paths only).
    public var pathString: String? {
        guard case .physical(_, let bytes) = self else { return nil }
        return String(validating: bytes, as: UTF8.self)
    }

    // MARK: - Formatting

    public var description: String {
        switch self {
        case .physical(let device, let path): "\(Self.scheme)\(device)\(Self.percentEncode(path))"
        case .content(let id): "\(Self.scheme)content/\(id.hex)"
        case .contentUUID(let uuid): "\(Self.scheme)content/\(uuid.lowercased)"
        }
    }

    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    static func mustEncode(_ b: UInt8) -> Bool {
        b < 0x21 || b == 0x7F || b == UInt8(ascii: "%") || b == UInt8(ascii: "?") || b == UInt8(ascii: "#")
            || b == UInt8(ascii: "\\")
    }

    /// Percent-encodes path bytes. Valid UTF-8 beyond ASCII stays literal, so names stay readable.
    static func percentEncode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 8)
        var i = 0
        func escape(_ b: UInt8) { out += [UInt8(ascii: "%"), hexDigits[Int(b >> 4)], hexDigits[Int(b & 15)]] }
        while i < bytes.count {
            let b = bytes[i]
            if b < 0x80 {
                if mustEncode(b) { escape(b) } else { out.append(b) }
                i += 1
                continue
            }
            let length = utf8SequenceLength(bytes, at: i)
            if length == 0 {
                escape(b)
                i += 1
            } else {
                out += bytes[i..<(i + length)]
                i += length
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func utf8SequenceLength(_ bytes: [UInt8], at i: Int) -> Int {
        PathText.utf8SequenceLength(bytes, at: i)
    }

    // MARK: - Parsing

    /// Parses the text form.
    ///
    /// #### Errors
    /// `SDPathError`, naming what is wrong and where.
    public init(parsing text: String) throws(SDPathError) {
        // Work on UTF-8 bytes, never Characters: a combining mark after '/' would fuse with it into one
        // Character and hide the separator.
        // The bytes the text carries (`PathText`): a name that is not UTF-8 may be given as itself.
        let utf8 = PathText.bytes(text)
        let scheme = Array(Self.scheme.utf8)
        guard utf8.starts(with: scheme) else {
            if let colon = text.range(of: "://") {
                throw SDPathError(
                    .unknownScheme,
                    "unknown scheme '\(text[..<colon.lowerBound])://'; sd paths start with sd://"
                )
            }
            throw SDPathError(
                .missingScheme,
                "'\(text)' is not an sd path: it must start with sd:// (e.g. sd://content/<id> or sd://<device-id>/home/me/file)"
            )
        }
        let rest = utf8[scheme.count...]
        guard let slash = rest.firstIndex(of: UInt8(ascii: "/")) else {
            if rest.isEmpty {
                throw SDPathError(.missingDevice, "'\(text)' names no device: sd://<device-id>/<absolute path>")
            }
            throw SDPathError(.notAbsolute, "'\(text)' has no path after the device: sd://<device-id>/<absolute path>")
        }
        let authority = String(decoding: rest[..<slash], as: UTF8.self)
        let path = rest[slash...]
        if authority == "content" {
            let id = String(decoding: path.dropFirst(), as: UTF8.self)
            if id.isEmpty { throw SDPathError(.invalidContentID, "'\(text)' has no content id after sd://content/") }
            if let contentID = ContentID(id) {
                self = .content(contentID)
            } else if let uuid = UUID(uuidString: id) {
                self = .contentUUID(uuid)
            } else {
                throw SDPathError(.invalidContentID, "'\(id)' is not a content id (16 hex digits, or a content UUID)")
            }
            return
        }
        if authority.isEmpty {
            throw SDPathError(.missingDevice, "'\(text)' names no device: sd://<device-id>/<absolute path>")
        }
        guard let device = DeviceID(authority) else {
            throw SDPathError(
                .invalidDeviceID,
                "'\(authority)' is not a device id (a UUID such as 6ba7b810-9dad-11d1-80b4-00c04fd430c8)"
            )
        }
        self = .physical(device: device, path: try Self.percentDecode(path))
    }

    static func percentDecode(_ text: ArraySlice<UInt8>) throws(SDPathError) -> [UInt8] {
        let utf8 = Array(text)
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count)
        var i = 0
        while i < utf8.count {
            let b = utf8[i]
            if b == UInt8(ascii: "%") {
                guard i + 2 < utf8.count,
                    let value = Hex.decode(String(decoding: utf8[(i + 1)...(i + 2)], as: UTF8.self))
                else {
                    throw SDPathError(
                        .badEscape,
                        "bad percent escape at byte \(i + 1) of the path: '%' must be followed by two hex digits"
                    )
                }
                if value[0] == 0 {
                    throw SDPathError(.nulByte, "the path holds a NUL byte (%00), which no file path can contain")
                }
                out.append(value[0])
                i += 3
            } else {
                if b < 0x20 || b == 0x7F {
                    throw SDPathError(
                        .badCharacter,
                        "the path holds control character \(b) at byte \(i + 1); percent-encode it"
                    )
                }
                out.append(b)
                i += 1
            }
        }
        return out
    }
}

extension SDPath: LosslessStringConvertible {
    public init?(_ description: String) {
        guard let path = try? SDPath(parsing: description) else { return nil }
        self = path
    }
}

extension SDPath: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { self = try SDPath(parsing: text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.message))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// Why a text is not an `SDPath`.
public struct SDPathError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Hashable, Sendable {
        let name: String
        public static let missingScheme = Code(name: "missingScheme")
        public static let unknownScheme = Code(name: "unknownScheme")
        public static let missingDevice = Code(name: "missingDevice")
        public static let invalidDeviceID = Code(name: "invalidDeviceID")
        public static let notAbsolute = Code(name: "notAbsolute")
        public static let invalidContentID = Code(name: "invalidContentID")
        public static let badEscape = Code(name: "badEscape")
        public static let nulByte = Code(name: "nulByte")
        public static let badCharacter = Code(name: "badCharacter")
    }

    public var code: Code
    public var message: String

    init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
