import Foundation
import SDCore
import SDStore
import SDSystem

/// How to reverse a completed move, rename or trashing: move each item back from where it went (`from`) to
/// where it was (`to`), but only if its files are still what they were then (`manifest`, by content id).
public struct UndoRecord: Codable, Sendable, Equatable {
    public struct Item: Codable, Sendable, Equatable {
        public var from: String
        public var to: String
        /// relative path -> content id hex (see `Manifest`), taken when the action completed.
        public var manifest: [String: String]
        /// A hard-link deduplication: the file's full BLAKE3, and its permissions and mtime before.
        public var hash: String?
        public var mode: UInt32?
        public var mtime: Int64?

        public init(from: String, to: String, manifest: [String: String]) {
            self.from = from
            self.to = to
            self.manifest = manifest
        }
    }

    /// 'move', 'rename' or 'trash'.
    public var action: String
    public var items: [Item]
    /// Folders the action removed (a cross-filesystem move's emptied sources): made again first.
    public var createFolders: [String]
    /// Folders the action made: removed at the end if empty.
    public var removeFolders: [String]
    /// For a trashing: its trash items (marked restored).
    public var trashItems: [String]?

    public init(
        action: String,
        items: [Item],
        createFolders: [String],
        removeFolders: [String],
        trashItems: [String]? = nil
    ) {
        self.action = action
        self.items = items
        self.createFolders = createFolders
        self.removeFolders = removeFolders
        self.trashItems = trashItems
    }

    func json() throws -> String {
        String(decoding: try JSONEncoder().encode(self), as: UTF8.self)
    }

    public static func decode(_ text: String) throws -> UndoRecord {
        try JSONDecoder().decode(UndoRecord.self, from: Data(text.utf8))
    }
}

public enum UndoPlanner {
    /// The action that reverses `record` (job `jobID`), as a preview: a move back (or a restore from the
    /// trash). Its problems say why it cannot be done: an item gone, changed since (by content id), or its
    /// old place taken.
    public static func preview(_ record: UndoRecord, jobID: String, library: Library) -> ActionPreview {
        if record.action == "dedup-link" { return DedupPlanner.undoPreview(record, jobID: jobID) }
        var preview = ActionPreview(action: record.action == "trash" ? "restore" : "move", destination: nil)
        // Each item is reversed if it still can be; the others are left as they are, and said (an item restored
        // from the trash by itself is already back). Only when nothing at all can be reversed is the undo refused.
        var present: [UndoRecord.Item] = []
        var left: [ActionProblem] = []
        let candidates = record.items.filter { FileSystem.exists($0.from) }
        let now = (try? Manifest.of(candidates.map(\.from))) ?? candidates.map { _ in [:] }
        let manifests = Dictionary(zip(candidates.map(\.from), now), uniquingKeysWith: { a, _ in a })
        for item in record.items {
            guard let manifest = manifests[item.from] else {
                let back =
                    FileSystem.exists(item.to) && (try? Manifest.of([item.to]).first).flatMap { $0 } == item.manifest
                left.append(
                    ActionProblem(
                        path: back ? item.to : item.from,
                        reason: back ? "is already back where it was" : "is no longer there; cannot be put back"
                    )
                )
                continue
            }
            if let difference = Manifest.difference(item.manifest, manifest) {
                left.append(ActionProblem(path: item.from, reason: "changed since (\(difference)); left where it is"))
            } else if FileSystem.exists(item.to) {
                left.append(ActionProblem(path: item.to, reason: "something else is there now; left where it is"))
            } else {
                present.append(item)
            }
        }
        if present.isEmpty {
            preview.problems += left
        } else if !left.isEmpty {
            preview.leftAsItIs = left
        }
        for folder in record.createFolders.reversed() where !FileSystem.isDirectory(folder) {
            preview.operations.append(FileOperation(kind: .folder, source: folder, target: folder))
        }
        // Parents of the old places that are gone are made again too.
        var made = Set(record.createFolders)
        for item in present {
            var missing: [String] = []
            var folder = FileSystem.parent(of: item.to)
            while !FileSystem.exists(folder) && !made.contains(folder) && folder != "/" {
                missing.append(folder)
                folder = FileSystem.parent(of: folder)
            }
            for folder in missing.reversed() {
                made.insert(folder)
                preview.operations.append(FileOperation(kind: .folder, source: folder, target: folder))
            }
        }
        var planner = TransferPlanner.Planner(policy: .fail, move: true)
        for item in present where !FileSystem.exists(item.to) {
            planner.sameFilesystem =
                FileSystem.identity(item.from)?.device
                == FileSystem.identity(Paths.existingAncestor(FileSystem.parent(of: item.to)))?.device
            planner.plan(item.from, item.to, &preview)
        }
        for folder in record.removeFolders where FileSystem.isDirectory(folder) {
            preview.operations.append(FileOperation(kind: .removeFolder, source: folder, target: folder))
        }
        preview.destination = record.items.first.map { FileSystem.parent(of: $0.to) }
        preview.trashItems = record.trashItems
        if let items = record.trashItems, items.count == record.items.count, present.count < record.items.count {
            // One trash item per undo item, in order: only the reversed ones are marked restored.
            let reversed = Set(present.map(\.from))
            preview.trashItems = zip(record.items, items).filter { reversed.contains($0.0.from) }.map(\.1)
        }
        if record.items.isEmpty { preview.problems.append(ActionProblem(path: "", reason: "nothing to undo")) }
        preview.undoes = jobID
        return preview
    }
}

