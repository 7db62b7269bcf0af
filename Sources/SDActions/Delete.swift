import Foundation
import SDCore
import SDJobs
import SDStore
import SDSystem

/// A deletion as asked: into the library's trash (the default), or for good.
public struct DeleteRequest: Codable, Sendable, Equatable {
    public var paths: [String]
    public var permanent: Bool
    /// Allow leaving content with fewer copies than `min-copies`.
    public var forceLastCopy: Bool

    public init(paths: [String], permanent: Bool = false, forceLastCopy: Bool = false) {
        self.paths = paths
        self.permanent = permanent
        self.forceLastCopy = forceLastCopy
    }
}

/// Where trashed things go: a folder on the same filesystem, so that trashing is a rename. On the library's
/// own filesystem that is `trash/` in the library; elsewhere `.sd-trash-UID/LIBRARY-ID/` at the top of the
/// filesystem (as the freedesktop trash does). The index never lists these folders.
public enum Trash {
    public static let folderPrefix = String(decoding: FolderListing.trashPrefix, as: UTF8.self)

    public static func root(for path: String, library: Library) -> String? {
        guard let device = FileSystem.identity(Paths.existingAncestor(path))?.device else { return nil }
        if FileSystem.identity(library.path)?.device == device { return library.path + "/trash" }
        guard let volume = Mounts.volume(containing: path, in: Mounts.list()) else { return nil }
        let top = volume.mountPoint == "/" ? "" : volume.mountPoint
        let root = "\(top)/\(folderPrefix)\(getuid())/\(library.manifest.id)"
        if FileSystem.isDirectory(root) { return root }
        let parent = FileSystem.parent(of: FileSystem.parent(of: root))
        return FileSystem.canWrite(folder: parent) ? root : nil
    }
}

public enum DeletePlanner {
    /// Simulates a deletion: what goes, how much, and (for a permanent one) which files would be left with
    /// fewer copies than `min-copies`, listed first. Reads no file's content except to identify files the
    /// index does not know, for the copies count of a permanent deletion.
    public static func preview(_ request: DeleteRequest, library: Library) -> ActionPreview {
        var preview = ActionPreview(action: request.permanent ? "delete" : "trash", destination: nil)
        preview.forceLastCopy = request.forceLastCopy
        let paths = request.paths.map(Paths.normalized)
        if paths.isEmpty { preview.problems.append(ActionProblem(path: "", reason: "nothing to delete")) }
        // A path inside another one asked for goes with it.
        let roots = paths.enumerated().filter { i, path in
            !paths.enumerated().contains { j, other in j != i && other != path && Paths.isInside(path, other) }
                && paths.firstIndex(of: path) == i
        }.map(\.element)
        for path in roots {
            guard let entry = try? Directory.stat(PathText.bytes(path)) else {
                preview.problems.append(
                    ActionProblem(
                        path: path,
                        reason: FileSystem.exists(path) ? "cannot be read" : "no such file or folder"
                    )
                )
                continue
            }
            if path == "/" || Paths.isInside(library.path, path) {
                preview.problems.append(ActionProblem(path: path, reason: "holds the library itself; not deleted"))
                continue
            }
            if !FileSystem.canWrite(folder: FileSystem.parent(of: path)) {
                preview.problems.append(ActionProblem(path: path, reason: "no permission to remove it from its folder"))
                continue
            }
            let counts = TransferPlanner.Planner.count(path, entry)
            preview.files += counts.files
            preview.folders += counts.folders
            preview.symlinks += counts.symlinks
            preview.bytes += counts.bytes
            var op = FileOperation(kind: .delete, source: path, target: "", size: counts.bytes, files: counts.files)
            if !request.permanent {
                guard let trash = Trash.root(for: path, library: library) else {
                    preview.problems.append(
                        ActionProblem(
                            path: path,
                            reason: "no trash folder can be made on its filesystem; use --permanent"
                        )
                    )
                    continue
                }
                op.kind = .trash
                op.target = "\(trash)/\(UUID().lowercased)/\(Paths.basename(path))"
            }
            preview.operations.append(op)
        }
        if request.permanent {
            preview.lastCopies = (try? Copies.belowMinimum(deleting: preview.operations.map(\.source), library)) ?? []
        }
        // Links that point at what goes, or share its bytes: named, so that nothing breaks unannounced.
        let links = LinkCheck.leftBehind(removing: preview.operations.map(\.source), library: library)
        if !links.notes.isEmpty { preview.links = links.notes }
        if links.more > 0 { preview.linksNotListed = links.more }
        preview.estimatedSeconds = Double(preview.files) * 2e-5 + Double(preview.operations.count) * 1e-4
        return preview
    }

