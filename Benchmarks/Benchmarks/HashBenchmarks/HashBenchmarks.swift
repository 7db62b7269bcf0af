import Benchmark
import SDCore

/// BLAKE3 throughput (single thread and over the cores), content ids on in-memory content, and the file-kind
/// extension fast path. Throughput figures are bytes per second of input.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        maxDuration: .seconds(3)
    )

    let sizes = [1024, 64 * 1024, 16 << 20]
    for size in sizes {
        let input = [UInt8](repeating: 0xA5, count: size)
        Benchmark("BLAKE3 single thread \(size) B", configuration: .init(scalingFactor: .one)) { benchmark in
            for _ in benchmark.scaledIterations {
                input.withUnsafeBytes { blackHole(BLAKE3.hash($0, threads: .single)) }
            }
        }
        Benchmark("BLAKE3 all cores \(size) B", configuration: .init(scalingFactor: .one)) { benchmark in
            for _ in benchmark.scaledIterations {
                input.withUnsafeBytes { blackHole(BLAKE3.hash($0, threads: .automatic)) }
            }
        }
    }

    for size in [4 * 1024, 1 << 20, 1 << 30] {
        // A sparse stand-in: content ids read at most ~57 KiB whatever the size, so only offsets matter.
        let reader = RepeatingReader(size: UInt64(size))
        Benchmark("content id \(size) B") { benchmark in
            let hasher = ContentHasher()
            for _ in benchmark.scaledIterations { blackHole(try hasher.contentID(of: reader)) }
        }
    }

    let names = ["holiday photo 2024.JPG", "report-final.pdf", "main.swift", "archive.tar.gz", "noextension"]
    Benchmark("file kind by extension (5 names)", configuration: .init(scalingFactor: .kilo)) { benchmark in
        var utf8 = names.map { Array($0.utf8) }
        for _ in benchmark.scaledIterations {
            for i in utf8.indices { utf8[i].withUnsafeBytes { blackHole(FileKinds.kind(forName: $0).kind) } }
        }
    }
}

/// Content of any size without the memory: every byte is its offset's low byte.
struct RepeatingReader: RangedReader {
    let length: UInt64
    init(size: UInt64) { length = size }
    func size() throws -> UInt64 { length }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        let n = Int(min(UInt64(buffer.count), length - min(offset, length)))
        for i in 0..<n { buffer[i] = UInt8(truncatingIfNeeded: offset + UInt64(i)) }
        return n
    }
}
