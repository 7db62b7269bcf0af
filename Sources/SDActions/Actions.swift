import Foundation
import SDCore
import SDStore
import SDSystem

/// What to do when a target already exists.
public enum ConflictPolicy: String, Codable, Sendable, CaseIterable {
    /// Refuse the whole action (the default): the preview lists the conflicts.
    case fail
    /// Leave the existing target, do the rest.
    case skip
    /// Replace the existing file (only once the new copy is complete and verified).
    case overwrite
    /// Write under a free name: `name (1).ext`.
    case rename
}

/// One step of a file action.
public struct FileOperation: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// Make the folder `target` (copies, cross-filesystem moves, mkdir).
        case folder
        /// Copy the file `source` to `target` (verified), then remove `source` when `removeSource`.
        case file
        /// Make the symbolic link `target` like `source`, then remove `source` when `removeSource`.
        case symlink
        /// Rename `source` to `target` on one filesystem: the whole subtree in one step.
        case rename
        /// Remove the folder `source` if it is empty (the end of a cross-filesystem move).
        case removeFolder
        /// Move `source` into the trash folder `target` (a rename on its filesystem).
        case trash
        /// Remove `source` and everything below it, for good.
        case delete
        /// Replace the file `target` by a hard link to `source` (deduplication; both verified equal to `hash`).
        case link
        /// Replace the file `target` by a reflink of `source` (deduplication; both verified equal to `hash`).
        case clone
        /// Give `target`, a hard link to `source`, its own copy again (undoing `link`), with `mode` and `mtime`.
        case separate
        /// Put the tag named `target` on the indexed file or folder `source` (or take it off: the plan's action
        /// says which); no file is touched.
        case tag
    }

    public var kind: Kind
    public var source: String
    public var target: String
    /// Bytes of the file, or of every file below a renamed, trashed or deleted folder.
    public var size: Int64
    /// Files this step covers (1 for a file; all below for a renamed, trashed or deleted folder).
    public var files: Int
    /// The target existed: 'skip', 'overwrite' or 'rename' (then `target` is the free name), or 'exists'.
    public var conflict: String?
    /// Nothing to do (the target is kept).
    public var skip: Bool
    public var removeSource: Bool
    /// Deduplication: the full BLAKE3 (hex) both files must have when the step runs.
    public var hash: String?
    /// Deduplication: `target`'s permission bits and modification time (ns) before it was replaced.
    public var mode: UInt32?
    public var mtime: Int64?
    /// Tagging: this copy changes because it has the content of the named path `sameContentAs` (a tag is kept
    /// on the content).
    public var sameContentAs: String?

    public init(
        kind: Kind,
        source: String,
        target: String,
        size: Int64 = 0,
        files: Int = 0,
        conflict: String? = nil,
        skip: Bool = false,
        removeSource: Bool = false
    ) {
        self.kind = kind
        self.source = source
        self.target = target
        self.size = size
        self.files = files
        self.conflict = conflict
        self.skip = skip
        self.removeSource = removeSource
    }

    enum CodingKeys: String, CodingKey {
        case kind, source, target, size, files, conflict, skip, removeSource, hash, mode, mtime
    }

    // Defaults are left out: a 10,000-file plan is the job's input, encoded once and decoded at every start.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decode(Kind.self, forKey: .kind)
        source = try c.decode(String.self, forKey: .source)
        target = try c.decode(String.self, forKey: .target)
        size = try c.decodeIfPresent(Int64.self, forKey: .size) ?? 0
        files = try c.decodeIfPresent(Int.self, forKey: .files) ?? 0
        conflict = try c.decodeIfPresent(String.self, forKey: .conflict)
        skip = try c.decodeIfPresent(Bool.self, forKey: .skip) ?? false
        removeSource = try c.decodeIfPresent(Bool.self, forKey: .removeSource) ?? false
        hash = try c.decodeIfPresent(String.self, forKey: .hash)
        mode = try c.decodeIfPresent(UInt32.self, forKey: .mode)
        mtime = try c.decodeIfPresent(Int64.self, forKey: .mtime)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        try c.encode(source, forKey: .source)
        try c.encode(target, forKey: .target)
        if size != 0 { try c.encode(size, forKey: .size) }
        if files != 0 { try c.encode(files, forKey: .files) }
        try c.encodeIfPresent(conflict, forKey: .conflict)
        if skip { try c.encode(skip, forKey: .skip) }
        if removeSource { try c.encode(removeSource, forKey: .removeSource) }
        try c.encodeIfPresent(hash, forKey: .hash)
        try c.encodeIfPresent(mode, forKey: .mode)
        try c.encodeIfPresent(mtime, forKey: .mtime)
    }

    /// Bytes this step accounts for in the job's progress.
    public var progressBytes: Int64 {
        guard !skip else { return 0 }
        switch kind {
        case .file, .rename, .trash, .delete, .link, .clone, .separate: return size
        case .folder, .symlink, .removeFolder, .tag: return 0
        }
    }
}