/// A rename of one file or folder within its folder.
public enum RenamePlanner {
    public static func preview(path: String, newName: String, onConflict: ConflictPolicy = .fail) -> ActionPreview {
        let source = Paths.normalized(path)
        let target = FileSystem.parent(of: source) + "/" + newName
        var preview = ActionPreview(action: "rename", destination: FileSystem.parent(of: source))
        if let problem = Paths.nameProblem(newName) {
            preview.problems.append(ActionProblem(path: newName, reason: problem))
            return preview
        }
        guard let entry = try? Directory.stat(PathText.bytes(source)) else {
            preview.problems.append(ActionProblem(path: source, reason: "no such file or folder"))
            return preview
        }
        if target == source {
            preview.problems.append(ActionProblem(path: source, reason: "already has that name"))
            return preview
        }
        if !FileSystem.canWrite(folder: FileSystem.parent(of: source)) {
            preview.problems.append(ActionProblem(path: source, reason: "no permission to rename in this folder"))
        }
        let counts = TransferPlanner.Planner.count(source, entry)
        var op = FileOperation(kind: .rename, source: source, target: target, size: counts.bytes, files: counts.files)
        // Renaming only a letter's case on a filesystem that ignores case finds the file itself: no conflict.
        let same = FileSystem.identity(target).map { $0 == FileSystem.identity(source)! } ?? false
        if FileSystem.exists(target) && !same {
            switch onConflict {
            case .fail, .skip:
                op.conflict = "exists"
                preview.problems.append(ActionProblem(path: target, reason: "already exists (see --on-conflict)"))
            case .overwrite:
                if entry.type == .directory || FileSystem.isDirectory(target) {
                    op.conflict = "exists"
                    preview.problems.append(ActionProblem(path: target, reason: "a folder cannot be replaced"))
                } else {
                    op.conflict = "overwrite"
                }
            case .rename:
                op.conflict = "rename"
                op.target = Paths.freeName(target, [])
            }
            preview.conflicts.append(op)
        }
        preview.files = counts.files
        preview.folders = counts.folders
        preview.symlinks = counts.symlinks
        preview.bytes = counts.bytes
        preview.operations = [op]
        return preview
    }
}

/// Making folders (with their missing parents, as `mkdir -p`).
public enum MakeFolderPlanner {
    public static func preview(paths: [String]) -> ActionPreview {
        var preview = ActionPreview(action: "mkdir", destination: paths.first.map(Paths.normalized))
        var planned = Set<String>()
        for raw in paths {
            let path = Paths.normalized(raw)
            if FileSystem.isDirectory(path) {
                preview.problems.append(ActionProblem(path: path, reason: "already exists"))
                continue
            }
            var missing: [String] = []
            var folder = path
            while !FileSystem.exists(folder) && folder != "/" {
                missing.append(folder)
                folder = FileSystem.parent(of: folder)
            }
            if !FileSystem.isDirectory(folder) {
                preview.problems.append(ActionProblem(path: folder, reason: "is a file, not a folder"))
                continue
            }
            if !FileSystem.canWrite(folder: folder) {
                preview.problems.append(ActionProblem(path: folder, reason: "no permission to write in this folder"))
            }
            for component in missing.reversed() where planned.insert(component).inserted {
                if let problem = Paths.nameProblem(Paths.basename(component)) {
                    preview.problems.append(ActionProblem(path: component, reason: problem))
                }
                preview.operations.append(FileOperation(kind: .folder, source: component, target: component))
                preview.folders += 1
            }
        }
        return preview
    }
}
