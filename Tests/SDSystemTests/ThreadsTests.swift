import Dispatch
import Foundation
import SDSystem
import Synchronization
import Testing

struct ThreadsTests {
    /// A queue with queue-specific data, as each GRDB connection has: disposing of it schedules work with
    /// libdispatch.
    final class QueueOwner: Sendable {
        static let key = DispatchSpecificKey<Int>()
        let queue = DispatchQueue(label: "sd-test-owner")
        let released: @Sendable () -> Void
        init(released: @escaping @Sendable () -> Void) {
            self.released = released
            queue.setSpecific(key: Self.key, value: 1)
        }
        deinit { released() }
    }

    /// The case that corrupted the heap with Foundation's `Thread` (a later `malloc` aborted with "unaligned
    /// fastbin chunk detected"): a thread that used Dispatch (so it has a continuation cache) holds, in what its
    /// body captured, the last reference to such a queue. With `Threads.start` built on Foundation's `Thread`,
    /// this test took the process down in 3 runs out of 3 ("tcache_thread_shutdown(): unaligned tcache chunk
    /// detected"); it passes with the pthread version.
    @Test func aBodyHoldingTheLastReferenceToAQueueIsReleasedSafely() throws {
        let rounds = 10_000
        let finished = DispatchSemaphore(value: 0)
        let releasedOnItsThread = Atomic(0)
        for _ in 0..<rounds {
            let thread = ThreadSlot()
            let go = DispatchSemaphore(value: 0)
            try startCapturingTheOwner(thread, go) {
                // Released by the thread that ran the body, before it went on to exit.
                if thread.id.withLock({ $0 }).map({ pthread_equal($0, pthread_self()) != 0 }) == true {
                    releasedOnItsThread.add(1, ordering: .relaxed)
                }
                finished.signal()
            }
            // That function has returned, and its reference with it: the body's capture is the only one left.
            go.signal()
            finished.wait()
        }
        #expect(releasedOnItsThread.load(ordering: .relaxed) == rounds)
    }

    /// The thread a body ran on.
    final class ThreadSlot: Sendable {
        let id = Mutex<pthread_t?>(nil)
    }

    /// Starts a thread whose body captures a new owner, and returns (so its own reference ends, in debug
    /// builds too); the body waits for `go` before it ends.
    private func startCapturingTheOwner(
        _ thread: ThreadSlot,
        _ go: DispatchSemaphore,
        released: @escaping @Sendable () -> Void
    ) throws {
        let owner = QueueOwner(released: released)
        try Threads.start(name: "sd-test-owner") { [owner] in
            thread.id.withLock { $0 = pthread_self() }
            DispatchQueue.concurrentPerform(iterations: 2) { _ in }
            go.wait()
            _ = owner.queue.label
        }
    }

    @Test func longNamesAreCutAtACharacterBoundary() throws {
        let done = DispatchSemaphore(value: 0)
        let seen = Mutex("")
        try Threads.start(name: "sd-ééééééééééé-long") {
            var buffer = [CChar](repeating: 0, count: 64)
            let fd = open("/proc/thread-self/comm", O_RDONLY)
            if fd >= 0 {
                let n = read(fd, &buffer, buffer.count - 1)
                close(fd)
                if n > 0 {
                    seen.withLock {
                        $0 = String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                    }
                }
            }
            done.signal()
        }
        done.wait()
        // 15 bytes at most, and never half a character.
        #expect(seen.withLock { $0 } == "sd-éééééé\n")
    }
}
