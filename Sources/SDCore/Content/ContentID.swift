import Foundation

/// The identity of a file's content, compatible with Spacedrive V2: the first 16 hex digits of a BLAKE3 digest
/// over the size and the content (whole, or sampled for files over 100 KiB). Equal files get equal ids on
/// every device; different files almost always get different ids, but a sampled id is not proof of equality:
/// destructive actions confirm with the full `IntegrityHash` first.
public struct ContentID: Hashable, Sendable, Codable, CustomStringConvertible, LosslessStringConvertible {
    /// 16 lower-case hex digits.
    public let hex: String

    /// Accepts 16 hex digits in either case.
    public init?(_ text: String) {
        guard text.utf8.count == 16, Hex.decode(text) != nil else { return nil }
        hex = text.lowercased()
    }

    init(digest: BLAKE3.Digest) {
        hex = String(digest.hex.prefix(16))
    }

    /// The id as a signed 64-bit integer (its 16 hex digits read as an unsigned number, bit for bit): the
    /// library's key for the content, the same on every device.
    public var int64: Int64 { Int64(bitPattern: UInt64(hex, radix: 16)!) }

    public init(int64: Int64) {
        let digits = String(UInt64(bitPattern: int64), radix: 16)
        hex = String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// The content's row id: the name-based UUID (v5) of `hex` in the DNS namespace, as Spacedrive derives
    /// it, so that every device picks the same id without coordination.
    public var uuid: UUID { UUID.nameBased(hex, namespace: .dnsNamespace) }

    public var description: String { hex }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let id = ContentID(text) else {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: decoder.codingPath,
                    debugDescription: "not a content id: '\(text)'"
                )
            )
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}

/// The BLAKE3 hash of a file's whole content (64 hex digits, what `b3sum` prints).
public struct IntegrityHash: Hashable, Sendable, CustomStringConvertible {
    public let digest: BLAKE3.Digest
    public var hex: String { digest.hex }
    public var description: String { hex }
}