    /// Emptying the trash (all of it, or the given items): a permanent deletion of the trash folders, with
    /// the same `min-copies` rule (the trash does not count as a copy).
    public static func preview(emptying items: [TrashItem], forceLastCopy: Bool, library: Library) -> ActionPreview {
        var preview = ActionPreview(action: "empty-trash", destination: nil)
        preview.forceLastCopy = forceLastCopy
        preview.trashItems = items.map(\.id)
        for item in items {
            let folder = FileSystem.parent(of: item.trashPath)
            preview.operations.append(
                FileOperation(kind: .delete, source: folder, target: "", size: item.bytes, files: Int(item.files))
            )
            preview.files += Int(item.files)
            preview.bytes += item.bytes
        }
        preview.lastCopies =
            (try? Copies.belowMinimum(deleting: preview.operations.map(\.source), library)) ?? []
        return preview
    }
}

/// Counting copies of content across the library, for `min-copies`.
public enum Copies {
    /// A file under the roots being deleted, what it holds, how many copies it must keep, and the copies of its
    /// content outside the roots (per the index).
    struct Requirement {
        var path: String
        var size: Int64
        var content: ContentID
        var required: Int
        var others: [(path: String, local: Bool, online: Bool)]
    }

    /// Every non-empty file under `roots` with its requirement; files the index does not know are identified
    /// here.
    static func requirements(deleting roots: [String], _ library: Library) throws -> [Requirement] {
        let hasher = ContentHasher()
        let all = try files(under: roots)
        let known = try library.indexedFiles(at: all.map(\.path))
        var result: [Requirement] = []
        for file in all where file.size > 0 {
            guard
                let content = try known[file.path]?.content
                    ?? hasher.contentID(of: try LocalFileReader(path: file.path))
            else { continue }
            result.append(
                Requirement(
                    path: file.path,
                    size: file.size,
                    content: content,
                    required: try library.minCopies(entry: known[file.path]?.id, content: content),
                    others: try library.copies(of: content).filter { copy in
                        !roots.contains { Paths.isInside(copy.path, $0) }
                    }
                )
            )
        }
        return result
    }

    /// The files under `roots` whose content would keep fewer copies than required once `roots` are gone:
    /// counted on the index by content id.
    static func belowMinimum(deleting roots: [String], _ library: Library) throws -> [LastCopy] {
        try requirements(deleting: roots, library).filter { $0.others.count < $0.required }.map {
            LastCopy(
                path: $0.path,
                contentID: $0.content.hex,
                size: $0.size,
                remaining: $0.others.count,
                required: $0.required
            )
        }
    }

    /// Confirms by full BLAKE3 that each file under `roots` keeps `min-copies` copies elsewhere: only copies
    /// on this device, reachable now and equal in every byte count. Throws `ActionError` naming the first file
    /// that does not.
    static func confirm(deleting roots: [String], _ library: Library) throws {
        var confirmed: [String: IntegrityHash] = [:]
        func fullHash(_ path: String) -> IntegrityHash? {
            if let known = confirmed[path] { return known }
            guard let reader = try? LocalFileReader(path: path),
                let hash = try? ContentHasher.integrityHash(mapping: reader)
            else { return nil }
            confirmed[path] = hash
            return hash
        }
        for file in try requirements(deleting: roots, library) where file.required > 0 {
            guard let own = fullHash(file.path) else {
                throw ActionError("\(file.path) cannot be read to confirm its copies; nothing more was deleted")
            }
            var count = 0
            for copy in file.others where copy.local {
                if fullHash(copy.path) == own { count += 1 }
                if count >= file.required { break }
            }
            if count < file.required {
                throw ActionError(
                    "\(file.path): only \(count) verified cop\(count == 1 ? "y" : "ies") would remain of the "
                        + "\(file.required) min-copies asks (copies confirmed by full BLAKE3); nothing more was deleted "
                        + "(--force-last-copy to delete anyway)"
                )
            }
        }
    }

    static func files(under roots: [String]) throws -> [(path: String, size: Int64)] {
        var result: [(String, Int64)] = []
        func walk(_ path: String, _ entry: RawEntry) {
            switch entry.type {
            case .regular: result.append((path, Int64(entry.size)))
            case .directory:
                for child in (try? Directory.list(PathText.bytes(path))) ?? [] {
                    walk(path + "/" + PathText.string(child.name), child)
                }
            default: break
            }
        }
        for root in roots {
            if let entry = try? Directory.stat(PathText.bytes(root)) { walk(root, entry) }
        }
        return result
    }
}

