import Foundation
import SDTestSupport
import Testing

@testable import SDSystem

/// Names as strings without losing a byte, shown so that they can be typed back and never drive the terminal.
struct PathTextTests {
    /// Random byte strings (any byte but NUL and '/', with a bias to the hard cases: bytes that are not UTF-8,
    /// controls, the stand-in plane's own characters, bidi overrides) go to a string and back exactly.
    @Test func everyByteSequenceComesBackExactly() {
        var rng = SeededRNG.announced("path text round trip")
        let pieces: [[UInt8]] = [
            [0xE9], [0xFF], [0xC3], [0x80], [0x0A], [0x09], [0x1B], [0x7F], [0x5C], Array("é".utf8),
            Array("\u{202E}".utf8), Array("日本".utf8), Array("🎉".utf8), [0xF4, 0x8F, 0xB8, 0x80],
            [0xF4, 0x8F, 0xBB, 0xBF], [0xF4, 0x90, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xC0, 0xAF], Array("a".utf8),
        ]
        for _ in 0..<5_000 {
            var bytes: [UInt8] = []
            for _ in 0..<Int.random(in: 0...8, using: &rng) {
                if Bool.random(using: &rng) {
                    bytes += pieces.randomElement(using: &rng)!
                } else {
                    bytes.append(UInt8.random(in: 1...255, using: &rng))
                }
            }
            let text = PathText.string(bytes)
            #expect(PathText.bytes(text) == bytes, "\(bytes)")
            #expect(PathText.canonical(text) == text)
            // The shown form never holds a control character, a bidi control or a stand-in.
            let shown = PathText.display(text).text
            #expect(!shown.unicodeScalars.contains { PathText.needsEscape($0) && $0 != "\\" }, "\(bytes)")
        }
        // Plain names are their own strings.
        #expect(PathText.string(Array("report 2025.pdf".utf8)) == "report 2025.pdf")
        #expect(PathText.display("report 2025.pdf") == ("report 2025.pdf", false))
    }

    /// Text that holds the stand-in plane's characters for NUL, '/' or '.' carries those characters, never the
    /// bytes: no string smuggles a path separator, a `..` or a NUL into what reaches the system.
    @Test func noStringSmugglesASlashADotOrANul() {
        let sneaky = "a\u{10FE2F}..\u{10FE2E}\u{10FE2E}\u{10FE2F}b\u{10FE00}c"
        #expect(PathText.bytes(sneaky) == Array(sneaky.utf8))
        #expect(!PathText.bytes(sneaky).contains(0x2F) && !PathText.bytes(sneaky).contains(0))
        #expect(!PathText.hasDotDot("/a/\u{10FE2E}\u{10FE2E}/b"))
        #expect(PathText.hasDotDot("/a/../b") && !PathText.hasDotDot("/a/..b/c"))
        // A slash followed by a combining mark is still a slash (bytes, not characters).
        #expect(PathText.hasDotDot("/a/..\u{338}/b") == false && PathText.hasDotDot("/\u{338}/../b"))
        // Their own bytes (a name that really holds such a character) still come back exactly.
        let bytes = Array("x\u{10FE2F}y".utf8)
        #expect(PathText.bytes(PathText.string(bytes)) == bytes)
        #expect(PathText.display(PathText.string(bytes)).text == "x\\xF4\\x8F\\xB8\\xAFy")
    }

    /// What is shown is bash's `$'...'` quoting: bash, given it, prints the original bytes (an oracle that is
    /// not sd's code).
    @Test func theShownFormTypedIntoBashGivesTheBytes() throws {
        let bash = try #require(Run.which("bash"), "bash is needed for this test")
        let names: [[UInt8]] = [
            Array("caf".utf8) + [0xE9] + Array(".txt".utf8), Array("new\nline".utf8), Array("esc\u{1B}[31mred".utf8),
            Array("bidi\u{202E}txt.exe".utf8), Array("back\\slash\\x41".utf8), [0xFF, 0xFE, 0x41],
            Array("tab\there".utf8), Array("c1\u{85}next".utf8), [0xF4, 0x8F, 0xB8, 0x80], Array("日本語のファイル".utf8),
        ]
        for name in names {
            let (shown, escaped) = PathText.display(bytes: name)
            #expect(escaped == (String(validating: name, as: UTF8.self).map { $0 != shown } ?? true))
            let printed = try Run.program(bash, ["-c", "printf %s $'\(shown)'"])
            #expect([UInt8](printed.out) == name, "\(shown)")
        }
    }

    /// The system calls get the bytes: a file with a name that is not UTF-8 is made, found, renamed and removed
    /// through `String` paths.
    @Test func systemCallsGetTheBytes() throws {
        let dir = try TemporaryDirectory()
        let name: [UInt8] = Array("caf".utf8) + [0xE9, 0x0A] + Array(".txt".utf8)
        let path = dir.path + "/" + PathText.string(name)
        try FileSystem.writeNew(Array("x".utf8), to: path)
        let listed = try Directory.list(Array(dir.path.utf8)).map(\.name)
        #expect(listed == [name], "the kernel has the very bytes")
        #expect(FileSystem.exists(path))
        try FileSystem.renameReplacing(path, to: path + "2")
        #expect(try Directory.list(Array(dir.path.utf8)).map(\.name) == [name + Array("2".utf8)])
        try FileSystem.removeFile(path + "2")
        #expect(try Directory.list(Array(dir.path.utf8)).isEmpty)
    }
}
