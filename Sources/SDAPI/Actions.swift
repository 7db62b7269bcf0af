import Foundation
import SDActions
import SDCore
import SDIndexer
import SDJobs
import SDSearch
import SDStore
import SDSync
import SDSystem

/// A request the client got wrong, said in words: exit status 1 in the CLI, a 400 answer from the daemon.
public struct RequestError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// An action the preview showed cannot be done (problems, no space, last copies): nothing was done. A 409
/// answer from the daemon.
public struct ActionRefused: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One file action, as the CLI's commands and the API's `POST /v1/actions/preview` describe it.
///
/// Paths are absolute paths or SdPaths of this device (a content path: its first reachable copy here); the
/// CLI makes relative paths absolute before asking.
public struct ActionRequest: Codable, Sendable, Equatable {
    /// copy, move, delete, rename, mkdir, undo, restore, empty-trash.
    public var action: String
    /// copy/move: the sources; delete: what to delete; rename: the one path; mkdir: the folders;
    /// restore/empty-trash: trash item ids (or prefixes).
    public var paths: [String]
    /// copy/move: where to.
    public var destination: String?
    /// rename: the new name (a name, not a path).
    public var newName: String?
    public var onConflict: ConflictPolicy?
    public var verifyFull: Bool?
    /// delete: for good instead of to the trash.
    public var permanent: Bool?
    public var forceLastCopy: Bool?
    /// undo: the action's job id or a prefix of it (default: the last one not undone).
    public var job: String?
    /// restore: everything in the trash.
    public var all: Bool?
    /// dedup: hardlink, reflink or trash; which copy stays; one copy in all (not per filesystem).
    public var mode: DedupMode?
    public var keep: KeepPolicy?
    public var acrossDisks: Bool?
    /// dedup: only files of at least this size ("1MB"), of this kind, in groups with a file in this location.
    public var minSize: String?
    public var kind: String?
    public var location: String?
    /// tag/untag: the tag's name (the paths are the files and folders).
    public var tag: String?

    public static let actions = [
        "copy", "move", "delete", "rename", "mkdir", "undo", "restore", "empty-trash", "dedup", "tag", "untag",
    ]

    public init(
        action: String,
        paths: [String] = [],
        destination: String? = nil,
        newName: String? = nil,
        onConflict: ConflictPolicy? = nil,
        verifyFull: Bool? = nil,
        permanent: Bool? = nil,
        forceLastCopy: Bool? = nil,
        job: String? = nil,
        all: Bool? = nil,
        mode: DedupMode? = nil,
        keep: KeepPolicy? = nil,
        acrossDisks: Bool? = nil,
        minSize: String? = nil,
        kind: String? = nil,
        location: String? = nil,
        tag: String? = nil
    ) {
        self.action = action
        self.paths = paths
        self.destination = destination
        self.newName = newName
        self.onConflict = onConflict
        self.verifyFull = verifyFull
        self.permanent = permanent
        self.forceLastCopy = forceLastCopy
        self.job = job
        self.all = all
        self.mode = mode
        self.keep = keep
        self.acrossDisks = acrossDisks
        self.minSize = minSize
        self.kind = kind
        self.location = location
        self.tag = tag
    }

    /// What the CLI asks before committing.
    public var question: String {
        switch action {
        case "copy": "Copy?"
        case "move": "Move?"
        case "delete": permanent == true ? "Delete for good?" : "Move to the trash?"
        case "rename": "Rename?"
        case "mkdir": "Make these folders?"
        case "restore": "Restore?"
        case "empty-trash": "Empty the trash for good?"
        case "dedup": "Remove these extra copies?"
        case "undo": "Undo it?"
        case "tag": "Tag them?"
        case "untag": "Untag them?"
        default: "Go ahead?"
        }
    }
}

