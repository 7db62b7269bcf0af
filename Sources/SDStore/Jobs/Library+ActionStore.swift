import Foundation
import GRDB
import SDCore
import SDSystem

/// Something `sd rm` moved into a trash folder.
public struct TrashItem: Sendable, Codable, Equatable {
    public var id: String
    public var jobID: String?
    public var originalPath: String
    public var trashPath: String
    /// 'file', 'folder' or 'symlink'.
    public var kind: String
    public var files: Int64
    public var bytes: Int64
    /// Relative path ("" for the item itself when it is a file) -> content id hex, of every file in the item.
    public var manifest: [String: String]?
    public var deletedAt: Int64
    /// 'pending', 'trashed', 'restored' or 'purged'.
    public var state: String

    public init(
        id: String,
        jobID: String?,
        originalPath: String,
        trashPath: String,
        kind: String,
        files: Int64,
        bytes: Int64,
        deletedAt: Int64,
        state: String
    ) {
        self.id = id
        self.jobID = jobID
        self.originalPath = originalPath
        self.trashPath = trashPath
        self.kind = kind
        self.files = files
        self.bytes = bytes
        self.deletedAt = deletedAt
        self.state = state
    }
}

extension Library {
    // MARK: - Trash

    public func insertTrashItem(_ item: TrashItem) throws {
        try database.write { db in
            try db.execute(
                sql: """
                    INSERT OR IGNORE INTO trash_items
                    (uuid, job_id, original_path, trash_path, kind, files, bytes, manifest, deleted_at, state)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    item.id, item.jobID, item.originalPath, item.trashPath, item.kind, item.files, item.bytes,
                    try item.manifest.map(Self.jsonText), item.deletedAt, item.state,
                ]
            )
        }
    }

    public func updateTrashItem(id: String, state: String, manifest: [String: String]? = nil) throws {
        try database.write { db in
            try db.execute(
                sql: "UPDATE trash_items SET state = ?, manifest = coalesce(?, manifest) WHERE uuid = ?",
                arguments: [state, try manifest.map(Self.jsonText), id]
            )
        }
    }

    /// Items in the given states, newest first.
    public func trashItems(states: [String] = ["trashed"], jobID: String? = nil) throws -> [TrashItem] {
        try database.read { db in
            let marks = states.map { _ in "?" }.joined(separator: ", ")
            var arguments = StatementArguments(states)
            var sql = "SELECT * FROM trash_items WHERE state IN (\(marks))"
            if let jobID {
                sql += " AND job_id = ?"
                _ = arguments.append(contentsOf: [jobID])
            }
            return try Row.fetchAll(db, sql: sql + " ORDER BY deleted_at DESC, id DESC", arguments: arguments).map {
                var item = TrashItem(
                    id: $0["uuid"],
                    jobID: $0["job_id"],
                    originalPath: $0["original_path"],
                    trashPath: $0["trash_path"],
                    kind: $0["kind"],
                    files: $0["files"],
                    bytes: $0["bytes"],
                    deletedAt: $0["deleted_at"],
                    state: $0["state"]
                )
                if let text: String = $0["manifest"] {
                    item.manifest = try JSONDecoder().decode([String: String].self, from: Data(text.utf8))
                }
                return item
            }
        }
    }

    // MARK: - Undo records

    /// Records how to reverse a completed action job (JSON).
    public func saveUndoRecord(jobID: String, action: String, record: String) throws {
        try database.write { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO action_undo (job_id, action, record, created_at) VALUES (?, ?, ?, ?)",
                arguments: [jobID, action, record, Self.nowMilliseconds()]
            )
        }
    }

    /// The undo record of a job (by id or unique prefix), or of the newest action not undone yet.
    public func undoRecord(jobPrefix: String?) throws -> (jobID: String, action: String, record: String, undone: Bool)?
    {
        try database.read { db in
            let row: Row?
            if let jobPrefix {
                let rows = try Row.fetchAll(
                    db,
                    sql: "SELECT * FROM action_undo WHERE job_id LIKE ? ESCAPE '\\' LIMIT 2",
                    arguments: [jobPrefix.replacingOccurrences(of: "%", with: "\\%") + "%"]
                )
                if rows.count > 1 { throw JobError(.ambiguous, "'\(jobPrefix)' names more than one action") }
                row = rows.first
            } else {
                row = try Row.fetchOne(
                    db,
                    sql:
                        "SELECT * FROM action_undo WHERE undone_at IS NULL ORDER BY created_at DESC, rowid DESC LIMIT 1"
                )
            }
            guard let row else { return nil }
            let undone: Int64? = row["undone_at"]
            return (row["job_id"], row["action"], row["record"], undone != nil)
        }
    }

    public func markUndone(jobID: String, by undoJob: String?) throws {
        try database.write { db in
            try db.execute(
                sql: "UPDATE action_undo SET undone_at = ?, undone_by = ? WHERE job_id = ?",
                arguments: [Self.nowMilliseconds(), undoJob, jobID]
            )
        }
    }

    // MARK: - Settings

    public func setting(_ key: String, scope: String = "") throws -> String? {
        try database.read { db in
            try String.fetchOne(
                db,
                sql: "SELECT value FROM library_settings WHERE key = ? AND scope = ?",
                arguments: [key, scope]
            )
        }
    }

    /// Sets (nil: removes) a library setting. Settings are shared metadata: the change is logged with this
    /// device's clock and reaches every device the library is shared with (the last edit wins).
    public func setSetting(_ key: String, _ value: String?, scope: String = "") throws {
        try database.write { db in
            let record = Self.settingRecordKey(key, scope)
            try Self.logChange(db, device: device.id, record: "setting", key: record, field: "value", value: value)
            // The live row, made from the register as a merged change makes it.
            try Self.materialize(db, record: "setting", key: record)
        }
    }

    /// A setting's key in the shared log: `KEY` or `KEY@SCOPE` (keys have no '@').
    static func settingRecordKey(_ key: String, _ scope: String) -> String { scope.isEmpty ? key : key + "@" + scope }

    static func settingFromRecordKey(_ recordKey: String) -> (key: String, scope: String) {
        guard let at = recordKey.firstIndex(of: "@") else { return (recordKey, "") }
        return (String(recordKey[..<at]), String(recordKey[recordKey.index(after: at)...]))
    }

    /// Every setting: (key, scope, value), with tag scopes shown as `tag:NAME`.
    public func settings() throws -> [(key: String, scope: String, value: String)] {
        try database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT s.key, CASE WHEN t.name IS NULL THEN s.scope ELSE 'tag:' || t.name END, s.value
                    FROM library_settings s LEFT JOIN tags t ON s.scope = 'tag:' || t.uuid
                    ORDER BY s.key, s.scope
                    """
            ).map { ($0[0], $0[1], $0[2]) }
        }
    }

