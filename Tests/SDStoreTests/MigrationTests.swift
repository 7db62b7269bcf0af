import Foundation
import GRDB
import Testing

@testable import SDStore

/// Each migration carries existing libraries' data forward.
struct MigrationTests {
    /// v2 moves folder aggregates out of `entries` into `folder_aggregates`, keeping every figure.
    @Test func folderAggregatesMoveToTheirOwnTable() throws {
        let db = try DatabaseQueue()
        var migrator = Schema.makeMigrator()
        migrator.eraseDatabaseOnSchemaChange = false
        try migrator.migrate(db, upTo: "v1-initial")
        try db.write { db in
            try db.execute(
                sql: """
                    INSERT INTO devices (id, uuid, name, os, created_at, last_seen_at) VALUES (1, 'd', 'd', 'linux', 0, 0);
                    INSERT INTO locations (id, uuid, device_id, name, path, created_at) VALUES (1, 'l', 1, 'l', x'2f74', 0);
                    INSERT INTO entries (id, uuid, device_id, location_id, parent_id, name, type, added_epoch,
                        aggregate_size, aggregate_files, aggregate_kinds)
                    VALUES (1, x'01', 1, 1, NULL, x'2f74', 1, 1, 30, 2, '{"text":2}'),
                           (2, x'02', 1, 1, 1, x'61', 0, 1, NULL, NULL, NULL),
                           (3, x'03', 1, 1, 1, x'62', 1, 1, NULL, NULL, NULL);
                    """
            )
        }
        try migrator.migrate(db)
        try db.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT entry_id, size, files, kinds FROM folder_aggregates")
            #expect(rows.count == 1)
            #expect(rows.first?["entry_id"] == 1 as Int64)
            #expect(rows.first?["size"] == 30 as Int64)
            #expect(rows.first?["files"] == 2 as Int64)
            #expect(rows.first?["kinds"] == "{\"text\":2}")
            let columns = try db.columns(in: "entries").map(\.name)
            #expect(!columns.contains("aggregate_size"))
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM entries") == 3)
        }
    }
}