/// Why an action cannot go ahead as asked.
public struct ActionProblem: Codable, Sendable, Equatable {
    public var path: String
    public var reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
}

/// A file whose content would be left with fewer copies than the library's `min-copies` asks.
public struct LastCopy: Codable, Sendable, Equatable {
    public var path: String
    public var contentID: String?
    public var size: Int64
    /// Copies that remain once the action is done (per the index, sampled ids; the job confirms by full hash).
    public var remaining: Int
    public var required: Int
}

/// An action simulated: what it would do, what it needs, what stands in its way. Nothing is written to make it.
public struct ActionPreview: Codable, Sendable {
    /// 'copy', 'move', 'trash', 'delete', 'rename', 'mkdir'.
    public var action: String
    /// Where the action writes (the destination), for the space check.
    public var destination: String?
    public var operations: [FileOperation] = []
    public var files = 0
    public var folders = 0
    public var symlinks = 0
    /// Bytes of the files the action copies, moves or deletes.
    public var bytes: Int64 = 0
    /// Bytes written on the destination's volume (0 for a rename on one filesystem).
    public var bytesToWrite: Int64 = 0
    public var skipped = 0
    /// Deduplication: bytes the disks get back (for a trashing, once the trash is emptied).
    public var bytesFreed: Int64?
    /// Free space where the copies go (nil when it cannot be read or nothing is written).
    public var freeBytes: Int64?
    /// Files whose content the library already knows on the target's filesystem (a copy of it exists there).
    public var alreadyThere = 0
    public var alreadyThereBytes: Int64 = 0
    public var conflicts: [FileOperation] = []
    public var problems: [ActionProblem] = []
    /// Files that would fall below `min-copies` (a permanent delete refuses unless forced).
    public var lastCopies: [LastCopy] = []
    /// Whether the user allowed going below `min-copies` (`--force-last-copy`).
    public var forceLastCopy = false
    public var estimatedSeconds = 0.0
    /// Tagging: copies of the changed contents on other devices, which the change reaches too (by sync).
    public var copiesOnOtherDevices: Int?
    /// Removals: the links left behind (symbolic links that would dangle, hard links that keep the bytes).
    public var links: [LinkNote]?
    /// Removals: links left behind beyond those listed in `links`.
    public var linksNotListed: Int?
    /// An undo: what it leaves as it is, and why (already put back, gone, changed since, its place taken); the
    /// rest is reversed.
    public var leftAsItIs: [ActionProblem]?

    public init(action: String, destination: String?) {
        self.action = action
        self.destination = destination
    }

    public var fits: Bool { freeBytes.map { bytesToWrite <= $0 } ?? true }
    public var canCommit: Bool { problems.isEmpty && fits && (lastCopies.isEmpty || forceLastCopy) }

