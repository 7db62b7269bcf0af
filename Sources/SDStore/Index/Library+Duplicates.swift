import Foundation
import GRDB
import SDCore

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
                path: String(decoding: folder + [0x2F] + [UInt8](row[4] as Data), as: UTF8.self),
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
        if let location { groups = groups.filter { $0.members.contains { $0.locationID == location.id } } }
        return groups.sorted { ($0.wastedBytes, $1.contentID) > ($1.wastedBytes, $0.contentID) }
    }

    /// The kept full hash of an entry, if it was computed when the file had this size and mtime.
    public func storedIntegrityHash(entryID: Int64, size: Int64, mtimeNanoseconds: Int64) throws -> String? {
        try database.read { db in
            try String.fetchOne(
                try db.cachedStatement(
                    sql: "SELECT hash FROM integrity_hashes WHERE entry_id = ? AND size = ? AND mtime_ns = ?"
                ),
                arguments: [entryID, size, mtimeNanoseconds]
            )
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
