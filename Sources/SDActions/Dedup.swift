import Foundation
import SDCore
import SDJobs
import SDStore
import SDSystem

/// How extra copies are removed.
public enum DedupMode: String, Codable, Sendable, CaseIterable {
    /// Each extra copy becomes a hard link to the kept one: one inode, the bytes stored once. The names then
    /// share permissions, owner and times, and a change made through one name shows through all.
    case hardlink
    /// Each extra copy becomes a reflink of the kept one (FICLONE): still its own file, sharing blocks until
    /// written. Only where the filesystem can (btrfs, XFS with reflink, bcachefs).
    case reflink
    /// Extra copies go to the trash (freed when it is emptied; `sd undo` or `sd trash restore` bring them back).
    case trash
}

/// Which copy of a group stays.
public enum KeepPolicy: String, Codable, Sendable, CaseIterable {
    /// The one modified longest ago (most often the original), then the shortest path.
    case oldest
    /// The one modified most recently, then the shortest path.
    case newest
    /// The one with the shortest path (then the oldest).
    case shortest
}

/// Deduplication as an action: only groups confirmed by full hash, only within one filesystem unless asked
/// (copies on other disks are backups, not waste).
public enum DedupPlanner {
    /// An extra copy to remove, the copy that stays, and the size of both.
    typealias Removal = (keeper: DuplicateGroup.Member, member: DuplicateGroup.Member, size: Int64)

    /// The action that removes the extra copies of `verified`'s groups.
    ///
    /// One copy is kept per group on each filesystem (`acrossDisks`: one per group; trash only). Names that are
    /// hard links to the kept file are left alone. `bytesFreed` counts an inode only when all its names go.
    public static func preview(
        _ verified: VerifiedDuplicates,
        mode: DedupMode,
        keep: KeepPolicy = .oldest,
        acrossDisks: Bool = false,
        library: Library
    ) throws -> ActionPreview {
        var removals: [Removal] = []
        for group in verified.groups {
            let partitions = Dictionary(grouping: group.members) { acrossDisks ? 0 : $0.device }
            for key in partitions.keys.sorted() {
                let members = partitions[key]!
                guard Set(members.map(\.inode)).count > 1, let keeper = chooseKeeper(members, keep) else { continue }
                let extra = members.filter { ($0.device, $0.inode) != (keeper.device, keeper.inode) }
                for member in extra { removals.append((keeper, member, group.size)) }
            }
        }
        // An inode's bytes come back only when every one of its names goes.
        func bytesFreed(_ gone: [Removal]) -> Int64 {
            var freed: Int64 = 0
            for (_, names) in Dictionary(grouping: gone, by: { "\($0.member.device):\($0.member.inode)" }) {
                let links = (try? Directory.stat(PathText.bytes(names[0].member.path)).linkCount) ?? 1
                if links <= UInt64(names.count) { freed += names[0].size }
            }
            return freed
        }
        if mode == .trash {
            let freed = bytesFreed(removals)
            var preview = DeletePlanner.preview(
                DeleteRequest(paths: removals.map(\.member.path), permanent: false),
                library: library
            )
            preview.bytesFreed = freed
            if removals.isEmpty {
                preview.problems.append(ActionProblem(path: "", reason: "no extra copies to remove"))
            }
            return preview
        }
        var preview = ActionPreview(action: mode == .hardlink ? "dedup-link" : "dedup-reflink", destination: nil)
        var planned: [Removal] = []
        preview.verifyFull = true
        let volumes = Mounts.list()
        var refused = Set<String>()
        var unwritable = Set<String>()
        let hashes = try library.storedIntegrityHashes(
            removals.map { ($0.member.entryID, $0.member.size, $0.member.mtimeNanoseconds) }
        )
        for (keeper, member, size) in removals {
            guard let hash = hashes[member.entryID] else {
                preview.problems.append(ActionProblem(path: member.path, reason: "not verified by full hash"))
                continue
            }
            let folder = FileSystem.parent(of: member.path)
            if !FileSystem.canWrite(folder: folder) && unwritable.insert(folder).inserted {
                preview.problems.append(ActionProblem(path: folder, reason: "cannot write in this folder"))
            }
            if mode == .reflink, let volume = Mounts.volume(containing: member.path, in: volumes),
                !FileSystem.reflinkFilesystems.contains(volume.filesystem)
            {
                if refused.insert(volume.mountPoint).inserted {
                    preview.problems.append(
                        ActionProblem(
                            path: volume.mountPoint,
                            reason: "is \(volume.filesystem), which cannot share blocks between files (reflinks need "
                                + "btrfs, XFS with reflink or bcachefs); use --mode hardlink or --mode trash"
                        )
                    )
                }
                continue
            }
            let stat = try? Directory.stat(PathText.bytes(member.path))
            var op = FileOperation(
                kind: mode == .hardlink ? .link : .clone,
                source: keeper.path,
                target: member.path,
                size: size,
                files: 1
            )
            op.hash = hash
            op.mode = stat.map { $0.mode & 0o7777 }
            op.mtime = member.mtimeNanoseconds
            preview.operations.append(op)
            preview.files += 1
            preview.bytes += size
            planned.append((keeper, member, size))
        }
        preview.bytesFreed = bytesFreed(planned)
        if removals.isEmpty { preview.problems.append(ActionProblem(path: "", reason: "no extra copies to remove")) }
        return preview
    }

