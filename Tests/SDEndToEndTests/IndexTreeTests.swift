import Foundation
import SDTestSupport
import Testing

struct IndexTreeTests {
    /// Folders and files the user may not read are recorded with the error, indexing goes on, and a folder
    /// that becomes unreadable keeps what was known below it. Runs sd as `nobody` (root reads everything).
    @Test func permissionDeniedIsRecordedAndNothingIsLost() throws {
        guard getuid() == 0, let setpriv = Run.which("setpriv") else {
            Issue.record("needs root and setpriv (util-linux) to run sd as another user")
            return
        }
        let dir = try TemporaryDirectory(prefix: "sd-perm")
        chmod(dir.path, 0o777)
        for sub in ["data", "config", "tree/open", "tree/later"] {
            try FileManager.default.createDirectory(atPath: dir.file(sub), withIntermediateDirectories: true)
        }
        try dir.write("tree/open/a.txt", Array("a".utf8))
        try dir.write("tree/secret.txt", Array("s".utf8))
        try dir.write("tree/later/kept.txt", Array("k".utf8))
        try dir.write("tree/locked/hidden.txt", Array("h".utf8))
        chmod(dir.file("tree/secret.txt"), 0)
        chmod(dir.file("tree/locked"), 0)
        _ = try Run.program("/bin/chown", ["-R", "65534:65534", dir.file("data"), dir.file("config")])
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        func asNobody(_ args: [String]) throws -> SDBinary.Result {
            let r = try Run.program(
                setpriv,
                ["--reuid=65534", "--regid=65534", "--clear-groups", sd.path] + args,
                environment: sd.environment
            )
            return SDBinary.Result(
                status: r.status,
                stdout: String(decoding: r.out, as: UTF8.self),
                stderr: String(decoding: r.err, as: UTF8.self)
            )
        }
        #expect(try asNobody(["location", "add", dir.file("tree"), "--name", "tree"]).status == 0)
        let first = try asNobody(["index"])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("1 folder unreadable"))
        let ls = try asNobody(["ls", "--json", dir.file("tree")]).stdout
        #expect(ls.contains("Permission denied"))
        #expect(try asNobody(["ls", dir.file("tree/open")]).stdout == "a.txt\n")
        // Now a folder that was readable becomes unreadable: its entries stay.
        chmod(dir.file("tree/later"), 0)
        defer { chmod(dir.file("tree/later"), 0o755); chmod(dir.file("tree/locked"), 0o755) }
        #expect(try asNobody(["index"]).status == 0)
        #expect(try asNobody(["ls", dir.file("tree/later")]).stdout.contains("kept.txt"))
        let status = try asNobody(["status", "--json"]).stdout
        #expect(status.contains("\"errors\" : 3"), "\(status)")  // locked, later, secret.txt
    }

    /// `sd status` and `sd ls` agree with `find` and with the make-tree manifest (file count, bytes) and with
    /// b3sum's full hashes on duplicate groups.
    @Test func statusAndListingAgreeWithFindAndTheManifest() throws {
        let dir = try TemporaryDirectory(prefix: "sd-agree")
        let python = Run.which("python3") ?? "/usr/bin/python3"
        let tree = dir.file("tree")
        try #require(
            try Run.program(python, [Scripts.script("make-tree"), "--out", tree, "--files", "2000"]).status == 0
        )
        let manifest = try String(contentsOfFile: dir.file("tree.manifest.tsv"), encoding: .utf8)
            .split(separator: "\n").dropFirst().map { $0.split(separator: "\t", omittingEmptySubsequences: false) }
        let manifestBytes = manifest.reduce(0) { $0 + Int($1[1])! }
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        #expect(try sd.run(["location", "add", tree]).status == 0)
        #expect(try sd.run(["index"]).status == 0)
        let status =
            try JSONSerialization.jsonObject(with: Data(try sd.run(["status", "--json"]).stdout.utf8)) as! [String: Any]
        #expect(status["files"] as? Int == manifest.count)
        #expect(status["bytes"] as? Int == manifestBytes)
        // Duplicate groups: files with identical bytes, by b3sum's full hashes.
        let b3sum = try #require(Run.which("b3sum"))
        let nonEmpty = manifest.filter { Int($0[1])! > 0 }.map { "\(tree)/\($0[0])" }
        let full = String(decoding: try Run.program(b3sum, ["--no-names"] + nonEmpty).out, as: UTF8.self)
        var groups: [Substring: Int] = [:]
        for line in full.split(separator: "\n") { groups[line, default: 0] += 1 }
        #expect(status["duplicateGroups"] as? Int == groups.values.filter { $0 > 1 }.count)
        #expect(status["duplicateFiles"] as? Int == groups.values.filter { $0 > 1 }.reduce(0, +))
        // Every folder's listing equals find's.
        let folders = try FileManager.default.subpathsOfDirectory(atPath: tree).filter {
            var isDir: ObjCBool = false
            return FileManager.default.fileExists(atPath: "\(tree)/\($0)", isDirectory: &isDir) && isDir.boolValue
        }
        for folder in folders.prefix(40) + [""] {
            let path = folder.isEmpty ? tree : "\(tree)/\(folder)"
            let found = String(
                decoding: try Run.program(
                    "/usr/bin/find",
                    [path, "-mindepth", "1", "-maxdepth", "1", "-printf", "%f\n"]
                ).out,
                as: UTF8.self
            )
            .split(separator: "\n").map(String.init).sorted()
            let listed = try sd.run(["ls", path]).stdout.split(separator: "\n")
                .map { $0.hasSuffix("/") ? String($0.dropLast()) : String($0) }.sorted()
            #expect(listed == found, "\(path)")
        }
    }
}
