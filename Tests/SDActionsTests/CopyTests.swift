import Foundation
import SDActions
import SDCore
import SDJobs
import SDStore
import SDSystem
import SDTestSupport
import Testing

final class CopyFixture {
    let dir: TemporaryDirectory
    let library: Library
    let runner: JobRunner

    init(_ files: [String: String]) throws {
        dir = try TemporaryDirectory(prefix: "sd-copy")
        for (path, text) in files {
            if path.hasSuffix("/") {
                try FileManager.default.createDirectory(atPath: dir.file(path), withIntermediateDirectories: true)
            } else {
                try dir.write(path, Array(text.utf8))
            }
        }
        let device = try DeviceIdentity.loadOrCreate(configDirectory: dir.file("config"))
        library = try Library.create(name: "Copy", in: dir.file("data"), device: device)
        runner = JobRunner(
            library: library,
            kinds: TransferJob.kinds.map { TransferJob(kind: $0) } + DeleteJob.kinds.map { DeleteJob(kind: $0) }
                + DedupJob.kinds.map { DedupJob(kind: $0) }
        )
    }

    deinit { try? library.close() }

    func request(_ sources: [String], _ destination: String, _ policy: ConflictPolicy = .fail) -> TransferRequest {
        TransferRequest(sources: sources.map(dir.file), destination: dir.file(destination), onConflict: policy)
    }

    func preview(_ request: TransferRequest) -> ActionPreview {
        TransferPlanner.preview(copy: request, library: library)
    }

    /// Commits a preview: its job runs to its end.
    func commit(_ preview: ActionPreview) async throws -> JobRecord {
        let job = try runner.submit(kind: preview.action, target: preview.destination, input: preview.plan)
        return try await runner.run(job.id)
    }

    func copy(_ preview: ActionPreview) async throws -> JobRecord { try await commit(preview) }

    /// Every file below `path`: relative path -> contents.
    func tree(_ path: String) throws -> [String: String] { try TemporaryDirectory.tree(dir.file(path)) }
}

struct CopyTests {
    static let files: [String: String] = [
        "src/a.txt": "alpha",
        "src/sub/b.txt": String(repeating: "b", count: 300_000),
        "src/sub/deeper/c.bin": "c",
        // Over 1 MiB: copied by the kernel and verified by content id.
        "src/sub/big.bin": String(repeating: "0123456789", count: 150_000),
        "src/empty/": "",
        "dst/": "",
    ]

    /// What the preview says is what the copy does: files, folders, bytes; and the copies are exact, with
    /// their modes and modification times, and no temporary file is left.
    @Test func previewMatchesWhatTheCopyDoes() async throws {
        let f = try CopyFixture(Self.files)
        try FileManager.default.setAttributes(
            [.modificationDate: Date(timeIntervalSince1970: 1_600_000_000), .posixPermissions: 0o600],
            ofItemAtPath: f.dir.file("src/a.txt")
        )
        let preview = f.preview(f.request(["src"], "dst"))
        #expect(preview.canCommit, "\(preview.problems)")
        #expect(preview.files == 4 && preview.folders == 4)
        #expect(preview.bytes == 5 + 300_000 + 1 + 1_500_000)
        let job = try await f.copy(preview)
        #expect(job.state == "completed")
        #expect(job.progressDone == preview.bytes && job.progressTotal == preview.bytes)
        #expect(try f.tree("dst/src") == (try f.tree("src")))
        #expect(FileSystem.isDirectory(f.dir.file("dst/src/empty")))
        let copied = try FileManager.default.attributesOfItem(atPath: f.dir.file("dst/src/a.txt"))
        #expect((copied[.modificationDate] as? Date)?.timeIntervalSince1970 == 1_600_000_000)
        #expect((copied[.posixPermissions] as? Int) == 0o600)
        let leftovers = try FileManager.default.subpathsOfDirectory(atPath: f.dir.file("dst")).filter {
            $0.contains(".sd-part")
        }
        #expect(leftovers.isEmpty)
        // A second copy of the same thing conflicts on every file.
        let again = f.preview(f.request(["src"], "dst"))
        #expect(!again.canCommit)
        #expect(again.conflicts.count == 4)
    }

