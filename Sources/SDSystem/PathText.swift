/// File names and paths as Swift `String`s without losing a byte, and as text a person can read safely.
///
/// On Linux a name is bytes: not necessarily UTF-8, and it may hold control characters (a newline, ESC). sd
/// carries paths in `String`s through its layers (plans, the API's JSON, the CLI's arguments), so every byte
/// that is not part of valid UTF-8, and every control byte (0x00-0x1F, 0x7F), stands in the string as one scalar
/// of Unicode's last private use plane: byte `b` as U+10FE00 + `b`. A name that really holds one of those 256
/// scalars has its UTF-8 bytes stood in the same way, so the mapping goes both ways exactly, for every byte
/// sequence. `bytes(_:)` is what reaches the system.
///
/// `display(_:)` is the form shown to a person: bytes that are not UTF-8 and control bytes as `\xHH` (`\n`,
/// `\t`, `\e` and the like for the common ones), a backslash as `\\`, C1 controls, bidirectional overrides and
/// line separators as `\uXXXX`: bash's `$'...'` quoting, so a name shown can be typed back exactly, and no name
/// moves the cursor, recolours the terminal or reorders what is shown.
public enum PathText {
    static let standInBase: UInt32 = 0x10FE00

    /// The stand-in scalar of byte `b`.
    @inline(__always) static func standIn(_ b: UInt8) -> Unicode.Scalar {
        Unicode.Scalar(standInBase + UInt32(b))!
    }

    /// The byte a scalar stands in for, or nil. Only bytes `string(_:)` stands in count: controls (0x01-0x1F,
    /// 0x7F) and bytes 0x80-0xFF. The plane's scalars for NUL and for printable ASCII are never stand-ins, so no
    /// string can smuggle a '/', a '.' or a NUL into the bytes it carries: they are taken as the characters
    /// they are.
    @inline(__always) public static func standsFor(_ scalar: Unicode.Scalar) -> UInt8? {
        let v = scalar.value
        guard v > standInBase && v <= standInBase + 0xFF else { return nil }
        let b = UInt8(v - standInBase)
        return b < 0x20 || b >= 0x7F ? b : nil
    }

