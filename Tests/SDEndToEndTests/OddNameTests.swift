import Foundation
import SDSystem
import SDTestSupport
import Testing

/// Names that are not UTF-8, or hold control or direction characters, on every command: given byte-exactly on
/// the command line, acted on, and shown escaped (text) or as their bytes (JSON). Oracles: the kernel's own
/// listing (Python's os.listdir on bytes) and bash, which turns the shown form back into bytes.
@Suite(.serialized) struct OddNameTests {
    static let names: [[UInt8]] = [
        Array("caf".utf8) + [0xE9] + Array(".txt".utf8),
        Array("new\nline.txt".utf8),
        Array("esc\u{1B}[31mred.txt".utf8),
        Array("bidi\u{202E}txt.exe".utf8),
        Array("back\\x41slash.txt".utf8),
        Array("tab\tand\u{85}c1.txt".utf8),
        // The stand-in plane's own characters, for '/' and '.': a name, never a path.
        Array("plane\u{10FE2F}\u{10FE2E}\u{10FE2E}.txt".utf8),
    ]
    static let folder: [UInt8] = Array("dir".utf8) + [0xFF]
    static let inner: [UInt8] = Array("inner".utf8) + [0xFE] + Array(".txt".utf8)

    static func bytes(hex: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex, let j = hex.index(i, offsetBy: 2, limitedBy: hex.endIndex) {
            bytes.append(UInt8(hex[i..<j], radix: 16) ?? 0)
            i = j
        }
        return bytes
    }

    /// The names in `folder`, as the kernel has them.
    func kernelNames(_ folder: String) throws -> Set<[UInt8]> {
        let script = "import os,sys\nfor n in os.listdir(os.fsencode(sys.argv[1])): print(n.hex())"
        let run = try Run.program(Run.which("python3") ?? "/usr/bin/python3", ["-c", script, folder])
        return Set(
            String(decoding: run.out, as: UTF8.self).split(separator: "\n").map { Self.bytes(hex: String($0)) }
        )
    }

    /// What bash makes of a shown name typed back as $'...'.
    func typedBack(_ shown: String) throws -> [UInt8] {
        [UInt8](try Run.program("/bin/bash", ["-c", "printf %s $'\(shown)'"]).out)
    }

    @Test(arguments: Way.allCases) func everyCommandTakesAndShowsOddNamesExactly(_ way: Way) throws {
        let dir = try TemporaryDirectory(prefix: "sd-odd")
        let sd = try SDBinary(dataDirectory: dir.file("data"), configDirectory: dir.file("config"))
        let files = dir.file("files")
        func at(_ parts: [UInt8]...) -> String {
            files + "/" + parts.map { PathText.string($0) }.joined(separator: "/")
        }
        for i in Self.names.indices { _ = try dir.write("files/placeholder-\(i)", Array("n\(i)".utf8)) }
        for (i, name) in Self.names.enumerated() {
            try SDSystem.FileSystem.renameReplacing(files + "/placeholder-\(i)", to: at(name))
        }
        try SDSystem.FileSystem.makeDirectories(at(Self.folder))
        try SDSystem.FileSystem.writeNew(Array("inner bytes".utf8), to: at(Self.folder, Self.inner))
        try SDSystem.FileSystem.makeDirectories(files + "/sub")
        #expect(try kernelNames(files) == Set(Self.names + [Self.folder, Array("sub".utf8)]))
        @discardableResult func run(_ arguments: [String]) throws -> SDBinary.Result {
            let r = try sd.run(arguments)
            #expect(r.status == 0, "sd \(arguments.map(\.debugDescription).joined(separator: " ")): \(r.stderr)")
            return r
        }
        try run(["location", "add", files])
        try run(["index"])
        let session = try sd.begin(way)
        defer { session.end() }

        // ls: one line per entry (no name breaks a line or drives the terminal); each line typed back into bash
        // is the name's bytes; the note says how to read them.
        let listed = try run(["ls", files])
        let lines = listed.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == Self.names.count + 2, "\(lines)")
        #expect(!listed.stdout.unicodeScalars.contains { $0 == "\u{1B}" || $0 == "\u{202E}" || $0 == "\u{85}" })
        let typed = Set(try lines.map { try typedBack($0.hasSuffix("/") ? String($0.dropLast()) : $0) })
        #expect(typed == Set(Self.names + [Self.folder, Array("sub".utf8)]), "\(lines)")
        #expect(listed.stderr.contains("$'...'"), "the escapes are explained: \(listed.stderr)")
        // JSON: the exact bytes beside the shown form.
        let json = try JSONSerialization.jsonObject(with: Data(try run(["ls", files, "--json"]).stdout.utf8))
        let items = try #require(json as? [[String: Any]])
        let carried = Set(
            items.map { item in
                (item["nameBase64"] as? String).flatMap { Data(base64Encoded: $0) }.map { [UInt8]($0) }
                    ?? Array((item["name"] as? String ?? "").utf8)
            }
        )
        #expect(carried == Set(Self.names + [Self.folder, Array("sub".utf8)]))
        // search finds them and shows them escaped, one per line.
        let found = try run(["search", "inner"]).stdout
        #expect(found.contains("dir\\xFF/inner\\xFE.txt"), "\(found)")

