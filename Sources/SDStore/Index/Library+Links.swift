import Foundation
import GRDB
import SDSystem

extension Library {
    /// This device's indexed symbolic links: each link's path and its target as stored (bytes, as read).
    public func indexedSymlinks() throws -> [(path: [UInt8], target: [UInt8])] {
        try database.read { db in
            let device = try deviceRowID(db)
            let rows = try Row.fetchAll(
                db,
                // (`type = 2` written out: SQLite uses the partial index `entries_symlinks` only then.)
                sql:
                    "SELECT id, symlink_target FROM entries WHERE type = 2 AND device_id = ? AND symlink_target IS NOT NULL",
                arguments: [device]
            )
            return try rows.compactMap { row in
                guard let path = try Self.entryPath(id: row[0], db) else { return nil }
                return (path, [UInt8](row[1] as Data))
            }
        }
    }

    /// The names this device's index holds for one file (st_dev, inode) with more than one link: its hard links,
    /// as far as indexed.
    public func indexedNames(device: UInt64, inode: UInt64) throws -> [[UInt8]] {
        try database.read { db in
            let self_ = try deviceRowID(db)
            let ids = try Int64.fetchAll(
                db,
                sql: """
                    SELECT id FROM entries
                    WHERE device_number = ? AND inode = ? AND link_count > 1 AND device_id = ? AND type = 0
                    """,
                arguments: [Int64(bitPattern: device), Int64(bitPattern: inode), self_]
            )
            return try ids.compactMap { try Self.entryPath(id: $0, db) }
        }
    }
}
