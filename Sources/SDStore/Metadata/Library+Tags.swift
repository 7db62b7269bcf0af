import Foundation
import GRDB
import SDCore
import SDSystem

/// A tag: a hierarchical name (`finance/tax`), an optional color.
public struct Tag: Sendable, Codable, Equatable {
    public var id: String
    public var name: String
    public var color: String?
    /// Files and folders carrying it (a content tag counts each indexed copy).
    public var uses: Int
}

/// What a tagging would change (see `Library.tagChanges`).
public struct TagChanges: Sendable, Codable, Equatable {
    public struct Item: Sendable, Codable, Equatable {
        public var path: String
        public var isFolder: Bool
        /// The other indexed copies of the file's content on this device: a tag is kept on the content, so
        /// the change reaches them too.
        public var copies: [String] = []
        /// Copies of the content on other devices, which the change reaches as well (by sync).
        public var copiesElsewhere = 0
    }

    public var changes: [Item] = []
    public var unchanged: [String] = []
    public var notIndexed: [String] = []
}

/// One change to shared metadata, as the change log keeps it.
public struct SharedChange: Sendable, Codable, Equatable {
    public var seq: Int64
    public var hlc: String
    public var record: String
    public var key: String
    public var field: String?
    public var value: String?
    public var device: String

    public init(
        seq: Int64,
        hlc: String,
        record: String,
        key: String,
        field: String?,
        value: String?,
        device: String
    ) {
        self.seq = seq
        self.hlc = hlc
        self.record = record
        self.key = key
        self.field = field
        self.value = value
        self.device = device
    }
}

public struct TagError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension Library {
    /// Writes one change to the change log, stamped with the next timestamp of this device's clock (after the
    /// newest in the log, and after the wall clock). Call inside the write that makes the change.
    @discardableResult
    static func logChange(
        _ db: Database,
        device: DeviceID,
        record: String,
        key: String,
        field: String?,
        value: String?
    ) throws -> HLCTimestamp {
        let last = try String.fetchOne(db, sql: "SELECT max(hlc) FROM shared_changes").flatMap(HLCTimestamp.init)
        var clock = HLC(device: device, last: last)
        let stamp = clock.now(physical: UInt64(max(0, nowMilliseconds())))
        // The registers it writes, each remembering the stamp of the value it replaces (a later merge tells an
        // overwrite from a concurrent edit by it).
        var logPrev: String?
        for (index, var written) in SharedRegister.expand(record: record, key: key, field: field, value: value)
            .enumerated()
        {
            let prev = try Self.register(db, written.record, written.key, written.field)?.hlc
            if index == 0 { logPrev = prev }
            written.hlc = stamp.description
            written.prev = prev
            try storeRegister(db, written)
        }
        try db.cachedStatement(
            sql:
                "INSERT INTO shared_changes (seq, hlc, record, key, field, value, device, prev) VALUES (\(Self.nextSharedSeq), ?, ?, ?, ?, ?, ?, ?)"
        ).execute(arguments: [stamp.description, record, key, field, value, device.description, logPrev])
        return stamp
    }

    static func json(_ value: some Encodable) throws -> String { try jsonText(value) }

    /// A tag name: parts separated by '/', none empty, at most 255 bytes.
    static func checkTagName(_ name: String) throws {
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        guard !name.isEmpty, name.utf8.count <= 255,
            parts.allSatisfy({ !$0.trimmingCharacters(in: .whitespaces).isEmpty })
        else { throw TagError("'\(name)' is not a tag name: parts separated by '/', none empty, at most 255 bytes") }
    }