    @Test func conflictPolicies() async throws {
        let f = try CopyFixture(
            Self.files.merging(["dst/src/a.txt": "old", "dst/src/sub/b.txt": "old b"]) { a, _ in a }
        )
        let skip = f.preview(f.request(["src"], "dst", .skip))
        #expect(skip.skipped == 2 && skip.files == 2 && skip.bytes == 1 + 1_500_000)
        #expect(try await f.copy(skip).state == "completed")
        #expect(try f.tree("dst/src")["a.txt"] == "old")
        #expect(try f.tree("dst/src")["sub/deeper/c.bin"] == "c")

        let rename = f.preview(f.request(["src"], "dst", .rename))
        #expect(rename.files == 4 && rename.conflicts.count == 4)
        #expect(try await f.copy(rename).state == "completed")
        let renamed = try f.tree("dst/src")
        #expect(renamed["a.txt"] == "old" && renamed["a (1).txt"] == "alpha")
        #expect(renamed["sub/deeper/c (1).bin"] == "c")

        let overwrite = f.preview(f.request(["src/a.txt"], "dst/src/a.txt", .overwrite))
        #expect(overwrite.canCommit && overwrite.conflicts.first?.conflict == "overwrite")
        #expect(try await f.copy(overwrite).state == "completed")
        #expect(try f.tree("dst/src")["a.txt"] == "alpha")
    }

    @Test func problemsRefuseTheCopy() throws {
        let f = try CopyFixture(Self.files)
        func reasons(_ r: TransferRequest) -> [String] {
            TransferPlanner.preview(copy: r, library: nil).problems.map(\.reason)
        }
        #expect(reasons(f.request(["nope"], "dst")) == ["no such file or folder"])
        #expect(reasons(f.request(["src"], "src/sub")) == ["a folder cannot be copied into itself"])
        #expect(reasons(f.request(["src/a.txt"], "src/a.txt")) == ["source and target are the same file"])
        #expect(reasons(f.request(["src/a.txt", "src/sub"], "dst/new")).first?.contains("several sources") == true)
        #expect(reasons(f.request(["src/a.txt"], "dst/missing/a.txt")) == ["its folder does not exist"])
        #expect(reasons(f.request(["src/sub"], "src/a.txt", .overwrite)).first?.contains("cannot replace") == true)
    }

    /// A copy interrupted mid-way (simulated: a temporary part and a finished copy after its checkpoint) goes on:
    /// the part is replaced, the finished copy recognised by its content, nothing is duplicated.
    @Test func resumedCopyFinishesExactly() async throws {
        let f = try CopyFixture(Self.files)
        let preview = f.preview(f.request(["src"], "dst"))
        let job = try f.runner.submit(kind: "copy", target: preview.destination, input: preview.plan)
        // As a crash would leave it: folders made, one file copied and renamed, another half-written.
        for op in preview.operations where op.kind == .folder { try FileSystem.makeDirectories(op.target) }
        let files = preview.operations.enumerated().filter { $0.element.kind == .file }
        try FileSystem.copyFile(from: files[0].element.source, to: files[0].element.target)
        let part = FileSystem.parent(of: files[1].element.target) + "/.sd-part-\(job.id.prefix(8))-\(files[1].offset)"
        try Array("half".utf8).write(to: part)
        try f.library.setJobState(id: job.id, "running")  // the run that "crashed" had started
        #expect(try await f.runner.run(job.id).state == "completed")
        #expect(try f.tree("dst/src") == (try f.tree("src")))
        #expect(!FileSystem.exists(part))
    }

    /// Many files are copied at once: one that vanished after the preview fails the job with its path, and no
    /// temporary of the batch (the copies made alongside it) is left; every source is untouched.
    @Test func aFailedFileFailsTheJobAndLeavesNoTemporaries() async throws {
        var files: [String: String] = ["dst/": ""]
        for i in 0..<64 { files["src/f\(i).txt"] = "file \(i)" }
        let f = try CopyFixture(files)
        let preview = f.preview(f.request(["src"], "dst"))
        #expect(preview.canCommit && preview.files == 64)
        try FileManager.default.removeItem(atPath: f.dir.file("src/f40.txt"))
        let job = try f.runner.submit(kind: "copy", target: preview.destination, input: preview.plan)
        await #expect {
            _ = try await f.runner.run(job.id)
        } throws: { error in
            "\(error)".contains("src/f40.txt")
        }
        #expect(try f.library.fetchJob(job.id).state == "failed")
        let left = try FileManager.default.subpathsOfDirectory(atPath: f.dir.file("dst"))
        #expect(!left.contains { $0.contains(".sd-part") }, "\(left)")
        #expect(try f.tree("src").count == 63)
    }
}

extension Array where Element == UInt8 {
    func write(to path: String) throws { try Data(self).write(to: URL(fileURLWithPath: path)) }
}
