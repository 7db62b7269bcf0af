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
    /// Identity, schema and counts. With `checkIntegrity`, SQLite's integrity check too, and damage is reported
    /// (in `integrity`; a count that cannot be read is -1), not thrown.
    public func info(checkIntegrity: Bool = false) throws -> LibraryInfo {
        // A check reads outside a transaction: SQLite ends a transaction that met damage, and the commit would
        // then fail with the damage the check had already reported.
        return checkIntegrity ? try database.unsafeRead(gather) : try database.read(gather)
        func gather(_ db: Database) throws -> LibraryInfo {
            var damaged: [String] = []
            func count(_ table: String) throws -> Int {
                do { return try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table)") ?? 0 } catch {
                    guard checkIntegrity, let message = Self.damageMessage(error) else { throw error }
                    damaged.append("\(table): \(message)")
                    return -1
                }
            }
            var integrity: String?
            if checkIntegrity {
                do {
                    integrity = try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "; ")
                } catch {
                    guard let message = Self.damageMessage(error) else { throw error }
                    integrity = "damaged: \(message)"
                }
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
                tags: try count("tags WHERE deleted = 0"),
                jobs: try count("jobs"),
                databaseBytes: UInt64(pageCount * pageSize),
                integrity: damaged.isEmpty
                    ? integrity
                    : ([integrity ?? ""] + damaged).filter { !$0.isEmpty }
                        .joined(separator: "; ")
            )
        }
    }
}

extension Library {
    /// Every device this library knows, by id: its name (as it last synced it).
    public func deviceNames() throws -> [String: String] {
        try database.read { db in
            Dictionary(
                try Row.fetchAll(db, sql: "SELECT uuid, name FROM devices").map { ($0[0] as String, $0[1] as String) },
                uniquingKeysWith: { a, _ in a }
            )
        }
    }
}