/// The daemon's answer to a preview: the preview, the id that commits it, and what the CLI says before the
/// preview (a deduplication's collided groups and skipped files).
public struct PreviewAnswer: Codable, Sendable {
    public var id: String
    public var preview: ActionPreview
    public var notes: [String]
    public init(id: String, preview: ActionPreview, notes: [String]) {
        self.id = id
        self.preview = preview
        self.notes = notes
    }
}

/// A job as the daemon reports it: its record, whether a process runs it now, and what an index job found.
public struct JobAnswer: Codable, Sendable {
    public var job: JobRecord
    public var running: Bool
    public var report: IndexReport?
    /// An index job's location name.
    public var targetName: String?
    public init(job: JobRecord, running: Bool, report: IndexReport?, targetName: String?) {
        self.job = job
        self.running = running
        self.report = report
        self.targetName = targetName
    }

    /// Whether the job stopped (finished, failed, paused, cancelled, or nobody runs it), as far as waiting for
    /// it goes.
    public var hasStopped: Bool { job.isFinished || !running }
}

extension Operations {
    /// The preview of an action: simulated on the index and a cheap look at the disk; nothing is touched.
    public static func preview(_ request: ActionRequest, library: Library) throws -> ActionPreview {
        try preview(request, library: library, notes: { _ in })
    }

