/// What a file is, for people: the whitepaper's 17 semantic categories plus a few more.
public enum FileCategory: String, CaseIterable, Codable, Sendable {
    // The whitepaper's 17.
    case image, video, audio, document, archive, code, text, database, book, font, mesh, config, encrypted, key
    case executable, binary, spreadsheet
    // sd's additions.
    case presentation, email, calendar, contact, web, shortcut, package, folder, unknown
}

/// How a file's kind was decided.
public enum IdentificationMethod: String, Codable, Sendable {
    /// From the extension alone (the magic bytes were not read).
    case `extension`
    /// From the extension, confirmed by the magic bytes.
    case extensionAndMagic = "extension+magic"
    /// From the magic bytes (no extension, an unknown or ambiguous one, or one the bytes contradict).
    case magic
    /// From a look at the content: text or binary, a shebang line.
    case content
    /// From the file's whole name (Makefile, .bashrc).
    case name
    /// Nothing could be decided.
    case none
}

/// A file's category, its MIME type, and how they were found.
public struct FileKind: Hashable, Codable, Sendable, CustomStringConvertible {
    public var category: FileCategory
    public var mime: String
    public var method: IdentificationMethod

    public init(category: FileCategory, mime: String, method: IdentificationMethod) {
        self.category = category
        self.mime = mime
        self.method = method
    }

    public static let unknown = FileKind(category: .unknown, mime: "application/octet-stream", method: .none)

    public var description: String { "\(category.rawValue) (\(mime), by \(method.rawValue))" }
}
