import Foundation
import SDCore
import SDStore
import SDSystem

/// A copy or a move as asked: sources and a destination (absolute paths), as `cp -r` and `mv` take them.
public struct TransferRequest: Codable, Sendable, Equatable {
    public var sources: [String]
    public var destination: String
    public var onConflict: ConflictPolicy
    /// Verify each copy by the BLAKE3 of all its bytes rather than by its content id.
    public var verifyFull: Bool

    public init(sources: [String], destination: String, onConflict: ConflictPolicy = .fail, verifyFull: Bool = false) {
        self.sources = sources
        self.destination = destination
        self.onConflict = onConflict
        self.verifyFull = verifyFull
    }
}

extension ActionPreview {
    /// What `policy` makes of an operation whose target exists (or is taken by an earlier operation): a
    /// problem (fail; a folder and a file cannot replace each other), a skip, an overwrite, or a free name.
    /// The operation is listed among the conflicts.
    /// `exists` and `isFolder` tell what is at a path where the files go (this disk unless given).
    public mutating func resolveConflict(
        _ op: inout FileOperation,
        policy: ConflictPolicy,
        taken: Set<String>,
        exists: (String) -> Bool = FileSystem.exists,
        isFolder: (String) -> Bool = FileSystem.isDirectory
    ) {
        switch policy {
        case .fail:
            op.conflict = "exists"
            problems.append(ActionProblem(path: op.target, reason: "already exists (see --on-conflict)"))
        case .skip:
            op.conflict = "skip"
            op.skip = true
        case .overwrite:
            if op.kind == .folder || isFolder(op.target) {
                op.conflict = "exists"
                problems.append(
                    ActionProblem(path: op.target, reason: "a folder and a file cannot replace each other")
                )
            } else {
                op.conflict = "overwrite"
            }
        case .rename:
            op.conflict = "rename"
            op.target = Paths.freeName(op.target, taken, exists: exists)
        }
        conflicts.append(op)
    }
}

/// Simulates copies and moves on the disk's current state (a listing and a stat per file; no file is read or
/// written) and on the index (content already present at the target).
///
/// A move on one filesystem is a rename per source (the whole subtree at once); across filesystems it is a
/// copy of every file, each verified, then the removal of the source (files once their copies are safely on
/// disk, folders once empty). Moving a folder onto an existing folder merges them, as copying does.
public enum TransferPlanner {
    public static func preview(copy request: TransferRequest, library: Library?) -> ActionPreview {
        preview(request, move: false, library: library)
    }

    public static func preview(move request: TransferRequest, library: Library?) -> ActionPreview {
        preview(request, move: true, library: library)
    }

    static func preview(_ request: TransferRequest, move: Bool, library: Library?) -> ActionPreview {
        let verb = move ? "moved" : "copied"
        let destination = Paths.normalized(request.destination)
        var preview = ActionPreview(action: move ? "move" : "copy", destination: destination)
        preview.verifyFull = request.verifyFull
        let intoFolder = FileSystem.isDirectory(destination)
        if request.sources.isEmpty {
            preview.problems.append(ActionProblem(path: destination, reason: "nothing to \(move ? "move" : "copy")"))
        }
        if request.sources.count > 1 && !intoFolder {
            preview.problems.append(
                ActionProblem(path: destination, reason: "several sources need an existing folder to go into")
            )
            return preview
        }
        var planner = Planner(policy: request.onConflict, move: move)
        for rawSource in request.sources {
            let source = Paths.normalized(rawSource)
            guard FileSystem.exists(source) else {
                preview.problems.append(ActionProblem(path: source, reason: "no such file or folder"))
                continue
            }
            let target = intoFolder ? destination + "/" + Paths.basename(source) : destination
            let folder = FileSystem.parent(of: target)
            if !intoFolder && !FileSystem.isDirectory(folder) {
                preview.problems.append(ActionProblem(path: target, reason: "its folder does not exist"))
                continue
            }
            if let a = FileSystem.identity(source), let b = FileSystem.identity(target), a == b {
                preview.problems.append(ActionProblem(path: source, reason: "source and target are the same file"))
                continue
            }
            if FileSystem.isDirectory(source) && Paths.isInside(target, source) {
                preview.problems.append(ActionProblem(path: source, reason: "a folder cannot be \(verb) into itself"))
                continue
            }
            if move && source == "/" {
                preview.problems.append(ActionProblem(path: source, reason: "the root folder cannot be moved"))
                continue
            }
            if move && !FileSystem.canWrite(folder: FileSystem.parent(of: source)) {
                preview.problems.append(
                    ActionProblem(path: source, reason: "no permission to remove it from its folder")
                )
                continue
            }
            planner.sameFilesystem =
                move
                && FileSystem.identity(source)?.device == FileSystem.identity(Paths.existingAncestor(folder))?.device
            planner.plan(source, target, &preview)
        }
        // Permission and names, checked once per folder written into.
        var checked = Set<String>()
        for op in preview.operations where !op.skip && op.kind != .removeFolder {
            let folder = FileSystem.parent(of: op.target)
            if FileSystem.isDirectory(folder) && checked.insert(folder).inserted && !FileSystem.canWrite(folder: folder)
            {
                preview.problems.append(ActionProblem(path: folder, reason: "no permission to write in this folder"))
            }
            if let problem = Paths.nameProblem(Paths.basename(op.target)) {
                preview.problems.append(ActionProblem(path: op.target, reason: problem))
            }
        }
        let existing = Paths.existingAncestor(destination)
        if preview.bytesToWrite > 0 || !move {
            preview.freeBytes = Mounts.volume(containing: existing, in: Mounts.list()).map { Int64($0.freeBytes) }
        }
        // Only sources inside the library's locations have content ids to compare.
        let roots = ((try? library?.fetchLocations()) ?? []).map { PathText.string($0.path) }
        let indexed = request.sources.map(Paths.normalized).contains { source in
            roots.contains { Paths.isInside(source, $0) }
        }
        if let library, indexed, let device = FileSystem.identity(existing)?.device {
            let files = preview.operations.filter { $0.kind == .file && !$0.skip }
            let present = (try? library.contentPresent(ofFilesAt: files.map(\.source), onDevice: device)) ?? []
            for op in files where present.contains(op.source) {
                preview.alreadyThere += 1
                preview.alreadyThereBytes += op.size
            }
        }
        preview.refuseTargetsOutsideDestination()
        // Measured on this machine's disk: about 1 GB/s for large files, 0.1 ms a file written, 10 us a rename.
        let written = preview.operations.filter { $0.kind == .file && !$0.skip }.count
        preview.estimatedSeconds =
            Double(preview.bytesToWrite) / 1e9 + Double(written) * 1e-4
            + Double(preview.operations.count - written) * 1e-5
        return preview
    }

