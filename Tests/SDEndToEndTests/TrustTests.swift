import Foundation
import SDSystem
import SDTestSupport
import Testing

/// What a new user broke (the trust review): each test is one defect, and failed on the code before its fix.
@Suite(.serialized) struct TrustTests {
    /// Nothing in a library folder, the config folder or the runtime folder is a source or target of an action,
    /// nor a location, nor indexed: `sd rm -y .../X.sdlibrary/library.db` trashed the index, after which every
    /// command, `sd undo` included, failed.
    @Test(arguments: Way.allCases) func sdsOwnFilesAreNeverActedOn(_ way: Way) throws {
        let dir = try TemporaryDirectory(prefix: "sd-trust-own")
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        try dir.write("home/a.txt", Array("alpha".utf8))
        #expect(try sd.run(["location", "add", dir.file("home")]).status == 0)
        #expect(try sd.run(["index"]).status == 0)
        let session = try sd.begin(way)
        defer { session.end() }
        let library = dir.file("data/Default.sdlibrary")
        let database = library + "/library.db"
        let before = try Data(contentsOf: URL(fileURLWithPath: library + "/library.json"))
        let attempts: [[String]] = [
            ["rm", "-y", database], ["rm", "-y", "--permanent", library + "/library.json"],
            ["mv", "-y", library + "/library.json", dir.file("home")], ["cp", "-y", dir.file("home/a.txt"), library],
            ["rename", "-y", database, "x.db"], ["mkdir", "-y", library + "/extra"],
            ["rm", "-y", dir.file("config/device.json")], ["cp", "-y", dir.file("home/a.txt"), dir.file("config")],
            ["location", "add", library], ["location", "add", dir.file("config")],
        ]
        for attempt in attempts {
            let r = try sd.run(attempt)
            #expect(r.status == 1 && r.stderr.contains("sd's own"), "\(attempt): \(r.status) \(r.stdout) \(r.stderr)")
        }
        #expect(FileSystem.exists(database) && !FileSystem.exists(library + "/extra"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: library + "/library.json")) == before)
        #expect(!FileSystem.exists(dir.file("home/library.json")))
        #expect(try sd.run(["status"]).status == 0, "the library still works")
        // A location that holds the data folder does not index the libraries in it.
        #expect(try sd.run(["location", "add", dir.path, "--name", "everything"]).status == 1, "locations do not nest")
        let other = try SDBinary(dataDirectory: dir.file("data2"), configDirectory: dir.file("config2"))
        #expect(try other.run(["location", "add", dir.file("data")]).status == 0)
        #expect(try other.run(["index"]).status == 0)
        let found = try other.run(["search", "library"]).stdout
        #expect(!found.contains("library.db") && !found.contains("Default.sdlibrary"), "\(found)")
    }
}
