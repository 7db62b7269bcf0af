import Foundation
import GRDB
import SDCore
import SDSystem
import Synchronization

/// A library: one portable folder `NAME.sdlibrary/` holding the index (`library.db`, SQLite in WAL mode),
/// `library.json`, `sidecars/` and `logs/`. Copying the folder (while no sd writes to it) is a backup.
///
/// Several processes may open one library at once: SQLite's WAL locking serialises writers, and schema
/// migrations run under an exclusive lock on `library.lock`.
public final class Library: Sendable {
    public let path: String
    public let manifest: LibraryManifest
    public let device: DeviceIdentity
    let database: DatabasePool

    public static let folderExtension = ".sdlibrary"
    static let manifestName = "library.json"
    static let databaseName = "library.db"
    static let lockName = "library.lock"
    static let subfolders = ["sidecars", "logs"]

    public var databasePath: String { "\(path)/\(Self.databaseName)" }

    private init(path: String, manifest: LibraryManifest, device: DeviceIdentity, database: DatabasePool) {
        self.path = path
        self.manifest = manifest
        self.device = device
        self.database = database
    }

    // MARK: - Create

    /// Creates a new library `NAME.sdlibrary` in `directory` and opens it.
    ///
    /// #### Errors
    /// `.invalidName`; `.alreadyExists` if a library of that name is there (also when another process creates
    /// it at the same moment: exactly one wins); `.io` when the disk refuses.
    ///
    /// #### Implementation details
    /// The library is built in a hidden temporary folder beside the target (database migrated, manifest
    /// written and fsynced), then renamed into place with `renameat2(RENAME_NOREPLACE)`, so a library folder is
    /// either absent or complete, even after a crash mid-way.
    /// `id`: a library joined from another device keeps its id (nil: a new library, a new id).
    public static func create(name: String, in directory: String, device: DeviceIdentity, id: LibraryID? = nil) throws
        -> Library
    {
        try validate(name: name)
        let target = "\(directory)/\(name)\(folderExtension)"
        if FileSystem.exists(target) {
            throw LibraryError(.alreadyExists, "a library named '\(name)' already exists at '\(target)'")
        }
        let staging =
            "\(directory)/.\(name)\(folderExtension).creating-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))"
        do {
            // Only this user can read a library (names, tags and notes are a map of someone's life): its folder
            // and every folder in it are 0700, its files 0600.
            try FileSystem.makeDirectories(directory, mode: 0o700)
            try FileSystem.makeDirectories(staging, mode: 0o700)
            for sub in subfolders { try FileSystem.makeDirectories("\(staging)/\(sub)", mode: 0o700) }
        } catch {
            FileSystem.removeTree(staging)
            throw LibraryError(.io, "cannot create the library folder in '\(directory)': \(error)", underlying: error)
        }
        do {
            let manifest = LibraryManifest(
                id: id ?? .random(),
                name: name,
                schemaVersion: Schema.version,
                created: Date(timeIntervalSince1970: floor(Date().timeIntervalSince1970))
            )
            // Made empty (SQLite takes it as a new database) with the mode its journals then copy.
            try FileSystem.createEmpty("\(staging)/\(databaseName)", mode: 0o600)
            let pool = try openPool("\(staging)/\(databaseName)")
            // Before the first table: space freed later (a location removed) can be given back to the disk.
            try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL") }
            try Schema.makeMigrator().migrate(pool)
            try pool.write { db in try registerDevice(device, db) }
            try checkpointAndClose(pool)
            try FileSystem.writeNew(try manifest.encoded(), to: "\(staging)/\(manifestName)", mode: 0o600)
            try FileSystem.syncDirectory(staging)
            try FileSystem.renameNoReplace(staging, to: target)
            try FileSystem.syncDirectory(directory)
        } catch let error as SystemError where error.isExists {
            FileSystem.removeTree(staging)
            throw LibraryError(.alreadyExists, "a library named '\(name)' already exists at '\(target)'")
        } catch {
            FileSystem.removeTree(staging)
            throw LibraryError(.io, "cannot create library '\(name)' in '\(directory)': \(error)", underlying: error)
        }
        return try open(at: target, device: device)
    }

    /// A library an older sd made readable by others (0755 folders, 0644 files) is made private: its folder and
    /// the folders in it 0700, its files 0600 (only permissions wider than those are narrowed).
    static func makePrivate(_ path: String) {
        FileSystem.restrict(path, to: 0o700)
        for sub in subfolders + ["locks", "trash"] { FileSystem.restrict("\(path)/\(sub)", to: 0o700) }
        for name in [manifestName, databaseName, databaseName + "-wal", databaseName + "-shm", lockName] {
            FileSystem.restrict("\(path)/\(name)", to: 0o600)
        }
    }

    static func validate(name: String) throws {
        let bad =
            name.isEmpty || name.hasPrefix(".") || name.contains("/") || name.utf8.contains(0)
            || name.utf8.count > 200 || name.hasSuffix(folderExtension)
        if bad {
            throw LibraryError(
                .invalidName,
                "'\(name)' cannot be a library name: use 1-200 bytes, no '/', not starting with '.' (e.g. Home, Work-2025)"
            )
        }
    }

