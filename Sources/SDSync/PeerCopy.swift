import Foundation
import SDActions
import SDCore
import SDJobs
import SDNet
import SDStore
import SDSystem

/// Simulates copying files of another device here: what to fetch, from that device's entries as synced to
/// this library (no connection is made), against this disk (conflicts, free space). Each file operation's
/// source is the file's SdPath (`sd://DEVICE/path`).
public enum PeerCopyPlanner {
    public static func preview(
        device: DeviceID,
        paths: [String],
        destination rawDestination: String,
        onConflict: ConflictPolicy,
        verifyFull: Bool,
        library: Library
    ) -> ActionPreview {
        let destination = Paths.normalized(rawDestination)
        var preview = ActionPreview(action: "peer-copy", destination: destination)
        preview.verifyFull = verifyFull
        let intoFolder = FileSystem.isDirectory(destination)
        if paths.count > 1 && !intoFolder {
            preview.problems.append(
                ActionProblem(path: destination, reason: "several sources need an existing folder to go into")
            )
            return preview
        }
        let who = "device \(device)"
        var taken = Set<String>()
        for path in paths {
            let found = try? library.resolveEntry(path: PathText.bytes(path), device: device)
            guard let (_, id) = found ?? nil, let entry = try? library.fetchEntry(id: id) else {
                preview.problems.append(
                    ActionProblem(
                        path: path,
                        reason: "not in the index of \(who) as synced here (see `sd sync status`)"
                    )
                )
                continue
            }
            let target = intoFolder ? destination + "/" + Paths.basename(path) : destination
            if !intoFolder && !FileSystem.isDirectory(FileSystem.parent(of: target)) {
                preview.problems.append(ActionProblem(path: target, reason: "its folder does not exist"))
                continue
            }
            plan(device, path, entry, target, onConflict, library, &taken, &preview)
        }
        preview.refuseTargetsOutsideDestination()
        var checked = Set<String>()
        for op in preview.operations where !op.skip {
            let folder = FileSystem.parent(of: op.target)
            if FileSystem.isDirectory(folder) && checked.insert(folder).inserted && !FileSystem.canWrite(folder: folder)
            {
                preview.problems.append(ActionProblem(path: folder, reason: "no permission to write in this folder"))
            }
            if let problem = Paths.nameProblem(Paths.basename(op.target)) {
                preview.problems.append(ActionProblem(path: op.target, reason: problem))
            }
        }
        preview.freeBytes = Mounts.volume(containing: Paths.existingAncestor(destination), in: Mounts.list()).map {
            Int64($0.freeBytes)
        }
        // Assumed for a LAN: 100 MB/s and 5 ms a file (`scripts/bench peercopy` measured 373 MB/s on loopback).
        let files = preview.operations.filter { $0.kind == .file && !$0.skip }.count
        preview.estimatedSeconds = Double(preview.bytesToWrite) / 1e8 + Double(files) * 5e-3
        return preview
    }

    static func plan(
        _ device: DeviceID,
        _ path: String,
        _ entry: EntryInfo,
        _ target: String,
        _ policy: ConflictPolicy,
        _ library: Library,
        _ taken: inout Set<String>,
        _ preview: inout ActionPreview
    ) {
        let source = SDPath.physical(device: device, path: PathText.bytes(path)).description
        switch entry.type {
        case .directory:
            var op = FileOperation(kind: .folder, source: source, target: target)
            let merge = FileSystem.isDirectory(target)
            if !merge && FileSystem.exists(target) {
                op.conflict = "exists"
                preview.conflicts.append(op)
                preview.problems.append(ActionProblem(path: target, reason: "a file is where the folder would go"))
                return
            }
            preview.folders += 1
            if !merge { preview.operations.append(op) }
            taken.insert(target)
            let children = ((try? library.fetchChildren(of: entry.id)) ?? []).sorted {
                $0.name.lexicographicallyPrecedes($1.name)
            }
            for child in children {
                // A name synced from another device is one name, or nothing is fetched under it (an older
                // sd's row, another tool's): `../x` must never lead a target out of the destination.
                if let problem = PlainPath.nameProblem(child.name, controlBytes: true) {
                    preview.problems.append(
                        ActionProblem(
                            path: path + "/" + PlainPath.shown(child.name),
                            reason: "the name synced from \(device) is not a file name (\(problem)); refused"
                        )
                    )
                    continue
                }
                let name = PathText.string(child.name)
                plan(device, path + "/" + name, child, target + "/" + name, policy, library, &taken, &preview)
            }
        case .regular:
            preview.planFile(
                FileOperation(kind: .file, source: source, target: target, size: entry.size, files: 1),
                inTheWay: FileSystem.exists(target),
                policy: policy,
                taken: &taken
            )
        default:
            // Links and special files stay where they are: only files and folders are fetched.
            preview.skipped += 1
        }
    }
}

