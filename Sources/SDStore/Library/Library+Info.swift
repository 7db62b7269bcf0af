import Foundation
import GRDB
import SDCore
import SDSystem

/// A summary of a library for `sd library info`.
public struct LibraryInfo: Codable, Sendable {
    public var id: LibraryID
    public var name: String
    public var path: String
    public var schemaVersion: Int
    public var created: Date
    public var devices: Int
    public var locations: Int
    public var entries: Int
    public var contentIdentities: Int
    public var tags: Int
    public var jobs: Int
    public var databaseBytes: UInt64
    /// "ok", or SQLite's integrity_check report (only when asked for).
    public var integrity: String?
}

extension Library {
    public func info(checkIntegrity: Bool = false) throws -> LibraryInfo {
        try database.read { db in
            func count(_ table: String) throws -> Int {
                try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table)") ?? 0
            }
            var integrity: String?
            if checkIntegrity {
                integrity = try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "; ")
            }
            let pageCount = try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0
            let pageSize = try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 0
            return LibraryInfo(
                id: manifest.id,
                name: manifest.name,
                path: path,
                schemaVersion: manifest.schemaVersion,
                created: manifest.created,
                devices: try count("devices"),
                locations: try count("locations"),
                entries: try count("entries"),
                contentIdentities: try count("content_identities"),
                tags: try count("tags"),
                jobs: try count("jobs"),
                databaseBytes: UInt64(pageCount * pageSize),
                integrity: integrity
            )
        }
    }
}