    /// The string that carries `bytes` exactly.
    public static func string(_ bytes: some Collection<UInt8>) -> String {
        let bytes = Array(bytes)
        // Nearly every name: valid UTF-8 without control bytes or the stand-in plane's lead byte.
        if !bytes.contains(where: { $0 < 0x20 || $0 == 0x7F || $0 == 0xF4 }),
            let plain = String(validating: bytes, as: UTF8.self)
        {
            return plain
        }
        var scalars = String.UnicodeScalarView()
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if b < 0x80 {
                scalars.append(b < 0x20 || b == 0x7F ? standIn(b) : Unicode.Scalar(b))
                i += 1
                continue
            }
            let length = utf8SequenceLength(bytes, at: i)
            guard length > 0 else {
                scalars.append(standIn(b))
                i += 1
                continue
            }
            let scalar = String(decoding: bytes[i..<(i + length)], as: UTF8.self).unicodeScalars.first!
            if scalar.value >= standInBase && scalar.value <= standInBase + 0xFF {
                // A name that really holds a stand-in scalar: its bytes are stood in one by one.
                for j in i..<(i + length) { scalars.append(standIn(bytes[j])) }
            } else {
                scalars.append(scalar)
            }
            i += length
        }
        return String(scalars)
    }

    /// The bytes `text` carries (see `string(_:)`): stand-ins become their bytes, everything else its UTF-8.
    public static func bytes(_ text: String) -> [UInt8] {
        // A stand-in is encoded F4 8F B8...BB xx: without an F4 byte there is none.
        guard text.utf8.contains(0xF4) else { return Array(text.utf8) }
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            if let b = standsFor(scalar) {
                out.append(b)
            } else {
                out.append(contentsOf: String(scalar).utf8)
            }
        }
        return out
    }

    /// `text` in the form `string(_:)` gives for its bytes (a control character typed as itself becomes its
    /// stand-in), so that paths compare equal however they arrived.
    public static func canonical(_ text: String) -> String {
        let hasControl = text.utf8.contains { $0 < 0x20 || $0 == 0x7F || $0 == 0xF4 }
        return hasControl ? string(bytes(text)) : text
    }

    /// Whether `text` carries bytes that are not plain UTF-8 text (stand-ins: bytes that are not UTF-8, or
    /// control bytes).
    public static func hasStandIns(_ text: String) -> Bool {
        text.utf8.contains(0xF4) && text.unicodeScalars.contains { standsFor($0) != nil }
    }

    // MARK: - Display

    /// `text` (a string from `string(_:)`, or any text) as it is shown to a person: see the type's notes. The
    /// shown text, and whether anything in it was escaped.
    public static func display(_ text: String) -> (text: String, escaped: Bool) {
        if !text.unicodeScalars.contains(where: needsEscape) { return (text, false) }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            if let b = standsFor(scalar) {
                out += escape(byte: b)
            } else if needsEscape(scalar) {
                out += scalar.value < 0x80 ? escape(byte: UInt8(scalar.value)) : unicodeEscape(scalar)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return (out, true)
    }

    /// The shown form of raw name bytes.
    public static func display(bytes: some Collection<UInt8>) -> (text: String, escaped: Bool) {
        display(string(bytes))
    }

    /// Scalars that are never shown as themselves: controls (C0, DEL, C1), a backslash (the escape's own
    /// character), stand-ins, bidirectional controls, and line and paragraph separators.
    public static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        // (Scalars of the stand-in range that are not stand-ins are shown escaped too: they look like nothing.)
        switch scalar.value {
        case 0x00...0x1F, 0x5C, 0x7F...0x9F: true
        case 0x061C, 0x200E, 0x200F, 0x2028...0x202E, 0x2066...0x2069: true
        case standInBase...(standInBase + 0xFF): true
        default: false
        }
    }

    private static let hex = Array("0123456789ABCDEF")

    static func escape(byte b: UInt8) -> String {
        switch b {
        case 0x07: return "\\a"
        case 0x08: return "\\b"
        case 0x09: return "\\t"
        case 0x0A: return "\\n"
        case 0x0B: return "\\v"
        case 0x0C: return "\\f"
        case 0x0D: return "\\r"
        case 0x1B: return "\\e"
        case 0x5C: return "\\\\"
        default: return "\\x" + String(hex[Int(b >> 4)]) + String(hex[Int(b & 15)])
        }
    }

    static func unicodeEscape(_ scalar: Unicode.Scalar) -> String {
        var digits = String(scalar.value, radix: 16, uppercase: true)
        let width = scalar.value > 0xFFFF ? 8 : 4
        while digits.count < width { digits = "0" + digits }
        return (width == 8 ? "\\U" : "\\u") + digits
    }

    /// Whether `path`'s bytes hold a `..` component (split on the byte '/', not on characters: a combining mark
    /// after a slash must not hide it).
    public static func hasDotDot(_ path: String) -> Bool {
        bytes(path).split(separator: 0x2F, omittingEmptySubsequences: true).contains { $0.elementsEqual([0x2E, 0x2E]) }
    }

    /// The length of a valid UTF-8 sequence starting at `i` (2...4), or 0 if the bytes there are not one.
    public static func utf8SequenceLength(_ bytes: [UInt8], at i: Int) -> Int {
        let b = bytes[i]
        let length: Int
        let min: UInt32
        switch b {
        case 0xC2...0xDF: (length, min) = (2, 0x80)
        case 0xE0...0xEF: (length, min) = (3, 0x800)
        case 0xF0...0xF4: (length, min) = (4, 0x10000)
        default: return 0
        }
        guard i + length <= bytes.count else { return 0 }
        var scalar = UInt32(b) & (length == 2 ? 0x1F : length == 3 ? 0x0F : 0x07)
        for j in 1..<length {
            let c = bytes[i + j]
            guard c & 0xC0 == 0x80 else { return 0 }
            scalar = scalar << 6 | UInt32(c & 0x3F)
        }
        // Overlong forms, surrogates and values past U+10FFFF are not valid UTF-8.
        if scalar < min || (0xD800...0xDFFF).contains(scalar) || scalar > 0x10FFFF { return 0 }
        return length
    }

    /// Calls `body` with the NUL-terminated bytes `path` carries, as a C string (what every system call that
    /// takes a path here is given).
    @inline(__always)
    public static func withCPath<R>(_ path: String, _ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        guard path.utf8.contains(0xF4) else { return try path.withCString(body) }
        let bytes = bytes(path) + [0]
        return try bytes.withUnsafeBufferPointer { buffer in
            try buffer.withMemoryRebound(to: CChar.self) { try body($0.baseAddress!) }
        }
    }
}
