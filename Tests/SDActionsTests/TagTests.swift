import Foundation
import SDActions
import SDCore
import SDIndexer
import SDJobs
import SDStore
import SDTestSupport
import Testing

/// Tags as shared metadata: on content when there is one (so copies carry them), on the entry otherwise, and
/// every change in the change log with strictly increasing HLC stamps.
struct TagTests {
    @Test func tagsFollowContentAndEveryChangeIsLogged() throws {
        let f = try CopyFixture([
            "tree/a/beach.jpg": "the same photo", "tree/b/beach copy.jpg": "the same photo", "tree/empty.txt": "",
            "tree/album/": "",
        ])
        let location = try f.library.addLocation(path: Array(f.dir.file("tree").utf8), name: "tree", volume: nil)
        _ = try Indexer(library: f.library).index(location)

        try f.library.createTag("photos/holiday", color: "#2a9d8f")
        #expect(try f.library.tags().map(\.name) == ["photos", "photos/holiday"], "the parent is made too")
        #expect(throws: TagError.self) { try f.library.createTag("photos") }
        #expect(throws: TagError.self) { try f.library.createTag("a//b") }
        #expect(throws: TagError.self) { try f.library.createTag("x", color: "blue") }

        let paths = ["tree/a/beach.jpg", "tree/empty.txt", "tree/album", "tree/not-indexed"].map(f.dir.file)
        let (changed, missing) = try f.library.setTag("photos/holiday", on: paths, present: true)
        #expect(changed == 3 && missing == [f.dir.file("tree/not-indexed")])
        #expect(try f.library.setTag("photos/holiday", on: [paths[0]], present: true).changed == 0, "already so")
        #expect(try f.library.tags(ofEntryAt: f.dir.file("tree/b/beach copy.jpg")) == ["photos/holiday"])
        #expect(try f.library.tags(ofEntryAt: f.dir.file("tree/album")) == ["photos/holiday"])
        #expect(try f.library.tags().first { $0.name == "photos/holiday" }?.uses == 4, "two copies, a file, a folder")

        // min-copies set on the tag reaches the copy through its content.
        try f.library.setSetting(
            "min-copies",
            "3",
            scope: "tag:\(try #require(try f.library.tagUUID(named: "photos/holiday")))"
        )
        let copy = try #require(try f.library.indexedFiles(at: [f.dir.file("tree/b/beach copy.jpg")]).values.first)
        #expect(try f.library.minCopies(entry: copy.id, content: copy.content) == 3)

        try f.library.renameTag("photos", to: "pictures")
        #expect(try f.library.tags().map(\.name) == ["pictures", "pictures/holiday"])
        #expect(try f.library.setTag("pictures/holiday", on: [paths[2]], present: false).changed == 1)
        try f.library.deleteTag("pictures")
        #expect(try f.library.tags().isEmpty)
        #expect(try f.library.tags(ofEntryAt: paths[0]) == [])

        let log = try f.library.sharedChanges()
        #expect(
            log.map(\.record) == [
                "tag", "tag", "content_tag", "entry_tag", "entry_tag", "setting", "tag", "tag", "entry_tag", "tag",
                "tag",
            ]
        )
        #expect(log[5].value == "3", "a library setting is shared metadata too")
        let stamps = log.map { HLCTimestamp($0.hlc) }
        #expect(stamps.allSatisfy { $0?.device == f.library.device.id })
        #expect(zip(stamps, stamps.dropFirst()).allSatisfy { $0! < $1! }, "strictly increasing")
        #expect(log[8].value == nil && log[10].value == nil, "removals and deletions are tombstones")
    }
}

/// Ratings, favorites and notes: on the entry, each changed field logged with a later HLC, bad values refused.
struct MetadataTests {
    @Test func ratingsFavoritesAndNotesAreKeptAndLogged() throws {
        let f = try CopyFixture(["tree/a/beach.jpg": "the same photo", "tree/b/beach copy.jpg": "the same photo"])
        let location = try f.library.addLocation(path: Array(f.dir.file("tree").utf8), name: "tree", volume: nil)
        _ = try Indexer(library: f.library).index(location)
        let photo = f.dir.file("tree/a/beach.jpg")
        #expect(try f.library.metadata(ofEntryAt: photo) == UserMetadata())
        let start = try f.library.sharedChanges().count

        let set = try f.library.setMetadata(MetadataChange(rating: 4, favorite: true, note: "sunset"), on: [photo])
        #expect(set.changed == 1 && set.notIndexed.isEmpty)
        #expect(try f.library.metadata(ofEntryAt: photo) == UserMetadata(rating: 4, favorite: true, note: "sunset"))
        #expect(
            try f.library.metadata(ofEntryAt: f.dir.file("tree/b/beach copy.jpg")) == UserMetadata(),
            "not on the copy"
        )
        // Only what changes is logged: the note is cleared, the rating is the same.
        #expect(try f.library.setMetadata(MetadataChange(rating: 4, note: .some(nil)), on: [photo]).changed == 1)
        #expect(try f.library.metadata(ofEntryAt: photo) == UserMetadata(rating: 4, favorite: true, note: nil))
        #expect(try f.library.setMetadata(MetadataChange(rating: 4), on: [photo]).changed == 0)

