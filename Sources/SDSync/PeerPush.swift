import Foundation
import SDActions
import SDCore
import SDJobs
import SDNet
import SDStore
import SDSystem

/// Simulates copying files of this device to another device (`sd cp SOURCE sd://DEVICE/path`): the sources as
/// they are on this disk, the destination against that device's entries and volumes as synced to this
/// library (no connection is made): whether it is inside one of its locations (a device takes files only
/// there), conflicts, free space on its volume. Each operation's target is the file's SdPath there.
public enum PeerPushPlanner {
    public static func preview(
        sources: [String],
        device: DeviceID,
        destination rawDestination: String,
        onConflict: ConflictPolicy,
        verifyFull: Bool,
        library: Library
    ) -> ActionPreview {
        let destination = Paths.normalized(rawDestination)
        func sdPath(_ path: String) -> String {
            SDPath.physical(device: device, path: PathText.bytes(path)).description
        }
        var preview = ActionPreview(action: "peer-push", destination: sdPath(destination))
        preview.verifyFull = verifyFull
        let who = "device \(device)"
        let locations = ((try? library.fetchLocations(of: device)) ?? []).filter {
            destination == $0.pathString || Library.isInside(PathText.bytes(destination), $0.path)
        }
        guard let location = locations.max(by: { $0.path.count < $1.path.count }) else {
            preview.problems.append(
                ActionProblem(
                    path: preview.destination ?? destination,
                    reason:
                        "not inside a location of \(who) as synced here (a device takes files only into its locations; see `sd sync status`)"
                )
            )
            return preview
        }
        let remote = Remote(library: library, device: device)
        let intoFolder = remote.isFolder(destination)
        if sources.count > 1 && !intoFolder {
            preview.problems.append(
                ActionProblem(path: sdPath(destination), reason: "several sources need an existing folder to go into")
            )
            return preview
        }
        var planner = Planner(remote: remote, policy: onConflict)
        for raw in sources {
            let source = Paths.normalized(raw)
            guard FileSystem.exists(source) else {
                preview.problems.append(ActionProblem(path: source, reason: "no such file or folder"))
                continue
            }
            let target = intoFolder ? destination + "/" + Paths.basename(source) : destination
            if !intoFolder && !remote.isFolder(FileSystem.parent(of: target)) {
                preview.problems.append(
                    ActionProblem(path: sdPath(target), reason: "its folder is not on \(who) (as synced here)")
                )
                continue
            }
            planner.plan(source, target, &preview, newFolder: false)
        }
        for op in preview.operations where !op.skip {
            if let problem = Paths.nameProblem(Paths.basename(op.target)) {
                preview.problems.append(ActionProblem(path: sdPath(op.target), reason: problem))
            }
        }
        preview.operations = preview.operations.map {
            var op = $0
            op.target = sdPath(op.target)
            return op
        }
        preview.conflicts = preview.conflicts.map {
            var op = $0
            op.target = sdPath(op.target)
            return op
        }
        preview.freeBytes = location.volumeID.flatMap { id in
            ((try? library.fetchVolumes()) ?? []).first { $0.id == id }?.freeBytes
        }
        // Assumed for a LAN, as for copies from a device: 100 MB/s and 5 ms a file.
        let files = preview.operations.filter { $0.kind == .file && !$0.skip }.count
        preview.estimatedSeconds = Double(preview.bytesToWrite) / 1e8 + Double(files) * 5e-3
        return preview
    }

    /// Another device's files as synced here.
    struct Remote {
        let library: Library
        let device: DeviceID

        func entry(_ path: String) -> EntryInfo? {
            guard let found = try? library.resolveEntry(path: PathText.bytes(path), device: device) else { return nil }
            return try? library.fetchEntry(id: found.1)
        }
        func exists(_ path: String) -> Bool { entry(path) != nil }
        func isFolder(_ path: String) -> Bool { entry(path)?.type == .directory }
    }

    struct Planner {
        let remote: Remote
        let policy: ConflictPolicy
        var taken = Set<String>()

        init(remote: Remote, policy: ConflictPolicy) {
            self.remote = remote
            self.policy = policy
        }

        /// `newFolder`: the target's folder is made by this plan, so nothing is in the way there.
        mutating func plan(
            _ source: String,
            _ target: String,
            _ preview: inout ActionPreview,
            listed: RawEntry? = nil,
            newFolder: Bool
        ) {
            guard
                let entry = listed.flatMap({ $0.error == nil ? $0 : nil })
                    ?? (try? Directory.stat(PathText.bytes(source)))
            else {
                preview.problems.append(ActionProblem(path: source, reason: "cannot be read"))
                return
            }
            switch entry.type {
            case .directory:
                var op = FileOperation(kind: .folder, source: source, target: target)
                let merge = !newFolder && remote.isFolder(target)
                if !merge && (taken.contains(target) || (!newFolder && remote.exists(target))) {
                    op.conflict = "exists"
                    preview.conflicts.append(op)
                    preview.problems.append(ActionProblem(path: target, reason: "a file is where the folder would go"))
                    return
                }
                preview.folders += 1
                if !merge { preview.operations.append(op) }
                taken.insert(target)
                guard let children = try? Directory.list(PathText.bytes(source)) else {
                    preview.problems.append(ActionProblem(path: source, reason: "cannot list this folder"))
                    return
                }
                for child in children.sorted(by: { $0.name.lexicographicallyPrecedes($1.name) }) {
                    let name = PathText.string(child.name)
                    plan(source + "/" + name, target + "/" + name, &preview, listed: child, newFolder: !merge)
                }
            case .regular:
                preview.planFile(
                    FileOperation(kind: .file, source: source, target: target, size: Int64(entry.size), files: 1),
                    inTheWay: !newFolder && remote.exists(target),
                    policy: policy,
                    taken: &taken,
                    exists: { [remote] in remote.exists($0) },
                    isFolder: { [remote] in remote.isFolder($0) }
                )
            default:
                // Links and special files stay here: only files and folders are sent.
                preview.skipped += 1
            }
        }
    }
}