    /// Why the action cannot commit, in one line per reason.
    public var refusals: [String] {
        var lines = problems.map { "\($0.path): \($0.reason)" }
        if !fits {
            lines.append("needs \(bytesToWrite) bytes on the destination's volume; \(freeBytes ?? 0) are free")
        }
        if !lastCopies.isEmpty && !forceLastCopy {
            lines.append(
                "\(lastCopies.count) file(s) would be left with fewer copies than min-copies (--force-last-copy)"
            )
        }
        return lines
    }

    /// The job input for committing this preview.
    public var plan: ActionPlan {
        ActionPlan(
            action: action,
            destination: destination,
            operations: operations,
            verifyFull: verifyFull,
            forceLastCopy: forceLastCopy,
            undoes: undoes,
            trashItems: trashItems
        )
    }

    /// Verify copies by the BLAKE3 of all their bytes.
    public var verifyFull = false
    /// A restore or an emptying of the trash: the items concerned.
    public var trashItems: [String]?
    /// An undo: the job it reverses.
    public var undoes: String?
}

/// A committed action: the job's input, exactly the operations its preview listed.
public struct ActionPlan: Codable, Sendable {
    public var action: String
    public var destination: String?
    public var operations: [FileOperation]
    public var verifyFull: Bool
    public var forceLastCopy: Bool
    /// When this action reverses another: that action's job id (marked undone when this one completes).
    public var undoes: String?
    /// A restore or an emptying of the trash: the trash items it handles (marked when it completes).
    public var trashItems: [String]?
}

extension ActionPlan {
    /// Why an operation's target may not be written: not a plain absolute path (`.`, `..`, NUL, `//`), or, for
    /// a copy, move or rename, not inside the action's destination. Nil when every target is fine.
    public func targetProblem() -> String? {
        Self.targetProblem(action: action, destination: destination, targets: operations.writtenTargets)
    }

    static func targetProblem(action: String, destination: String?, targets: [String]) -> String? {
        let contained = ["copy", "move", "peer-copy", "rename"].contains(action)
        let folder = destination.flatMap { try? PlainPath.components(PathText.bytes($0), controlBytes: true) }
        for target in targets {
            guard let names = try? PlainPath.components(PathText.bytes(target), controlBytes: true) else {
                return
                    "the target \(PlainPath.shown(PathText.bytes(target))) is not a plain absolute path; nothing was done"
            }
            if contained, let folder, !PlainPath.isWithin(names, folder) {
                return "the target \(target) lies outside the destination \(destination ?? ""); nothing was done"
            }
        }
        return nil
    }
}

extension [FileOperation] {
    /// The targets operations make or write (folders, files, links, renames), not those they remove.
    var writtenTargets: [String] {
        filter { [.folder, .file, .symlink, .rename].contains($0.kind) }.map(\.target)
    }
}

extension ActionPreview {
    /// Refuses the action (a problem) when an operation's target is not a plain path inside the destination.
    public mutating func refuseTargetsOutsideDestination() {
        if let problem = ActionPlan.targetProblem(
            action: action,
            destination: destination,
            targets: operations.writtenTargets
        ) {
            problems.append(ActionProblem(path: destination ?? "", reason: problem))
        }
    }
}