    /// The same, saying what it noticed on the way (`notes`: lines shown before the preview).
    public static func preview(
        _ request: ActionRequest,
        library: Library,
        peers: [String: PeerReach]? = nil,
        notes: (String) -> Void,
        progress: @Sendable (Int, Int) -> Void = { _, _ in }
    ) throws -> ActionPreview {
        // Trash actions name items by id; the others name paths.
        let byID = ["restore", "empty-trash"].contains(request.action)
        let fromPeer = try peerSources(request, library, peers)
        let toPeer = try peerDestination(request, library)
        if fromPeer != nil && toPeer != nil {
            throw RequestError("copy between two other devices one step at a time: to this one, then from it")
        }
        let paths = byID || fromPeer != nil ? request.paths : try request.paths.map { try resolve($0, library) }
        // sd's own files (a library, the config or runtime folder) are never a source or target of an action.
        let named =
            (byID || fromPeer != nil ? [] : paths)
            + (toPeer == nil ? [try request.destination.map { try resolve($0, library) }].compactMap { $0 } : [])
        for path in named {
            if let folder = OwnFolders.holding(path, library: library) {
                throw RequestError(
                    "'\(path)' is in sd's own folder \(folder): sd never acts on its own files (`sd library` and `sd config` manage them)"
                )
            }
        }
        func needPaths(_ what: String) throws {
            if request.paths.isEmpty { throw RequestError("give \(what)") }
        }
        switch request.action {
        case "copy" where fromPeer != nil:
            guard let destination = request.destination, let (device, remote) = fromPeer else {
                throw RequestError("give a destination")
            }
            return PeerCopyPlanner.preview(
                device: device,
                paths: remote,
                destination: try resolve(destination, library),
                onConflict: request.onConflict ?? .fail,
                verifyFull: request.verifyFull ?? false,
                library: library
            )
        case "copy" where toPeer != nil:
            guard let (device, remote) = toPeer else { throw RequestError("give a destination") }
            return PeerPushPlanner.preview(
                sources: paths,
                device: device,
                destination: remote,
                onConflict: request.onConflict ?? .fail,
                verifyFull: request.verifyFull ?? false,
                library: library
            )
        case "copy", "move":
            guard let destination = request.destination, !request.paths.isEmpty else {
                throw RequestError("give at least one source and a destination")
            }
            let transfer = TransferRequest(
                sources: paths,
                destination: try resolve(destination, library),
                onConflict: request.onConflict ?? .fail,
                verifyFull: request.verifyFull ?? false
            )
            return request.action == "move"
                ? TransferPlanner.preview(move: transfer, library: library)
                : TransferPlanner.preview(copy: transfer, library: library)
        case "delete":
            try needPaths("what to delete")
            let delete = DeleteRequest(
                paths: paths,
                permanent: request.permanent ?? false,
                forceLastCopy: request.forceLastCopy ?? false
            )
            return DeletePlanner.preview(delete, library: library)
        case "rename":
            guard paths.count == 1, let newName = request.newName else {
                throw RequestError("give one path and its new name")
            }
            return RenamePlanner.preview(path: paths[0], newName: newName, onConflict: request.onConflict ?? .fail)
        case "mkdir":
            try needPaths("the folders to make")
            return MakeFolderPlanner.preview(paths: paths)
        case "undo":
            guard let found = try library.undoRecord(jobPrefix: request.job) else {
                throw RequestError(
                    request.job.map { "no move, rename or trashing with job id '\($0)'" } ?? "nothing to undo"
                )
            }
            if found.undone { throw RequestError("job \(found.jobID.prefix(8)) was undone already") }
            let record = try UndoRecord.decode(found.record)
            return UndoPlanner.preview(record, jobID: found.jobID, library: library)
        case "restore":
            let items = try trashItems(request.paths, all: request.all ?? false, library)
            let record = UndoRecord(
                action: "trash",
                items: items.map { .init(from: $0.trashPath, to: $0.originalPath, manifest: $0.manifest ?? [:]) },
                createFolders: [],
                removeFolders: items.map { FileSystem.parent(of: $0.trashPath) },
                trashItems: items.map(\.id)
            )
            var preview = UndoPlanner.preview(record, jobID: "", library: library)
            preview.undoes = nil
            return preview
        case "empty-trash":
            let items = try trashItems(request.paths, all: request.paths.isEmpty, library)
            return DeletePlanner.preview(
                emptying: items,
                forceLastCopy: request.forceLastCopy ?? false,
                library: library
            )
        case "dedup":
            let mode = request.mode ?? .hardlink
            if request.acrossDisks == true && mode != .trash {
                throw RequestError("--across-disks goes with --mode trash only")
            }
            let groups = try duplicateGroups(
                minSize: request.minSize,
                kind: request.kind,
                location: request.location,
                library: library
            )
            let verified = try DuplicateVerifier.verify(groups, library: library, progress: progress)
            for split in verified.splits {
                notes("content \(split.contentID): sampled ids collided; only equal files are deduplicated:")
                for part in split.parts { notes("  " + part.joined(separator: "  =  ")) }
            }
            for problem in verified.skipped { notes("skipped: \(problem.path): \(problem.reason)") }
            return try DedupPlanner.preview(
                verified,
                mode: mode,
                keep: request.keep ?? .oldest,
                acrossDisks: request.acrossDisks ?? false,
                library: library
            )
        case "tag", "untag":
            guard let tag = request.tag, !tag.isEmpty else { throw RequestError("give the tag's name") }
            try needPaths("the files and folders to \(request.action)")
            return TagPlanner.preview(tag: tag, paths: paths, present: request.action == "tag", library: library)
        default:
            throw RequestError(
                "no action '\(request.action)'; actions: \(ActionRequest.actions.joined(separator: ", "))"
            )
        }
    }

    /// A copy's sources when they are files of another device: that device and the paths there (nil when
    /// they are on this one). Sources on several devices, or a mix, are refused.
    ///
    /// A content path with no reachable copy here names the best reachable copy on another device (ranked by
    /// `peers`: connected, then the shortest round trip).
    static func peerSources(_ request: ActionRequest, _ library: Library, _ peers: [String: PeerReach]?) throws
        -> (DeviceID, [String])?
    {
        guard request.action == "copy" || request.action == "move" else { return nil }
        var devices = Set<DeviceID>()
        var remote: [String] = []
        for text in request.paths where text.hasPrefix(SDPath.scheme) {
            switch try? SDPath(parsing: text) {
            case .physical(let device, let bytes) where device != library.device.id:
                devices.insert(device)
                remote.append(PathText.string(bytes))
            case .content(let id):
                let copies = try ContentResolver.copies(of: id, library: library, peers: peers)
                guard let best = copies.first(where: \.reachable), !best.local, let device = DeviceID(best.device)
                else { continue }
                devices.insert(device)
                remote.append(best.path)
            default:
                continue
            }
        }
        guard let device = devices.first else { return nil }
        if request.action == "move" {
            throw RequestError(
                "files of another device can be copied here, not moved (copy them, then delete them there)"
            )
        }
        guard devices.count == 1 && remote.count == request.paths.count else {
            throw RequestError("copy from one device at a time: the sources are on several devices")
        }
        return (device, remote)
    }

