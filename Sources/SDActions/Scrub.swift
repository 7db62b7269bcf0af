import Foundation
import SDCore
import SDJobs
import SDStore
import SDSystem

/// What a scrub asks: which locations (all online ones when empty), and how fast it may read.
public struct ScrubRequest: Codable, Sendable, Equatable {
    public var locations: [String]
    /// Bytes per second at most (nil: as fast as the disk goes).
    public var maxBytesPerSecond: Int64?

    public init(locations: [String] = [], maxBytesPerSecond: Int64? = nil) {
        self.locations = locations
        self.maxBytesPerSecond = maxBytesPerSecond
    }
}

/// A file whose bytes changed while its size and modification time did not: bit rot, or a program that wrote
/// behind the filesystem's back.
public struct Corruption: Codable, Sendable, Equatable {
    public var path: String
    public var size: Int64
    /// The full BLAKE3 kept from before, and the one read now.
    public var expected: String
    public var found: String
    /// Copies of the same content whose kept full hash is the expected one.
    public var goodCopies: [String]
}

/// Where a scrub got to (the location and the last entry read), and what it found.
public struct ScrubState: Codable, Sendable {
    public var location = 0
    public var after: Int64 = 0
    public var files = 0
    public var bytes: Int64 = 0
    /// Files read for the first time: their hash is kept as the reference for the next scrub.
    public var baselined = 0
    /// Files skipped because their size or mtime changed since they were indexed (an edit; `sd index` sees it).
    public var changed = 0
    public var unreadable: [ActionProblem] = []
    public var corruptions: [Corruption] = []

    public init() {}
}

/// The scrub job: reads files in full and compares each with its kept full hash (`integrity_hashes`, kept with
/// the size and mtime it was computed at). Same size and mtime but another hash is corruption, reported with
/// the copies known good. A file without a kept hash gets one. Resumes after the last batch it saved; reads
/// no faster than `maxBytesPerSecond`.
public struct ScrubJob: JobKind {
    public let kind = "scrub"
    public init() {}

    static let batch = 128

    public func run(_ context: JobContext) async throws {
        let request = try context.input(ScrubRequest.self)
        let library = context.library
        var state = try context.checkpoint(ScrubState.self) ?? ScrubState()
        var locations: [Location] = []
        for key in request.locations {
            guard let found = try library.fetchLocation(key) else { throw ActionError("no location '\(key)'") }
            locations.append(found)
        }
        if request.locations.isEmpty { locations = try library.fetchLocations().filter { $0.state == "online" } }
        var total: Int64 = 0
        for location in locations { total += try library.fileBytes(location: location) }
        let started = ProcessInfo.processInfo.systemUptime
        var readHere: Int64 = 0
        while state.location < locations.count {
            let location = locations[state.location]
            let folders = try library.fetchFolderPaths(location: location)
            while true {
                try Task.checkCancellation()
                let files = try library.scrubBatch(location: location, after: state.after, limit: Self.batch)
                guard let last = files.last else { break }
                var fresh: [(entryID: Int64, hash: String, size: Int64, mtime: Int64)] = []
                let keptHashes = try library.storedIntegrityHashes(
                    files.map { ($0.entryID, $0.size, $0.mtimeNanoseconds) }
                )
                for file in files {
                    guard let folder = folders[file.parentID] else { continue }
                    let path = PathText.string(folder + [0x2F] + file.name)
                    guard let now = try? Directory.stat(PathText.bytes(path)), now.type == .regular else {
                        state.unreadable.append(ActionProblem(path: path, reason: "is gone or not a file now"))
                        continue
                    }
                    guard Int64(now.size) == file.size && now.mtimeNanoseconds == file.mtimeNanoseconds else {
                        state.changed += 1
                        continue
                    }
                    let hash: String
                    do {
                        hash = try ContentHasher.integrityHash(mapping: try LocalFileReader(path: path)).hex
                    } catch {
                        state.unreadable.append(ActionProblem(path: path, reason: "cannot be read: \(error)"))
                        continue
                    }
                    state.files += 1
                    state.bytes += file.size
                    readHere += file.size
                    let kept = keptHashes[file.entryID]
                    if let kept, kept != hash {
                        let good = try file.contentID.map {
                            try library.goodCopies(of: $0, hash: kept, besides: file.entryID)
                        }
                        state.corruptions.append(
                            Corruption(path: path, size: file.size, expected: kept, found: hash, goodCopies: good ?? [])
                        )
                    } else if kept == nil {
                        fresh.append((file.entryID, hash, file.size, file.mtimeNanoseconds))
                        state.baselined += 1
                    }
                    try await throttle(readHere, since: started, rate: request.maxBytesPerSecond)
                }
                try library.storeIntegrityHashes(fresh)
                state.after = last.entryID
                try context.save(done: state.bytes, total: max(total, state.bytes), checkpoint: state)
            }
            state.location += 1
            state.after = 0
            if state.location == locations.count {
                // A "good" copy found corrupted itself in this scrub is no good copy.
                let corrupted = Set(state.corruptions.map(\.path))
                for i in state.corruptions.indices {
                    state.corruptions[i].goodCopies.removeAll(where: corrupted.contains)
                }
            }
            try context.save(done: state.bytes, total: max(total, state.bytes), checkpoint: state)
        }
    }

    /// Sleeps until `bytes` read since `since` (seconds of uptime) are within `rate` bytes per second.
    func throttle(_ bytes: Int64, since: Double, rate: Int64?) async throws {
        guard let rate, rate > 0 else { return }
        let due = Double(bytes) / Double(rate)
        let elapsed = ProcessInfo.processInfo.systemUptime - since
        if due > elapsed { try await Task.sleep(nanoseconds: UInt64((due - elapsed) * 1e9)) }
    }
}

/// Restoring corrupted files from their good copies: a copy action over each (its bytes checked first).
public enum ScrubRepair {
    /// The copy that puts a good copy's bytes in place of each corrupted file that has one. A good copy is
    /// read in full now and must still have the expected hash; a corruption without such a copy is a problem.
    public static func preview(_ corruptions: [Corruption]) -> ActionPreview {
        var preview = ActionPreview(
            action: "copy",
            destination: corruptions.first.map { FileSystem.parent(of: $0.path) }
        )
        preview.verifyFull = true
        for corruption in corruptions {
            let good = corruption.goodCopies.first { copy in
                guard let reader = try? LocalFileReader(path: copy) else { return false }
                return (try? ContentHasher.integrityHash(mapping: reader).hex) == corruption.expected
            }
            guard let good else {
                preview.problems.append(ActionProblem(path: corruption.path, reason: "no good copy is known"))
                continue
            }
            preview.operations.append(
                FileOperation(
                    kind: .file,
                    source: good,
                    target: corruption.path,
                    size: corruption.size,
                    files: 1,
                    conflict: "overwrite"
                )
            )
            preview.files += 1
            preview.bytes += corruption.size
            preview.bytesToWrite += corruption.size
            preview.conflicts.append(preview.operations[preview.operations.count - 1])
        }
        return preview
    }
}
