import Foundation
import SDCore

/// `library.json`: what a library is, readable without opening the database.
public struct LibraryManifest: Codable, Sendable, Equatable {
    /// Always "sd-library", so a stray JSON file is not mistaken for one.
    public var format: String
    public var id: LibraryID
    public var name: String
    /// The number of schema migrations the database has had (see `Schema`).
    public var schemaVersion: Int
    public var created: Date

    public static let formatName = "sd-library"

    public init(id: LibraryID, name: String, schemaVersion: Int, created: Date) {
        self.format = Self.formatName
        self.id = id
        self.name = name
        self.schemaVersion = schemaVersion
        self.created = created
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.dateEncodingStrategy = .iso8601
        return e
    }()

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }()

    func encoded() throws -> [UInt8] { Array(try Self.encoder.encode(self)) + [0x0A] }
}
