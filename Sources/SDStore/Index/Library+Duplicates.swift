import Foundation
import GRDB
import SDCore
import SDSystem

/// Files of the index that share one content id.
public struct DuplicateGroup: Sendable, Codable, Equatable {
    public struct Member: Sendable, Codable, Equatable {
        public var entryID: Int64
        public var path: String
        public var location: String
        public var locationID: Int64
        public var size: Int64
        public var mtimeNanoseconds: Int64
        /// st_dev and inode: members with the same pair are hard links to one file.
        public var device: Int64
        public var inode: Int64
    }

    public var contentID: String
    public var size: Int64
    public var members: [Member]

    public init(contentID: String, size: Int64, members: [Member]) {
        self.contentID = contentID
        self.size = size
        self.members = members
    }

    /// Distinct files (hard links to one inode count once).
    public var files: Int { Set(members.map { "\($0.device):\($0.inode)" }).count }
    /// Bytes the extra copies take: size x (distinct files - 1).
    public var wastedBytes: Int64 { size * Int64(max(0, files - 1)) }
}

extension Library {
    /// Groups of files with one content id held by more than one distinct file (hard links count once),
    /// most wasted bytes first. `category` keeps groups of that kind; `location` keeps groups with at least
    /// one member in it (every member is listed).
    public func duplicateGroups(minSize: Int64 = 1, category: String? = nil, location: Location? = nil) throws
        -> [DuplicateGroup]
    {
        let locations = Dictionary(uniqueKeysWithValues: try fetchLocations().map { ($0.id, $0) })
        var folderPaths: [Int64: [Int64: [UInt8]]] = [:]
        let rows: [Row] = try database.read { db in
            var filter = "type = 0 AND content_id IS NOT NULL AND size >= ?"
            var arguments: StatementArguments = [max(1, minSize)]
            if let category {
                filter += " AND category = ?"
                _ = arguments.append(contentsOf: [category])
            }
            return try Row.fetchAll(
                db,
                sql: """
                    SELECT e.content_id, e.id, e.location_id, e.parent_id, e.name, e.size, e.mtime_ns,
                        e.device_number, e.inode
                    FROM entries e JOIN (
                        SELECT content_id FROM entries WHERE \(filter)
                        GROUP BY content_id HAVING count(DISTINCT device_number || ':' || inode) > 1
                    ) d ON d.content_id = e.content_id
                    WHERE e.type = 0
                    ORDER BY e.content_id, e.id
                    """,
                arguments: arguments
            )
        }
        var groups: [DuplicateGroup] = []
        for row in rows {
            let content = ContentID(int64: row[0]).hex
            let locationID: Int64 = row[2]
            guard let owner = locations[locationID], let parent: Int64 = row[3] else { continue }
            if folderPaths[locationID] == nil { folderPaths[locationID] = try fetchFolderPaths(location: owner) }
            guard let folder = folderPaths[locationID]?[parent] else { continue }
            let member = DuplicateGroup.Member(
                entryID: row[1],
                path: PathText.string(folder + [0x2F] + [UInt8](row[4] as Data)),
                location: owner.name,
                locationID: locationID,
                size: row[5],
                mtimeNanoseconds: row[6] ?? 0,
                device: row[7] ?? 0,
                inode: row[8] ?? 0
            )
            if groups.last?.contentID == content {
                groups[groups.count - 1].members.append(member)
            } else {
                groups.append(DuplicateGroup(contentID: content, size: member.size, members: [member]))
            }
        }
        // Only this device's files are members (another device's copies, synced, are not here to act on): a
        // content whose other copies are elsewhere is no duplicate here.
        groups = groups.filter { Set($0.members.map { [$0.device, $0.inode] }).count > 1 }
        if let location { groups = groups.filter { $0.members.contains { $0.locationID == location.id } } }
        return groups.sorted { ($0.wastedBytes, $1.contentID) > ($1.wastedBytes, $0.contentID) }
    }