    /// The recursive part of planning: one source and its target at a time.
    struct Planner {
        let policy: ConflictPolicy
        let move: Bool
        var sameFilesystem = false
        var taken = Set<String>()

        init(policy: ConflictPolicy, move: Bool) {
            self.policy = policy
            self.move = move
        }

        /// `listed`: the source's stat from its folder's listing (else it is stat'ed); `newFolder`: the target's
        /// folder is made by this plan, so nothing can be in the way on disk.
        mutating func plan(
            _ source: String,
            _ target: String,
            _ preview: inout ActionPreview,
            listed: RawEntry? = nil,
            newFolder: Bool = false
        ) {
            guard
                let entry = listed.flatMap({ $0.error == nil ? $0 : nil })
                    ?? (try? Directory.stat(PathText.bytes(source)))
            else {
                preview.problems.append(ActionProblem(path: source, reason: "cannot be read"))
                return
            }
            let kind: FileOperation.Kind
            switch entry.type {
            case .directory: kind = .folder
            case .symlink: kind = .symlink
            case .regular: kind = .file
            default:
                preview.problems.append(ActionProblem(path: source, reason: "not a file, folder or symbolic link"))
                return
            }
            var op = FileOperation(kind: kind, source: source, target: target, removeSource: move)
            if kind == .file {
                op.size = Int64(entry.size)
                op.files = 1
            }
            var merge = false
            if taken.contains(target) || (!newFolder && FileSystem.exists(target)) {
                if kind == .folder && FileSystem.isDirectory(target) {
                    // Into an existing folder: the two merge; conflicts are per file below.
                    merge = true
                } else {
                    preview.resolveConflict(&op, policy: policy, taken: taken)
                }
            }
            taken.insert(op.target)
            if op.skip {
                preview.operations.append(op)
                preview.skipped += 1
                return
            }
            if move && sameFilesystem && !merge {
                // One rename moves the whole subtree.
                op.kind = .rename
                let counts = Self.count(source, entry)
                op.size = counts.bytes
                op.files = counts.files
                preview.files += counts.files
                preview.folders += counts.folders
                preview.symlinks += counts.symlinks
                preview.bytes += counts.bytes
                preview.operations.append(op)
                return
            }
            switch kind {
            case .file:
                preview.files += 1
                preview.bytes += op.size
                preview.bytesToWrite += op.size
                preview.operations.append(op)
            case .symlink:
                preview.symlinks += 1
                preview.operations.append(op)
            case .folder:
                preview.folders += 1
                op.removeSource = false
                if !merge { preview.operations.append(op) }
                guard let children = try? Directory.list(PathText.bytes(source)) else {
                    preview.problems.append(ActionProblem(path: source, reason: "cannot list this folder"))
                    return
                }
                for child in children.sorted(by: { $0.name.lexicographicallyPrecedes($1.name) }) {
                    let name = PathText.string(child.name)
                    plan(source + "/" + name, op.target + "/" + name, &preview, listed: child, newFolder: !merge)
                }
                if move {
                    preview.operations.append(FileOperation(kind: .removeFolder, source: source, target: op.target))
                }
            case .rename, .removeFolder, .trash, .delete, .link, .clone, .separate, .tag:
                break
            }
        }

        /// Files, folders, links and bytes in a tree (the root included).
        static func count(_ path: String, _ entry: RawEntry) -> (files: Int, folders: Int, symlinks: Int, bytes: Int64)
        {
            switch entry.type {
            case .regular: return (1, 0, 0, Int64(entry.size))
            case .symlink: return (0, 0, 1, 0)
            case .directory:
                var total = (files: 0, folders: 1, symlinks: 0, bytes: Int64(0))
                for child in (try? Directory.list(PathText.bytes(path))) ?? [] {
                    let c = count(path + "/" + PathText.string(child.name), child)
                    total.files += c.files
                    total.folders += c.folders
                    total.symlinks += c.symlinks
                    total.bytes += c.bytes
                }
                return total
            default: return (0, 0, 0, 0)
            }
        }
    }
}