extension ActionPreview {
    /// Adds a file to copy, counted: a conflict when its target is `inTheWay` or taken by an earlier operation,
    /// resolved by `policy` (`exists` and `isFolder` tell what is where the files go).
    mutating func planFile(
        _ file: FileOperation,
        inTheWay: Bool,
        policy: ConflictPolicy,
        taken: inout Set<String>,
        exists: (String) -> Bool = FileSystem.exists,
        isFolder: (String) -> Bool = FileSystem.isDirectory
    ) {
        var op = file
        if inTheWay || taken.contains(op.target) {
            resolveConflict(&op, policy: policy, taken: taken, exists: exists, isFolder: isFolder)
        }
        taken.insert(op.target)
        operations.append(op)
        if op.skip {
            skipped += 1
        } else {
            files += 1
            bytes += op.size
            bytesToWrite += op.size
        }
    }
}

/// Where a copy between devices stands: the operation under way, and the bytes of its temporary that are
/// on disk (where the file is received).
public struct PeerTransferCheckpoint: Codable, Sendable {
    public var next: Int
    public var flushed: Int64
}

/// The job that fetches files of another device (kind 'peer-copy'): an `ActionPlan` of folders to make and
/// files to fetch, in order.
///
/// Each file is received into a hidden temporary in its target folder, 1 MiB a read with eight reads in
/// flight; every 64 MiB the temporary is flushed and the checkpoint saved (file, bytes flushed), so a job
/// resumed after a crash, or after the connection broke, asks only for the rest. Once whole, the temporary
/// is flushed, its content id (or with `verifyFull` its whole-file BLAKE3) compared with the one the other
/// device computes from its file, and only then renamed into place. A file that changed size on the other
/// device since the preview fails the job (nothing is replaced).
public struct PeerCopyJob: JobKind {
    public let kind = "peer-copy"
    let connect: @Sendable (DeviceID) async throws -> PeerFileSession
    let updater: (any IndexUpdater)?
    /// Attempts per file when the connection breaks (the file goes on from its flushed bytes each time).
    static let attempts = 4
    static let flushEvery: Int64 = 64 << 20

    public init(
        connect: @escaping @Sendable (DeviceID) async throws -> PeerFileSession,
        updater: (any IndexUpdater)? = nil
    ) {
        self.connect = connect
        self.updater = updater
    }

    public typealias Checkpoint = PeerTransferCheckpoint

