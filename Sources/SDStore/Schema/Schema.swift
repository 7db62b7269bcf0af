import GRDB

/// The library database schema, as numbered GRDB migrations.
///
/// Rules (see Schema/README.md): a migration is never edited once it has shipped; changes come as new
/// migrations appended to `migrations`. `library.json`'s `schemaVersion` is the count of migrations applied.
///
/// Built for sync from the start:
/// - every row that may cross to another device has a stable `uuid` (text, lower-case);
/// - device-owned rows (devices, volumes, locations, entries) carry `device_id`, the device that is the
///   source of truth for them, and replicate by state;
/// - shared metadata rows (tags, entry_tags, user_metadata) carry `hlc`, a hybrid logical clock timestamp
///   in its text form (which sorts like the timestamp), and merge by last-writer-wins; deletions of shared
///   rows are tombstones (`deleted = 1`) so that they replicate too.
///
/// Times are integers: `*_at` in milliseconds since 1970; file times (`mtime_ns`, `ctime_ns`) in nanoseconds.
/// Names and paths are BLOBs: on Linux they are bytes, not necessarily UTF-8.
enum Schema {
    static let migrations: [(String, @Sendable (Database) throws -> Void)] = [
        ("v1-initial", v1)
    ]

    static var version: Int { migrations.count }

