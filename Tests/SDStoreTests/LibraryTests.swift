import Foundation
import GRDB
import SDCore
import SDSystem
import SDTestSupport
import Synchronization
import Testing

@testable import SDStore

struct LibraryTests {
    let dir: TemporaryDirectory
    let device: DeviceIdentity

    init() throws {
        dir = try TemporaryDirectory()
        device = try DeviceIdentity.loadOrCreate(configDirectory: dir.file("config"))
    }

    func sha(_ path: String) throws -> String {
        BLAKE3.hash(Array(try Data(contentsOf: URL(fileURLWithPath: path)))).hex
    }

    @Test func createMakesTheWholeFolder() throws {
        let library = try Library.create(name: "Home", in: dir.path, device: device)
        let root = dir.file("Home.sdlibrary")
        #expect(library.path == root)
        for name in ["library.json", "library.db", "sidecars", "logs"] {
            #expect(FileSystem.exists("\(root)/\(name)"), "\(name) missing")
        }
        #expect(library.manifest.name == "Home")
        #expect(library.manifest.schemaVersion == Schema.version)
        let reread = try Library.readManifest(root)
        #expect(reread == library.manifest)
        // No staging folder is left behind.
        #expect(try FileSystem.list(dir.path).filter { $0.hasPrefix(".") }.isEmpty)
        let info = try library.info(checkIntegrity: true)
        #expect(info.devices == 1 && info.integrity == "ok")
        let mode = try library.database.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") }
        #expect(mode == "wal")
    }

    @Test func closingLeavesASelfContainedDatabase() throws {
        let library = try Library.create(name: "Home", in: dir.path, device: device)
        try library.database.write { db in
            try db.execute(sql: "INSERT INTO tags (uuid, name, hlc) VALUES ('t1', 'photos', '0')")
        }
        try library.close()
        let wal = dir.file("Home.sdlibrary/library.db-wal")
        let walSize = (try? FileManager.default.attributesOfItem(atPath: wal)[.size] as? Int) ?? 0
        #expect(walSize == 0)
    }

    @Test func reopeningKeepsIdentityAndData() throws {
        let first = try Library.create(name: "Home", in: dir.path, device: device)
        try first.database.write { db in
            try db.execute(sql: "INSERT INTO tags (uuid, name, hlc) VALUES ('t1', 'photos', '0')")
        }
        try first.close()
        let again = try Library.open(at: dir.file("Home.sdlibrary"), device: device)
        #expect(again.manifest.id == first.manifest.id)
        #expect(try again.info().tags == 1)
    }

    @Test(arguments: ["", ".hidden", "a/b", "x.sdlibrary", String(repeating: "n", count: 201)])
    func refusesBadNames(_ name: String) {
        #expect(throws: LibraryError.self) { try Library.create(name: name, in: dir.path, device: device) }
    }

