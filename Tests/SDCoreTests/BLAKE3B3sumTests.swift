import Foundation
import SDCore
import SDTestSupport
import Testing

/// BLAKE3 against the independent `b3sum` tool, on random bytes at every chunk boundary near 1 KiB multiples and
/// at tree boundaries up to 64 MiB, through every way sd can hash: one shot on one thread and over the cores,
/// streaming in uneven pieces, and the integrity hasher reading a file.
struct BLAKE3B3sumTests {
    static let sizes: [Int] = {
        var sizes: Set<Int> = [0, 1, 63, 64, 65, 127, 128, 129]
        for n in 1...64 { for d in [-1, 0, 1] { sizes.insert(n * 1024 + d) } }
        for k in 7...16 { for d in [-1, 0, 1] { sizes.insert((1 << k) * 1024 + d) } }  // 128 KiB ... 64 MiB
        sizes.insert(3 * 1024 * 1024 + 777)
        return sizes.sorted()
    }()

    @Test func matchesB3sumAtEveryBoundary() throws {
        let b3sum = try #require(
            Run.which("b3sum"),
            "b3sum is needed: scripts/test installs it (apt-get install b3sum)"
        )
        let dir = try TemporaryDirectory(prefix: "sd-b3")
        var rng = SeededRNG(seed: 31337)
        let all = rng.bytes(Self.sizes.last!)
        let path = dir.file("all.bin")
        try Data(all).write(to: URL(fileURLWithPath: path))
        // b3sum of each prefix, in one shell run: `head -c N file | b3sum`.
        let script = Self.sizes.map { "head -c \($0) '\(path)' | \(b3sum) --no-names" }.joined(separator: "\n")
        let expected = String(decoding: try Run.program("/bin/sh", ["-c", script]).out, as: UTF8.self)
            .split(separator: "\n").map(String.init)
        try #require(expected.count == Self.sizes.count)
        let hasher = ContentHasher()
        for (size, want) in zip(Self.sizes, expected) {
            all.withUnsafeBytes { raw in
                let prefix = UnsafeRawBufferPointer(rebasing: raw[..<size])
                #expect(BLAKE3.hash(prefix, threads: .single).hex == want, "single-threaded, \(size) bytes")
                #expect(BLAKE3.hash(prefix, threads: .automatic).hex == want, "multi-threaded, \(size) bytes")
                var streaming = BLAKE3.Hasher(threads: .automatic)
                var offset = 0
                while offset < size {
                    let piece = min(size - offset, Int(rng.next() % 300_000) + 1)
                    streaming.update(UnsafeRawBufferPointer(rebasing: prefix[offset..<(offset + piece)]))
                    offset += piece
                }
                #expect(streaming.finalize().hex == want, "streaming, \(size) bytes")
            }
            if size % 1024 == 1 || size > 1_000_000 {
                let reader = MemoryReader(Array(all[..<size]))
                #expect(try hasher.integrityHash(of: reader).hex == want, "integrity hasher, \(size) bytes")
            }
        }
    }
}
