import Foundation
import GRDB
import SDCore

extension Library {
    /// Appends to the audit log: who did what, with what outcome ('ok', 'failed', 'refused', 'paused',
    /// 'cancelled'). `details` is JSON.
    public func appendAudit(
        actor: String = "user",
        action: String,
        target: String?,
        details: String?,
        outcome: String,
        jobID: String?
    ) throws {
        try database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO audit_log (uuid, at, device_id, actor, action, target, details, outcome, job_id)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    UUID().lowercased, Self.nowMilliseconds(), try deviceRowID(db), actor, action, target, details,
                    outcome, jobID,
                ]
            )
        }
    }
}

/// One row of the audit log.
public struct AuditRecord: Sendable, Codable, Equatable {
    public var id: String
    public var at: Int64
    public var actor: String
    public var action: String
    public var target: String?
    public var details: String?
    public var outcome: String
    public var jobID: String?
}

extension Library {
    /// The audit log, newest first.
    public func auditLog(limit: Int = 50) throws -> [AuditRecord] {
        try database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT uuid, at, actor, action, target, details, outcome, job_id FROM audit_log
                    ORDER BY at DESC, id DESC LIMIT ?
                    """,
                arguments: [limit]
            ).map {
                AuditRecord(
                    id: $0[0],
                    at: $0[1],
                    actor: $0[2],
                    action: $0[3],
                    target: $0[4],
                    details: $0[5],
                    outcome: $0[6],
                    jobID: $0[7]
                )
            }
        }
    }
}
