import Foundation
import GRDB
import SDCore

/// One last-writer-wins register of shared metadata: a record's field (or, with field '', whether the record
/// exists), its value (nil: cleared or deleted) and the HLC that wrote it.
public struct SharedRegister: Sendable, Equatable, Codable {
    public var record: String
    public var key: String
    public var field: String
    public var value: String?
    public var hlc: String
    public var prev: String?

    public init(record: String, key: String, field: String, value: String?, hlc: String = "", prev: String? = nil) {
        self.record = record
        self.key = key
        self.field = field
        self.value = value
        self.hlc = hlc
        self.prev = prev
    }

    /// The registers one logged change writes. A whole tag (`field` nil, a JSON object) sets its existence and
    /// each of its fields; a deleted record (`value` nil) only its existence; a field its field. Records this
    /// sd does not know are kept as they are (a newer sd's changes survive passing through).
    public static func expand(record: String, key: String, field: String?, value: String?) -> [SharedRegister] {
        if record == "tag" && field == nil, let value,
            let object = try? JSONSerialization.jsonObject(with: Data(value.utf8)) as? [String: Any]
        {
            var registers = [SharedRegister(record: record, key: key, field: "", value: "true")]
            for name in ["name", "color", "parent"] {
                let item = object[name]
                let text: String? =
                    (item == nil || item is NSNull)
                    ? nil
                    : (try? JSONSerialization.data(withJSONObject: item!, options: [.fragmentsAllowed]))
                        .map { String(decoding: $0, as: UTF8.self) }
                registers.append(SharedRegister(record: record, key: key, field: name, value: text))
            }
            return registers
        }
        return [SharedRegister(record: record, key: key, field: field ?? "", value: value)]
    }
}

/// A value that lost to a concurrent edit of the same field on another device.
public struct SyncConflict: Sendable, Codable, Equatable {
    public var id: Int64
    public var record: String
    public var key: String
    public var field: String
    public var value: String?
    public var hlc: String
    public var winnerValue: String?
    public var winnerHLC: String
    public var foundAt: Date
    /// Why a peer's change was refused (it was never applied: restoring it applies it), or nil for a concurrent
    /// edit that lost.
    public var reason: String?
    /// The device that sent the refused change.
    public var fromDevice: String?
}

extension Library {
    /// The register's current state, or nil.
    static func register(_ db: Database, _ record: String, _ key: String, _ field: String) throws -> SharedRegister? {
        try Row.fetchOne(
            db,
            sql: "SELECT value, hlc, prev FROM shared_state WHERE record = ? AND key = ? AND field = ?",
            arguments: [record, key, field]
        ).map { SharedRegister(record: record, key: key, field: field, value: $0[0], hlc: $0[1], prev: $0[2]) }
    }