        let log = try f.library.sharedChanges().dropFirst(start)
        #expect(log.map { $0.field ?? "" } == ["rating", "favorite", "note", "note"])
        #expect(log.allSatisfy { $0.record == "entry_meta" })
        #expect(log.map(\.value) == ["4", "true", "\"sunset\"", nil])
        let stamps = log.map { HLCTimestamp($0.hlc)! }
        #expect(zip(stamps, stamps.dropFirst()).allSatisfy { $0 < $1 }, "strictly increasing")

        #expect(throws: TagError.self) { try f.library.setMetadata(MetadataChange(rating: 6), on: [photo]) }
        #expect(
            try f.library.setMetadata(MetadataChange(favorite: false), on: [f.dir.file("tree/x")]).notIndexed.count == 1
        )
    }

    /// Tagging as an action: the preview's counts are what the job then changes; an item not indexed or a
    /// tag that does not exist refuses it; a job resumed from its checkpoint finishes the rest.
    @Test func taggingIsPreviewedThenCommittedAsAJob() async throws {
        let f = try CopyFixture([
            "tree/a/beach.jpg": "the same photo", "tree/b/beach copy.jpg": "the same photo", "tree/c.txt": "c",
            "tree/d.txt": "d", "tree/album/": "",
        ])
        let location = try f.library.addLocation(path: Array(f.dir.file("tree").utf8), name: "tree", volume: nil)
        _ = try Indexer(library: f.library).index(location)
        try f.library.createTag("holiday")
        let runner = JobRunner(library: f.library, kinds: TagJob.kinds.map { TagJob(kind: $0) })
        let paths = ["tree/a/beach.jpg", "tree/b/beach copy.jpg", "tree/c.txt", "tree/album"].map(f.dir.file)
        _ = try f.library.setTag("holiday", on: [paths[2]], present: true)

        let preview = TagPlanner.preview(tag: "holiday", paths: paths, present: true, library: f.library)
        #expect(preview.canCommit, "\(preview.problems)")
        // The copy shares its content with the first file; c.txt carries the tag already.
        #expect(preview.files == 1 && preview.folders == 1 && preview.skipped == 2)
        #expect(try f.library.tags(ofEntryAt: paths[0]) == [], "a preview changes nothing")
        let job = try runner.submit(kind: "tag", target: nil, input: preview.plan)
        let done = try await runner.run(job.id)
        #expect(done.state == "completed")
        let checkpoint = try JSONDecoder().decode(
            TagJob.Checkpoint.self,
            from: Data(try #require(done.checkpoint).utf8)
        )
        #expect(checkpoint.changed == preview.files + preview.folders && checkpoint.notIndexed.isEmpty)
        for path in paths { #expect(try f.library.tags(ofEntryAt: path) == ["holiday"], "\(path)") }

        let refused = TagPlanner.preview(
            tag: "holiday",
            paths: [f.dir.file("tree/d.txt"), f.dir.file("tree/nope.txt")],
            present: true,
            library: f.library
        )
        #expect(!refused.canCommit && refused.problems.map(\.path) == [f.dir.file("tree/nope.txt")])
        let noTag = TagPlanner.preview(tag: "nope", paths: [paths[0]], present: true, library: f.library)
        #expect(noTag.problems.first?.reason.contains("no tag named 'nope'") == true)

        // Untagging, interrupted after its first item: the resumed job does the rest.
        let untag = TagPlanner.preview(tag: "holiday", paths: paths, present: false, library: f.library)
        #expect(untag.files == 2 && untag.folders == 1 && untag.skipped == 1)
        let second = try runner.submit(kind: "untag", target: nil, input: untag.plan)
        _ = try f.library.setTag("holiday", on: [paths[0]], present: false)
        try f.library.setJobState(id: second.id, "running")
        _ = try f.library.saveJobProgress(
            id: second.id,
            done: 1,
            total: 3,
            checkpoint: #"{"next":1,"changed":1,"notIndexed":[]}"#
        )
        let resumed = try await JobRunner(library: f.library, kinds: [TagJob(kind: "untag")]).run(second.id)
        #expect(resumed.state == "completed" && resumed.progressDone == 3)
        for path in paths { #expect(try f.library.tags(ofEntryAt: path) == [], "\(path)") }
    }
}