    static func chooseKeeper(_ members: [DuplicateGroup.Member], _ policy: KeepPolicy) -> DuplicateGroup.Member? {
        members.min { a, b in
            switch policy {
            case .oldest:
                return (a.mtimeNanoseconds, a.path.count, a.path) < (b.mtimeNanoseconds, b.path.count, b.path)
            case .newest:
                return (-a.mtimeNanoseconds, a.path.count, a.path) < (-b.mtimeNanoseconds, b.path.count, b.path)
            case .shortest:
                return (a.path.count, a.mtimeNanoseconds, a.path) < (b.path.count, b.mtimeNanoseconds, b.path)
            }
        }
    }

    /// Undoing a hard-link deduplication: each name that is still a link to the kept file gets its own copy
    /// again, with its old permissions and modification time. Refused for a name whose content changed since.
    static func undoPreview(_ record: UndoRecord, jobID: String) -> ActionPreview {
        var preview = ActionPreview(action: "dedup-separate", destination: nil)
        preview.verifyFull = true
        for item in record.items {
            guard FileSystem.exists(item.to) else {
                preview.problems.append(ActionProblem(path: item.to, reason: "is no longer there; cannot be put back"))
                continue
            }
            guard DedupJob.sameFile(item.from, item.to) else {
                preview.skipped += 1  // it has its own file already
                continue
            }
            var op = FileOperation(kind: .separate, source: item.from, target: item.to, files: 1)
            op.size = (try? Directory.stat(PathText.bytes(item.to))).map { Int64($0.size) } ?? 0
            op.hash = item.hash
            op.mode = item.mode
            op.mtime = item.mtime
            preview.operations.append(op)
            preview.files += 1
            preview.bytes += op.size
            preview.bytesToWrite += op.size
        }
        preview.destination = record.items.first.map { FileSystem.parent(of: $0.to) }
        if let destination = preview.destination {
            preview.freeBytes = Mounts.volume(containing: destination, in: Mounts.list()).map { Int64($0.freeBytes) }
        }
        if record.items.isEmpty { preview.problems.append(ActionProblem(path: "", reason: "nothing to undo")) }
        preview.undoes = jobID
        return preview
    }
}

/// Runs a deduplication (`dedup-link`, `dedup-reflink`) or its undo (`dedup-separate`).
///
/// Each step re-checks, at the moment it acts, that both files still have the full BLAKE3 the preview
/// verified (a file changed since is left as it is and reported); the new link or reflink is made under a
/// hidden temporary name beside the file and renamed over it, so the name always holds one complete file.
/// A batch ends with a flush of the filesystems touched and a checkpoint; a resumed run redoes the
/// steps of the batch it was in (each is safe to repeat).
public struct DedupJob: JobKind {
    public let kind: String
    let updater: (any IndexUpdater)?

    public init(kind: String, updater: (any IndexUpdater)? = nil) {
        self.kind = kind
        self.updater = updater
    }

    public static let kinds = ["dedup-link", "dedup-reflink", "dedup-separate"]

    /// Where a run got to, and the files it left alone.
    public struct Checkpoint: Codable, Sendable {
        public var next: Int
        public var skipped: [ActionProblem]
    }

    static let batchFiles = 512

    /// Whether both names are one file (one inode on one filesystem).
    static func sameFile(_ a: String, _ b: String) -> Bool {
        guard let x = FileSystem.identity(a), let y = FileSystem.identity(b) else { return false }
        return x.device == y.device && x.inode == y.inode
    }