/// An action that could not be done as planned.
public struct ActionError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Brings the index up to date after an action changed these folders (the action's sources' and targets'
/// folders). Implemented above this layer (the indexer's live updates); a no-op when nothing is indexed.
/// `thorough`: the job was interrupted before (maybe while updating the index): check the whole locations
/// concerned, not only these folders.
public protocol IndexUpdater: Sendable {
    func foldersChanged(_ paths: [String], thorough: Bool) throws
}

/// Path helpers the planners share (paths as absolute strings).
public enum Paths {
    public static func normalized(_ path: String) -> String {
        var p = URL(fileURLWithPath: path).standardizedFileURL.path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        return p
    }

    public static func basename(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }

    public static func isInside(_ path: String, _ folder: String) -> Bool {
        path == folder || path.hasPrefix(folder == "/" ? "/" : folder + "/")
    }

    /// The nearest existing folder at or above `path`.
    public static func existingAncestor(_ path: String) -> String {
        var existing = path
        while !FileSystem.exists(existing) && existing != "/" { existing = FileSystem.parent(of: existing) }
        return existing
    }

    /// A name a file may take: not empty, not `.` or `..`, no `/` or NUL, at most 255 bytes.
    public static func nameProblem(_ name: String) -> String? {
        if name.isEmpty { return "the name is empty" }
        if name == "." || name == ".." { return "'\(name)' is not a name a file can take" }
        if name.contains("/") { return "a name cannot contain '/'" }
        if name.utf8.contains(0) { return "a name cannot contain a NUL byte" }
        if name.utf8.count > 255 { return "the name is longer than 255 bytes" }
        return nil
    }

    /// `name (1).ext`, `name (2).ext`... the first that exists neither on disk nor in `taken`.
    public static func freeName(
        _ path: String,
        _ taken: Set<String>,
        exists: (String) -> Bool = FileSystem.exists
    ) -> String {
        let folder = FileSystem.parent(of: path)
        let name = basename(path)
        let dot = name.lastIndex(of: ".").flatMap { $0 == name.startIndex ? nil : $0 }
        let stem = dot.map { String(name[..<$0]) } ?? name
        let ext = dot.map { String(name[$0...]) } ?? ""
        var n = 1
        while true {
            let candidate = "\(folder)/\(stem) (\(n))\(ext)"
            if !exists(candidate) && !taken.contains(candidate) { return candidate }
            n += 1
        }
    }
}

/// The files of a tree and their content ids: what an action records so that undo can tell whether they
/// changed since.
public enum Manifest {
    /// For each root: relative path ("" for the root itself when it is a file) -> content id hex (or
    /// "size:N" for an empty file, "link" for a symbolic link, "unreadable"). All roots' files are hashed
    /// together on the cores.
    public static func of(_ roots: [String]) throws -> [[String: String]] {
        var files: [(root: Int, path: String, relative: String)] = []
        var result = Array(repeating: [String: String](), count: roots.count)
        func walk(_ root: Int, _ path: String, _ relative: String) throws {
            let entry = try Directory.stat(PathText.bytes(path))
            switch entry.type {
            case .directory:
                for name in try FileSystem.list(path) {
                    try walk(root, path + "/" + name, relative.isEmpty ? name : relative + "/" + name)
                }
            case .regular: files.append((root, path, relative))
            case .symlink: result[root][relative] = "link"
            default: break
            }
        }
        for (i, root) in roots.enumerated() { try walk(i, root, "") }
        let frozen = files
        let ids = ContentHasher.parallelMap(count: frozen.count, workers: 4) { i, hasher -> String in
            do {
                let reader = try LocalFileReader(path: frozen[i].path)
                if let id = try hasher.contentID(of: reader) { return id.hex }
                return "size:\(try reader.size())"
            } catch {
                return "unreadable"
            }
        }
        for (i, file) in frozen.enumerated() { result[file.root][file.relative] = ids[i] }
        return result
    }

    /// The first difference between a recorded manifest and the tree now, in words (nil when equal).
    public static func difference(_ recorded: [String: String], _ now: [String: String]) -> String? {
        for (path, id) in recorded.sorted(by: { $0.key < $1.key }) {
            guard let current = now[path] else { return "\(path.isEmpty ? "it" : path) is gone" }
            if current != id { return "\(path.isEmpty ? "it" : path) changed (content id \(id) -> \(current))" }
        }
        if let extra = now.keys.sorted().first(where: { recorded[$0] == nil }) { return "\(extra) was added" }
        return nil
    }
}
