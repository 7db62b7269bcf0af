import Foundation
import SDSystem

/// A small deterministic random number generator (SplitMix64) so that property tests print a seed that
/// reproduces a failure.
public struct SeededRNG: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// A generator for a randomised test, its seed printed before the test uses it: `$SD_SEED` when set (to
    /// repeat a run), else a new one.
    public static func announced(_ test: String) -> SeededRNG {
        let seed =
            ProcessInfo.processInfo.environment["SD_SEED"].flatMap { UInt64($0) }
            ?? UInt64.random(in: 0...UInt64(UInt32.max))
        print("\(test): seed \(seed) (SD_SEED=\(seed) repeats it)")
        return SeededRNG(seed: seed)
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var i = 0
        while i < count {
            var word = next()
            for _ in 0..<8 where i < count {
                out[i] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                i += 1
            }
        }
        return out
    }
}

/// Runs long synchronous work on a thread of its own, so that it does not hold one of the few threads of
/// Swift's cooperative pool (2 on a 2-core machine) while other tests' async work waits for them.
public func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        do {
            try Threads.start(name: "sd-test", stackSize: 8 << 20) {
                do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
            }
        } catch {
            continuation.resume(throwing: error)
        }
    }
}