        // Every action works on them, given byte-exactly.
        let copy = dir.file("copy")
        try run(["cp", "-y", at(Self.folder), copy])
        #expect(try kernelNames(copy) == [Self.inner])
        let inside = try Run.program("/bin/cat", [copy + "/" + PathText.string(Self.inner)])
        #expect(String(decoding: inside.out, as: UTF8.self) == "inner bytes")
        try run(["mv", "-y", at(Self.names[0]), files + "/sub"])
        #expect(try kernelNames(files + "/sub") == [Self.names[0]])
        let renamed = Self.names[0] + Array("-2".utf8)
        try run(["rename", "-y", files + "/sub/" + PathText.string(Self.names[0]), PathText.string(renamed)])
        #expect(try kernelNames(files + "/sub") == [renamed])
        try run(["tag", "create", "odd"])
        try run(["tag", "add", "odd", files + "/sub/" + PathText.string(renamed)])
        try run(["meta", "set", at(Self.names[1]), "--rating", "4"])
        #expect(try run(["meta", "show", at(Self.names[1])]).stdout.contains("(4)"))
        let hashed = try run(["hash", at(Self.names[2])]).stdout
        let hashedPath = String(hashed.split(separator: "  ", maxSplits: 1).last ?? "").trimmingCharacters(
            in: .newlines
        )
        #expect(try typedBack(hashedPath) == PathText.bytes(at(Self.names[2])), "\(hashed)")
        try run(["rm", "-y", at(Self.names[3])])
        #expect(try !kernelNames(files).contains(Self.names[3]))
        try run(["undo", "-y"])
        #expect(try kernelNames(files).contains(Self.names[3]), "undo brought it back")
        // A folder holding an odd name goes to the trash and comes back whole; a link with an odd name moves,
        // keeping its target's bytes.
        try run(["rm", "-y", at(Self.folder)])
        #expect(try !kernelNames(files).contains(Self.folder))
        try run(["undo", "-y"])
        #expect(try kernelNames(at(Self.folder)) == [Self.inner])
        let link: [UInt8] = Array("link".utf8) + [0xE9]
        let made = try Run.program(
            Run.which("python3") ?? "/usr/bin/python3",
            [
                "-c", "import os,sys; os.symlink(os.fsencode(sys.argv[1]), os.fsencode(sys.argv[2]))",
                at(Self.names[4]), at(link),
            ]
        )
        #expect(made.status == 0)
        try run(["index"])
        try run(["mv", "-y", at(link), files + "/sub"])
        let target = try Run.program(
            Run.which("python3") ?? "/usr/bin/python3",
            [
                "-c", "import os,sys; sys.stdout.buffer.write(os.readlink(os.fsencode(sys.argv[1])))",
                files + "/sub/" + PathText.string(link),
            ]
        )
        #expect([UInt8](target.out) == PathText.bytes(at(Self.names[4])), "the moved link holds its target's bytes")
        try SDSystem.FileSystem.removeFile(files + "/sub/" + PathText.string(link))
        try run(["index"])
        let scrub = try run(["scrub", "-y"])
        #expect(scrub.stdout.contains("0 corrupted"), "\(scrub.stdout)")
        // No lost bytes anywhere: the kernel still has every name.
        #expect(try kernelNames(files) == Set(Self.names.dropFirst() + [Self.folder, Array("sub".utf8)]))
    }
}
