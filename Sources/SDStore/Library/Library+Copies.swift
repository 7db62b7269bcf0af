import Foundation
import GRDB
import SDCore
import SDSystem

// Copies of a library: backups made while it is in use, restores, and what sync must learn when a library is a
// copy. Each copy of a library has an epoch (`sync_state.copy_epoch`), taken anew whenever the database is
// found where it was not last time (`sync_state.home`: the file's device and inode): a folder copied, restored
// from a backup, or moved to another disk. A new epoch rewinds nothing: it moves this copy's change sequences
// past anything a peer can have seen from an earlier copy and marks everything before as compacted, so that
// every peer pulls this copy's whole state (and drops what it held of the copy it replaced), and this copy pulls
// every peer's whole state (getting back what it made after the backup and others kept).

/// What a backup made.
public struct LibraryBackupReport: Sendable, Codable, Equatable {
    public var library: String
    public var id: String
    public var path: String
    public var bytes: Int64
    public var entries: Int
    public var seconds: Double
}

/// What a restore did.
public struct LibraryRestoreReport: Sendable, Codable, Equatable {
    public var library: String
    public var id: String
    public var path: String
    /// Where the library that was there before is kept (nil: there was none).
    public var keptAt: String?
    public var entries: Int
}

extension Library {
    /// How far a new epoch moves this copy's change sequences: past any peer's cursor (2^40 changes).
    static let epochStride: Int64 = 1 << 40

    /// This copy's epoch (changes when the library is found copied or restored).
    public func copyEpoch() throws -> String {
        try database.read { db in
            try String.fetchOne(db, sql: "SELECT copy_epoch FROM sync_state WHERE id = 1") ?? ""
        }
    }

    /// Where the database file is: its inode. (Not the device number: it changes across reboots and re-plugs on
    /// NFS, LVM, btrfs subvolumes and USB disks, where the file has not moved.)
    static func home(of databasePath: String) throws -> String {
        guard let identity = FileSystem.identity(databasePath) else {
            throw LibraryError(.missingFile, "'\(databasePath)' cannot be read")
        }
        return "\(identity.inode)"
    }

    /// The inode part of a recorded home ('DEVICE:INODE' before, 'INODE' now).
    static func inode(of home: String?) -> String? {
        home.map { String($0.split(separator: ":").last ?? "") }
    }

    /// At open (under the library's exclusive lock): a database found where it was not last time is a copy (or
    /// a restore, or a move to another disk) and starts a new epoch. Whether it did.
    @discardableResult
    static func noteWhereItIs(_ db: Database, databasePath: String) throws -> Bool {
        let here = try home(of: databasePath)
        let row = try Row.fetchOne(db, sql: "SELECT copy_epoch, home FROM sync_state WHERE id = 1")
        let epoch: String? = row?["copy_epoch"]
        let recorded: String? = row?["home"]
        if inode(of: recorded) == here && epoch != nil { return false }
        if recorded == nil && epoch == nil {
            // Its first open since epochs exist (or since it was made): this is the library itself.
            try db.execute(
                sql: "UPDATE sync_state SET copy_epoch = ?, home = ? WHERE id = 1",
                arguments: [UUID().uuidString.lowercased(), here]
            )
            return false
        }
        try startEpoch(db, home: here)
        return true
    }

    /// A new epoch for this copy: its sequences jump past what any peer can hold of an earlier copy, its history
    /// before counts as compacted (peers that followed an earlier copy pull this one's whole state), and it
    /// pulls every peer's whole state again.
    static func startEpoch(_ db: Database, home: String?) throws {
        let stride = epochStride
        try db.execute(
            sql: """
                UPDATE sync_state SET copy_epoch = ?, home = ?, seq = seq + ?,
                    owned_compacted = max(owned_compacted, (SELECT coalesce(max(id), 0) FROM owned_tombstones)) + ?,
                    shared_compacted = max(shared_compacted, (SELECT coalesce(max(seq), 0) FROM shared_changes)) + ?
                WHERE id = 1
                """,
            arguments: [UUID().uuidString.lowercased(), home, stride, stride, stride]
        )
        // Tombstones are numbered after the compaction mark (AUTOINCREMENT continues from sqlite_sequence).
        let compacted = try Int64.fetchOne(db, sql: "SELECT owned_compacted FROM sync_state WHERE id = 1") ?? 0
        try db.execute(sql: "DELETE FROM owned_tombstones")
        try db.execute(sql: "DELETE FROM sqlite_sequence WHERE name = 'owned_tombstones'")
        try db.execute(
            sql: "INSERT INTO sqlite_sequence (name, seq) VALUES ('owned_tombstones', ?)",
            arguments: [compacted]
        )
        // What this copy pulled from others is as old as the copy: pull their whole states again.
        try db.execute(
            sql: "UPDATE sync_peers SET owned_cursor = NULL, full_resync = 0, shared_seq = 0, last_error = NULL"
        )
    }

