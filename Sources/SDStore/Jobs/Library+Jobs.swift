import Foundation
import GRDB
import SDCore
import SDSystem

/// A durable job as stored in the library.
public struct JobRecord: Sendable, Codable, Equatable {
    public var id: String
    public var kind: String
    public var state: String
    public var target: String?
    /// JSON: what the job was asked to do.
    public var input: String?
    /// JSON: where it got to.
    public var checkpoint: String?
    public var progressDone: Int64
    public var progressTotal: Int64?
    public var error: String?
    /// What a user asked of it while it ran ('pause', 'cancel'), not yet acted on.
    public var requested: String?
    public var createdAt: Int64
    public var startedAt: Int64?
    public var updatedAt: Int64
    public var finishedAt: Int64?

    init(row: Row) {
        id = row["id"]
        kind = row["kind"]
        state = row["state"]
        target = row["target"]
        input = row["input"]
        checkpoint = row["checkpoint"]
        progressDone = row["progress_done"]
        progressTotal = row["progress_total"]
        error = row["error"]
        requested = row["requested"]
        createdAt = row["created_at"]
        startedAt = row["started_at"]
        updatedAt = row["updated_at"]
        finishedAt = row["finished_at"]
    }

    /// Whether the job has ended (it will not run again).
    public var isFinished: Bool { Self.finishedStates.contains(state) }

    public static let finishedStates: Set<String> = ["completed", "failed", "cancelled"]
}

/// Why a job could not be found or controlled.
public struct JobError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable {
        let name: String
        public static let notFound = Code(name: "notFound")
        public static let ambiguous = Code(name: "ambiguous")
        public static let finished = Code(name: "finished")
        public static let busy = Code(name: "busy")
        public static let unknownKind = Code(name: "unknownKind")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// Why a job stopped before its end: a user asked (`sd jobs pause`, `sd jobs cancel`).
public enum JobStop: Error, Sendable, Equatable, CustomStringConvertible {
    case paused
    case cancelled

    /// The stop a job's `requested` column asks for, if any.
    public init?(request: String?) {
        switch request {
        case "pause": self = .paused
        case "cancel": self = .cancelled
        default: return nil
        }
    }

    /// The job state it leaves.
    public var state: String { self == .paused ? "paused" : "cancelled" }