    /// The kept full hashes of these entries (entry id -> hash hex), each only if it was computed when the file
    /// had the size and mtime given. One read for all.
    public func storedIntegrityHashes(_ files: [(entryID: Int64, size: Int64, mtime: Int64)]) throws -> [Int64: String]
    {
        guard !files.isEmpty else { return [:] }
        return try database.read { db in
            let select = try db.cachedStatement(
                sql: "SELECT hash FROM integrity_hashes WHERE entry_id = ? AND size = ? AND mtime_ns = ?"
            )
            var found: [Int64: String] = [:]
            for file in files {
                if let hash = try String.fetchOne(select, arguments: [file.entryID, file.size, file.mtime]) {
                    found[file.entryID] = hash
                }
            }
            return found
        }
    }

    /// Keeps full hashes: (entry, hash hex, size and mtime it was computed at).
    public func storeIntegrityHashes(_ hashes: [(entryID: Int64, hash: String, size: Int64, mtime: Int64)]) throws {
        guard !hashes.isEmpty else { return }
        try database.write { db in
            let insert = try db.cachedStatement(
                sql: """
                    INSERT OR REPLACE INTO integrity_hashes (entry_id, hash, size, mtime_ns, checked_at)
                    VALUES (?, ?, ?, ?, ?)
                    """
            )
            let now = Self.nowMilliseconds()
            for h in hashes { try insert.execute(arguments: [h.entryID, h.hash, h.size, h.mtime, now]) }
        }
    }
}

/// Content with fewer copies than asked, on distinct filesystems (st_dev) and devices.
public struct RedundancyReport: Sendable, Codable, Equatable {
    public struct Share: Sendable, Codable, Equatable {
        public var name: String
        public var contents: Int
        public var bytes: Int64
    }

    public var minCopies: Int
    /// Distinct contents below `minCopies`, and the bytes one copy of each takes.
    public var contents: Int
    public var bytesAtRisk: Int64
    /// By kind, most valuable first (photos, videos, documents...), then by bytes.
    public var byKind: [Share]
    /// By location holding them, most bytes first.
    public var byLocation: [Share]
    /// Files not identified yet (no content id): not counted.
    public var pendingFiles: Int
}

/// A disk or a device, lost: which copies go with it.
public enum Loss: Sendable, Equatable {
    /// A filesystem of this device, by st_dev.
    case filesystem(UInt64)
    /// A whole device of the library, by its DeviceID text.
    case device(String)
}

extension Library {
    /// Every device the library knows (DeviceID text).
    public func knownDevices() throws -> [String] {
        try database.read { db in try String.fetchAll(db, sql: "SELECT uuid FROM devices ORDER BY id") }
    }

    /// The order kinds are reported in: what people least want to lose first.
    public static let valueOrder = [
        "image", "video", "document", "spreadsheet", "presentation", "book", "email", "contact", "calendar", "audio",
        "code", "database", "key", "encrypted", "text", "config", "archive", "mesh", "font", "web", "executable",
        "package", "binary", "shortcut", "unknown",
    ]

