/// The peer protocol's binary encoding: unsigned LEB128 varints, and byte strings and texts as a varint length
/// followed by their bytes. Readers never trust a length: every read is checked against what is left, and
/// counts of repeated items against a limit, so a hostile message costs at most its own size to reject.
public struct WireWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    public mutating func byte(_ value: UInt8) { bytes.append(value) }

    public mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    public mutating func int(_ value: Int) { varint(UInt64(bitPattern: Int64(value))) }

    /// A signed value as a zig-zag varint (small magnitudes stay short).
    public mutating func signed(_ value: Int64) { varint(UInt64(bitPattern: (value << 1) ^ (value >> 63))) }

    public mutating func bool(_ value: Bool) { bytes.append(value ? 1 : 0) }

    public mutating func data(_ value: some Collection<UInt8>) {
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    public mutating func text(_ value: String) { data(Array(value.utf8)) }

    /// Exactly `value.count` bytes, no length (for fixed-size fields).
    public mutating func raw(_ value: some Collection<UInt8>) { bytes.append(contentsOf: value) }

    public mutating func optionalText(_ value: String?) {
        bool(value != nil)
        if let value { text(value) }
    }

    public mutating func optionalData(_ value: [UInt8]?) {
        bool(value != nil)
        if let value { data(value) }
    }

    public mutating func optionalSigned(_ value: Int64?) {
        bool(value != nil)
        if let value { signed(value) }
    }
}

/// Why a message could not be decoded.
public struct WireError: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "malformed peer message: \(reason)" }
}

public struct WireReader: Sendable {
    private let bytes: [UInt8]
    private var position: Int

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        position = 0
    }

    public var remaining: Int { bytes.count - position }
    public var isAtEnd: Bool { position == bytes.count }

    public mutating func byte() throws(WireError) -> UInt8 {
        guard position < bytes.count else { throw WireError("truncated") }
        defer { position += 1 }
        return bytes[position]
    }

    public mutating func varint() throws(WireError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try byte()
            if shift == 63 && b > 1 { throw WireError("varint overflows 64 bits") }
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw WireError("varint too long") }
        }
    }

    public mutating func int() throws(WireError) -> Int { Int(Int64(bitPattern: try varint())) }

    /// A count or length, at most `limit`.
    public mutating func count(limit: Int) throws(WireError) -> Int {
        let n = try varint()
        guard n <= UInt64(limit) else { throw WireError("count \(n) exceeds \(limit)") }
        return Int(n)
    }

    public mutating func signed() throws(WireError) -> Int64 {
        let v = try varint()
        return Int64(bitPattern: (v >> 1) ^ (0 &- (v & 1)))
    }

    public mutating func bool() throws(WireError) -> Bool {
        switch try byte() {
        case 0: false
        case 1: true
        case let b: throw WireError("boolean byte \(b)")
        }
    }

    public mutating func data(limit: Int = 16 << 20) throws(WireError) -> [UInt8] {
        let n = try count(limit: limit)
        return try raw(n)
    }

    public mutating func raw(_ n: Int) throws(WireError) -> [UInt8] {
        guard n >= 0, n <= remaining else { throw WireError("truncated (\(n) bytes announced, \(remaining) left)") }
        defer { position += n }
        return Array(bytes[position..<position + n])
    }

    public mutating func text(limit: Int = 1 << 20) throws(WireError) -> String {
        let b = try data(limit: limit)
        guard let s = String(validating: b, as: UTF8.self) else { throw WireError("text is not UTF-8") }
        return s
    }

    public mutating func optionalText(limit: Int = 1 << 20) throws(WireError) -> String? {
        try bool() ? try text(limit: limit) : nil
    }

    public mutating func optionalData(limit: Int = 16 << 20) throws(WireError) -> [UInt8]? {
        try bool() ? try data(limit: limit) : nil
    }

    public mutating func optionalSigned() throws(WireError) -> Int64? {
        try bool() ? try signed() : nil
    }

    /// Fails unless every byte was read (trailing garbage is an error, not ignored).
    public func finish() throws(WireError) {
        guard isAtEnd else { throw WireError("\(remaining) unexpected bytes at the end") }
    }
}