    /// A copy's destination when it is on another device: that device and the path there (nil when here).
    static func peerDestination(_ request: ActionRequest, _ library: Library) throws -> (DeviceID, String)? {
        guard request.action == "copy" || request.action == "move", let text = request.destination,
            text.hasPrefix(SDPath.scheme)
        else { return nil }
        guard case .physical(let device, let bytes) = try? SDPath(parsing: text), device != library.device.id else {
            return nil
        }
        if request.action == "move" {
            throw RequestError(
                "files can be copied to another device, not moved there (copy them, then delete them here)"
            )
        }
        return (device, PathText.string(bytes))
    }

    /// Trash items by id prefix (or all of them).
    public static func trashItems(_ ids: [String], all: Bool, _ library: Library) throws -> [TrashItem] {
        let items = try library.trashItems()
        if all { return items }
        guard !ids.isEmpty else { throw RequestError("give item ids (see `sd trash list`) or --all") }
        return try ids.map { id in
            let matches = items.filter { $0.id.hasPrefix(id.lowercased()) }
            guard matches.count == 1 else {
                throw RequestError(matches.isEmpty ? "no trashed item '\(id)'" : "'\(id)' names several trashed items")
            }
            return matches[0]
        }
    }

    /// A path argument: an absolute path, or an SdPath of this device, or a content path (its first reachable
    /// copy on this device).
    public static func resolve(_ text: String, _ library: Library) throws -> String {
        guard text.hasPrefix(SDPath.scheme) else {
            guard text.hasPrefix("/") else { throw RequestError("'\(text)' is not an absolute path") }
            return text
        }
        let parsed: SDPath
        do { parsed = try SDPath(parsing: text) } catch { throw RequestError(error.message) }
        switch parsed {
        case .physical(let device, let bytes):
            guard device == library.device.id else {
                throw RequestError("'\(text)' is on another device; files on other devices cannot be acted on yet")
            }
            return PathText.string(bytes)
        case .content(let id):
            guard
                let copy = try ContentResolver.copies(of: id, library: library).first(where: {
                    $0.reachable && $0.local
                })
            else {
                throw RequestError("no copy of content \(id) is reachable on this device (see `sd resolve \(text)`)")
            }
            return copy.path
        case .contentUUID:
            throw RequestError("'\(text)': give content paths by content id (sd://content/<16 hex digits>)")
        }
    }

    /// Commits a previewed action: a queued job that runs exactly the preview's operations. A preview that
    /// cannot commit is audited as refused and throws `ActionRefused`.
    public static func commit(_ preview: ActionPreview, runner: JobRunner) throws -> JobRecord {
        guard preview.canCommit else {
            try runner.library.appendAudit(
                action: preview.action,
                target: preview.destination ?? preview.operations.first?.source,
                details: jsonText(["refusals": preview.refusals]),
                outcome: "refused",
                jobID: nil
            )
            throw ActionRefused("nothing was done: \(preview.refusals.joined(separator: "; "))")
        }
        return try runner.submit(
            kind: preview.action,
            target: preview.destination ?? preview.operations.first?.source,
            input: preview.plan
        )
    }