    /// Creates a tag (and its missing parents: `a/b` makes `a`); an existing live tag of that name is an error.
    @discardableResult
    public func createTag(_ name: String, color: String? = nil) throws -> String {
        try Self.checkTagName(name)
        if let color, !(color.hasPrefix("#") && color.count == 7 && UInt32(color.dropFirst(), radix: 16) != nil) {
            throw TagError("'\(color)' is not a color; give #rrggbb")
        }
        return try database.write { db in
            if try String.fetchOne(db, sql: "SELECT uuid FROM tags WHERE name = ? AND deleted = 0", arguments: [name])
                != nil
            {
                throw TagError("a tag named '\(name)' exists already")
            }
            return try Self.makeTag(db, name: name, color: color, device: device.id)
        }
    }

    static func makeTag(_ db: Database, name: String, color: String?, device: DeviceID) throws -> String {
        var parent: String?
        if let slash = name.lastIndex(of: "/") {
            let up = String(name[..<slash])
            parent =
                try String.fetchOne(db, sql: "SELECT uuid FROM tags WHERE name = ? AND deleted = 0", arguments: [up])
                ?? makeTag(db, name: up, color: nil, device: device)
        }
        let uuid = UUID().lowercased
        let stamp = try logChange(
            db,
            device: device,
            record: "tag",
            key: uuid,
            field: nil,
            value: try json(["name": name, "color": color, "parent": parent])
        )
        try db.execute(
            sql: "INSERT INTO tags (uuid, name, color, parent_uuid, hlc) VALUES (?, ?, ?, ?, ?)",
            arguments: [uuid, name, color, parent, stamp.description]
        )
        return uuid
    }