    // MARK: - Open

    /// Opens an existing library folder, upgrading its schema if this sd is newer.
    ///
    /// #### Errors
    /// `.notFound` (no folder), `.missingFile` (no library.json or library.db), `.corrupt` (unreadable
    /// manifest, or a database SQLite cannot read), `.tooNew` (a newer sd's schema). In every case the
    /// library is left exactly as it was: sd never repairs or overwrites it silently.
    public static func open(at path: String, device: DeviceIdentity) throws -> Library {
        guard FileSystem.isDirectory(path) else {
            throw LibraryError(
                .notFound,
                "no library at '\(path)'; create one with `sd library create NAME`, or see `sd library list`"
            )
        }
        let manifest = try readManifest(path)
        if manifest.schemaVersion > Schema.version {
            throw tooNew(path, found: manifest.schemaVersion)
        }
        let databasePath = "\(path)/\(databaseName)"
        guard FileSystem.exists(databasePath) else {
            throw LibraryError(
                .missingFile,
                "'\(databasePath)' is missing: the library's index is gone. sd will not create a new one over it; restore the folder from a backup, or create a new library"
            )
        }
        for sub in subfolders where !FileSystem.isDirectory("\(path)/\(sub)") {
            // Derived data only (thumbnails, logs): an empty folder loses nothing.
            try? FileSystem.makeDirectories("\(path)/\(sub)", mode: 0o700)
        }
        makePrivate(path)
        let pool: DatabasePool
        do {
            pool = try FileLock.withLock(path: "\(path)/\(lockName)", mode: .exclusive) {
                try openAndMigrate(path: path, databasePath: databasePath, device: device)
            }
        } catch let error as LibraryError {
            throw error
        } catch let error as SystemError {
            throw LibraryError(.io, "cannot lock '\(path)': \(error)", underlying: error)
        }
        var current = manifest
        if current.schemaVersion < Schema.version {
            current.schemaVersion = Schema.version
            do {
                try FileSystem.writeAtomically(try current.encoded(), to: "\(path)/\(manifestName)", mode: 0o600)
            } catch {
                throw LibraryError(.io, "cannot update '\(path)/\(manifestName)': \(error)", underlying: error)
            }
        }
        return Library(path: path, manifest: current, device: device, database: pool)
    }