    // MARK: - Backup

    /// Makes a consistent copy of this library in a new folder `destination` (which must not exist), while it
    /// is in use: SQLite's online backup of the database inside one read transaction, and the manifest. The
    /// copy is checked (SQLite's quick check) before it is put in place; it is marked as a copy, so that opening
    /// it anywhere (after a restore, or as a folder copied back) starts a new epoch.
    ///
    /// #### Errors
    /// `.alreadyExists` when `destination` exists; `.io` when the disk refuses; `.corrupt` when the copy does not
    /// pass the check (nothing is left at `destination`).
    public func backup(to destination: String, progress: @escaping (Double) -> Void = { _ in }) throws
        -> LibraryBackupReport
    {
        let start = ContinuousClock.now
        if FileSystem.exists(destination) {
            throw LibraryError(
                .alreadyExists,
                "'\(destination)' exists; name a new folder for the backup (sd never writes into an existing one)"
            )
        }
        let parent = FileSystem.parent(of: destination)
        let staging =
            "\(parent)/.\(URL(fileURLWithPath: destination).lastPathComponent)\(Self.folderExtension).backup-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))"
        do {
            try FileSystem.makeDirectories(staging, mode: 0o700)
            for sub in Self.subfolders { try FileSystem.makeDirectories("\(staging)/\(sub)", mode: 0o700) }
        } catch {
            FileSystem.removeTree(staging)
            throw LibraryError(.io, "cannot create a folder in '\(parent)': \(error)", underlying: error)
        }
        var entries = 0
        do {
            let (check, count) = try Self.copyDatabase(
                database,
                to: "\(staging)/\(Self.databaseName)",
                marked: "backup",
                progress: progress
            )
            entries = count
            guard check == ["ok"] else {
                throw LibraryError(
                    .corrupt,
                    "the backup did not pass SQLite's check (\(check.prefix(3).joined(separator: "; "))); run `sd library info --check`: this library may be damaged"
                )
            }
            var manifest = manifest
            manifest.schemaVersion = Schema.version
            try FileSystem.writeNew(try manifest.encoded(), to: "\(staging)/\(Self.manifestName)", mode: 0o600)
            try FileSystem.syncDirectory(staging)
            try FileSystem.renameNoReplace(staging, to: destination)
            try FileSystem.syncDirectory(containing: destination)
        } catch let error as SystemError where error.isExists {
            FileSystem.removeTree(staging)
            throw LibraryError(.alreadyExists, "'\(destination)' appeared while the backup was made; nothing written")
        } catch let error as LibraryError {
            FileSystem.removeTree(staging)
            throw error
        } catch {
            FileSystem.removeTree(staging)
            throw LibraryError(.io, "cannot back up to '\(destination)': \(error)", underlying: error)
        }
        let bytes =
            (try? Directory.stat(PathText.bytes("\(destination)/\(Self.databaseName)")).size).map(Int64.init) ?? 0
        return LibraryBackupReport(
            library: manifest.name,
            id: manifest.id.description,
            path: destination,
            bytes: bytes,
            entries: entries,
            seconds: Double((ContinuousClock.now - start).components.attoseconds) / 1e18
                + Double((ContinuousClock.now - start).components.seconds)
        )
    }

    // MARK: - Restore

