import Foundation
import SDJobs
import SDStore

/// An index job run by the job runner (`sd jobs resume`, and the daemon to come): the location named by the
/// job's target, scanned from the job's checkpoint; a pause or cancel asked through the job row stops it
/// between batches, resumable as after a kill.
public struct IndexJob: JobKind {
    public let kind = "index"
    let options: IndexOptions
    let progress: (@Sendable (IndexProgress) -> Void)?
    let finished: (@Sendable (IndexReport) -> Void)?

    public init(
        options: IndexOptions = IndexOptions(),
        progress: (@Sendable (IndexProgress) -> Void)? = nil,
        finished: (@Sendable (IndexReport) -> Void)? = nil
    ) {
        self.options = options
        self.progress = progress
        self.finished = finished
    }

    public func run(_ context: JobContext) async throws {
        guard let uuid = context.record.target, let location = try context.library.fetchLocation(uuid) else {
            throw IndexError(
                .notFound,
                "job \(context.record.id.prefix(8)) indexes a location this library no longer has"
            )
        }
        // One process at a time writes a location (an index run, or a watcher).
        let held = try context.library.lockLocation(location)
        defer { withExtendedLifetime(held) {} }
        var options = self.options
        if let asked = try? context.input(IndexJobInput.self) {
            options.indexContent = asked.indexContent ?? options.indexContent
            options.allowMassDelete = asked.allowMassDelete ?? options.allowMassDelete
            options.searchIndex = asked.searchIndex ?? options.searchIndex
        }
        let report = try Indexer(library: context.library, options: options, progress: progress)
            .scan(location, job: context.record) {
                try context.checkRequests()
                try Task.checkCancellation()  // the daemon stopping: resumable, like a pause
            }
        finished?(report)
    }
}

/// Options an index job was asked to run with (its input), over the runner's defaults.
public struct IndexJobInput: Codable, Sendable {
    public var indexContent: Bool?
    public var allowMassDelete: Bool?
    public var searchIndex: Bool?
    public init(indexContent: Bool? = nil, allowMassDelete: Bool? = nil, searchIndex: Bool? = nil) {
        self.indexContent = indexContent
        self.allowMassDelete = allowMassDelete
        self.searchIndex = searchIndex
    }
}
