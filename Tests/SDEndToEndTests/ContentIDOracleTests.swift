import Foundation
import SDTestSupport
import Testing

/// `sd hash` against the project's content-id oracle (scripts/content-id-oracle: sd's rule written again over
/// b3sum, sharing no code with sd), on a generated tree with odd names and at the sampling's boundaries.
struct ContentIDOracleTests {
    @Test func matchesTheOracleOnAGeneratedTreeAndAtTheSampleBoundary() throws {
        let oracle = Scripts.script("content-id-oracle")
        _ = try #require(Run.which("b3sum"), "b3sum is needed: scripts/test installs it")
        let dir = try TemporaryDirectory(prefix: "sd-oracle")
        let python = Run.which("python3") ?? "/usr/bin/python3"
        try Scripts.makeTree(
            at: dir.file("tree"),
            files: 1500,
            large: 1,
            largeMiB: 3,
            extra: ["--odd-names", "--max-kib", "400"]
        )
        var rng = SeededRNG(seed: 100)
        for size in [102_399, 102_400, 102_401, 16_384, 16_385, 1_000_003] {
            try dir.write("tree/edge-\(size)", rng.bytes(size))
        }
        try dir.write("tree/empty", [])
        let files = try FileManager.default.subpathsOfDirectory(atPath: dir.file("tree")).sorted()
            .map { dir.file("tree/\($0)") }
            .filter {
                var isDir: ObjCBool = false;
                return FileManager.default.fileExists(atPath: $0, isDirectory: &isDir) && !isDir.boolValue
            }
        #expect(files.count > 1500)
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        let ours = try sd.run(["hash"] + files)
        let theirs = try Run.program(python, [oracle] + files)
        #expect(ours.status == 0, "\(ours.stderr)")
        let a = ours.stdout.split(separator: "\n"),
            b = String(decoding: theirs.out, as: UTF8.self).split(separator: "\n")
        #expect(a.count == files.count)
        #expect(a == b)
    }
}
