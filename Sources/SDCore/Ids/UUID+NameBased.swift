import Foundation

extension UUID {
    /// The DNS namespace of RFC 4122, which Spacedrive uses for content UUIDs.
    public static let dnsNamespace = UUID(uuidString: "6ba7b810-9dad-11d1-80b4-00c04fd430c8")!

    /// The name-based UUID, version 5 (SHA-1), of `name` in `namespace` (RFC 4122 section 4.3).
    public static func nameBased(_ name: String, namespace: UUID) -> UUID {
        let ns = withUnsafeBytes(of: namespace.uuid) { Array($0) }
        var digest = SHA1.hash(ns + Array(name.utf8))
        digest[6] = (digest[6] & 0x0F) | 0x50  // version 5
        digest[8] = (digest[8] & 0x3F) | 0x80  // RFC 4122 variant
        return UUID(
            uuid: (
                digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7],
                digest[8], digest[9], digest[10], digest[11], digest[12], digest[13], digest[14],
                digest[15]
            )
        )
    }

    /// Lower-case text form, as sd writes ids everywhere (Foundation's `uuidString` is upper-case).
    public var lowercased: String { uuidString.lowercased() }
}