/// The job that trashes or deletes: `trash` steps rename into the trash folder (recorded in `trash_items`
/// first, so that a crash at any moment leaves the item findable), `delete` steps remove for good, after the
/// copies `min-copies` asks for are confirmed by full hash. When done the index is brought up to date and a
/// trashing records how to undo it.
public struct DeleteJob: JobKind {
    public let kind: String
    let updater: (any IndexUpdater)?

    /// `kind`: 'trash', 'delete' or 'empty-trash'.
    public init(kind: String, updater: (any IndexUpdater)? = nil) {
        self.kind = kind
        self.updater = updater
    }

    public static let kinds = ["trash", "delete", "empty-trash"]

    public func run(_ context: JobContext) async throws {
        let plan = try context.input(ActionPlan.self)
        let library = context.library
        var next = try context.checkpoint(Int.self) ?? 0
        let interrupted = next > 0 || context.resumed
        let total = plan.operations.reduce(Int64(0)) { $0 + $1.progressBytes }
        var done = plan.operations.prefix(next).reduce(Int64(0)) { $0 + $1.progressBytes }
        let deleting = plan.operations[next...].filter { $0.kind == .delete }.map(\.source)
        if !deleting.isEmpty && !plan.forceLastCopy { try Copies.confirm(deleting: deleting, library) }
        while next < plan.operations.count {
            try Task.checkCancellation()
            let op = plan.operations[next]
            switch op.kind {
            case .trash:
                let id = Paths.basename(FileSystem.parent(of: op.target))
                var item = TrashItem(
                    id: id,
                    jobID: context.record.id,
                    originalPath: op.source,
                    trashPath: op.target,
                    kind: FileSystem.isDirectory(op.source) ? "folder" : "file",
                    files: Int64(op.files),
                    bytes: op.size,
                    deletedAt: Library.nowMilliseconds(),
                    state: "pending"
                )
                if let entry = try? Directory.stat(PathText.bytes(op.source)), entry.type == .symlink {
                    item.kind = "symlink"
                }
                try library.insertTrashItem(item)
                if FileSystem.exists(op.source) && !FileSystem.exists(op.target) {
                    try FileSystem.makeDirectories(FileSystem.parent(of: op.target), mode: 0o700)
                    try FileSystem.renameNoReplace(op.source, to: op.target)
                    try FileSystem.syncDirectory(containing: op.source)
                    try FileSystem.syncDirectory(containing: op.target)
                }
                try library.updateTrashItem(id: id, state: "trashed")
            case .delete:
                try FileSystem.removeTreeReporting(op.source)
                try FileSystem.syncDirectory(containing: op.source)
            default:
                throw ActionError("a \(op.kind.rawValue) step cannot run in a \(kind) job")
            }
            done += op.progressBytes
            next += 1
            try context.save(done: done, total: total, checkpoint: next)
        }
        try finish(plan, context, interrupted: interrupted)
    }

    func finish(_ plan: ActionPlan, _ context: JobContext, interrupted: Bool) throws {
        let library = context.library
        if kind == "empty-trash" {
            for id in plan.trashItems ?? [] { try library.updateTrashItem(id: id, state: "purged") }
            return
        }
        if let updater {
            try updater.foldersChanged(
                Set(plan.operations.map { FileSystem.parent(of: $0.source) }).sorted(),
                thorough: interrupted
            )
        }
        let trashed = plan.operations.filter { $0.kind == .trash }
        guard !trashed.isEmpty else { return }
        let manifests = try Manifest.of(trashed.map(\.target))
        for (op, manifest) in zip(trashed, manifests) {
            try library.updateTrashItem(
                id: Paths.basename(FileSystem.parent(of: op.target)),
                state: "trashed",
                manifest: manifest
            )
        }
        let record = UndoRecord(
            action: "trash",
            items: zip(trashed, manifests).map { UndoRecord.Item(from: $0.target, to: $0.source, manifest: $1) },
            createFolders: [],
            removeFolders: trashed.map { FileSystem.parent(of: $0.target) },
            trashItems: trashed.map { Paths.basename(FileSystem.parent(of: $0.target)) }
        )
        try library.saveUndoRecord(jobID: context.record.id, action: "trash", record: try record.json())
    }
}