    /// Content with fewer than `minCopies` copies, counting one per filesystem (st_dev) per device: two copies
    /// on one disk are one copy for this purpose.
    ///
    /// `ifLost`: instead, the content that would have no copy left once that disk or device is gone
    /// (`minCopies` is then 1: copies left after the loss).
    public func redundancy(minCopies: Int, category: String? = nil, ifLost: Loss? = nil) throws -> RedundancyReport {
        let locations = Dictionary(uniqueKeysWithValues: try fetchLocations().map { ($0.id, $0.name) })
        // Copies that survive the loss; all of them when nothing is lost.
        var surviving = "1"
        var arguments: StatementArguments = [ifLost == nil ? minCopies : 1, category]
        switch ifLost {
        case .filesystem(let dev)?:
            surviving = "NOT (device_id = ?3 AND device_number = ?4)"
            _ = arguments.append(contentsOf: [try database.read { db in try deviceRowID(db) }, Int64(bitPattern: dev)])
        case .device(let uuid)?:
            surviving = "device_id != coalesce((SELECT id FROM devices WHERE uuid = ?3), -1)"
            _ = arguments.append(contentsOf: [uuid])
        case nil:
            break
        }
        // Each query reads the contents at risk through the same common table expression.
        let atRisk = """
            WITH at_risk AS (
                SELECT content_id, max(size) AS size, min(coalesce(category, 'unknown')) AS category FROM entries
                WHERE type = 0 AND content_id IS NOT NULL AND size > 0
                GROUP BY content_id
                HAVING count(DISTINCT CASE WHEN \(surviving) THEN device_id || ':' || coalesce(device_number, 0) END)
                    < ?1
                    AND (?2 IS NULL OR min(coalesce(category, 'unknown')) = ?2)
            )
            """
        return try database.read { db in
            let totals = try Row.fetchOne(
                db,
                sql: atRisk + " SELECT count(*), coalesce(sum(size), 0) FROM at_risk",
                arguments: arguments
            )!
            var kinds = try Row.fetchAll(
                db,
                sql: atRisk + " SELECT category, count(*), sum(size) FROM at_risk GROUP BY category",
                arguments: arguments
            ).map { RedundancyReport.Share(name: $0[0], contents: $0[1], bytes: $0[2]) }
            kinds.sort {
                let a = Self.valueOrder.firstIndex(of: $0.name) ?? Self.valueOrder.count
                let b = Self.valueOrder.firstIndex(of: $1.name) ?? Self.valueOrder.count
                return (a, $1.bytes) < (b, $0.bytes)
            }
            var byLocation = try Row.fetchAll(
                db,
                sql: atRisk + """
                    SELECT l.location_id, count(*), sum(r.size) FROM at_risk r
                    JOIN (SELECT DISTINCT content_id, location_id FROM entries
                          WHERE type = 0 AND content_id IN (SELECT content_id FROM at_risk)) l
                    ON l.content_id = r.content_id
                    GROUP BY l.location_id
                    """,
                arguments: arguments
            ).map { row -> RedundancyReport.Share in
                let id: Int64 = row[0]
                return RedundancyReport.Share(name: locations[id] ?? "location \(id)", contents: row[1], bytes: row[2])
            }
            byLocation.sort { ($0.bytes, $1.name) > ($1.bytes, $0.name) }
            let pending =
                try Int.fetchOne(
                    db,
                    sql: "SELECT count(*) FROM entries WHERE type = 0 AND content_id IS NULL AND size > 0"
                ) ?? 0
            return RedundancyReport(
                minCopies: minCopies,
                contents: totals[0],
                bytesAtRisk: totals[1],
                byKind: kinds,
                byLocation: byLocation,
                pendingFiles: pending
            )
        }
    }
}

/// A file as a scrub reads it.
public struct ScrubFile: Sendable {
    public var entryID: Int64
    public var parentID: Int64
    public var name: [UInt8]
    public var size: Int64
    public var mtimeNanoseconds: Int64
    public var contentID: ContentID?
}

extension Library {
    /// The location's non-empty files after entry `afterID`, by id: what a scrub reads next.
    public func scrubBatch(location: Location, after afterID: Int64, limit: Int) throws -> [ScrubFile] {
        try database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT id, parent_id, name, size, mtime_ns, content_id FROM entries
                    WHERE location_id = ? AND type = 0 AND size > 0 AND id > ? ORDER BY id LIMIT ?
                    """,
                arguments: [location.id, afterID, limit]
            ).map { row in
                ScrubFile(
                    entryID: row[0],
                    parentID: row[1] ?? 0,
                    name: [UInt8](row[2] as Data),
                    size: row[3],
                    mtimeNanoseconds: row[4] ?? 0,
                    contentID: (row[5] as Int64?).map(ContentID.init(int64:))
                )
            }
        }
    }

    /// Bytes of the location's files (what a full read of it reads).
    public func fileBytes(location: Location) throws -> Int64 {
        try database.read { db in
            try Int64.fetchOne(
                db,
                sql: "SELECT coalesce(sum(size), 0) FROM entries WHERE location_id = ? AND type = 0",
                arguments: [location.id]
            ) ?? 0
        }
    }

    /// Other indexed files with this content whose kept full hash is `hash` and still describes them (same size
    /// and mtime): copies known good.
    public func goodCopies(of content: ContentID, hash: String, besides entryID: Int64) throws -> [String] {
        let ids = try database.read { db in
            try Int64.fetchAll(
                db,
                sql: """
                    SELECT e.id FROM entries e JOIN integrity_hashes h ON h.entry_id = e.id
                        AND h.size = e.size AND h.mtime_ns = e.mtime_ns
                    WHERE e.content_id = ? AND e.id != ? AND h.hash = ?
                    ORDER BY e.id
                    """,
                arguments: [content.int64, entryID, hash]
            )
        }
        return try ids.compactMap { try entryPath(id: $0).map { PathText.string($0) } }
    }
}
