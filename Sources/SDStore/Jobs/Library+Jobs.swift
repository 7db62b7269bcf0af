import Foundation
import GRDB
import SDCore

/// A durable job as stored in the library.
public struct JobRecord: Sendable, Codable, Equatable {
    public var id: String
    public var kind: String
    public var state: String
    public var target: String?
    public var checkpoint: String?
    public var progressDone: Int64
    public var progressTotal: Int64?
    public var error: String?
    public var createdAt: Int64
    public var updatedAt: Int64

    init(row: Row) {
        id = row["id"]
        kind = row["kind"]
        state = row["state"]
        target = row["target"]
        checkpoint = row["checkpoint"]
        progressDone = row["progress_done"]
        progressTotal = row["progress_total"]
        error = row["error"]
        createdAt = row["created_at"]
        updatedAt = row["updated_at"]
    }
}

extension Library {
    /// Creates a running job.
    public func createJob(kind: String, target: String?, checkpoint: String?) throws -> JobRecord {
        let id = UUID().lowercased
        let now = Self.nowMilliseconds()
        return try database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO jobs (id, kind, state, device_id, target, checkpoint, created_at, started_at, updated_at)
                    VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [id, kind, try deviceRowID(db), target, checkpoint, now, now, now]
            )
            return try JobRecord(row: Row.fetchOne(db, sql: "SELECT * FROM jobs WHERE id = ?", arguments: [id])!)
        }
    }

    /// The newest unfinished job of `kind` on `target` (one a crash interrupted), if any.
    public func fetchUnfinishedJob(kind: String, target: String) throws -> JobRecord? {
        try database.read { db in
            try Row.fetchOne(
                db,
                sql: """
                    SELECT * FROM jobs WHERE kind = ? AND target = ? AND state IN ('queued', 'running')
                    ORDER BY created_at DESC LIMIT 1
                    """,
                arguments: [kind, target]
            ).map(JobRecord.init(row:))
        }
    }

    public func updateJob(id: String, checkpoint: String? = nil, progressTotal: Int64? = nil) throws {
        try database.write { db in
            try db.execute(
                sql: """
                    UPDATE jobs SET checkpoint = coalesce(?, checkpoint), progress_total = coalesce(?, progress_total),
                    updated_at = ? WHERE id = ?
                    """,
                arguments: [checkpoint, progressTotal, Self.nowMilliseconds(), id]
            )
        }
    }

    /// Ends a job: 'completed', 'failed' (with the error) or 'cancelled'.
    public func finishJob(id: String, state: String, error: String? = nil) throws {
        let now = Self.nowMilliseconds()
        try database.write { db in
            try db.execute(
                sql: "UPDATE jobs SET state = ?, error = ?, updated_at = ?, finished_at = ? WHERE id = ?",
                arguments: [state, error, now, now, id]
            )
        }
    }
}
