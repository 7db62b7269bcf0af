/// Identifies a file's kind from its name, its magic bytes and a text-or-binary check.
///
/// The extension path (`kind(forName:)`) allocates nothing and is what the indexer calls per entry; the bytes
/// are read only when the extension is missing, unknown or ambiguous (`needsContent`), or, when a header is at
/// hand anyway, to catch an extension the bytes contradict.
public enum FileKinds {
    /// How many bytes from the start of a file `identify` looks at.
    public static let headerLength = 4096

    struct Entry: Sendable {
        let category: FileCategory
        let mime: String
        let family: String?
        let ambiguous: Bool
    }

    /// An extension of up to 16 ASCII bytes, lower-cased and packed into two words, so that a lookup needs no
    /// String and no allocation.
    struct Key: Hashable {
        var low: UInt64
        var high: UInt64
    }

    static let table: [Key: Entry] = {
        var table: [Key: Entry] = [:]
        for line in ExtensionTable.text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            let ext = Array(fields[0].utf8)
            let key = ext.withUnsafeBytes { packedKey($0) }!
            precondition(table[key] == nil, "BUG: extension '\(fields[0])' is listed twice")
            let flag = fields.count > 3 ? String(fields[3]) : nil
            table[key] = Entry(
                category: FileCategory(rawValue: String(fields[1]))!,
                mime: String(fields[2]),
                family: flag == "?" ? nil : flag,
                ambiguous: flag == "?"
            )
        }
        return table
    }()

    /// Whole file names with a known kind (no extension, or one that would mislead).
    static let names: [String: FileKind] = {
        var names: [String: FileKind] = [:]
        for n in [
            "Makefile", "makefile", "GNUmakefile", "Dockerfile", "Containerfile", "Jenkinsfile", "Rakefile",
            "Gemfile", "Podfile", "Vagrantfile", "CMakeLists.txt", "BUILD", "WORKSPACE", "Package.swift",
        ] {
            names[n] = FileKind(category: .code, mime: "text/plain", method: .name)
        }
        for n in [
            ".gitignore", ".gitattributes", ".gitmodules", ".bashrc", ".zshrc", ".profile", ".bash_profile",
            ".vimrc", ".editorconfig", ".npmrc", ".dockerignore", ".env", "config", ".swift-format",
        ] {
            names[n] = FileKind(category: .config, mime: "text/plain", method: .name)
        }
        for n in ["README", "LICENSE", "COPYING", "AUTHORS", "CHANGELOG", "NOTICE", "TODO"] {
            names[n] = FileKind(category: .text, mime: "text/plain", method: .name)
        }
        for n in ["id_rsa", "id_ed25519", "id_ecdsa", "id_dsa"] {
            names[n] = FileKind(category: .key, mime: "application/x-pem-file", method: .name)
        }
        names["authorized_keys"] = FileKind(category: .key, mime: "text/plain", method: .name)
        names["known_hosts"] = FileKind(category: .config, mime: "text/plain", method: .name)
        return names
    }()

    /// The number of distinct extensions known.
    public static var extensionCount: Int { table.count }

    @inline(__always)
    static func packedKey(_ ext: UnsafeRawBufferPointer) -> Key? {
        guard ext.count > 0 && ext.count <= 16 else { return nil }
        var key = Key(low: 0, high: 0)
        for (i, byte) in ext.enumerated() {
            guard byte < 0x80 else { return nil }
            let lower = byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
            if i < 8 {
                key.low |= UInt64(lower) << UInt64(i * 8)
            } else {
                key.high |= UInt64(lower) << UInt64((i - 8) * 8)
            }
        }
        return key
    }

    /// The result of looking at a name alone.
    public struct NameLookup: Sendable {
        /// The kind the name gives, if any.
        public var kind: FileKind?
        /// True when only the content can decide (no extension, unknown or ambiguous).
        public var needsContent: Bool
        let family: String?
    }

    /// The kind from the name's extension (or whole name), without reading the file. Allocation-free for
    /// names with an extension.
    public static func kind(forName name: UnsafeRawBufferPointer) -> NameLookup {
        var dot = -1
        var i = name.count - 1
        while i > 0 {
            if name[i] == 0x2E { dot = i; break }
            i -= 1
        }
        if dot > 0, let key = packedKey(UnsafeRawBufferPointer(rebasing: name[(dot + 1)...])), let entry = table[key] {
            let kind = FileKind(category: entry.category, mime: entry.mime, method: .extension)
            return NameLookup(kind: kind, needsContent: entry.ambiguous, family: entry.family)
        }
        if let kind = names[String(decoding: name, as: UTF8.self)] {
            return NameLookup(kind: kind, needsContent: false, family: "text")
        }
        return NameLookup(kind: nil, needsContent: true, family: nil)
    }

    public static func kind(forName name: String) -> NameLookup {
        var name = name
        return name.withUTF8 { kind(forName: UnsafeRawBufferPointer($0)) }
    }

    /// The kind of a file named `name` whose first bytes are `header` (nil when not read).
    public static func identify(name: String, header: [UInt8]?) -> FileKind {
        let lookup = kind(forName: name)
        guard let header else { return lookup.kind ?? .unknown }
        return header.withUnsafeBytes { identify(lookup, name: name, header: Header(bytes: $0)) }
    }

    static func identify(_ lookup: NameLookup, name: String, header h: Header) -> FileKind {
        let magic = MagicSignatures.match(h)
        if var kind = lookup.kind, !lookup.needsContent {
            guard let magic else {
                // Named for a binary format whose signature is missing, and reads as text: the name lies.
                if h.count > 0, MagicSignatures.binaryFamilies.contains(lookup.family ?? ""), TextCheck.looksLikeText(h)
                {
                    return FileKind(category: .text, mime: "text/plain", method: .content)
                }
                return kind
            }
            if magic.family == lookup.family {
                kind.method = .extensionAndMagic
                return kind
            }
            // Text formats (HTML, PEM, vCard...) never contradict a text extension: a .md may start "<html".
            let textExtension = ["text", "xml", "html", "pem"].contains(lookup.family ?? "")
            if magic.textual && textExtension { return kind }
            // Same family under another name (a .jpeg whose bytes say jpeg) is handled above; anything else
            // with a real signature contradicts the extension, and the bytes win.
            return FileKind(category: magic.category, mime: magic.mime, method: .magic)
        }
        if let magic {
            return FileKind(category: magic.category, mime: magic.mime, method: .magic)
        }
        if let kind = lookup.kind {
            // Ambiguous extension, and the bytes name nothing: the extension's first meaning stands, except
            // that binary content behind a text-looking meaning is just binary.
            if kind.mime.hasPrefix("text/") && !TextCheck.looksLikeText(h) {
                return FileKind(category: .binary, mime: "application/octet-stream", method: .content)
            }
            return kind
        }
        if h.count == 0 { return FileKind(category: .text, mime: "text/plain", method: .content) }
        return TextCheck.looksLikeText(h)
            ? FileKind(category: .text, mime: "text/plain", method: .content)
            : FileKind(category: .binary, mime: "application/octet-stream", method: .content)
    }

    /// The kind of the file that `reader` reads, named `name`; reads the header only when the name is not
    /// enough, unless `alwaysCheckContent` is set.
    public static func identify(
        name: String,
        reader: borrowing some RangedReader & ~Copyable,
        alwaysCheckContent: Bool = false
    ) throws -> FileKind {
        let lookup = kind(forName: name)
        if !lookup.needsContent && !alwaysCheckContent, let kind = lookup.kind { return kind }
        var header = [UInt8](repeating: 0, count: headerLength)
        let n = try header.withUnsafeMutableBytes { try reader.read(into: $0, at: 0) }
        header.removeLast(headerLength - n)
        return header.withUnsafeBytes { identify(lookup, name: name, header: Header(bytes: $0)) }
    }
}

/// Decides whether bytes are text: no NUL, valid UTF-8 (a sequence cut at the end of the header is fine), and
/// few control characters. UTF-16 with a byte order mark counts as text.
enum TextCheck {
    static func looksLikeText(_ h: Header) -> Bool {
        if h.has([0xFF, 0xFE]) || h.has([0xFE, 0xFF]) { return true }
        var controls = 0
        var i = 0
        let bytes = h.bytes
        while i < bytes.count {
            let b = bytes[i]
            if b == 0 { return false }
            if b < 0x80 {
                if b < 0x20 && b != 0x09 && b != 0x0A && b != 0x0D && b != 0x0C && b != 0x1B { controls += 1 }
                i += 1
                continue
            }
            let length = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC2 ? 2 : 0
            if length == 0 || b > 0xF4 { return false }
            if i + length > bytes.count { break }  // cut by the header's end
            for j in 1..<length where bytes[i + j] & 0xC0 != 0x80 { return false }
            i += length
        }
        return controls * 100 <= max(1, bytes.count)  // at most 1%
    }
}