    /// Writes an action job's outcome to the audit log.
    public static func audit(_ job: JobRecord, library: Library, summary: String?, outcome: String, error: String?) {
        var details: [String: String] = [:]
        if let summary { details["summary"] = summary }
        if let error { details["error"] = error }
        try? library.appendAudit(
            action: job.kind,
            target: job.target,
            details: jsonText(details),
            outcome: outcome,
            jobID: job.id
        )
    }

    /// The action's counts in words ("3 files, 12 KB, 1 folders").
    public static func summary(_ p: ActionPreview) -> String {
        var parts: [String] = []
        if ["tag", "untag"].contains(p.action) {
            if p.files > 0 { parts.append("\(Format.count(p.files, "file"))") }
        } else if p.files > 0 || p.bytes > 0 {
            parts.append("\(Format.count(p.files, "file")), \(size(p.bytes))")
        }
        if p.folders > 0 { parts.append("\(Format.count(p.folders, "folder"))") }
        if p.symlinks > 0 { parts.append("\(p.symlinks) links") }
        if p.skipped > 0 {
            parts.append("\(p.skipped) \(["tag", "untag"].contains(p.action) ? "already so" : "skipped")")
        }
        return parts.isEmpty ? "nothing" : parts.joined(separator: ", ")
    }

    public static func size(_ bytes: Int64) -> String { Format.size(bytes) }

    public static func jsonText(_ value: some Encodable) -> String? {
        (try? JSONEncoder().encode(value)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether a job kind is a file action (audited; `sd undo` may reverse it).
    public static func isAction(_ kind: String) -> Bool {
        TransferJob.kinds.contains(kind) || DeleteJob.kinds.contains(kind) || DedupJob.kinds.contains(kind)
            || TagJob.kinds.contains(kind) || kind == "peer-copy" || kind == "peer-push"
    }
}

/// `POST /v1/index`: index these locations (all when none).
public struct IndexRequest: Codable, Sendable {
    /// Locations by number, name, uuid or path.
    public var locations: [String]
    public var noContent: Bool?
    public var allowMassDelete: Bool?
    public var noSearchIndex: Bool?
    public init(locations: [String], noContent: Bool? = nil, allowMassDelete: Bool? = nil, noSearchIndex: Bool? = nil) {
        self.locations = locations
        self.noContent = noContent
        self.allowMassDelete = allowMassDelete
        self.noSearchIndex = noSearchIndex
    }
}

/// One location of an index request: its job (started), or why none runs (offline: the report says so).
public struct IndexStart: Codable, Sendable {
    public var location: String
    public var job: String?
    public var report: IndexReport?
    public init(location: String, job: String?, report: IndexReport?) {
        self.location = location
        self.job = job
        self.report = report
    }
}

extension Operations {
    /// The locations an index request names (all when none).
    public static func locations(_ keys: [String], library: Library) throws -> [Location] {
        if keys.isEmpty {
            let all = try library.fetchLocations()
            if all.isEmpty { throw RequestError("no locations to index; add one with `sd location add PATH`") }
            return all
        }
        return try keys.map { key in
            guard let found = try library.fetchLocation(key) else {
                throw RequestError("no location '\(key)'; see `sd location list`")
            }
            return found
        }
    }
}

extension Operations {
    /// Duplicate groups, filtered as `sd dupes` and `sd dedup` filter them.
    public static func duplicateGroups(minSize: String?, kind: String?, location: String?, library: Library)
        throws -> [DuplicateGroup]
    {
        var minimum: Int64 = 1
        if let minSize {
            do { minimum = try SearchQueryParser.bytes(minSize) } catch { throw RequestError(error.message) }
        }
        try checkKind(kind)
        var chosen: Location?
        if let location {
            guard let found = try library.fetchLocation(location) else {
                throw RequestError("no location '\(location)'; see `sd location list`")
            }
            chosen = found
        }
        return try library.duplicateGroups(minSize: minimum, category: kind?.lowercased(), location: chosen)
    }
}
