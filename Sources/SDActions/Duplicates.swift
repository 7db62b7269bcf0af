import Foundation
import SDCore
import SDStore
import SDSystem

/// Duplicate groups confirmed by full hash.
public struct VerifiedDuplicates: Sendable, Codable {
    /// A group whose members did not all have one full hash: sampled content ids collided.
    public struct Split: Sendable, Codable {
        public var contentID: String
        /// The members by full hash: each part holds equal files.
        public var parts: [[String]]
    }

    /// Groups whose members are equal in every byte (a group that split leaves its parts of two or more here).
    public var groups: [DuplicateGroup]
    public var splits: [Split]
    /// Members left out: unreadable, or changed on disk since they were indexed (`sd index` brings them back).
    public var skipped: [ActionProblem]
    /// Files hashed now (the others' hashes were kept from before).
    public var hashed: Int
}

public enum DuplicateVerifier {
    /// Confirms each group with the full BLAKE3 of every member, computed once and kept in the library
    /// (reused while a file's size and mtime are unchanged). `progress` gets (files done, files).
    public static func verify(
        _ groups: [DuplicateGroup],
        library: Library,
        progress: @Sendable (Int, Int) -> Void = { _, _ in }
    ) throws -> VerifiedDuplicates {
        var result = VerifiedDuplicates(groups: [], splits: [], skipped: [], hashed: 0)
        let members = groups.flatMap(\.members)
        var present: [DuplicateGroup.Member] = []
        for member in members {
            guard let now = try? Directory.stat(PathText.bytes(member.path)), now.type == .regular else {
                result.skipped.append(ActionProblem(path: member.path, reason: "cannot be read now"))
                continue
            }
            guard Int64(now.size) == member.size && now.mtimeNanoseconds == member.mtimeNanoseconds else {
                result.skipped.append(
                    ActionProblem(path: member.path, reason: "changed on disk since it was indexed (run `sd index`)")
                )
                continue
            }
            present.append(member)
        }
        var known = try library.storedIntegrityHashes(present.map { ($0.entryID, $0.size, $0.mtimeNanoseconds) })
        let todo = present.filter { known[$0.entryID] == nil }
        let work = todo
        let done = Counter()
        let hashes = ContentHasher.parallelMap(count: work.count, workers: 2) { i, _ -> String? in
            defer { progress(done.increment(), work.count) }
            guard let reader = try? LocalFileReader(path: work[i].path) else { return nil }
            return try? ContentHasher.integrityHash(mapping: reader, threads: .single).hex
        }
        var fresh: [(entryID: Int64, hash: String, size: Int64, mtime: Int64)] = []
        for (member, hash) in zip(work, hashes) {
            guard let hash else {
                result.skipped.append(ActionProblem(path: member.path, reason: "could not be read to the end"))
                continue
            }
            known[member.entryID] = hash
            fresh.append((member.entryID, hash, member.size, member.mtimeNanoseconds))
        }
        try library.storeIntegrityHashes(fresh)
        result.hashed = fresh.count
        for group in groups {
            var parts: [String: [DuplicateGroup.Member]] = [:]
            for member in group.members {
                if let hash = known[member.entryID] { parts[hash, default: []].append(member) }
            }
            if parts.count > 1 {
                result.splits.append(
                    VerifiedDuplicates.Split(
                        contentID: group.contentID,
                        parts: parts.values.map { $0.map(\.path).sorted() }.sorted { $0[0] < $1[0] }
                    )
                )
            }
            for part in parts.values {
                let kept = DuplicateGroup(contentID: group.contentID, size: group.size, members: part)
                if kept.files > 1 { result.groups.append(kept) }
            }
        }
        result.groups.sort { ($0.wastedBytes, $1.contentID) > ($1.wastedBytes, $0.contentID) }
        return result
    }
}

/// A count shared by worker threads.
final class Counter: @unchecked Sendable {
    // @unchecked: `value` is only touched under `lock`.
    private var value = 0
    private let lock = NSLock()
    func increment() -> Int {
        lock.withLock {
            value += 1
            return value
        }
    }
}