    /// Puts the backup at `source` back as the library at `target`: the backup is checked and copied beside
    /// it, the library there (if any) is kept beside it under a dated name, and the copy is renamed into place.
    /// The restored library starts a new epoch when it is opened. `source` is never changed.
    ///
    /// #### Errors
    /// `.notFound`/`.missingFile`/`.corrupt` when `source` is not a readable library; `.tooNew`;
    /// `.alreadyExists` when the library at `target` is another library (another id); `.io`.
    public static func restore(from source: String, to target: String, device: DeviceIdentity) throws
        -> LibraryRestoreReport
    {
        let manifest = try readManifest(source)
        if manifest.schemaVersion > Schema.version { throw tooNew(source, found: manifest.schemaVersion) }
        // The name decides where it goes by default: one that could be a path is refused.
        try validate(name: manifest.name)
        let sourceDatabase = "\(source)/\(databaseName)"
        guard FileSystem.exists(sourceDatabase) else {
            throw LibraryError(.missingFile, "'\(sourceDatabase)' is missing: '\(source)' is not a library backup")
        }
        if FileSystem.exists(target) {
            let present = try readManifest(target)
            guard present.id == manifest.id else {
                throw LibraryError(
                    .alreadyExists,
                    "'\(target)' is another library (\(present.name), \(present.id)) than the backup's (\(manifest.name), \(manifest.id)); restore it elsewhere with --library PATH"
                )
            }
        }
        let parent = FileSystem.parent(of: target)
        let stamp = Self.restoreStamp()
        let staging = "\(parent)/.\(URL(fileURLWithPath: target).lastPathComponent).restoring-\(stamp)"
        var entries = 0
        do {
            try FileSystem.makeDirectories(parent, mode: 0o700)
            try FileSystem.makeDirectories(staging, mode: 0o700)
            for sub in subfolders { try FileSystem.makeDirectories("\(staging)/\(sub)", mode: 0o700) }
            // Through SQLite (not a byte copy): a backup's WAL, if any, is read, and the copy is checked.
            let from = try DatabaseQueue(path: sourceDatabase, configuration: readOnly())
            defer { try? from.close() }
            let (check, count) = try copyDatabase(from, to: "\(staging)/\(databaseName)", marked: "restored")
            entries = count
            guard check == ["ok"] else {
                throw LibraryError(
                    .corrupt,
                    "the backup at '\(source)' is damaged (\(check.prefix(3).joined(separator: "; "))); nothing was restored"
                )
            }
            try FileSystem.writeNew(try manifest.encoded(), to: "\(staging)/\(manifestName)", mode: 0o600)
            try FileSystem.syncDirectory(staging)
        } catch let error as LibraryError {
            FileSystem.removeTree(staging)
            throw error
        } catch {
            FileSystem.removeTree(staging)
            throw LibraryError(.io, "cannot restore '\(source)' to '\(target)': \(error)", underlying: error)
        }
        var kept: String?
        do {
            if FileSystem.exists(target) {
                let aside = "\(target).before-restore-\(stamp)"
                // Swapped in one step, under its lock (no sd process migrates it meanwhile): at every moment the
                // library's name holds a whole library, the old one or the restored one. The old one then goes
                // beside it under a dated name.
                try FileLock.withLock(path: "\(target)/\(lockName)", mode: .exclusive) {
                    try FileSystem.exchange(staging, target)
                }
                try FileSystem.renameNoReplace(staging, to: aside)
                kept = aside
            } else {
                try FileSystem.renameNoReplace(staging, to: target)
            }
            try FileSystem.syncDirectory(parent)
        } catch {
            throw LibraryError(
                .io,
                "cannot put the restored library in place at '\(target)' (\(error)); the restored copy is at '\(staging)'"
                    + (kept.map { " and the library as it was at '\($0)'" } ?? ""),
                underlying: error
            )
        }
        // Opened once here: the new epoch is taken now, not by whichever process opens it next.
        let opened = try open(at: target, device: device)
        try opened.close()
        return LibraryRestoreReport(
            library: manifest.name,
            id: manifest.id.description,
            path: target,
            keptAt: kept,
            entries: entries
        )
    }

    /// Copies the database `source` into a new file `path` through SQLite's online backup (one read transaction:
    /// a consistent copy while others write), marks the copy as one (`copy_epoch` = `marked`, no home: opened
    /// anywhere, it starts a new epoch), and checkpoints it into one file. SQLite's quick check of the copy, and
    /// its entries.
    static func copyDatabase(
        _ source: any DatabaseReader,
        to path: String,
        marked: String,
        progress: @escaping (Double) -> Void = { _ in }
    ) throws -> (check: [String], entries: Int) {
        try FileSystem.createEmpty(path, mode: 0o600)
        let copy = try DatabaseQueue(path: path)
        defer { try? copy.close() }
        try source.backup(to: copy, pagesPerStep: 256) { step in
            if step.totalPageCount > 0 { progress(Double(step.completedPageCount) / Double(step.totalPageCount)) }
        }
        let check = try copy.read { db in try String.fetchAll(db, sql: "PRAGMA quick_check") }
        guard check == ["ok"] else { return (check, 0) }
        try copy.write { db in
            try db.execute(sql: "UPDATE sync_state SET home = NULL, copy_epoch = ? WHERE id = 1", arguments: [marked])
        }
        let entries = try copy.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM entries") ?? 0 }
        try copy.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        return (check, entries)
    }

    /// The manifest of the library (or backup) at `path`.
    public static func manifest(at path: String) throws -> LibraryManifest {
        guard FileSystem.isDirectory(path) else {
            throw LibraryError(.notFound, "no library backup at '\(path)'")
        }
        return try readManifest(path)
    }

    static func readOnly() -> Configuration {
        var config = Configuration()
        config.readonly = true
        return config
    }

    /// A time stamp for names (UTC, to the second, sortable).
    static func restoreStamp() -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return formatter.string(from: Date())
    }
}
