import Foundation
import SDCore
import SDIndexer
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
                "tag", "tag", "content_tag", "entry_tag", "entry_tag", "tag", "tag", "entry_tag", "tag", "tag",
            ]
        )
        let stamps = log.map { HLCTimestamp($0.hlc) }
        #expect(stamps.allSatisfy { $0?.device == f.library.device.id })
        #expect(zip(stamps, stamps.dropFirst()).allSatisfy { $0! < $1! }, "strictly increasing")
        #expect(log[7].value == nil && log[9].value == nil, "removals and deletions are tombstones")
    }
}