    public var description: String { "the job was \(state) on request" }
}

/// The lock a job's runner holds while it runs (see `Schema.v5`).
public final class JobLock {
    let lock: FileLock
    init(_ lock: consuming FileLock) { self.lock = lock }
}

extension Library {
    /// Creates a job: 'running' (its caller runs it now) or 'queued'.
    public func createJob(
        kind: String,
        target: String?,
        input: String? = nil,
        checkpoint: String?,
        state: String = "running"
    ) throws -> JobRecord {
        let id = UUID().lowercased
        let now = Self.nowMilliseconds()
        return try database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO jobs (id, kind, state, device_id, target, input, checkpoint, created_at, started_at,
                        updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    id, kind, state, try deviceRowID(db), target, input, checkpoint, now,
                    state == "running" ? now : nil, now,
                ]
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
                    SELECT * FROM jobs WHERE kind = ? AND target = ? AND state IN ('queued', 'running', 'paused')
                    ORDER BY created_at DESC LIMIT 1
                    """,
                arguments: [kind, target]
            ).map(JobRecord.init(row:))
        }
    }

    /// A job by its id or a unique prefix of it (as `sd jobs list` shows them).
    ///
    /// #### Errors
    /// `JobError.notFound`, or `.ambiguous` when the prefix names several jobs.
    public func fetchJob(_ idOrPrefix: String) throws -> JobRecord {
        let key = idOrPrefix.lowercased()
        let found = try database.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM jobs WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
                arguments: [key, key + "\u{10FFFF}"]
            ).map(JobRecord.init(row:))
        }
        guard let job = found.first, !key.isEmpty else {
            throw JobError(.notFound, "no job '\(idOrPrefix)' in this library; see `sd jobs list --all`")
        }
        if found.count > 1 && job.id != key {
            throw JobError(.ambiguous, "'\(idOrPrefix)' is the start of several jobs' ids; give more of it")
        }
        return job
    }

    /// Jobs, newest first: unfinished ones only unless `all`.
    public func listJobs(all: Bool = false, limit: Int = 100) throws -> [JobRecord] {
        try database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM jobs \(all ? "" : "WHERE state NOT IN ('completed', 'failed', 'cancelled')")
                    ORDER BY created_at DESC, id LIMIT ?
                    """,
                arguments: [limit]
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

    /// Records a job's progress and checkpoint in one transaction, and returns what a user has asked of it
    /// since ('pause', 'cancel'), if anything.
    public func saveJobProgress(id: String, done: Int64, total: Int64?, checkpoint: String?) throws -> String? {
        try database.write { db in
            try db.execute(
                sql: """
                    UPDATE jobs SET progress_done = ?, progress_total = coalesce(?, progress_total),
                    checkpoint = coalesce(?, checkpoint), updated_at = ? WHERE id = ?
                    """,
                arguments: [done, total, checkpoint, Self.nowMilliseconds(), id]
            )
            return try String.fetchOne(db, sql: "SELECT requested FROM jobs WHERE id = ?", arguments: [id])
        }
    }

    /// What a user has asked of a running job, if anything.
    public func jobRequest(id: String) throws -> String? {
        try database.read { db in
            try String.fetchOne(db, sql: "SELECT requested FROM jobs WHERE id = ?", arguments: [id])
        }
    }

    /// Moves a job to `state` ('running', 'paused', 'queued' or a finished state), clearing any request.
    public func setJobState(id: String, _ state: String, error: String? = nil) throws {
        let now = Self.nowMilliseconds()
        try database.write { db in
            try db.execute(
                sql: """
                    UPDATE jobs SET state = ?, error = ?, requested = NULL, updated_at = ?,
                    started_at = CASE WHEN ? = 'running' THEN coalesce(started_at, ?) ELSE started_at END,
                    finished_at = CASE WHEN ? IN ('completed', 'failed', 'cancelled') THEN ? ELSE NULL END
                    WHERE id = ?
                    """,
                arguments: [state, error, now, state, now, state, now, id]
            )
        }
    }

    /// Asks a running job to pause or cancel (`request` is 'pause' or 'cancel'): its runner acts between two
    /// steps. Returns false when nobody runs the job (then the caller changes its state directly).
    ///
    /// #### Errors
    /// `JobError.finished` when the job has ended.
    public func requestJob(id: String, _ request: String) throws -> Bool {
        let job = try fetchJob(id)
        if job.isFinished { throw JobError(.finished, "job \(job.id.prefix(8)) has already \(job.state)") }
        guard isJobRunning(job.id) else { return false }
        try database.write { db in
            try db.execute(
                sql: "UPDATE jobs SET requested = ?, updated_at = ? WHERE id = ?",
                arguments: [request, Self.nowMilliseconds(), job.id]
            )
        }
        return true
    }

    /// Takes a job's lock without waiting: whoever holds it runs the job.
    ///
    /// #### Errors
    /// `JobError.busy` when another runner (this process or another) holds it.
    public func lockJob(_ id: String) throws -> JobLock {
        let folder = "\(path)/locks"
        try FileSystem.makeDirectories(folder, mode: 0o700)
        do {
            return JobLock(try FileLock(path: "\(folder)/job-\(id).lock", mode: .exclusive, wait: false))
        } catch {
            if error.isWouldBlock { throw JobError(.busy, "job \(id.prefix(8)) is being run by another sd process") }
            throw error
        }
    }

    /// Takes a job's lock, trying again for a moment: a `sd jobs` command checking whether the job runs holds
    /// it for an instant.
    public func acquireJobLock(_ id: String) throws -> JobLock {
        var attempt = 0
        while true {
            do {
                return try lockJob(id)
            } catch let error as JobError where error.code == .busy && attempt < 20 {
                attempt += 1
                Thread.sleep(forTimeInterval: 0.01)
            }
        }
    }

    /// Removes a finished job's lock file (called by its runner, which still holds the lock).
    public func removeJobLock(_ id: String) {
        try? FileManager.default.removeItem(atPath: "\(path)/locks/job-\(id).lock")
    }

    /// Whether some runner holds the job's lock now.
    public func isJobRunning(_ id: String) -> Bool {
        do {
            _ = try lockJob(id)
            return false
        } catch {
            return (error as? JobError)?.code == .busy
        }
    }
}
