import Foundation
import SDCore
import SDJobs
import SDStore

/// Simulates putting a tag on indexed files and folders, or taking it off: which items would change, which
/// are so already, which are not in the index. Reads the index only.
///
/// A tag goes on a file's content when it has a content id (so every copy carries it): naming two copies of
/// one content changes one record, and the second counts as already so. The preview lists every copy the
/// change reaches (named or not), so that it states exactly what the commit does.
public enum TagPlanner {
    public static func preview(tag: String, paths: [String], present: Bool, library: Library) -> ActionPreview {
        var preview = ActionPreview(action: present ? "tag" : "untag", destination: nil)
        if paths.isEmpty {
            preview.problems.append(ActionProblem(path: tag, reason: "no file or folder given"))
            return preview
        }
        let changes: TagChanges
        do {
            changes = try library.tagChanges(tag, on: paths.map(Paths.normalized), present: present)
        } catch let error as TagError {
            preview.problems.append(ActionProblem(path: tag, reason: error.message))
            return preview
        } catch {
            preview.problems.append(ActionProblem(path: tag, reason: "the index could not be read: \(error)"))
            return preview
        }
        for item in changes.changes {
            preview.operations.append(FileOperation(kind: .tag, source: item.path, target: tag, files: 1))
            if item.isFolder { preview.folders += 1 } else { preview.files += 1 }
            // The tag is on the content: its other copies change with it, and the preview says so.
            for copy in item.copies {
                var operation = FileOperation(kind: .tag, source: copy, target: tag, files: 1)
                operation.sameContentAs = item.path
                preview.operations.append(operation)
                preview.files += 1
            }
            if item.copiesElsewhere > 0 {
                preview.copiesOnOtherDevices = (preview.copiesOnOtherDevices ?? 0) + item.copiesElsewhere
            }
        }
        for path in changes.unchanged {
            preview.operations.append(FileOperation(kind: .tag, source: path, target: tag, skip: true))
            preview.skipped += 1
        }
        for path in changes.notIndexed {
            preview.problems.append(
                ActionProblem(path: path, reason: "not in the index (see `sd location add`, `sd index`)")
            )
        }
        // Assumed: about 20 us an item in batches of 1,000 (not measured).
        preview.estimatedSeconds = Double(preview.operations.count) * 2e-5
        return preview
    }
}

/// The job that puts a tag on (kind 'tag') or takes it off (kind 'untag') the items of its plan, 1,000 per
/// transaction, with a checkpoint after each: a resumed job goes on from the last batch (a batch done twice
/// changes nothing the second time). An item that left the index since the preview is counted, not an error.
public struct TagJob: JobKind {
    public let kind: String

    public init(kind: String) { self.kind = kind }

    public static let kinds = ["tag", "untag"]
    static let batch = 1_000

    /// What the job records as its checkpoint: the next operation, and what it changed and missed so far.
    public struct Checkpoint: Codable, Sendable {
        public var next: Int
        public var changed: Int
        public var notIndexed: [String]
    }

    public func run(_ context: JobContext) async throws {
        let plan = try context.input(ActionPlan.self)
        let items = plan.operations.filter { $0.kind == .tag && !$0.skip }
        var state = try context.checkpoint(Checkpoint.self) ?? Checkpoint(next: 0, changed: 0, notIndexed: [])
        while state.next < items.count {
            try Task.checkCancellation()
            let slice = items[state.next..<min(items.count, state.next + Self.batch)]
            let result = try context.library.setTag(
                slice.first!.target,
                on: slice.map(\.source),
                present: kind == "tag"
            )
            state.changed += result.changed
            state.notIndexed += result.notIndexed
            state.next += slice.count
            try context.save(done: Int64(state.next), total: Int64(items.count), checkpoint: state)
        }
    }
}
