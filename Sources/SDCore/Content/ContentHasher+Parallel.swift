import Dispatch
import Foundation

extension ContentHasher {
    /// Runs `body` for indices `0..<count` on `workers` threads, each with its own hasher (and so its own
    /// buffer, reused for all its items), and returns the results in index order.
    public static func parallelMap<R: Sendable>(
        count: Int,
        workers: Int,
        _ body: @Sendable (Int, borrowing ContentHasher) -> R
    ) -> [R] {
        let slots = Slots<R>(count: count)
        let threads = max(1, min(workers, count))
        DispatchQueue.concurrentPerform(iterations: threads) { worker in
            let hasher = ContentHasher()
            var i = worker
            while i < count {
                slots.set(i, body(i, hasher))
                i += threads
            }
        }
        return slots.values
    }
}

/// Result slots filled by several workers; each index is written by exactly one worker.
private final class Slots<R: Sendable>: @unchecked Sendable {
    // @unchecked: the lock guards `storage`.
    private var storage: [R?]
    private let lock = NSLock()
    init(count: Int) { storage = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ value: R) { lock.withLock { storage[i] = value } }
    var values: [R] { lock.withLock { storage.map { $0! } } }
}