    /// Live tags, by name, with how many files and folders carry each.
    public func tags() throws -> [Tag] {
        try database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT t.uuid, t.name, t.color,
                        (SELECT count(*) FROM entry_tags et WHERE et.tag_uuid = t.uuid AND et.deleted = 0)
                        + (SELECT count(*) FROM content_tags ct JOIN entries e ON e.content_id = ct.content_id
                           WHERE ct.tag_uuid = t.uuid AND ct.deleted = 0)
                    FROM tags t WHERE t.deleted = 0 ORDER BY t.name
                    """
            ).map { Tag(id: $0[0], name: $0[1], color: $0[2], uses: $0[3]) }
        }
    }

    func liveTag(_ db: Database, _ name: String) throws -> String {
        guard
            let uuid = try String.fetchOne(
                db,
                sql: "SELECT uuid FROM tags WHERE name = ? AND deleted = 0",
                arguments: [name]
            )
        else { throw TagError("no tag named '\(name)' (see `sd tag list`)") }
        return uuid
    }

    /// Renames a tag (its children's names follow: `a/b` becomes `c/b` when `a` becomes `c`).
    public func renameTag(_ name: String, to newName: String) throws {
        try Self.checkTagName(newName)
        try database.write { db in
            _ = try liveTag(db, name)
            if try String.fetchOne(
                db,
                sql: "SELECT uuid FROM tags WHERE name = ? AND deleted = 0",
                arguments: [newName]
            )
                != nil
            {
                throw TagError("a tag named '\(newName)' exists already")
            }
            let affected = try Row.fetchAll(
                db,
                sql: "SELECT uuid, name FROM tags WHERE deleted = 0 AND (name = ? OR name LIKE ? ESCAPE '\\')",
                arguments: [name, name.replacingOccurrences(of: "%", with: "\\%") + "/%"]
            )
            for row in affected {
                let uuid: String = row[0]
                let old: String = row[1]
                let renamed = newName + old.dropFirst(name.count)
                let stamp = try Self.logChange(
                    db,
                    device: device.id,
                    record: "tag",
                    key: uuid,
                    field: "name",
                    value: try Self.json(renamed)
                )
                try db.execute(
                    sql: "UPDATE tags SET name = ?, hlc = ? WHERE uuid = ?",
                    arguments: [renamed, stamp.description, uuid]
                )
            }
        }
    }

    /// Deletes a tag and the tags below it (tombstones: the rows stay, marked deleted, for sync).
    public func deleteTag(_ name: String) throws {
        try database.write { db in
            _ = try liveTag(db, name)
            let affected = try String.fetchAll(
                db,
                sql: "SELECT uuid FROM tags WHERE deleted = 0 AND (name = ? OR name LIKE ? ESCAPE '\\')",
                arguments: [name, name.replacingOccurrences(of: "%", with: "\\%") + "/%"]
            )
            for uuid in affected {
                let stamp = try Self.logChange(db, device: device.id, record: "tag", key: uuid, field: nil, value: nil)
                try db.execute(
                    sql: "UPDATE tags SET deleted = 1, hlc = ? WHERE uuid = ?",
                    arguments: [stamp.description, uuid]
                )
            }
        }
    }

    /// What putting a tag on (or taking it off) these paths would change, read from the index without writing:
    /// the paths whose tag record would change (a file's content counts once however many of its copies are
    /// named), the paths already so, and the paths not in the index. Throws `TagError` for a tag that does
    /// not exist.
    public func tagChanges(_ name: String, on paths: [String], present: Bool) throws -> TagChanges {
        let (targets, missing) = try indexedEntries(paths)
        var result = TagChanges()
        result.notIndexed = missing
        var contents: [Int: Int64] = [:]
        try database.read { db in
            let tag = try liveTag(db, name)
            var seen = Set<String>()
            for target in targets {
                guard let state = try Self.tagState(db, entry: target.entry, tag: tag) else {
                    result.notIndexed.append(target.path)
                    continue
                }
                if !seen.insert(state.key).inserted || state.isSo(present) {
                    result.unchanged.append(target.path)
                } else {
                    if let content = state.content { contents[result.changes.count] = content }
                    result.changes.append(TagChanges.Item(path: target.path, isFolder: state.isFolder))
                }
            }
        }
        // What the commit reaches besides the named paths: every other copy of a content whose tag changes.
        let named = Set(targets.map(\.path))
        let here = device.id.description
        for (index, content) in contents.sorted(by: { $0.key < $1.key }) {
            for copy in try copyDetails(of: ContentID(int64: content)) where !named.contains(copy.path) {
                if copy.device == here {
                    result.changes[index].copies.append(copy.path)
                } else {
                    result.changes[index].copiesElsewhere += 1
                }
            }
            result.changes[index].copies.sort()
        }
        return result
    }

    /// The entries of these paths in the index, and the paths not in it.
    func indexedEntries(_ paths: [String]) throws -> (found: [(path: String, entry: Int64)], missing: [String]) {
        var found: [(path: String, entry: Int64)] = []
        var missing: [String] = []
        for path in paths {
            if let (_, id) = try resolveEntry(path: PathText.bytes(path)) {
                found.append((path, id))
            } else {
                missing.append(path)
            }
        }
        return (found, missing)
    }

    /// A tag's state on one entry: on its content when it has a content id, else on the entry itself.
    struct TagState {
        var record: String
        var key: String
        var content: Int64?
        var entryUUID: Data
        var isFolder: Bool
        /// The stored row's `deleted` (nil: never tagged).
        var current: Int64?

        func isSo(_ present: Bool) -> Bool { present ? current == 0 : (current == nil || current == 1) }
    }

    static func tagState(_ db: Database, entry: Int64, tag: String) throws -> TagState? {
        guard
            let row = try Row.fetchOne(
                db,
                sql: "SELECT uuid, content_id, type FROM entries WHERE id = ?",
                arguments: [entry]
            )
        else { return nil }
        let entryUUID: Data = row[0]
        let content: Int64? = row[1]
        let type: Int64 = row[2]
        let isFolder = type == Int64(FileType.directory.rawValue)
        if let content {
            return TagState(
                record: "content_tag",
                key: "\(ContentID(int64: content).hex)/\(tag)",
                content: content,
                entryUUID: entryUUID,
                isFolder: isFolder,
                current: try Int64.fetchOne(
                    db,
                    sql: "SELECT deleted FROM content_tags WHERE content_id = ? AND tag_uuid = ?",
                    arguments: [content, tag]
                )
            )
        }
        return TagState(
            record: "entry_tag",
            key: "\(Hex.encode([UInt8](entryUUID)))/\(tag)",
            content: nil,
            entryUUID: entryUUID,
            isFolder: isFolder,
            current: try Int64.fetchOne(
                db,
                sql: "SELECT deleted FROM entry_tags WHERE entry_uuid = ? AND tag_uuid = ?",
                arguments: [entryUUID, tag]
            )
        )
    }

    /// Puts a tag on (or takes it off) indexed files and folders, in one transaction: on a file's content when
    /// it has a content id (every copy carries it), else on the entry. Returns how many changed, and the paths
    /// not in the index.
    public func setTag(_ name: String, on paths: [String], present: Bool) throws -> (changed: Int, notIndexed: [String])
    {
        let (targets, missing) = try indexedEntries(paths)
        let changed = try database.write { db -> Int in
            let tag = try liveTag(db, name)
            var changed = 0
            for target in targets {
                guard let state = try Self.tagState(db, entry: target.entry, tag: tag) else { continue }
                // Nothing to do: already so.
                if state.isSo(present) { continue }
                let stamp = try Self.logChange(
                    db,
                    device: device.id,
                    record: state.record,
                    key: state.key,
                    field: nil,
                    value: present ? "true" : nil
                )
                if let content = state.content {
                    try db.execute(
                        sql:
                            "INSERT OR REPLACE INTO content_tags (content_id, tag_uuid, hlc, deleted) VALUES (?, ?, ?, ?)",
                        arguments: [content, tag, stamp.description, present ? 0 : 1]
                    )
                } else {
                    try db.execute(
                        sql:
                            "INSERT OR REPLACE INTO entry_tags (entry_uuid, tag_uuid, hlc, deleted) VALUES (?, ?, ?, ?)",
                        arguments: [state.entryUUID, tag, stamp.description, present ? 0 : 1]
                    )
                }
                changed += 1
            }
            return changed
        }
        return (changed, missing)
    }

    /// The live tags on an indexed file or folder (its own and its content's).
    public func tags(ofEntryAt path: String) throws -> [String]? {
        guard let (_, id) = try resolveEntry(path: PathText.bytes(path)) else { return nil }
        return try database.read { db in
            try String.fetchAll(
                db,
                sql: """
                    SELECT DISTINCT t.name FROM tags t WHERE t.deleted = 0 AND t.uuid IN (
                        SELECT et.tag_uuid FROM entry_tags et JOIN entries e ON e.uuid = et.entry_uuid
                        WHERE e.id = ?1 AND et.deleted = 0
                        UNION
                        SELECT ct.tag_uuid FROM content_tags ct JOIN entries e ON e.content_id = ct.content_id
                        WHERE e.id = ?1 AND ct.deleted = 0
                    ) ORDER BY t.name
                    """,
                arguments: [id]
            )
        }
    }

    /// The change log, oldest first, after `seq`.
    public func sharedChanges(after seq: Int64 = 0, limit: Int = 1000) throws -> [SharedChange] {
        try database.read { db in
            try Row.fetchAll(
                db,
                sql:
                    "SELECT seq, hlc, record, key, field, value, device FROM shared_changes WHERE seq > ? ORDER BY seq LIMIT ?",
                arguments: [seq, limit]
            ).map {
                SharedChange(
                    seq: $0[0],
                    hlc: $0[1],
                    record: $0[2],
                    key: $0[3],
                    field: $0[4],
                    value: $0[5],
                    device: $0[6]
                )
            }
        }
    }
}

/// A file's or folder's own shared metadata: a rating, a favorite mark, a note.
public struct UserMetadata: Sendable, Codable, Equatable {
    public var rating: Int?
    public var favorite: Bool
    public var note: String?

    public init(rating: Int? = nil, favorite: Bool = false, note: String? = nil) {
        self.rating = rating
        self.favorite = favorite
        self.note = note
    }
}

extension UserMetadata {
    /// From a (rating, favorite, note) row; none (nil) is the defaults.
    init(row: Row?) { self.init(rating: row?[0], favorite: (row?[1] as Int64? ?? 0) != 0, note: row?[2]) }
}

/// A change to some of a file's metadata: nil leaves a field as it is; `.some(nil)` clears it.
public struct MetadataChange: Sendable {
    public var rating: Int??
    public var favorite: Bool?
    public var note: String??

    public init(rating: Int?? = nil, favorite: Bool? = nil, note: String?? = nil) {
        self.rating = rating
        self.favorite = favorite
        self.note = note
    }
}

extension Library {
    /// Rating (0-5), favorite and note of an indexed file or folder; nil when it is not in the index.
    ///
    /// These belong to the entry (the file at its place, followed across renames and moves by its uuid), not to
    /// its content as tags do: a note or a rating is about one file, and its copies may deserve others.
    public func metadata(ofEntryAt path: String) throws -> UserMetadata? {
        guard let (_, id) = try resolveEntry(path: PathText.bytes(path)) else { return nil }
        return try database.read { db in
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT m.rating, m.favorite, m.note FROM entries e
                    LEFT JOIN user_metadata m ON m.entry_uuid = e.uuid WHERE e.id = ?
                    """,
                arguments: [id]
            )
            return UserMetadata(row: row)
        }
    }

    /// Changes the metadata of indexed files and folders in one transaction, each changed field written to the
    /// change log (record `entry_meta`, key the entry's uuid, field `rating`/`favorite`/`note`). Returns how
    /// many entries changed, and the paths not in the index.
    public func setMetadata(_ change: MetadataChange, on paths: [String]) throws -> (changed: Int, notIndexed: [String])
    {
        if let rating = change.rating ?? nil, !(0...5).contains(rating) {
            throw TagError("a rating is 0 to 5, not \(rating)")
        }
        if let note = change.note ?? nil, note.utf8.count > 65_536 {
            throw TagError("a note is at most 64 KiB")
        }
        var targets: [Int64] = []
        var missing: [String] = []
        for path in paths {
            if let (_, id) = try resolveEntry(path: PathText.bytes(path)) {
                targets.append(id)
            } else {
                missing.append(path)
            }
        }
        let changed = try database.write { db -> Int in
            var changed = 0
            for entry in targets {
                guard let uuid = try Data.fetchOne(db, sql: "SELECT uuid FROM entries WHERE id = ?", arguments: [entry])
                else { continue }
                let row = try Row.fetchOne(
                    db,
                    sql: "SELECT rating, favorite, note FROM user_metadata WHERE entry_uuid = ?",
                    arguments: [uuid]
                )
                let old = UserMetadata(row: row)
                var new = old
                if let rating = change.rating { new.rating = rating }
                if let favorite = change.favorite { new.favorite = favorite }
                if let note = change.note { new.note = note }
                guard new != old else { continue }
                let key = Hex.encode([UInt8](uuid))
                var stamp: HLCTimestamp?
                func log(_ field: String, _ value: String?) throws {
                    stamp = try Self.logChange(
                        db,
                        device: device.id,
                        record: "entry_meta",
                        key: key,
                        field: field,
                        value: value
                    )
                }
                if new.rating != old.rating { try log("rating", new.rating.map(String.init)) }
                if new.favorite != old.favorite { try log("favorite", new.favorite ? "true" : nil) }
                if new.note != old.note { try log("note", try new.note.map { try Self.json($0) }) }
                try db.execute(
                    sql: """
                        INSERT OR REPLACE INTO user_metadata (entry_uuid, rating, favorite, note, hlc)
                        VALUES (?, ?, ?, ?, ?)
                        """,
                    arguments: [uuid, new.rating, new.favorite ? 1 : 0, new.note, stamp?.description]
                )
                changed += 1
            }
            return changed
        }
        return (changed, missing)
    }
}
