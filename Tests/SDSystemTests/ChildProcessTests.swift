import Foundation
import SDSystem
import SDTestSupport
import Testing

/// Programs started by sd (and by its tests): exit codes, signals, output and input through pipes, and no
/// descriptor of ours leaking into a child.
struct ChildProcessTests {
    @Test func exitCodesAndOutput() throws {
        let ok = try ChildProcess.run("/bin/sh", ["-c", "printf out; printf err >&2; exit 3"])
        #expect(ok.termination == .exited(3))
        #expect(String(decoding: ok.out, as: UTF8.self) == "out")
        #expect(String(decoding: ok.err, as: UTF8.self) == "err")
        #expect(throws: SystemError.self) { try ChildProcess.run("/no/such/program", []) }
    }

    /// Megabytes each way: a program that writes before it has read all its input does not deadlock with us.
    @Test func largeInputAndOutputTogether() throws {
        let input = [UInt8]((0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        let result = try ChildProcess.run("/bin/sh", ["-c", "head -c 2000000 /dev/zero >&2; cat"], input: input)
        #expect(result.termination == .exited(0))
        #expect(result.out == input)
        #expect(result.err.count == 2_000_000)
    }

    @Test func signalsAndWaiting() throws {
        let child = try ChildProcess.start("/bin/sleep", ["30"])
        #expect(child.isRunning)
        #expect(!child.wait(seconds: 0.05))
        child.send(SIGKILL)
        #expect(child.wait() == .signalled(SIGKILL))
        #expect(child.wait().code == 128 + SIGKILL)
        child.send(SIGKILL)  // after it was reaped: a no-op
        #expect(!child.isRunning)
    }

    /// A pipe we hold open for ourselves is not inherited by a child started meanwhile: our reader sees its end
    /// as soon as the writer closes it, not when the unrelated child exits.
    @Test func ourDescriptorsDoNotLeakIntoChildren() throws {
        let pipe = try ChildProcess.pipe()
        // Without close-on-exec too: the child must still not get it.
        _ = fcntl(pipe.write, F_SETFD, 0)
        let sleeper = try ChildProcess.start("/bin/sleep", ["30"])
        defer {
            sleeper.send(SIGKILL)
            sleeper.wait()
        }
        #expect(!FileManager.default.fileExists(atPath: "/proc/\(sleeper.pid)/fd/\(pipe.write)"))
        close(pipe.write)
        var ready = [pollfd(fd: pipe.read, events: Int16(POLLIN), revents: 0)]
        #expect(poll(&ready, 1, 5_000) == 1, "the reader sees the end at once")
        var byte: UInt8 = 0
        #expect(read(pipe.read, &byte, 1) == 0)
        close(pipe.read)
    }
}
