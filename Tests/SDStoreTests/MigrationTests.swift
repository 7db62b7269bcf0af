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

    /// v11 adds the link indexes over existing entries: the queries for symbolic links and hard links use them
    /// and find what was there before the migration.
    @Test func linkIndexesCoverExistingEntries() throws {
        let db = try DatabaseQueue()
        var migrator = Schema.makeMigrator()
        migrator.eraseDatabaseOnSchemaChange = false
        try migrator.migrate(db, upTo: "v10-peer-safety")
        try db.write { db in
            try db.execute(
                sql: """
                    INSERT INTO devices (id, uuid, name, os, created_at, last_seen_at, sync_seq) VALUES (1, 'd', 'd', 'linux', 0, 0, 0);
                    INSERT INTO locations (id, uuid, device_id, name, path, created_at) VALUES (1, 'l', 1, 'l', x'2f74', 0);
                    INSERT INTO entries (id, uuid, device_id, location_id, parent_id, name, type, added_epoch,
                        inode, device_number, link_count, symlink_target)
                    VALUES (1, x'01', 1, 1, NULL, x'2f74', 1, 1, 10, 5, 1, NULL),
                           (2, x'02', 1, 1, 1, x'61', 0, 1, 11, 5, 2, NULL),
                           (3, x'03', 1, 1, 1, x'62', 0, 1, 11, 5, 2, NULL),
                           (4, x'04', 1, 1, 1, x'63', 2, 1, 12, 5, 1, x'61');
                    """
            )
        }
        try migrator.migrate(db)
        try db.read { db in
            let indexes = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index'")
            #expect(indexes.contains("entries_symlinks") && indexes.contains("entries_hardlinks"))
            let links = try Int64.fetchAll(db, sql: "SELECT id FROM entries WHERE type = 2 AND device_id = 1")
            #expect(links == [4])
            let names = try Int64.fetchAll(
                db,
                sql: "SELECT id FROM entries WHERE device_number = 5 AND inode = 11 AND link_count > 1 ORDER BY id"
            )
            #expect(names == [2, 3])
            let plan = try Row.fetchAll(
                db,
                sql:
                    "EXPLAIN QUERY PLAN SELECT id FROM entries WHERE device_number = 5 AND inode = 11 AND link_count > 1"
            ).map { $0["detail"] as String }
            #expect(plan.joined().contains("entries_hardlinks"), "\(plan)")
        }
    }

    /// v12 adds a copy's epoch and home to `sync_state`, empty (taken at the next open), and keeps what is there.
    @Test func copyEpochsStartEmptyAndKeepTheSyncState() throws {
        let db = try DatabaseQueue()
        var migrator = Schema.makeMigrator()
        migrator.eraseDatabaseOnSchemaChange = false
        try migrator.migrate(db, upTo: "v11-links")
        try db.write { db in
            try db.execute(
                sql: """
                    UPDATE sync_state SET seq = 41, owned_compacted = 3, shared_compacted = 7 WHERE id = 1;
                    INSERT INTO sync_peers (device, shared_seq, added_at) VALUES ('p', 9, 0);
                    """
            )
        }
        try migrator.migrate(db)
        try db.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT * FROM sync_state WHERE id = 1")
            let kept: [Int64] = [row?["seq"] ?? 0, row?["owned_compacted"] ?? 0, row?["shared_compacted"] ?? 0]
            #expect(kept == [41, 3, 7])
            #expect((row?["copy_epoch"] as String?) == nil && (row?["home"] as String?) == nil)
            #expect(try Int64.fetchOne(db, sql: "SELECT shared_seq FROM sync_peers") == 9)
        }
    }
}
