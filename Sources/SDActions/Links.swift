import Foundation
import SDStore
import SDSystem

/// A link a removal leaves behind: a symbolic link whose target goes (it would dangle), or another hard link of
/// a removed file (it keeps the file's bytes, which are then not freed).
public struct LinkNote: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// `path` is a symbolic link to `target`, which the action removes: the link would dangle.
        case symlink
        /// `path` is another name (hard link) of the removed file `target`: it keeps the bytes. Empty when
        /// the other names are not in the index (`others` says how many there are).
        case hardlink
    }

    public var kind: Kind
    public var path: String
    public var target: String
    /// Hard links: how many names of the file stay (from its link count).
    public var others: Int?
}

/// Finds the links a removal leaves behind: the index's symbolic links that point into what goes, and the
/// hard links of removed files that stay (link counts, read from the files).
public enum LinkCheck {
    /// At most this many notes (a preview stays readable; `linksNotListed` counts the rest).
    static let limit = 1_000

    public static func leftBehind(removing roots: [String], library: Library) -> (notes: [LinkNote], more: Int) {
        var notes: [LinkNote] = []
        var more = 0
        func add(_ note: LinkNote) { if notes.count < limit { notes.append(note) } else { more += 1 } }
        func removed(_ path: String) -> String? { roots.first { Paths.isInside(path, $0) } }
        // Symbolic links: their targets, as the kernel would resolve them lexically from the link's folder.
        for (pathBytes, targetBytes) in (try? library.indexedSymlinks()) ?? [] {
            let path = PathText.string(pathBytes)
            guard removed(path) == nil, !targetBytes.isEmpty else { continue }
            let target = PathText.string(targetBytes)
            let absolute = Paths.normalized(target.hasPrefix("/") ? target : FileSystem.parent(of: path) + "/" + target)
            // (A link that dangles already is not the removal's doing.)
            if removed(absolute) != nil && FileSystem.exists(absolute) {
                add(LinkNote(kind: .symlink, path: path, target: absolute))
            }
        }
        // Hard links: files below the roots with more names than the roots hold.
        var inside: [String: (path: String, device: UInt64, inode: UInt64, links: UInt64, seen: Int)] = [:]
        func walk(_ path: String, _ entry: RawEntry, depth: Int) {
            switch entry.type {
            case .regular where entry.linkCount > 1:
                let key = "\(entry.device):\(entry.inode)"
                inside[key, default: (path, entry.device, entry.inode, entry.linkCount, 0)].seen += 1
            case .directory where depth < 4_096:
                for child in (try? Directory.list(PathText.bytes(path))) ?? [] {
                    walk(path + "/" + PathText.string(child.name), child, depth: depth + 1)
                }
            default: break
            }
        }
        for root in roots {
            if let entry = try? Directory.stat(PathText.bytes(root)) { walk(root, entry, depth: 0) }
        }
        for file in inside.values.sorted(by: { $0.path < $1.path }) where file.links > UInt64(file.seen) {
            let others = Int(file.links) - file.seen
            let named = ((try? library.indexedNames(device: file.device, inode: file.inode)) ?? [])
                .map { PathText.string($0) }.filter { removed($0) == nil }.sorted()
            if named.isEmpty {
                add(LinkNote(kind: .hardlink, path: "", target: file.path, others: others))
            }
            for name in named { add(LinkNote(kind: .hardlink, path: name, target: file.path, others: others)) }
        }
        return (notes, more)
    }
}