    public func run(_ context: JobContext) async throws {
        let plan = try context.input(ActionPlan.self)
        if let problem = plan.targetProblem() { throw ActionError(problem) }
        let ops = plan.operations
        let total = ops.reduce(Int64(0)) { $0 + $1.progressBytes }
        var state = try context.checkpoint(Checkpoint.self) ?? Checkpoint(next: 0, flushed: 0)
        let resumed = context.resumed
        var done = ops.prefix(state.next).reduce(Int64(0)) { $0 + $1.progressBytes }
        let tag = String(context.record.id.prefix(8))
        let sessions = PeerSessions(connect)
        defer { sessions.closeAll() }
        while state.next < ops.count {
            try Task.checkCancellation()
            let op = ops[state.next]
            switch op.kind {
            case .folder:
                try FileSystem.makeDirectories(op.target)
            case .file where !op.skip:
                guard case .physical(let device, let bytes) = try SDPath(parsing: op.source) else {
                    throw ActionError("\(op.source) is not a file of another device")
                }
                let path = PathText.string(bytes)
                let part =
                    FileSystem.parent(of: op.target)
                    + "/\(String(decoding: FolderListing.partPrefix, as: UTF8.self))\(tag)-\(state.next)"
                try await sessions.run(device, attempts: Self.attempts) { session, retry in
                    try await fetch(
                        op,
                        path,
                        part,
                        session,
                        plan.verifyFull,
                        resumeAt: resumed || retry ? state.flushed : nil
                    ) { flushed in
                        state.flushed = flushed
                        try context.save(done: done + flushed, total: total, checkpoint: state)
                    }
                }
                done += op.size
            default:
                break
            }
            state = Checkpoint(next: state.next + 1, flushed: 0)
            try context.save(done: done, total: total, checkpoint: state)
        }
        if let updater {
            let folders = Set(ops.filter { !$0.skip }.map { FileSystem.parent(of: $0.target) })
            try updater.foldersChanged(folders.sorted(), thorough: resumed)
        }
    }

    /// Fetches one file into `part` (from `resumeAt` flushed bytes when given), verifies it, renames it into place.
    func fetch(
        _ op: FileOperation,
        _ path: String,
        _ part: String,
        _ session: PeerFileSession,
        _ verifyFull: Bool,
        resumeAt: Int64?,
        saved: (Int64) throws -> Void
    ) async throws {
        // A crash after the rename and before the checkpoint: the file is in place already.
        if resumeAt != nil && !FileSystem.exists(part) && FileSystem.exists(op.target) && op.conflict != "overwrite" {
            let info = try await session.info(path, fullHash: verifyFull)
            if try matches(op.target, info, verifyFull) { return }
        }
        let info = try await session.info(path, fullHash: verifyFull)
        guard info.size == op.size else {
            throw ActionError(
                "\(op.source) changed since the preview (\(op.size) bytes then, \(info.size) now); nothing was replaced"
            )
        }
        let start = resumeAt.flatMap { FileSystem.exists(part) ? min($0, info.size) : nil }
        if start == nil { FileSystem.remove(part) }
        let file = try PartFile(path: part, mode: 0o600, resumeAt: start)
        var flushed = start ?? 0
        do {
            try await session.read(path, from: flushed, to: info.size) { offset, bytes in
                try bytes.withUnsafeBytes { try file.write($0, at: offset) }
                let end = offset + Int64(bytes.count)
                if end - flushed >= Self.flushEvery {
                    try file.sync()
                    flushed = end
                    try saved(flushed)
                }
            }
            try file.sync()
        } catch {
            // Broken connection: keep what is flushed for the next attempt; anything else: no temporary left.
            if !(error is NetError) { FileSystem.remove(part) }
            throw error
        }
        guard try matches(part, info, verifyFull) else {
            FileSystem.remove(part)
            throw ActionError(
                "the copy of \(op.source) does not match the file on its device (read back from the disk); nothing was replaced"
            )
        }
        // Times and permissions once it was read back (a mode without read permission would stop that).
        try file.setModificationTime(info.mtimeNanoseconds)
        try file.setMode(info.mode)
        try file.sync()
        if op.conflict == "overwrite" {
            try FileSystem.renameReplacing(part, to: op.target)
        } else {
            do { try FileSystem.renameNoReplace(part, to: op.target) } catch {
                FileSystem.remove(part)
                throw ActionError("\(op.target) appeared meanwhile; nothing was replaced")
            }
        }
        try FileSystem.syncDirectory(containing: op.target)
    }

    func matches(_ local: String, _ info: RemoteFileInfo, _ verifyFull: Bool) throws -> Bool {
        let reader = try LocalFileReader(path: local)
        guard try Int64(reader.size()) == info.size else { return false }
        if verifyFull { return try ContentHasher.integrityHash(mapping: reader).hex == info.fullHash }
        return try ContentHasher().contentID(of: reader)?.hex == info.contentID
    }
}