    @Test func refusesToCreateOverAnExistingLibrary() throws {
        _ = try Library.create(name: "Home", in: dir.path, device: device)
        let before = try sha(dir.file("Home.sdlibrary/library.json"))
        let error = try #require(throws: LibraryError.self) {
            try Library.create(name: "Home", in: dir.path, device: device)
        }
        #expect(error.code == .alreadyExists)
        #expect(try sha(dir.file("Home.sdlibrary/library.json")) == before)
    }

    @Test func missingFolderIsNotFound() {
        let error = #expect(throws: LibraryError.self) {
            try Library.open(at: dir.file("Nope.sdlibrary"), device: device)
        }
        #expect(error?.code == .notFound)
        #expect(error?.message.contains("sd library create") == true)
    }

    @Test func missingDatabaseIsNotRecreated() throws {
        _ = try Library.create(name: "Home", in: dir.path, device: device)
        let root = dir.file("Home.sdlibrary")
        try FileManager.default.removeItem(atPath: "\(root)/library.db")
        let error = #expect(throws: LibraryError.self) { try Library.open(at: root, device: device) }
        #expect(error?.code == .missingFile)
        #expect(!FileSystem.exists("\(root)/library.db"))
    }

    @Test func missingManifestIsReported() throws {
        _ = try Library.create(name: "Home", in: dir.path, device: device)
        let root = dir.file("Home.sdlibrary")
        try FileManager.default.removeItem(atPath: "\(root)/library.json")
        let error = #expect(throws: LibraryError.self) { try Library.open(at: root, device: device) }
        #expect(error?.code == .missingFile)
    }

    @Test func corruptDatabaseIsReportedAndLeftAlone() throws {
        let library = try Library.create(name: "Home", in: dir.path, device: device)
        try library.close()
        let db = dir.file("Home.sdlibrary/library.db")
        // Overwrite the SQLite header: the file is no longer a database.
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: db)))
        for i in 0..<100 { bytes[i] = UInt8(truncatingIfNeeded: i &* 37 &+ 11) }
        try Data(bytes).write(to: URL(fileURLWithPath: db))
        let before = try sha(db)
        let error = #expect(throws: LibraryError.self) {
            try Library.open(at: dir.file("Home.sdlibrary"), device: device)
        }
        #expect(error?.code == .corrupt)
        #expect(error?.message.contains("backup") == true)
        #expect(try sha(db) == before)
    }

    @Test func corruptManifestIsReported() throws {
        _ = try Library.create(name: "Home", in: dir.path, device: device)
        let manifest = dir.file("Home.sdlibrary/library.json")
        try Data("{ not json".utf8).write(to: URL(fileURLWithPath: manifest))
        let error = #expect(throws: LibraryError.self) {
            try Library.open(at: dir.file("Home.sdlibrary"), device: device)
        }
        #expect(error?.code == .corrupt)
    }

    @Test func newerSchemaInManifestIsRefused() throws {
        let library = try Library.create(name: "Home", in: dir.path, device: device)
        try library.close()
        var manifest = library.manifest
        manifest.schemaVersion = Schema.version + 1
        let path = dir.file("Home.sdlibrary/library.json")
        try FileSystem.writeAtomically(try manifest.encoded(), to: path)
        let dbBefore = try sha(dir.file("Home.sdlibrary/library.db"))
        let error = #expect(throws: LibraryError.self) {
            try Library.open(at: dir.file("Home.sdlibrary"), device: device)
        }
        #expect(error?.code == .tooNew)
        #expect(try sha(dir.file("Home.sdlibrary/library.db")) == dbBefore)
    }

    @Test func newerMigrationInDatabaseIsRefused() throws {
        let library = try Library.create(name: "Home", in: dir.path, device: device)
        try library.database.write { db in
            try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99-from-the-future')")
        }
        try library.close()
        let error = #expect(throws: LibraryError.self) {
            try Library.open(at: dir.file("Home.sdlibrary"), device: device)
        }
        #expect(error?.code == .tooNew)
    }

    /// The schema is built for sync: stable UUIDs, owners on device-owned rows, HLCs on shared rows.
    @Test func schemaIsReadyForSync() throws {
        let library = try Library.create(name: "Home", in: dir.path, device: device)
        func columns(_ table: String) throws -> Set<String> {
            try library.database.read { db in Set(try db.columns(in: table).map(\.name)) }
        }
        for table in [
            "devices", "volumes", "locations", "entries", "content_identities", "tags", "entry_tags",
            "user_metadata", "jobs", "audit_log",
        ] {
            #expect(try library.database.read { try $0.tableExists(table) }, "\(table) missing")
        }
        for table in ["volumes", "locations", "entries"] {
            #expect(try columns(table).contains("device_id"), "\(table)")
        }
        for table in ["tags", "entry_tags", "user_metadata"] { #expect(try columns(table).contains("hlc"), "\(table)") }
        #expect(
            try columns("entries").isSuperset(of: [
                "uuid", "parent_id", "name", "inode", "mtime_ns", "size", "category",
            ])
        )
        #expect(try columns("audit_log").contains("uuid"))
    }

    /// An index run drops the content-id index while it records many ids; if it dies before making it again,
    /// opening the library makes it.
    @Test func droppedContentIndexIsRebuiltOnOpen() throws {
        let library = try Library.create(name: "Home", in: dir.path, device: device)
        try library.dropContentIndex()
        try library.close()
        let again = try Library.open(at: dir.file("Home.sdlibrary"), device: device)
        let indexes = try again.database.read { try $0.indexes(on: "entries").map(\.name) }
        #expect(indexes.contains("entries_content"))
    }

    @Test func deviceIdentityIsMadeOnceAndKept() throws {
        let configDir = dir.file("config2")
        let ids = Mutex<Set<String>>([])
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            let identity = try! DeviceIdentity.loadOrCreate(configDirectory: configDir)
            ids.withLock { _ = $0.insert(identity.id.description) }
        }
        #expect(ids.withLock { $0.count } == 1)
        let later = try DeviceIdentity.loadOrCreate(configDirectory: configDir)
        #expect(ids.withLock { $0 } == [later.id.description])
        // The identity and where it lives; no temporary left by the processes that lost the race.
        #expect(Set(try FileSystem.list(configDir)) == ["device.json", "device.place"])
    }

    @Test func unreadableDeviceIdentityIsNotReplaced() throws {
        let configDir = dir.file("config3")
        try FileSystem.makeDirectories(configDir)
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: "\(configDir)/device.json"))
        let error = #expect(throws: LibraryError.self) { try DeviceIdentity.loadOrCreate(configDirectory: configDir) }
        #expect(error?.code == .corrupt)
        #expect(try String(contentsOfFile: "\(configDir)/device.json", encoding: .utf8) == "garbage")
    }

    @Test func locatorMapsNamesAndPaths() {
        let locator = LibraryLocator(environment: ["SD_DATA_DIR": "/data/sd"])
        #expect(locator.path(for: "Home") == "/data/sd/Home.sdlibrary")
        #expect(locator.path(for: "/x/y/Work.sdlibrary") == "/x/y/Work.sdlibrary")
        let xdg = LibraryLocator(environment: ["XDG_DATA_HOME": "/xdg", "HOME": "/home/me"])
        #expect(xdg.dataDirectory == "/xdg/sd")
        let home = LibraryLocator(environment: ["HOME": "/home/me"])
        #expect(home.dataDirectory == "/home/me/.local/share/sd")
    }

    /// A library keeps its epoch while it stays where it is; a copy of its folder (or a backup, opened) takes a
    /// new one, with change sequences moved past anything an earlier copy gave out and its history compacted.
    @Test func aCopiedLibraryTakesANewEpoch() throws {
        let library = try Library.create(name: "Home", in: dir.path, device: device)
        let epoch = try library.copyEpoch()
        #expect(!epoch.isEmpty)
        let before = try library.database.read { db in
            try Int64.fetchAll(db, sql: "SELECT seq FROM sync_state UNION ALL SELECT owned_compacted FROM sync_state")
        }
        try library.close()
        let again = try Library.open(at: dir.file("Home.sdlibrary"), device: device)
        #expect(try again.copyEpoch() == epoch, "the same library, opened again")
        try again.close()

        let copied = try Run.program("/bin/cp", ["-a", dir.file("Home.sdlibrary"), dir.file("Copy.sdlibrary")])
        #expect(copied.status == 0)
        let copy = try Library.open(at: dir.file("Copy.sdlibrary"), device: device)
        defer { try? copy.close() }
        #expect(try copy.copyEpoch() != epoch)
        let after = try copy.database.read { db in
            try Int64.fetchAll(
                db,
                sql: """
                    SELECT seq FROM sync_state UNION ALL SELECT owned_compacted FROM sync_state
                    UNION ALL SELECT shared_compacted FROM sync_state
                    """
            )
        }
        let stride: Int64 = 1 << 40
        #expect(after.count == 3 && after[0] >= before[0] + stride && after[1] >= stride && after[2] >= stride)
        // A peer's cursor from before the copy is answered with "take the whole state".
        var old = OwnedCursor()
        old.tombstone = 1
        old.entry = [before[0], 1]
        #expect(try copy.ownedBatch(after: old, limit: 10).resyncNeeded)
        // ...and so is a cursor past anything this copy has (a restore that was not noticed).
        let original = try Library.open(at: dir.file("Home.sdlibrary"), device: device)
        defer { try? original.close() }
        var ahead = OwnedCursor()
        ahead.entry = [before[0] + 1_000, 1]
        #expect(try original.ownedBatch(after: ahead, limit: 10).resyncNeeded)
        #expect(try original.copyEpoch() == epoch, "the original is not a copy")
    }
}