    static func makeMigrator() -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for (name, body) in migrations {
            migrator.registerMigration(name, migrate: body)
        }
        return migrator
    }

    // MARK: - v1

    static func v1(_ db: Database) throws {
        // Every device that has written to this library. Device-owned: each device updates its own row.
        try db.execute(
            sql: """
                CREATE TABLE devices (
                    id TEXT PRIMARY KEY NOT NULL,          -- DeviceID (uuid)
                    name TEXT NOT NULL,
                    os TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    last_seen_at INTEGER NOT NULL
                ) STRICT;

                -- Storage volumes (disks, partitions, remote buckets) seen by a device.
                CREATE TABLE volumes (
                    id TEXT PRIMARY KEY NOT NULL,          -- uuid
                    device_id TEXT NOT NULL REFERENCES devices(id),
                    name TEXT NOT NULL,
                    mount_point BLOB,
                    filesystem TEXT,
                    filesystem_uuid TEXT,                  -- stable id of the filesystem, to recognise it when remounted
                    total_bytes INTEGER,
                    free_bytes INTEGER,
                    is_removable INTEGER NOT NULL DEFAULT 0,
                    speed_class TEXT,                      -- 'ssd', 'hdd', 'network', 'remote': for content-path ranking
                    last_seen_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL
                ) STRICT;
                CREATE INDEX volumes_device ON volumes(device_id);

                -- Folders the user asked sd to index. Removing one removes its index data, never files.
                CREATE TABLE locations (
                    id TEXT PRIMARY KEY NOT NULL,          -- uuid
                    device_id TEXT NOT NULL REFERENCES devices(id),
                    volume_id TEXT REFERENCES volumes(id) ON DELETE SET NULL,
                    name TEXT NOT NULL,
                    path BLOB NOT NULL,                    -- absolute path bytes on device_id
                    index_mode TEXT NOT NULL DEFAULT 'content',  -- 'metadata' (no hashing) or 'content'
                    last_indexed_at INTEGER,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL,
                    UNIQUE (device_id, path)
                ) STRICT;

                -- One row per distinct content (dedup comes from here). The id is the name-based UUID of content_id,
                -- so every device derives the same row id without coordination.
                CREATE TABLE content_identities (
                    id TEXT PRIMARY KEY NOT NULL,          -- uuid v5 of content_id
                    content_id TEXT NOT NULL UNIQUE,       -- 16 hex digits (Spacedrive V2 compatible)
                    size INTEGER NOT NULL,
                    category TEXT,
                    mime TEXT,
                    integrity_hash TEXT,                   -- full BLAKE3 (64 hex), computed on demand
                    integrity_checked_at INTEGER,
                    first_seen_at INTEGER NOT NULL
                ) STRICT;

                -- Every file and folder. Device-owned. `id` is a local integer key (parent links, FTS rowid); `uuid`
                -- is the stable identity that crosses devices and survives moves.
                CREATE TABLE entries (
                    id INTEGER PRIMARY KEY,
                    uuid TEXT NOT NULL UNIQUE,
                    device_id TEXT NOT NULL REFERENCES devices(id),
                    location_id TEXT NOT NULL REFERENCES locations(id) ON DELETE CASCADE,
                    parent_id INTEGER REFERENCES entries(id) ON DELETE CASCADE,
                    name BLOB NOT NULL,
                    extension TEXT,
                    is_dir INTEGER NOT NULL,
                    category TEXT,
                    size INTEGER NOT NULL DEFAULT 0,
                    inode INTEGER,
                    device_number INTEGER,                 -- st_dev
                    mode INTEGER,
                    link_count INTEGER,
                    mtime_ns INTEGER,
                    ctime_ns INTEGER,
                    symlink_target BLOB,
                    content_identity_id TEXT REFERENCES content_identities(id) ON DELETE SET NULL,
                    aggregate_size INTEGER,                -- folders: bytes below
                    aggregate_files INTEGER,               -- folders: files below
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL,
                    UNIQUE (parent_id, name)
                ) STRICT;
                CREATE INDEX entries_location ON entries(location_id);
                CREATE INDEX entries_inode ON entries(location_id, inode);
                CREATE INDEX entries_content ON entries(content_identity_id);

                -- Shared metadata: tags, their links to entries, ratings and notes. Any device may edit; the highest
                -- HLC wins; deletions are tombstones.
                CREATE TABLE tags (
                    id TEXT PRIMARY KEY NOT NULL,          -- uuid
                    name TEXT NOT NULL,
                    color TEXT,
                    parent_id TEXT REFERENCES tags(id),
                    hlc TEXT NOT NULL,
                    deleted INTEGER NOT NULL DEFAULT 0
                ) STRICT;
                CREATE INDEX tags_name ON tags(name);

                CREATE TABLE entry_tags (
                    entry_uuid TEXT NOT NULL,              -- entries.uuid: stable across devices and moves
                    tag_id TEXT NOT NULL REFERENCES tags(id),
                    hlc TEXT NOT NULL,
                    deleted INTEGER NOT NULL DEFAULT 0,
                    PRIMARY KEY (entry_uuid, tag_id)
                ) STRICT;
                CREATE INDEX entry_tags_tag ON entry_tags(tag_id);

                CREATE TABLE user_metadata (
                    entry_uuid TEXT PRIMARY KEY NOT NULL,
                    rating INTEGER,
                    favorite INTEGER NOT NULL DEFAULT 0,
                    note TEXT,
                    hlc TEXT NOT NULL
                ) STRICT;

                -- Durable jobs: each checkpoints its progress so that it resumes after a crash.
                CREATE TABLE jobs (
                    id TEXT PRIMARY KEY NOT NULL,          -- uuid
                    kind TEXT NOT NULL,                    -- 'index', 'copy', ...
                    state TEXT NOT NULL,                   -- 'queued', 'running', 'paused', 'completed', 'failed', 'cancelled'
                    device_id TEXT NOT NULL REFERENCES devices(id),
                    parent_id TEXT REFERENCES jobs(id),
                    input TEXT,                            -- JSON: what the job was asked to do
                    checkpoint TEXT,                       -- JSON: where it got to
                    progress_done INTEGER NOT NULL DEFAULT 0,
                    progress_total INTEGER,
                    error TEXT,
                    created_at INTEGER NOT NULL,
                    started_at INTEGER,
                    updated_at INTEGER NOT NULL,
                    finished_at INTEGER
                ) STRICT;
                CREATE INDEX jobs_state ON jobs(state);

                -- What was done, by whom, with what result: append-only.
                CREATE TABLE audit_log (
                    id INTEGER PRIMARY KEY,
                    uuid TEXT NOT NULL UNIQUE,
                    at INTEGER NOT NULL,
                    device_id TEXT NOT NULL,
                    actor TEXT NOT NULL,                   -- 'user', 'agent', 'sync'
                    action TEXT NOT NULL,
                    target TEXT,
                    details TEXT,                          -- JSON
                    outcome TEXT NOT NULL,                 -- 'ok', 'failed', 'refused'
                    job_id TEXT REFERENCES jobs(id)
                ) STRICT;
                CREATE INDEX audit_log_at ON audit_log(at);
                """
        )
    }
}