    /// Opens the database, checks that SQLite can read it and that its schema is not newer, and migrates it.
    /// Runs under the library's exclusive lock, so two processes never migrate at once.
    private static func openAndMigrate(path: String, databasePath: String, device: DeviceIdentity) throws
        -> DatabasePool
    {
        let pool: DatabasePool
        do {
            pool = try openPool(databasePath)
            try pool.read { db in _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master") }
        } catch {
            throw describe(error, path: databasePath)
        }
        do {
            let migrator = Schema.makeMigrator()
            if try pool.read({ try migrator.hasBeenSuperseded($0) }) {
                throw tooNew(path, found: nil)
            }
            try migrator.migrate(pool)
            try pool.write { db in
                try registerDevice(device, db)
                // A copy of the library (copied, restored, moved to another disk) starts a new epoch.
                try noteWhereItIs(db, databasePath: databasePath)
                // An index run may drop this index while it records many content ids; if it was killed
                // before making it again, make it now.
                try ensureContentIndex(db)
            }
        } catch let error as LibraryError {
            throw error
        } catch {
            throw describe(error, path: databasePath)
        }
        return pool
    }

    static func readManifest(_ path: String) throws -> LibraryManifest {
        let manifestPath = "\(path)/\(manifestName)"
        guard FileSystem.exists(manifestPath) else {
            throw LibraryError(
                .missingFile,
                "'\(manifestPath)' is missing: '\(path)' is not an sd library, or it is damaged. sd has not changed it"
            )
        }
        let manifest: LibraryManifest
        do {
            manifest = try LibraryManifest.decoder.decode(
                LibraryManifest.self,
                from: Data(contentsOf: URL(fileURLWithPath: manifestPath))
            )
        } catch {
            throw LibraryError(
                .corrupt,
                "'\(manifestPath)' cannot be read (\(error.localizedDescription)). sd has not changed it; restore it from a backup copy of the library",
                underlying: error
            )
        }
        guard manifest.format == LibraryManifest.formatName else {
            throw LibraryError(
                .corrupt,
                "'\(manifestPath)' is not an sd library manifest (format '\(manifest.format)')"
            )
        }
        return manifest
    }

    static func tooNew(_ path: String, found: Int?) -> LibraryError {
        let which = found.map { "schema \($0)" } ?? "a newer schema"
        return LibraryError(
            .tooNew,
            "'\(path)' was written by a newer sd (\(which); this sd knows \(Schema.version)). Upgrade sd to open it; sd has not changed it"
        )
    }

    /// SQLite's words when `error` says the database is damaged (malformed, or not a database), else nil.
    static func damageMessage(_ error: any Error) -> String? {
        guard let db = error as? DatabaseError,
            [.SQLITE_NOTADB, .SQLITE_CORRUPT].contains(db.resultCode.primaryResultCode)
        else { return nil }
        return "SQLite: \(db.message ?? "\(db.resultCode)")"
    }

    /// SQLite's integrity check of the library folder at `path`, run on a read-only connection without opening
    /// the library (no migration, no write): "ok", what SQLite found wrong, or why the file cannot be read at
    /// all. For a library too damaged to open.
    public static func checkDatabase(libraryAt path: String) -> String {
        let databasePath = "\(path)/\(databaseName)"
        guard FileSystem.exists(databasePath) else { return "damaged: '\(databasePath)' is missing" }
        do {
            var config = Configuration()
            config.readonly = true
            let queue = try DatabaseQueue(path: databasePath, configuration: config)
            defer { try? queue.close() }
            let found = try queue.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
            return found == ["ok"] ? "ok" : "damaged: " + found.joined(separator: "; ")
        } catch {
            return "damaged: " + (damageMessage(error) ?? "\(error)")
        }
    }

    static func describe(_ error: any Error, path: String) -> LibraryError {
        if let damage = damageMessage(error) {
            return LibraryError(
                .corrupt,
                "'\(path)' is damaged (\(damage)). sd has not changed it; `sd library info --check` shows the damage; restore the library folder from a backup copy, or create a new library and index again",
                underlying: error
            )
        }
        return LibraryError(.io, "cannot open '\(path)': \(error)", underlying: error)
    }

    /// Frees what SQLite caches (page caches, idle reader connections) once the connections are done with
    /// their current work: for a long-running process gone idle.
    public func releaseMemory() { database.releaseMemoryEventually() }

    /// Reader connections per library opened from now on (default 2): the daemon, which answers many clients
    /// at once, asks for more, so that a quick read never waits behind slow ones for a connection.
    public static func setMaximumReaders(_ count: Int) { maximumReaders.withLock { $0 = max(1, count) } }
    private static let maximumReaders = Mutex(2)

    static func openPool(_ path: String) throws -> DatabasePool {
        var config = Configuration()
        config.foreignKeysEnabled = true
        // Another process may be writing: wait for it rather than fail.
        config.busyMode = .timeout(30)
        // Readers rarely need more than one or two connections here; each has its own page cache.
        config.maximumReaderCount = maximumReaders.withLock { $0 }
        config.prepareDatabase { db in
            // WAL with synchronous=NORMAL cannot corrupt the database on power loss; at worst the last
            // transactions roll back. Jobs that must not lose a commit use their own fsync points.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // The writer gets a 48 MiB page cache (the default is 2 MiB): indexing a million entries touches index
            // pages all over the file, and re-reading them dominated. Readers get 8 MiB: every connection's cache
            // can grow to its limit, and the peak memory target is 150 MB at a million entries.
            try db.execute(
                sql: db.configuration.readonly ? "PRAGMA cache_size = -8192" : "PRAGMA cache_size = \(writerCacheSize)"
            )
            // Checkpoint every 64 MiB of WAL instead of SQLite's 4 MiB: each checkpoint syncs and rewrites pages, and
            // with the default a 1M-entry index spent about a third of its time in them (measured: 11.1 s -> 7.4 s).
            if !db.configuration.readonly { try db.execute(sql: "PRAGMA wal_autocheckpoint = 16384") }
        }
        return try DatabasePool(path: path, configuration: config)
    }

    static func registerDevice(_ device: DeviceIdentity, _ db: Database) throws {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try db.execute(
            sql: """
                INSERT INTO devices (uuid, name, os, created_at, last_seen_at, sync_seq) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT(uuid) DO UPDATE SET name = excluded.name, os = excluded.os, last_seen_at = excluded.last_seen_at,
                    sync_seq = excluded.sync_seq
                """,
            arguments: [
                device.id.description, device.name, Self.osName, Int64(device.created.timeIntervalSince1970 * 1000),
                now, try takeSyncSeq(db),
            ]
        )
        // Deletions of this device's rows leave tombstones for its peers (the triggers ask which device is this).
        try db.execute(
            sql: "UPDATE sync_state SET self_device = (SELECT id FROM devices WHERE uuid = ?) WHERE id = 1",
            arguments: [device.id.description]
        )
    }

    static var osName: String {
        #if os(Linux)
            "linux"
        #elseif os(macOS)
            "macos"
        #else
            "other"
        #endif
    }

    /// Closes the database, first moving everything in the write-ahead log into `library.db`, so that the
    /// closed folder is self-contained (a copy of `library.db` alone is then a complete index). Further use of
    /// this library fails.
    public func close() throws {
        try Self.checkpointAndClose(database)
    }

    static func checkpointAndClose(_ pool: DatabasePool) throws {
        // GRDB closes the writer before the readers, so SQLite's own checkpoint-on-last-close never runs:
        // checkpoint explicitly, and truncate the log to zero bytes.
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
        try pool.close()
    }
}
