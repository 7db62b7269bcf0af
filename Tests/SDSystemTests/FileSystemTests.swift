import Foundation
import SDSystem
import SDTestSupport
import Synchronization
import Testing

struct FileSystemTests {
    let dir: TemporaryDirectory
    init() throws { dir = try TemporaryDirectory(prefix: "sd-sys") }

    @Test func atomicWriteReplacesWholeAndLeavesNoTemporary() throws {
        let path = dir.file("a.json")
        try FileSystem.writeAtomically(Array("first".utf8), to: path)
        try FileSystem.writeAtomically(Array("second version".utf8), to: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "second version")
        #expect(try FileSystem.list(dir.path) == ["a.json"])
    }

    @Test func writeNewRefusesAnExistingFile() throws {
        let path = try dir.write("b", Array("keep".utf8))
        let error = #expect(throws: SystemError.self) { try FileSystem.writeNew(Array("x".utf8), to: path) }
        #expect(error?.isExists == true)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "keep")
    }

    @Test func renameNoReplaceNeverClobbers() throws {
        let a = try dir.write("a", Array("A".utf8)), b = try dir.write("b", Array("B".utf8))
        let error = #expect(throws: SystemError.self) { try FileSystem.renameNoReplace(a, to: b) }
        #expect(error?.isExists == true)
        #expect(try String(contentsOfFile: b, encoding: .utf8) == "B")
        try FileSystem.renameNoReplace(a, to: dir.file("c"))
        #expect(!FileSystem.exists(a) && FileSystem.exists(dir.file("c")))
        // Folders too.
        try FileSystem.makeDirectories(dir.file("d1/x")); try FileSystem.makeDirectories(dir.file("d2"))
        #expect(throws: SystemError.self) { try FileSystem.renameNoReplace(dir.file("d1"), to: dir.file("d2")) }
    }

    @Test func readsByOffsetAndReportsErrors() throws {
        let path = try dir.write("data", Array(0..<200).map { UInt8($0) })
        let file = try ReadOnlyFile(path: path)
        var buffer = [UInt8](repeating: 0, count: 50)
        let n = try buffer.withUnsafeMutableBytes { try file.read(into: $0, at: 180) }
        #expect(n == 20 && buffer[0] == 180 && buffer[19] == 199)
        #expect(file.sizeAtOpen == 200)
        let missing = #expect(throws: SystemError.self) { _ = try ReadOnlyFile(path: dir.file("nope")) }
        #expect(missing?.isNotFound == true)
        #expect(missing?.description.contains("nope") == true)
        #expect(throws: SystemError.self) { _ = try ReadOnlyFile(path: dir.path) }
    }

    /// flock is per open file, so two holders in one process exclude each other as two processes would.
    @Test func exclusiveLockExcludes() throws {
        let path = dir.file("lock")
        let inside = Mutex(0), maxInside = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 6) { _ in
            for _ in 0..<20 {
                try! FileLock.withLock(path: path, mode: .exclusive) {
                    let now = inside.withLock {
                        $0 += 1; return $0
                    }
                    maxInside.withLock { $0 = max($0, now) }
                    usleep(200)
                    inside.withLock { $0 -= 1 }
                }
            }
        }
        #expect(maxInside.withLock { $0 } == 1)
    }
}