    // MARK: - Tags (the minimum the actions need; the content issue brings the rest)

    /// The uuid of the live tag with this name.
    public func tagUUID(named name: String) throws -> String? {
        try database.read { db in
            try String.fetchOne(db, sql: "SELECT uuid FROM tags WHERE name = ? AND deleted = 0", arguments: [name])
        }
    }

    // MARK: - Copies

    /// The indexed files among `paths`: path -> (entry id, content id if identified). One read for all,
    /// each folder resolved once.
    public func indexedFiles(at paths: [String]) throws -> [String: (id: Int64, content: ContentID?)] {
        let locations = try fetchLocations().filter { $0.rootEntryID != nil }
        return try database.read { db in
            let child = try db.cachedStatement(sql: "SELECT id FROM entries WHERE parent_id = ? AND name = ?")
            let file = try db.cachedStatement(sql: "SELECT content_id FROM entries WHERE id = ? AND type = 0")
            var folders: [[UInt8]: Int64] = [:]
            for location in locations { folders[location.path] = location.rootEntryID }
            func resolve(_ path: ArraySlice<UInt8>) throws -> Int64? {
                if let known = folders[Array(path)] { return known }
                guard let slash = path.lastIndex(of: 0x2F), slash > path.startIndex,
                    locations.contains(where: { Self.isInside(Array(path), $0.path) })
                else { return nil }
                guard let parent = try resolve(path[..<slash]),
                    let id = try Int64.fetchOne(child, arguments: [parent, Data(path[(slash + 1)...])])
                else { return nil }
                folders[Array(path)] = id
                return id
            }
            var result: [String: (Int64, ContentID?)] = [:]
            for path in paths {
                let bytes = PathText.bytes(path)
                guard let slash = bytes.lastIndex(of: 0x2F), let parent = try resolve(bytes[..<slash]),
                    let id = try Int64.fetchOne(child, arguments: [parent, Data(bytes[(slash + 1)...])])
                else { continue }
                guard let row = try Row.fetchOne(file, arguments: [id]) else { continue }
                let content: Int64? = row[0]
                result[path] = (id, content.map(ContentID.init(int64:)))
            }
            return result
        }
    }