    static func storeRegister(_ db: Database, _ r: SharedRegister) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO shared_state (record, key, field, value, hlc, prev) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (record, key, field) DO UPDATE SET value = excluded.value, hlc = excluded.hlc,
                    prev = excluded.prev
                """
        ).execute(arguments: [r.record, r.key, r.field, r.value, r.hlc, r.prev])
    }

    /// The next change's seq, as SQL: after every seq ever used, compacted ones included. (Left to SQLite, an
    /// `INTEGER PRIMARY KEY` takes max + 1, so after a compaction that emptied the log it would hand out seqs
    /// again that peers have passed already, and they would never pull those changes.)
    static let nextSharedSeq = """
        (SELECT max((SELECT coalesce(max(seq), 0) FROM shared_changes), \
        coalesce((SELECT shared_compacted FROM sync_state WHERE id = 1), 0)) + 1)
        """

    /// Merges one change from another device (last writer wins per register, ties cannot happen: HLCs carry
    /// their device). A change that did not see the value it overwrites, or that loses to one that did not
    /// see it, is a concurrent edit: the losing value goes to `sync_conflicts`. The change is appended to this
    /// library's log (so that it passes on to other devices) unless the log has it already. Returns whether
    /// any register changed.
    @discardableResult
    static func mergeRemoteChange(_ db: Database, _ change: SharedChange, prev: String?) throws -> Bool {
        if try Int.fetchOne(
            db,
            sql: "SELECT 1 FROM shared_changes WHERE hlc = ? AND record = ? AND key = ? AND field IS ?",
            arguments: [change.hlc, change.record, change.key, change.field]
        ) != nil {
            return false
        }
        let registers = SharedRegister.expand(
            record: change.record,
            key: change.key,
            field: change.field,
            value: change.value
        )
        try db.cachedStatement(
            sql:
                "INSERT INTO shared_changes (seq, hlc, record, key, field, value, device, prev) VALUES (\(Self.nextSharedSeq), ?, ?, ?, ?, ?, ?, ?)"
        ).execute(arguments: [change.hlc, change.record, change.key, change.field, change.value, change.device, prev])
        var changed = false
        let now = nowMilliseconds()
        for var incoming in registers {
            incoming.hlc = change.hlc
            incoming.prev = prev
            guard let current = try register(db, incoming.record, incoming.key, incoming.field) else {
                try storeRegister(db, incoming)
                changed = true
                continue
            }
            if current.hlc == incoming.hlc { continue }
            let (winner, loser) = incoming.hlc > current.hlc ? (incoming, current) : (current, incoming)
            // Concurrent: the winner's writer had not seen the loser's value (nor anything newer in this register).
            if winner.value != loser.value && (winner.prev ?? "") < loser.hlc {
                try db.execute(
                    sql: """
                        INSERT OR IGNORE INTO sync_conflicts (record, key, field, value, hlc, winner_value, winner_hlc, found_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        loser.record, loser.key, loser.field, loser.value, loser.hlc, winner.value, winner.hlc, now,
                    ]
                )
            }
            if winner == incoming {
                try storeRegister(db, incoming)
                changed = true
            }
        }
        if changed { try materialize(db, record: change.record, key: change.key) }
        return changed
    }

    /// Rewrites the live row of one record from its registers.
    static func materialize(_ db: Database, record: String, key: String) throws {
        let registers = try Row.fetchAll(
            db,
            sql: "SELECT field, value, hlc FROM shared_state WHERE record = ? AND key = ?",
            arguments: [record, key]
        )
        if registers.isEmpty {
            // Compacted away: no live row either.
            switch record {
            case "tag": try db.execute(sql: "DELETE FROM tags WHERE uuid = ?", arguments: [key])
            case "entry_meta":
                if let uuid = Hex.decode(key) {
                    try db.execute(sql: "DELETE FROM user_metadata WHERE entry_uuid = ?", arguments: [Data(uuid)])
                }
            case "setting":
                let (name, scope) = settingFromRecordKey(key)
                try db.execute(
                    sql: "DELETE FROM library_settings WHERE key = ? AND scope = ?",
                    arguments: [name, scope]
                )
            case "entry_tag", "content_tag":
                let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
                if parts.count == 2, record == "entry_tag", let uuid = Hex.decode(parts[0]) {
                    try db.execute(
                        sql: "DELETE FROM entry_tags WHERE entry_uuid = ? AND tag_uuid = ?",
                        arguments: [Data(uuid), parts[1]]
                    )
                } else if parts.count == 2, let content = ContentID(parts[0]) {
                    try db.execute(
                        sql: "DELETE FROM content_tags WHERE content_id = ? AND tag_uuid = ?",
                        arguments: [content.int64, parts[1]]
                    )
                }
            default: break
            }
            return
        }
        var values: [String: String?] = [:]
        var top = ""
        for row in registers {
            values[row[0] as String] = row[1] as String?
            top = max(top, row[2] as String)
        }
        func decoded(_ field: String) -> String? {
            guard let text = values[field] ?? nil,
                let value = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
            else { return nil }
            return value as? String
        }
        let exists = (values[""] ?? nil) != nil
        switch record {
        case "tag":
            try db.execute(
                sql: """
                    INSERT INTO tags (uuid, name, color, parent_uuid, hlc, deleted) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (uuid) DO UPDATE SET name = excluded.name, color = excluded.color,
                        parent_uuid = excluded.parent_uuid, hlc = excluded.hlc, deleted = excluded.deleted
                    """,
                arguments: [key, decoded("name") ?? "", decoded("color"), decoded("parent"), top, exists ? 0 : 1]
            )
        case "entry_tag", "content_tag":
            let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { return }
            if record == "entry_tag" {
                guard let uuid = Hex.decode(parts[0]) else { return }
                try db.execute(
                    sql: "INSERT OR REPLACE INTO entry_tags (entry_uuid, tag_uuid, hlc, deleted) VALUES (?, ?, ?, ?)",
                    arguments: [Data(uuid), parts[1], top, exists ? 0 : 1]
                )
            } else {
                guard let content = ContentID(parts[0]) else { return }
                try db.execute(
                    sql: "INSERT OR REPLACE INTO content_tags (content_id, tag_uuid, hlc, deleted) VALUES (?, ?, ?, ?)",
                    arguments: [content.int64, parts[1], top, exists ? 0 : 1]
                )
            }
        case "entry_meta":
            guard let uuid = Hex.decode(key) else { return }
            let rating = (values["rating"] ?? nil).flatMap { Int($0) }
            let favorite = (values["favorite"] ?? nil) != nil
            try db.execute(
                sql: """
                    INSERT OR REPLACE INTO user_metadata (entry_uuid, rating, favorite, note, hlc)
                    VALUES (?, ?, ?, ?, ?)
                    """,
                arguments: [Data(uuid), rating, favorite ? 1 : 0, decoded("note"), top]
            )
        case "setting":
            let (name, scope) = settingFromRecordKey(key)
            if let value = values["value"] ?? nil {
                try db.execute(
                    sql: "INSERT OR REPLACE INTO library_settings (key, scope, value) VALUES (?, ?, ?)",
                    arguments: [name, scope, value]
                )
            } else {
                try db.execute(
                    sql: "DELETE FROM library_settings WHERE key = ? AND scope = ?",
                    arguments: [name, scope]
                )
            }
        default:
            break  // kept in shared_state only
        }
    }

    /// Changes of the log after `seq`, with the HLC each replaced, for a peer.
    public func sharedChangesForSync(after seq: Int64, limit: Int) throws -> [(change: SharedChange, prev: String?)] {
        try database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT seq, hlc, record, key, field, value, device, prev FROM shared_changes WHERE seq > ?
                    ORDER BY seq LIMIT ?
                    """,
                arguments: [seq, limit]
            ).map {
                (
                    SharedChange(
                        seq: $0[0],
                        hlc: $0[1],
                        record: $0[2],
                        key: $0[3],
                        field: $0[4],
                        value: $0[5],
                        device: $0[6]
                    ),
                    $0[7]
                )
            }
        }
    }

    /// Merges changes from a peer in one transaction; how many changed something here.
    ///
    /// #### Errors
    /// `SyncRefusal` for a change stamped more than 5 minutes ahead of this device's clock (a broken or
    /// hostile clock would otherwise win every later edit): nothing of the batch is merged.
    public func mergeSharedChanges(
        _ changes: [(change: SharedChange, prev: String?)],
        from sender: DeviceID? = nil,
        refusing refusal: (SharedChange) -> String? = { _ in nil }
    ) throws -> Int {
        let limit = UInt64(max(0, Self.nowMilliseconds())) + 5 * 60 * 1000
        for (change, _) in changes {
            guard let stamp = HLCTimestamp(change.hlc) else {
                throw SyncRefusal("a shared change has a malformed timestamp '\(change.hlc)'")
            }
            guard stamp.physical <= limit else {
                throw SyncRefusal(
                    "a shared change from \(stamp.device) is stamped \((stamp.physical - limit) / 1000 + 300) s ahead of this device's clock; fix the clocks, then sync again"
                )
            }
            guard DeviceID(change.device) != nil else { throw SyncRefusal("a shared change names no device") }
        }
        return try database.write { db in
            var merged = 0
            for (change, prev) in changes {
                // A change the sender may not make here is not applied nor passed on: kept for the owner to see.
                if let reason = refusal(change) {
                    try Self.keepRefused(db, change, reason: reason, from: sender)
                    continue
                }
                if try Self.mergeRemoteChange(db, change, prev: prev) { merged += 1 }
            }
            return merged
        }
    }

    /// Keeps a refused change in `sync_conflicts`, one row per register it would have set, beside the value
    /// that stays (`sd sync conflicts`; restoring it applies it as this device's edit).
    static func keepRefused(_ db: Database, _ change: SharedChange, reason: String, from sender: DeviceID?) throws {
        for r in SharedRegister.expand(record: change.record, key: change.key, field: change.field, value: change.value)
        {
            let current = try register(db, r.record, r.key, r.field)
            try db.execute(
                sql: """
                    INSERT OR IGNORE INTO sync_conflicts (record, key, field, value, hlc, winner_value, winner_hlc,
                        found_at, reason, from_device)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    r.record, r.key, r.field, r.value, change.hlc, current?.value, current?.hlc ?? "",
                    nowMilliseconds(),
                    reason, sender?.description,
                ]
            )
        }
    }

    /// Every register, in key order after `cursor` (record, key, field), for a full resync.
    public func sharedRegisters(after cursor: [String]?, limit: Int) throws -> [SharedRegister] {
        let c = cursor ?? ["", "", ""]
        return try database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT record, key, field, value, hlc, prev FROM shared_state
                    WHERE (record, key, field) > (?, ?, ?) ORDER BY record, key, field LIMIT ?
                    """,
                arguments: [c[0], c[1], c[2], limit]
            ).map { SharedRegister(record: $0[0], key: $0[1], field: $0[2], value: $0[3], hlc: $0[4], prev: $0[5]) }
        }
    }

    /// Concurrent edits that lost, newest first (unresolved only unless `all`).
    public func syncConflicts(all: Bool = false) throws -> [SyncConflict] {
        try database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT id, record, key, field, value, hlc, winner_value, winner_hlc, found_at, reason, from_device
                    FROM sync_conflicts
                    \(all ? "" : "WHERE resolved_at IS NULL") ORDER BY id DESC
                    """
            ).map {
                SyncConflict(
                    id: $0[0],
                    record: $0[1],
                    key: $0[2],
                    field: $0[3],
                    value: $0[4],
                    hlc: $0[5],
                    winnerValue: $0[6],
                    winnerHLC: $0[7],
                    foundAt: Date(timeIntervalSince1970: Double($0[8] as Int64) / 1000),
                    reason: $0[9],
                    fromDevice: $0[10]
                )
            }
        }
    }

    /// Restores a conflict's losing value as a new edit on this device (it then wins, and syncs as any edit),
    /// or dismisses it (`restore` false). Whether the conflict was open.
    public func resolveConflict(_ id: Int64, restore: Bool) throws -> Bool {
        try database.write { db in
            guard
                let row = try Row.fetchOne(
                    db,
                    sql: "SELECT record, key, field, value FROM sync_conflicts WHERE id = ? AND resolved_at IS NULL",
                    arguments: [id]
                )
            else { return false }
            if restore {
                let record: String = row[0]
                let key: String = row[1]
                let field: String = row[2]
                let value: String? = row[3]
                try Self.logChange(
                    db,
                    device: device.id,
                    record: record,
                    key: key,
                    field: field.isEmpty ? nil : field,
                    value: value
                )
                try Self.materialize(db, record: record, key: key)
            }
            try db.execute(
                sql: "UPDATE sync_conflicts SET resolved_at = ? WHERE id = ?",
                arguments: [Self.nowMilliseconds(), id]
            )
            return true
        }
    }
}

/// A peer's data refused as a whole (nothing of it was applied): why.
public struct SyncRefusal: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