/// The job that sends files of this device to another (kind 'peer-push'): an `ActionPlan` of folders to make
/// and files to send there, in order.
///
/// Each file goes into a hidden temporary beside its target on the other device, 1 MiB a message with eight in
/// flight; every 64 MiB the other device flushes it and the checkpoint is saved (file, bytes flushed), so a
/// job resumed after a crash, or after the connection broke, sends only the rest. Once all is sent, the other
/// device flushes it, compares it (read back from its disk) with the content id (or with `verifyFull` the
/// whole-file BLAKE3) computed here from the source as it is then, and only then renames it into place; it
/// brings its index up to date, and the new entries come back by sync. A source that changed size since the
/// preview fails the job (nothing is replaced there).
public struct PeerPushJob: JobKind {
    public let kind = "peer-push"
    let connect: @Sendable (DeviceID) async throws -> PeerFileSession
    static let attempts = 4
    static let flushEvery: Int64 = 64 << 20

    public init(connect: @escaping @Sendable (DeviceID) async throws -> PeerFileSession) {
        self.connect = connect
    }

    public typealias Checkpoint = PeerTransferCheckpoint

    public func run(_ context: JobContext) async throws {
        let plan = try context.input(ActionPlan.self)
        let ops = plan.operations
        let total = ops.reduce(Int64(0)) { $0 + $1.progressBytes }
        var state = try context.checkpoint(Checkpoint.self) ?? Checkpoint(next: 0, flushed: 0)
        let resumed = context.resumed
        var done = ops.prefix(state.next).reduce(Int64(0)) { $0 + $1.progressBytes }
        let tag = String(context.record.id.prefix(8)).lowercased()
        let sessions = PeerSessions(connect)
        defer { sessions.closeAll() }
        while state.next < ops.count {
            try Task.checkCancellation()
            let op = ops[state.next]
            guard op.kind == .folder || (op.kind == .file && !op.skip) else {
                state = Checkpoint(next: state.next + 1, flushed: 0)
                continue
            }
            guard case .physical(let device, let bytes) = try SDPath(parsing: op.target) else {
                throw ActionError("\(op.target) is not a path on another device")
            }
            let path = PathText.string(bytes)
            try await sessions.run(device, attempts: Self.attempts) { session, retry in
                if op.kind == .folder {
                    try await session.makeFolder(path)
                } else {
                    try await send(
                        op,
                        path,
                        "\(tag)-\(state.next)",
                        session,
                        plan.verifyFull,
                        resumeAt: resumed || retry ? state.flushed : nil
                    ) { flushed in
                        state.flushed = flushed
                        try context.save(done: done + flushed, total: total, checkpoint: state)
                    }
                }
            }
            if op.kind == .file { done += op.size }
            state = Checkpoint(next: state.next + 1, flushed: 0)
            try context.save(done: done, total: total, checkpoint: state)
        }
    }

    /// Sends one file (from `resumeAt` flushed bytes when given) and has it committed there.
    func send(
        _ op: FileOperation,
        _ path: String,
        _ tag: String,
        _ session: PeerFileSession,
        _ verifyFull: Bool,
        resumeAt: Int64?,
        saved: (Int64) throws -> Void
    ) async throws {
        let stat = try Directory.stat(PathText.bytes(op.source))
        guard Int64(stat.size) == op.size else {
            throw ActionError(
                "\(op.source) changed since the preview (\(op.size) bytes then, \(stat.size) now); nothing was replaced"
            )
        }
        func describe() throws -> PushCommit {
            let reader = try LocalFileReader(path: op.source)
            guard try Int64(reader.size()) == op.size else {
                throw ActionError("\(op.source) changed while it was being sent; nothing was replaced")
            }
            return PushCommit(
                size: op.size,
                contentID: verifyFull ? nil : try ContentHasher().contentID(of: reader)?.hex,
                fullHash: verifyFull ? try ContentHasher.integrityHash(mapping: reader).hex : nil,
                mtimeNanoseconds: stat.mtimeNanoseconds,
                mode: stat.mode & 0o7777,
                replace: op.conflict == "overwrite"
            )
        }
        // A crash after the commit and before the checkpoint: the file is in place there already.
        if resumeAt != nil && op.conflict != "overwrite",
            let there = try? await session.info(path, fullHash: verifyFull)
        {
            let here = try describe()
            if there.size == here.size
                && (verifyFull ? there.fullHash == here.fullHash : there.contentID == here.contentID)
            {
                return
            }
        }
        do {
            try await session.send(
                op.source,
                to: path,
                tag: tag,
                resumeAt: resumeAt ?? 0,
                commit: describe,
                size: op.size,
                flushEvery: Self.flushEvery,
                flushed: saved
            )
        } catch let error as NetError {
            throw error  // the other device keeps what it flushed, for the next attempt
        } catch {
            try? await session.abandon(path, tag: tag)
            throw error
        }
    }
}