    /// The files among `paths` (indexed, identified) whose content some other indexed file on filesystem
    /// `device` (st_dev) also has.
    public func contentPresent(ofFilesAt paths: [String], onDevice device: UInt64) throws -> Set<String> {
        let files = try indexedFiles(at: paths)
        return try database.read { db in
            let exists = try db.cachedStatement(
                sql: "SELECT EXISTS (SELECT 1 FROM entries WHERE content_id = ? AND device_number = ? AND id != ?)"
            )
            var present = Set<String>()
            for (path, file) in files {
                guard let content = file.content else { continue }
                if try Bool.fetchOne(exists, arguments: [content.int64, Int64(bitPattern: device), file.id]) == true {
                    present.insert(path)
                }
            }
            return present
        }
    }

    /// The content id the index holds for the file at `path` (nil when not indexed or not identified yet).
    public func indexedContentID(ofFileAt path: String) throws -> ContentID? {
        try indexedFiles(at: [path])[path]?.content
    }

    /// Every indexed file with this content: its path (on its device), whether the device is this one, and
    /// whether its location is online.
    public func copies(of content: ContentID) throws -> [(path: String, local: Bool, online: Bool)] {
        let here = device.id.description
        return try copyDetails(of: content).map { ($0.path, $0.device == here, $0.online) }
    }

    /// Every indexed file with this content, with its device (DeviceID text), location state and size.
    public func copyDetails(of content: ContentID) throws -> [(path: String, device: String, online: Bool, size: Int64)]
    {
        let rows: [(Int64, String, String, Int64)] = try database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT e.id, d.uuid, l.state, e.size FROM entries e
                    JOIN locations l ON l.id = e.location_id JOIN devices d ON d.id = e.device_id
                    WHERE e.content_id = ? AND e.type = 0
                    """,
                arguments: [content.int64]
            ).map { ($0[0], $0[1], $0[2], $0[3]) }
        }
        return try rows.compactMap { id, device, state, size in
            guard let path = try entryPath(id: id) else { return nil }
            return (PathText.string(path), device, state == "online", size)
        }
    }

    /// The copies a file must keep: the library's `min-copies` (default 1), raised by the setting of any tag on
    /// the file's entry (if indexed) or on an entry with the same content.
    public func minCopies(entry: Int64?, content: ContentID?) throws -> Int {
        let base = Int(try setting("min-copies") ?? "1") ?? 1
        let tagged: Int? = try database.read { db in
            try Int.fetchOne(
                db,
                sql: """
                    SELECT max(CAST(s.value AS INTEGER)) FROM library_settings s
                    WHERE s.key = 'min-copies' AND s.scope IN (
                        SELECT 'tag:' || et.tag_uuid FROM entry_tags et JOIN entries e ON e.uuid = et.entry_uuid
                        WHERE et.deleted = 0 AND (e.id = ?1 OR (?2 IS NOT NULL AND e.content_id = ?2))
                        UNION
                        SELECT 'tag:' || ct.tag_uuid FROM content_tags ct WHERE ct.deleted = 0 AND ct.content_id = ?2
                    )
                    """,
                arguments: [entry, content?.int64]
            )
        }
        return max(base, tagged ?? 0)
    }

    static func jsonText(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