    public func run(_ context: JobContext) async throws {
        let plan = try context.input(ActionPlan.self)
        let operations = plan.operations
        var checkpoint = try context.checkpoint(Checkpoint.self) ?? Checkpoint(next: 0, skipped: [])
        let interrupted = checkpoint.next > 0 || context.resumed
        let total = operations.reduce(Int64(0)) { $0 + $1.progressBytes }
        var done = operations.prefix(checkpoint.next).reduce(Int64(0)) { $0 + $1.progressBytes }
        let tag = String(context.record.id.prefix(8))
        var keptHashes: [String: String] = [:]
        func fullHash(_ path: String) -> String? {
            guard let reader = try? LocalFileReader(path: path) else { return nil }
            return try? ContentHasher.integrityHash(mapping: reader).hex
        }
        while checkpoint.next < operations.count {
            try Task.checkCancellation()
            let end = min(operations.count, checkpoint.next + Self.batchFiles)
            var touched: [UInt64: String] = [:]
            for index in checkpoint.next..<end {
                let op = operations[index]
                if op.skip { continue }
                let part =
                    FileSystem.parent(of: op.target)
                    + "/\(String(decoding: FolderListing.partPrefix, as: UTF8.self))\(tag)-\(index)"
                FileSystem.remove(part)
                let linked = Self.sameFile(op.source, op.target)
                // Done already (a resumed batch): a link is the kept file's inode; a separated file is not.
                if op.kind == .link && linked { continue }
                if op.kind == .separate && !linked { continue }
                if keptHashes[op.source] == nil { keptHashes[op.source] = fullHash(op.source) ?? "" }
                guard keptHashes[op.source] == op.hash else {
                    checkpoint.skipped.append(
                        ActionProblem(path: op.target, reason: "\(op.source) changed since the preview; left as it is")
                    )
                    continue
                }
                if op.kind != .separate {
                    guard fullHash(op.target) == op.hash else {
                        checkpoint.skipped.append(
                            ActionProblem(path: op.target, reason: "changed since the preview; left as it is")
                        )
                        continue
                    }
                }
                switch op.kind {
                case .link:
                    try FileSystem.hardLink(op.source, part)
                case .clone:
                    try FileSystem.cloneFile(from: op.source, to: part)
                    if let mode = op.mode, let mtime = op.mtime {
                        try FileSystem.setModeAndTime(part, mode: mode, mtimeNanoseconds: mtime)
                    }
                case .separate:
                    try FileSystem.copyFile(from: op.source, to: part)
                    guard fullHash(part) == op.hash else {
                        FileSystem.remove(part)
                        throw ActionError("the copy of \(op.source) does not match it (read back); nothing replaced")
                    }
                    if let mode = op.mode, let mtime = op.mtime {
                        try FileSystem.setModeAndTime(part, mode: mode, mtimeNanoseconds: mtime)
                    }
                default:
                    throw ActionError("a \(op.kind.rawValue) step cannot run in a \(kind) job")
                }
                try FileSystem.renameReplacing(part, to: op.target)
                if let device = FileSystem.identity(op.target)?.device { touched[device] = op.target }
            }
            for path in touched.values { try FileSystem.syncFileSystem(containing: FileSystem.parent(of: path)) }
            done += operations[checkpoint.next..<end].reduce(Int64(0)) { $0 + $1.progressBytes }
            checkpoint.next = end
            try context.save(done: done, total: total, checkpoint: checkpoint)
        }
        try finish(plan, context, interrupted: interrupted)
    }

    func finish(_ plan: ActionPlan, _ context: JobContext, interrupted: Bool) throws {
        let library = context.library
        let live = plan.operations.filter { !$0.skip }
        if let updater {
            try updater.foldersChanged(
                Set(live.map { FileSystem.parent(of: $0.target) }).sorted(),
                thorough: interrupted
            )
        }
        if let undone = plan.undoes { try library.markUndone(jobID: undone, by: context.record.id) }
        guard kind == "dedup-link" else { return }
        // What can be undone: the names now linked to their kept file.
        let linked = live.filter { Self.sameFile($0.source, $0.target) }
        let record = UndoRecord(
            action: kind,
            items: linked.map {
                var item = UndoRecord.Item(from: $0.source, to: $0.target, manifest: [:])
                item.hash = $0.hash
                item.mode = $0.mode
                item.mtime = $0.mtime
                return item
            },
            createFolders: [],
            removeFolders: []
        )
        try library.saveUndoRecord(jobID: context.record.id, action: kind, record: try record.json())
    }
}
