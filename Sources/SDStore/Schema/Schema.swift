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
        ("v1-initial", v1),
        ("v2-folder-aggregates", v2),
        ("v3-search", v3),
        ("v4-search-postings", v4),
        ("v5-job-control", v5),
        ("v6-actions", v6),
        ("v7-integrity-hashes", v7),
        ("v8-shared-changes", v8),
        ("v9-sync", v9),
        ("v10-peer-safety", v10),
        ("v11-links", v11),
        ("v12-copy-epochs", v12),
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
        // Rows that cross to other devices carry a `uuid`; inside one library file they are joined by local
        // integer keys, which keeps the index small (a million entries must fit in well under 300 MB). Sync
        // translates local keys to uuids at its boundary.
        try db.execute(
            sql: """
                -- Every device that has written to this library. Device-owned: each device updates its own row.
                CREATE TABLE devices (
                    id INTEGER PRIMARY KEY,
                    uuid TEXT NOT NULL UNIQUE,             -- DeviceID
                    name TEXT NOT NULL,
                    os TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    last_seen_at INTEGER NOT NULL
                ) STRICT;

                -- Storage volumes (disks, partitions, remote buckets) seen by a device.
                CREATE TABLE volumes (
                    id INTEGER PRIMARY KEY,
                    uuid TEXT NOT NULL UNIQUE,
                    device_id INTEGER NOT NULL REFERENCES devices(id),
                    identity TEXT NOT NULL,                -- filesystem UUID, else a derived fingerprint
                    name TEXT NOT NULL,
                    mount_point BLOB NOT NULL,
                    filesystem TEXT NOT NULL,
                    read_only INTEGER NOT NULL DEFAULT 0,
                    total_bytes INTEGER,
                    free_bytes INTEGER,
                    speed_class TEXT,                      -- 'ssd', 'hdd', 'network', 'remote': for content-path ranking
                    last_seen_at INTEGER NOT NULL,
                    UNIQUE (device_id, identity)
                ) STRICT;

                -- Folders the user asked sd to index. Removing one removes its index data, never files.
                CREATE TABLE locations (
                    id INTEGER PRIMARY KEY,
                    uuid TEXT NOT NULL UNIQUE,
                    device_id INTEGER NOT NULL REFERENCES devices(id),
                    volume_id INTEGER REFERENCES volumes(id) ON DELETE SET NULL,
                    volume_identity TEXT,                  -- the volume's identity when added: another disk mounted at
                                                           -- the same path is not this location
                    name TEXT NOT NULL,
                    path BLOB NOT NULL,                    -- absolute path bytes on the device
                    index_content INTEGER NOT NULL DEFAULT 1,
                    state TEXT NOT NULL DEFAULT 'new',     -- 'new', 'online', 'offline'
                    state_reason TEXT,
                    root_entry_id INTEGER,                 -- the entry of the location's root folder
                    scan_epoch INTEGER NOT NULL DEFAULT 0, -- bumped by each scan; entries remember when they appeared
                    last_indexed_at INTEGER,
                    created_at INTEGER NOT NULL,
                    UNIQUE (device_id, path)
                ) STRICT;

                -- One row per distinct content (dedup comes from here). The key is the content id itself, the
                -- 16 hex digits read as a signed 64-bit integer, so every device derives the same key without
                -- coordination; the content's UUID (v5 of the hex, as Spacedrive) is derived from it, not stored.
                CREATE TABLE content_identities (
                    id INTEGER PRIMARY KEY,
                    size INTEGER NOT NULL,
                    integrity_hash TEXT,                   -- full BLAKE3 (64 hex), computed on demand
                    integrity_checked_at INTEGER,
                    first_seen_at INTEGER NOT NULL
                ) STRICT;

                -- Every file and folder. Device-owned (through its location's device_id, also kept here). `uuid`
                -- (16 random bytes) is the identity that crosses devices and survives moves.
                CREATE TABLE entries (
                    id INTEGER PRIMARY KEY,
                    uuid BLOB NOT NULL UNIQUE,
                    device_id INTEGER NOT NULL,
                    location_id INTEGER NOT NULL REFERENCES locations(id) ON DELETE CASCADE,
                    parent_id INTEGER REFERENCES entries(id) ON DELETE CASCADE,
                    name BLOB NOT NULL,                    -- exactly as the filesystem has it
                    type INTEGER NOT NULL,                 -- 0 file, 1 folder, 2 symlink, 3 fifo, 4 socket, 5 char, 6 block
                    category TEXT,                         -- FileCategory
                    mime TEXT,                             -- only when the bytes decided it (else from the extension)
                    size INTEGER NOT NULL DEFAULT 0,
                    inode INTEGER,
                    device_number INTEGER,                 -- st_dev
                    mode INTEGER,
                    link_count INTEGER,
                    mtime_ns INTEGER,                      -- full nanoseconds, compared exactly
                    ctime_ns INTEGER,
                    symlink_target BLOB,
                    content_id INTEGER REFERENCES content_identities(id),
                    added_epoch INTEGER NOT NULL,          -- the location scan that first saw it
                    error TEXT,                            -- why it could not be read, if it could not
                    aggregate_size INTEGER,                -- folders: bytes of files below
                    aggregate_files INTEGER,               -- folders: files below
                    aggregate_kinds TEXT,                  -- folders: JSON {category: files below}
                    UNIQUE (parent_id, name)
                ) STRICT;
                -- Deliberately no index on location_id or inode: each costs ~15% of insert time and ~15 MB per
                -- million entries, and the queries that would use them read most of a location anyway (phases
                -- scan in rowid order; move detection loads one scan's new entries once).
                CREATE INDEX entries_content ON entries(content_id) WHERE content_id IS NOT NULL;

                -- Entries a scan did not find again: removed (or matched to a move) when the scan's processing
                -- phase ends, so that a crash in between loses nothing and resumes exactly.
                CREATE TABLE scan_removals (
                    entry_id INTEGER PRIMARY KEY,
                    location_id INTEGER NOT NULL
                ) STRICT;

                -- Follow-up work per entry, queued by the indexer's last phase for the analysis jobs.
                CREATE TABLE analysis_queue (
                    entry_id INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
                    task TEXT NOT NULL,                    -- 'thumbnail', 'text'
                    state TEXT NOT NULL DEFAULT 'queued',
                    PRIMARY KEY (entry_id, task)
                ) STRICT, WITHOUT ROWID;

                -- Shared metadata: tags, their links to entries, ratings and notes. Any device may edit; the highest
                -- HLC wins; deletions are tombstones.
                CREATE TABLE tags (
                    id INTEGER PRIMARY KEY,
                    uuid TEXT NOT NULL UNIQUE,
                    name TEXT NOT NULL,
                    color TEXT,
                    parent_uuid TEXT,
                    hlc TEXT NOT NULL,
                    deleted INTEGER NOT NULL DEFAULT 0
                ) STRICT;
                CREATE INDEX tags_name ON tags(name);

                CREATE TABLE entry_tags (
                    entry_uuid BLOB NOT NULL,              -- entries.uuid: stable across devices and moves
                    tag_uuid TEXT NOT NULL,
                    hlc TEXT NOT NULL,
                    deleted INTEGER NOT NULL DEFAULT 0,
                    PRIMARY KEY (entry_uuid, tag_uuid)
                ) STRICT;
                CREATE INDEX entry_tags_tag ON entry_tags(tag_uuid);

                CREATE TABLE user_metadata (
                    entry_uuid BLOB PRIMARY KEY NOT NULL,
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
                    device_id INTEGER NOT NULL REFERENCES devices(id),
                    parent_id TEXT REFERENCES jobs(id),
                    target TEXT,                           -- what it works on (e.g. a location uuid)
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
                CREATE INDEX jobs_state ON jobs(state, kind);

                -- What was done, by whom, with what result: append-only.
                CREATE TABLE audit_log (
                    id INTEGER PRIMARY KEY,
                    uuid TEXT NOT NULL UNIQUE,
                    at INTEGER NOT NULL,
                    device_id INTEGER NOT NULL,
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

    // MARK: - v2

    /// Folder aggregates move out of `entries` into their own table. Folder rows are spread through the whole
    /// entries table, so writing their aggregates dirtied nearly every page of it (the 1M-entry index spent
    /// 1.7-3 s there); in a table of their own they are a few MB written in key order.
    static func v2(_ db: Database) throws {
        try db.execute(
            sql: """
                -- Per folder: bytes and files below it, and files below it per category (JSON {category: count},
                -- categories in FileCategory order, only those present). Computed by the indexer's aggregation.
                CREATE TABLE folder_aggregates (
                    entry_id INTEGER PRIMARY KEY REFERENCES entries(id) ON DELETE CASCADE,
                    size INTEGER NOT NULL,
                    files INTEGER NOT NULL,
                    kinds TEXT NOT NULL
                ) STRICT;
                INSERT INTO folder_aggregates (entry_id, size, files, kinds)
                    SELECT id, aggregate_size, coalesce(aggregate_files, 0), coalesce(aggregate_kinds, '{}')
                    FROM entries WHERE type = 1 AND aggregate_size IS NOT NULL ORDER BY id;
                ALTER TABLE entries DROP COLUMN aggregate_size;
                ALTER TABLE entries DROP COLUMN aggregate_files;
                ALTER TABLE entries DROP COLUMN aggregate_kinds;
                """
        )
    }

    // MARK: - v3

    /// The search index, kept in step with `entries` by triggers so that every writer (scans, the watcher,
    /// actions, sync) updates it in its own transaction.
    ///
    /// - `search_words`: the words of each name, case and diacritics folded (`Résumé` is `resume`), with an
    ///   index of their first three letters: FTS5 answers any other prefix by merging the whole lists of every
    ///   word it begins (8 ms for a prefix of 28,000 of 1M names), a three-letter one lazily; the search asks
    ///   for the first three letters of a word and confirms the rest on the names.
    /// - `search_trigrams`: every three characters of each name, for substrings (`oice_20`).
    /// - `search_state.indexed_through`: every entry with an id up to this one is in both tables; new entries
    ///   always get larger ids (SQLite's largest plus one, and the mark comes down when the largest rows are
    ///   deleted). Inserts are not indexed one by one (about 100 µs a row through triggers, against 12 µs in
    ///   batches, and even a trigger that does nothing cost the scan's writer a third more time):
    ///   `Library.catchUpSearch` adds them in batches of thousands, live batches inside their own transaction,
    ///   and searches match the entries beyond the mark by reading their names until then. Triggers keep renames
    ///   and deletions of indexed entries in step.
    ///
    /// Both FTS tables keep only which entries hold a token (`detail=none`, contentless, `columnsize=0`):
    /// positions would about double their size, sizes per row took 10 MB each at 1M entries and only served
    /// FTS5's own `bm25()`, which the search does not use, and every match is confirmed against the real name. SQLite 3.40 has no
    /// `contentless_delete`, so a row is removed with the `'delete'` command and the very text it was indexed
    /// with, which the triggers take from the old row.
    static func v3(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE VIRTUAL TABLE search_words USING fts5(
                    name, tokenize = 'unicode61 remove_diacritics 2', content = '', detail = none, columnsize = 0,
                    prefix = '3');
                CREATE VIRTUAL TABLE search_trigrams USING fts5(
                    name, tokenize = 'trigram', content = '', detail = none, columnsize = 0);
                CREATE TABLE search_state (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    indexed_through INTEGER NOT NULL
                ) STRICT;
                INSERT INTO search_state (id, indexed_through) VALUES (1, 0);
                CREATE TRIGGER entries_search_delete AFTER DELETE ON entries
                WHEN old.id <= (SELECT indexed_through FROM search_state WHERE id = 1) BEGIN
                    INSERT INTO search_words (search_words, rowid, name) VALUES ('delete', old.id, CAST(old.name AS TEXT));
                    INSERT INTO search_trigrams (search_trigrams, rowid, name)
                        VALUES ('delete', old.id, CAST(old.name AS TEXT));
                    -- SQLite gives a new row the largest id plus one: when the largest rows go, the mark comes down
                    -- with them, so that a reused id is never taken for an indexed one.
                    UPDATE search_state SET indexed_through = (SELECT coalesce(max(id), 0) FROM entries)
                    WHERE id = 1 AND indexed_through > (SELECT coalesce(max(id), 0) FROM entries);
                END;
                CREATE TRIGGER entries_search_rename AFTER UPDATE OF name ON entries
                WHEN old.name IS NOT new.name AND old.id <= (SELECT indexed_through FROM search_state WHERE id = 1) BEGIN
                    INSERT INTO search_words (search_words, rowid, name) VALUES ('delete', old.id, CAST(old.name AS TEXT));
                    INSERT INTO search_trigrams (search_trigrams, rowid, name)
                        VALUES ('delete', old.id, CAST(old.name AS TEXT));
                    INSERT INTO search_words (rowid, name) VALUES (new.id, CAST(new.name AS TEXT));
                    INSERT INTO search_trigrams (rowid, name) VALUES (new.id, CAST(new.name AS TEXT));
                END;
                -- Documents per word (for diagnosis: counting them reads each word's whole list).
                CREATE VIRTUAL TABLE search_vocabulary USING fts5vocab(search_words, 'row');
                """
        )
    }

    // MARK: - v4

    /// The search index as gram postings of our own, in place of v3's two FTS5 tables and the folded-name
    /// B-tree: at 1M entries these took 73 MB (40% of the library) and 13 s to build after an 8 s scan; the
    /// postings take about 40 MB and are built in memory on every core (see `SearchGrams`, `Postings`).
    ///
    /// - `search_postings`: for each gram (`SearchGrams`: every three characters of a folded name, framed by
    ///   start and end marks, and each word's start), the ids of the entries whose names have it, ascending,
    ///   in chunks of under a page keyed by their first id.
    /// - `search_gram_counts`: how many ids each gram's list holds (an upper bound once entries are deleted or
    ///   renamed): the search starts from its rarest grams and weighs words by them.
    /// - `search_state.indexed_through`: every entry with an id up to this one is in the lists under its
    ///   current name, except those in `search_dirty` (renamed since). Entries beyond the mark are matched by
    ///   reading their names until `Library.catchUpSearch` (or a live batch, in its own transaction) adds them.
    ///   New entries get larger ids (SQLite's largest plus one; the mark comes down when the largest rows go).
    /// - `search_state.stale`: ids in the lists that no longer hold there (deleted or renamed entries). They
    ///   cost only a confirmation that fails, and a rebuild clears them when they grow to a quarter.
    static func v4(_ db: Database) throws {
        try db.execute(
            sql: """
                DROP TRIGGER entries_search_delete;
                DROP TRIGGER entries_search_rename;
                DROP TABLE search_vocabulary;
                DROP TABLE search_words;
                DROP TABLE search_trigrams;
                DROP INDEX IF EXISTS entries_folded;
                CREATE TABLE search_postings (
                    gram INTEGER NOT NULL,
                    first_id INTEGER NOT NULL,
                    ids BLOB NOT NULL,                -- LEB128: the first id, then differences
                    PRIMARY KEY (gram, first_id)
                ) STRICT, WITHOUT ROWID;
                CREATE TABLE search_gram_counts (
                    gram INTEGER PRIMARY KEY,
                    n INTEGER NOT NULL
                ) STRICT;
                CREATE TABLE search_dirty (
                    id INTEGER PRIMARY KEY            -- an entry renamed since it was indexed
                ) STRICT;
                ALTER TABLE search_state ADD COLUMN stale INTEGER NOT NULL DEFAULT 0;
                UPDATE search_state SET indexed_through = 0, stale = 0 WHERE id = 1;
                CREATE TRIGGER entries_search_delete AFTER DELETE ON entries
                WHEN old.id <= (SELECT indexed_through FROM search_state WHERE id = 1) BEGIN
                    UPDATE search_state SET stale = stale + 1 WHERE id = 1;
                    DELETE FROM search_dirty WHERE id = old.id;
                    -- SQLite gives a new row the largest id plus one: when the largest rows go, the mark comes down
                    -- with them, so that a reused id is never taken for an indexed one.
                    UPDATE search_state SET indexed_through = (SELECT coalesce(max(id), 0) FROM entries)
                    WHERE id = 1 AND indexed_through > (SELECT coalesce(max(id), 0) FROM entries);
                END;
                CREATE TRIGGER entries_search_rename AFTER UPDATE OF name ON entries
                WHEN old.name IS NOT new.name AND old.id <= (SELECT indexed_through FROM search_state WHERE id = 1)
                BEGIN
                    INSERT OR IGNORE INTO search_dirty (id) VALUES (new.id);
                    UPDATE search_state SET stale = stale + 1 WHERE id = 1;
                END;
                """
        )
    }

    // MARK: - v5

    /// Job control across processes: `requested` is what a user asked of a job another process runs
    /// ('pause' or 'cancel'); the runner reads it between steps, stops, and clears it. A job's runner holds
    /// `locks/job-ID.lock` while it runs, so a 'running' job whose lock is free was interrupted (the process
    /// died) and may be resumed from its checkpoint.
    static func v5(_ db: Database) throws {
        try db.execute(sql: "ALTER TABLE jobs ADD COLUMN requested TEXT")
    }

    // MARK: - v6

    /// What file actions need to be undone and to respect `min-copies`:
    /// - `trash_items`: what `sd rm` moved into a trash folder (on the same filesystem, so a rename), with a
    ///   manifest of its files' content ids (to restore only what is unchanged, and to count copies when the
    ///   trash is emptied). `state`: 'pending' (the rename may or may not have happened), 'trashed',
    ///   'restored', 'purged'.
    /// - `action_undo`: per completed action job, how to reverse it (JSON, see SDActions `UndoRecord`).
    /// - `library_settings`: key/value settings; `scope` is '' for the library, else 'tag:<tag uuid>'.
    static func v6(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE trash_items (
                    id INTEGER PRIMARY KEY,
                    uuid TEXT NOT NULL UNIQUE,
                    job_id TEXT,
                    original_path TEXT NOT NULL,
                    trash_path TEXT NOT NULL,
                    kind TEXT NOT NULL,                    -- 'file', 'folder', 'symlink'
                    files INTEGER NOT NULL DEFAULT 0,
                    bytes INTEGER NOT NULL DEFAULT 0,
                    manifest TEXT,                         -- JSON {relative path: content id hex}
                    deleted_at INTEGER NOT NULL,
                    state TEXT NOT NULL
                ) STRICT;
                CREATE INDEX trash_items_job ON trash_items(job_id);

                CREATE TABLE action_undo (
                    job_id TEXT PRIMARY KEY NOT NULL,
                    action TEXT NOT NULL,
                    record TEXT NOT NULL,                  -- JSON
                    created_at INTEGER NOT NULL,
                    undone_at INTEGER,
                    undone_by TEXT                         -- the job that reversed it
                ) STRICT;

                CREATE TABLE library_settings (
                    key TEXT NOT NULL,
                    scope TEXT NOT NULL DEFAULT '',
                    value TEXT NOT NULL,
                    PRIMARY KEY (key, scope)
                ) STRICT, WITHOUT ROWID;
                """
        )
    }

    // MARK: - v7

    /// Full BLAKE3 hashes per file, computed on demand (duplicate verification, scrub) and kept: valid while
    /// the file's size and mtime are those recorded with it. Per entry, not per content: files with one
    /// sampled content id can differ, which is what the full hash is there to find.
    static func v7(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE integrity_hashes (
                    entry_id INTEGER PRIMARY KEY REFERENCES entries(id) ON DELETE CASCADE,
                    hash TEXT NOT NULL,                    -- 64 hex digits, as b3sum prints
                    size INTEGER NOT NULL,
                    mtime_ns INTEGER NOT NULL,
                    checked_at INTEGER NOT NULL
                ) STRICT;
                """
        )
    }

    // MARK: - v8

    /// Tags on content, and the change log of shared metadata.
    /// - `content_tags`: a tag on a file that has a content id goes to its content, so it follows the file to
    ///   every copy (on every device); files without one (empty, not identified yet) and folders keep theirs in
    ///   `entry_tags`.
    /// - `shared_changes`: every change to shared metadata, written in the transaction that makes it, stamped
    ///   with this device's hybrid logical clock (strictly increasing), for sync to exchange and merge
    ///   (last writer wins per record and field; a NULL value is a deletion).
    static func v8(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE content_tags (
                    content_id INTEGER NOT NULL,           -- content_identities.id (the content id as an integer)
                    tag_uuid TEXT NOT NULL,
                    hlc TEXT NOT NULL,
                    deleted INTEGER NOT NULL DEFAULT 0,
                    PRIMARY KEY (content_id, tag_uuid)
                ) STRICT;
                CREATE INDEX content_tags_tag ON content_tags(tag_uuid);

                CREATE TABLE shared_changes (
                    seq INTEGER PRIMARY KEY,               -- this library's order of arrival
                    hlc TEXT NOT NULL,                     -- HLCTimestamp: fixed-width, so text order is time order
                    record TEXT NOT NULL,                  -- 'tag', 'entry_tag', 'content_tag'
                    key TEXT NOT NULL,                     -- tag uuid; 'ENTRY-UUID-HEX/TAG-UUID'; 'CONTENT-ID/TAG-UUID'
                    field TEXT,                            -- the field set, or NULL for the whole record
                    value TEXT,                            -- JSON; NULL: deleted (a tombstone)
                    device TEXT NOT NULL                   -- DeviceID of the device that made the change
                ) STRICT;
                CREATE INDEX shared_changes_hlc ON shared_changes(hlc);
                """
        )
    }

    // MARK: - v9

    /// What sync between devices needs.
    ///
    /// Device-owned rows (devices, volumes, locations, entries) replicate by state: each carries `sync_seq`, the
    /// owner's change sequence when it was last written (every write transaction that changes owned rows takes
    /// the next one from `sync_state.seq`), so a peer asks for rows after its cursor (seq, id). Rows deleted
    /// on their owner leave `owned_tombstones` (by trigger, so cascades count too); a location's tombstone
    /// stands for all its entries (theirs are not written: `sync_state.quiet`). On a replica, other devices'
    /// rows keep their owner's `sync_seq`.
    ///
    /// Shared metadata merges per field: `shared_state` holds each register (record, key, field: '' for the
    /// record's existence) with its value and the HLC that wrote it, the last writer winning; the live tables
    /// (tags, entry_tags, content_tags, user_metadata) are made from it. `shared_changes.prev` is the HLC of the
    /// value a change replaced, so a merge can tell an overwrite (it saw the old value) from a concurrent edit,
    /// whose losing value is kept in `sync_conflicts`.
    static func v9(_ db: Database) throws {
        try db.execute(
            sql: """
                ALTER TABLE devices ADD COLUMN sync_seq INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE volumes ADD COLUMN sync_seq INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE locations ADD COLUMN sync_seq INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE entries ADD COLUMN sync_seq INTEGER NOT NULL DEFAULT 0;
                CREATE INDEX entries_sync ON entries(device_id, sync_seq);
                -- On a replica, another device's entries keep their owner's row id: the owner may give a row another
                -- uuid (a move detected), and rows refer to their parent by it. NULL for this device's own rows
                -- (so the partial index costs local scans nothing).
                ALTER TABLE entries ADD COLUMN owner_id INTEGER;
                CREATE UNIQUE INDEX entries_owner ON entries(device_id, owner_id) WHERE owner_id IS NOT NULL;
                -- Another device's entries that arrived before their parent (or location): applied when it comes.
                CREATE TABLE sync_pending (
                    device_id INTEGER NOT NULL,
                    owner_id INTEGER NOT NULL,
                    parent INTEGER,                        -- the owner's row id of its parent (what it waits for)
                    seq INTEGER NOT NULL,
                    row TEXT NOT NULL,                     -- JSON of the entry as received
                    PRIMARY KEY (device_id, owner_id)
                ) STRICT;
                CREATE INDEX sync_pending_parent ON sync_pending(device_id, parent);

                CREATE TABLE sync_state (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    seq INTEGER NOT NULL,                  -- the last change sequence taken
                    self_device INTEGER,                   -- devices.id of the device that has the library open
                    quiet INTEGER NOT NULL DEFAULT 0,      -- 1 while a location's entries go with it (no tombstones)
                    owned_compacted INTEGER NOT NULL DEFAULT 0,  -- tombstones up to this id were compacted away
                    shared_compacted INTEGER NOT NULL DEFAULT 0, -- shared_changes up to this seq were compacted away
                    shared_horizon TEXT                    -- HLC before which shared tombstones were compacted
                ) STRICT;
                INSERT INTO sync_state (id, seq) VALUES (1, 0);

                CREATE TABLE owned_tombstones (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    seq INTEGER NOT NULL,                  -- the sync_seq of the transaction that deleted the row
                    kind TEXT NOT NULL,                    -- 'entry', 'location', 'volume'
                    ref TEXT NOT NULL,                     -- entries: the row id; others: the uuid
                    at INTEGER NOT NULL
                ) STRICT;
                CREATE TRIGGER entries_tombstone AFTER DELETE ON entries
                WHEN old.device_id = (SELECT self_device FROM sync_state WHERE id = 1)
                    AND (SELECT quiet FROM sync_state WHERE id = 1) = 0
                BEGIN
                    INSERT INTO owned_tombstones (seq, kind, ref, at) VALUES ((SELECT seq FROM sync_state WHERE id = 1),
                        'entry', CAST(old.id AS TEXT), CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
                END;
                CREATE TRIGGER locations_tombstone AFTER DELETE ON locations
                WHEN old.device_id = (SELECT self_device FROM sync_state WHERE id = 1)
                BEGIN
                    INSERT INTO owned_tombstones (seq, kind, ref, at) VALUES ((SELECT seq FROM sync_state WHERE id = 1),
                        'location', old.uuid, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
                END;
                CREATE TRIGGER volumes_tombstone AFTER DELETE ON volumes
                WHEN old.device_id = (SELECT self_device FROM sync_state WHERE id = 1)
                BEGIN
                    INSERT INTO owned_tombstones (seq, kind, ref, at) VALUES ((SELECT seq FROM sync_state WHERE id = 1),
                        'volume', old.uuid, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
                END;

                ALTER TABLE shared_changes ADD COLUMN prev TEXT;  -- HLC of the register value this change replaced
                CREATE TABLE shared_state (
                    record TEXT NOT NULL,
                    key TEXT NOT NULL,
                    field TEXT NOT NULL,                   -- '' for the record itself (exists or deleted)
                    value TEXT,                            -- NULL: cleared or deleted
                    hlc TEXT NOT NULL,
                    prev TEXT,                             -- the HLC of the value this one replaced, as its writer saw
                    PRIMARY KEY (record, key, field)
                ) STRICT, WITHOUT ROWID;

                -- Values that lost a concurrent edit (last writer wins, the loser is kept here, restorable).
                CREATE TABLE sync_conflicts (
                    id INTEGER PRIMARY KEY,
                    record TEXT NOT NULL,
                    key TEXT NOT NULL,
                    field TEXT NOT NULL,
                    value TEXT,                            -- the losing value
                    hlc TEXT NOT NULL,                     -- and its stamp
                    winner_value TEXT,
                    winner_hlc TEXT NOT NULL,
                    found_at INTEGER NOT NULL,
                    resolved_at INTEGER,                   -- restored or dismissed
                    UNIQUE (record, key, field, hlc)
                ) STRICT;

                -- The devices this library syncs with, and how far each was followed.
                CREATE TABLE sync_peers (
                    device TEXT PRIMARY KEY NOT NULL,      -- DeviceID
                    shared_seq INTEGER NOT NULL DEFAULT 0, -- its shared_changes seq pulled through
                    owned_cursor TEXT,                     -- JSON: its owned rows pulled through, per table
                    full_resync INTEGER NOT NULL DEFAULT 0,-- 1: its state is being pulled whole (cursor says where)
                    resync_pass INTEGER NOT NULL DEFAULT 0,
                    last_sync_at INTEGER,
                    last_error TEXT,
                    added_at INTEGER NOT NULL
                ) STRICT;
                """
        )
        // Registers from the change log so far.
        let changes = try Row.fetchAll(
            db,
            sql: "SELECT hlc, record, key, field, value FROM shared_changes ORDER BY hlc"
        )
        for row in changes {
            for register in SharedRegister.expand(record: row[1], key: row[2], field: row[3], value: row[4]) {
                try db.execute(
                    sql: """
                        INSERT INTO shared_state (record, key, field, value, hlc) VALUES (?, ?, ?, ?, ?)
                        ON CONFLICT (record, key, field) DO UPDATE SET value = excluded.value, hlc = excluded.hlc
                        WHERE excluded.hlc > shared_state.hlc
                        """,
                    arguments: [register.record, register.key, register.field, register.value, row[0] as String]
                )
            }
        }
    }

    // MARK: - v10

    /// What a paired device did that this device refused (a change without the right: kept as a conflict for
    /// the owner to see and restore), and the files other devices are sending here (their temporaries, so
    /// that abandoned ones are removed).
    static func v10(_ db: Database) throws {
        try db.execute(
            sql: """
                -- NULL: a concurrent edit that lost. Else why a peer's change was refused (it was never applied).
                ALTER TABLE sync_conflicts ADD COLUMN reason TEXT;
                -- The device that sent it (a refused change), NULL for a lost concurrent edit.
                ALTER TABLE sync_conflicts ADD COLUMN from_device TEXT;
                -- A file another device is sending into a folder of this device's locations: its hidden temporary
                -- (`.sd-part-in-TAG` in `folder`). The row goes when the file is committed or abandoned; one left
                -- with a temporary untouched for long is removed by sdd.
                CREATE TABLE peer_incoming (
                    id INTEGER PRIMARY KEY,
                    folder BLOB NOT NULL,                  -- the folder's path (bytes)
                    part TEXT NOT NULL,                    -- the temporary's name in it
                    device TEXT,                           -- the sending device
                    size INTEGER NOT NULL,                 -- the size it announced
                    started_at INTEGER NOT NULL,
                    UNIQUE (folder, part)
                ) STRICT;
                """
        )
    }

    // MARK: - v11

    /// Links, found fast: a removal's preview names the symbolic links it would leave dangling and the hard
    /// links that keep a removed file's bytes (few rows: partial indexes).
    static func v11(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE INDEX entries_symlinks ON entries(device_id) WHERE type = 2;
                CREATE INDEX entries_hardlinks ON entries(device_number, inode) WHERE link_count > 1;
                """
        )
    }

    // MARK: - v12

    /// Copies of a library: which copy this is (a copy or restore takes a new epoch, so that peers pull its
    /// whole state), and where its database was when the epoch was taken (to notice that it was copied).
    static func v12(_ db: Database) throws {
        try db.execute(
            sql: """
                -- Random, per copy of the library; NULL until first opened since this migration.
                ALTER TABLE sync_state ADD COLUMN copy_epoch TEXT;
                -- 'DEVICE:INODE' of library.db when the epoch was taken; NULL in a backup (opened: a new epoch).
                ALTER TABLE sync_state ADD COLUMN home TEXT;
                """
        )
    }
}
