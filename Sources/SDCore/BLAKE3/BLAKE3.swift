import CSDPlatform
import Dispatch
import Foundation
import SDBlake3Kernel

#if arch(x86_64)
    import SDBlake3KernelAVX2
#endif

#if _endian(big)
    #error("BLAKE3 here reads message words straight from memory and assumes a little-endian host")
#endif

/// BLAKE3, written for sd: the hash, keyed hash, key derivation, extendable output and a streaming hasher.
///
/// One-shot use: `BLAKE3.hash(bytes)`. Streaming: make a `BLAKE3.Hasher`, call `update` with pieces of any
/// size, then `finalize()` or `finalizeXOF()`. Large updates are compressed eight chunks at a time by a SIMD
/// kernel (AVX2 where the CPU has it) and, when the hasher is made with `threads: .automatic`, split over the
/// cores along the tree, which gives the same result as a sequential run by construction.
public enum BLAKE3 {
    public static let outputLength = 32
    public static let keyLength = 32
    static let blockLength = 64
    static let chunkLength = 1024
    static let degree = 8

    typealias Words8 = (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32)
    typealias Words16 = (
        UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32,
        UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32
    )

    static let iv: Words8 = (
        0x6A09_E667, 0xBB67_AE85, 0x3C6E_F372, 0xA54F_F53A, 0x510E_527F, 0x9B05_688C, 0x1F83_D9AB, 0x5BE0_CD19
    )

    struct Flags {
        static let chunkStart: UInt32 = 1 << 0
        static let chunkEnd: UInt32 = 1 << 1
        static let parent: UInt32 = 1 << 2
        static let root: UInt32 = 1 << 3
        static let keyedHash: UInt32 = 1 << 4
        static let deriveKeyContext: UInt32 = 1 << 5
        static let deriveKeyMaterial: UInt32 = 1 << 6
    }

    /// Whether a hasher may use more than the calling thread.
    public enum Threads: Sendable {
        /// Only the calling thread.
        case single
        /// Split inputs of a few hundred KiB and more over the cores.
        case automatic
    }

    // MARK: - One-shot API

    /// The 32-byte BLAKE3 hash of `bytes`.
    public static func hash(_ bytes: UnsafeRawBufferPointer, threads: Threads = .single) -> Digest {
        var hasher = Hasher(threads: threads)
        hasher.update(bytes)
        return hasher.finalize()
    }

    /// The 32-byte BLAKE3 hash of `bytes`.
    public static func hash(_ bytes: some Sequence<UInt8>) -> Digest {
        var hasher = Hasher()
        hasher.update(bytes)
        return hasher.finalize()
    }

    /// The keyed hash (a MAC) of `bytes` under a 32-byte key.
    public static func keyedHash(key: [UInt8], _ bytes: some Sequence<UInt8>) -> Digest {
        var hasher = Hasher(key: key)
        hasher.update(bytes)
        return hasher.finalize()
    }

    /// Derives a 32-byte key from `material` for the purpose named by `context`, which should be a
    /// hard-coded, globally unique, application-specific string.
    public static func deriveKey(context: String, material: some Sequence<UInt8>) -> Digest {
        var hasher = Hasher(derivingKeyFromContext: context)
        hasher.update(material)
        return hasher.finalize()
    }

    // MARK: - Kernel selection

    typealias Hash8 =
        @Sendable (
            UnsafePointer<UnsafeRawPointer>, Int, UnsafePointer<UInt32>, UInt64, Bool, UInt32, UInt32, UInt32,
            UnsafeMutableRawPointer
        ) -> Void

    /// The 8-way kernel for this CPU, chosen once.
    static let hash8: Hash8 = {
        #if arch(x86_64)
            if csd_cpu_has_avx2() == 1 {
                return {
                    BLAKE3Kernel8AVX2.hash8(
                        $0,
                        blocks: $1,
                        key: $2,
                        counter: $3,
                        incrementCounter: $4,
                        flags: $5,
                        flagsStart: $6,
                        flagsEnd: $7,
                        out: $8
                    )
                }
            }
        #endif
        return {
            BLAKE3Kernel8.hash8(
                $0,
                blocks: $1,
                key: $2,
                counter: $3,
                incrementCounter: $4,
                flags: $5,
                flagsStart: $6,
                flagsEnd: $7,
                out: $8
            )
        }
    }()
}

// MARK: - Words and bytes

extension BLAKE3 {
    @inline(__always)
    static func loadWords16(_ p: UnsafeRawPointer) -> Words16 {
        // Callers pass a pointer to 64 readable bytes; the host is little-endian (checked above).
        p.loadUnaligned(as: Words16.self)
    }

    @inline(__always)
    static func loadWords8(_ p: UnsafeRawPointer) -> Words8 {
        p.loadUnaligned(as: Words8.self)
    }

    @inline(__always)
    static func store(_ cv: Words8, to p: UnsafeMutableRawPointer) {
        p.storeBytes(of: cv, as: Words8.self)
    }

    static func words8(fromKey key: [UInt8]) -> Words8 {
        precondition(key.count == keyLength, "BUG: a BLAKE3 key must be 32 bytes, got \(key.count)")
        return key.withUnsafeBytes { loadWords8($0.baseAddress!) }
    }
}

// MARK: - Output node

extension BLAKE3 {
    /// A node whose compression is deferred until it is known whether it is the root.
    struct Output {
        var inputCV: Words8
        var block: Words16
        var blockLength: UInt32
        var counter: UInt64
        var flags: UInt32

        func chainingValue() -> Words8 {
            var cv = inputCV
            _ = compress(&cv, block, counter: counter, blockLength: blockLength, flags: flags)
            return cv
        }

        /// The 64 bytes of root output block number `blockIndex`.
        func rootBlock(_ blockIndex: UInt64) -> Words16 {
            var cv = inputCV
            return compress(&cv, block, counter: blockIndex, blockLength: blockLength, flags: flags | Flags.root)
        }
    }

    static func parentOutput(_ left: Words8, _ right: Words8, key: Words8, flags: UInt32) -> Output {
        let block: Words16 = (
            left.0, left.1, left.2, left.3, left.4, left.5, left.6, left.7,
            right.0, right.1, right.2, right.3, right.4, right.5, right.6, right.7
        )
        return Output(
            inputCV: key,
            block: block,
            blockLength: UInt32(blockLength),
            counter: 0,
            flags: flags | Flags.parent
        )
    }
}

// MARK: - Chunk state

extension BLAKE3 {
    /// The state of the chunk being filled by a streaming hasher. Its last block is never compressed
    /// until the hasher knows whether the chunk ends there.
    struct ChunkState {
        var cv: Words8
        var counter: UInt64
        var block: Words16 = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var blockLength = 0
        var blocksCompressed = 0
        let flags: UInt32

        init(key: Words8, counter: UInt64, flags: UInt32) {
            self.cv = key
            self.counter = counter
            self.flags = flags
        }

        var count: Int { blocksCompressed * BLAKE3.blockLength + blockLength }

        private var startFlag: UInt32 { blocksCompressed == 0 ? Flags.chunkStart : 0 }

        mutating func update(_ input: UnsafeRawBufferPointer) {
            guard var p = input.baseAddress else { return }
            var remaining = input.count
            precondition(count + remaining <= chunkLength, "BUG: a chunk state was given more than 1024 bytes")
            while remaining > 0 {
                if blockLength == BLAKE3.blockLength {
                    _ = compress(
                        &cv,
                        block,
                        counter: counter,
                        blockLength: UInt32(BLAKE3.blockLength),
                        flags: flags | startFlag
                    )
                    blocksCompressed += 1
                    blockLength = 0
                    block = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
                }
                // Whole blocks straight from the input, keeping the last one (it may end the chunk).
                while blockLength == 0 && remaining > BLAKE3.blockLength {
                    _ = compress(
                        &cv,
                        loadWords16(p),
                        counter: counter,
                        blockLength: UInt32(BLAKE3.blockLength),
                        flags: flags | startFlag
                    )
                    blocksCompressed += 1
                    p += BLAKE3.blockLength
                    remaining -= BLAKE3.blockLength
                }
                let take = min(BLAKE3.blockLength - blockLength, remaining)
                withUnsafeMutableBytes(of: &block) { dst in
                    (dst.baseAddress! + blockLength).copyMemory(from: p, byteCount: take)
                }
                blockLength += take
                p += take
                remaining -= take
            }
        }

        func output() -> Output {
            Output(
                inputCV: cv,
                block: block,
                blockLength: UInt32(blockLength),
                counter: counter,
                flags: flags | startFlag | Flags.chunkEnd
            )
        }
    }
}

// MARK: - The wide tree: many chunks and parents at once

extension BLAKE3 {
    /// A raw pointer that may cross to the other half of a parallel split. Safe because each half writes
    /// only its own disjoint region and the split waits for both halves before the buffer is read.
    struct SendablePointer: @unchecked Sendable {
        let raw: UnsafeMutableRawPointer
    }

    /// Hashes `count` inputs of `blocks` blocks each (contiguous, `stride` bytes apart) with the 8-way kernel,
    /// writing `count` chaining values to `out`.
    static func hashMany(
        _ input: UnsafeRawPointer,
        count: Int,
        stride: Int,
        blocks: Int,
        key: Words8,
        counter: UInt64,
        incrementCounter: Bool,
        flags: UInt32,
        flagsStart: UInt32,
        flagsEnd: UInt32,
        out: UnsafeMutableRawPointer
    ) {
        var key = key
        withUnsafePointer(to: &key) { keyTuple in
            keyTuple.withMemoryRebound(to: UInt32.self, capacity: 8) { keyWords in
                withUnsafeTemporaryAllocation(of: UnsafeRawPointer.self, capacity: degree) { pointers in
                    withUnsafeTemporaryAllocation(byteCount: degree * outputLength, alignment: 16) { scratch in
                        var done = 0
                        while done < count {
                            let n = min(degree, count - done)
                            for lane in 0..<degree {
                                // Lanes past `n` repeat the last input; their output is discarded.
                                pointers[lane] = input + (done + min(lane, n - 1)) * stride
                            }
                            let laneCounter = incrementCounter ? counter + UInt64(done) : counter
                            let target = n == degree ? out + done * outputLength : scratch.baseAddress!
                            hash8(
                                pointers.baseAddress!,
                                blocks,
                                keyWords,
                                laneCounter,
                                incrementCounter,
                                flags,
                                flagsStart,
                                flagsEnd,
                                target
                            )
                            if n < degree {
                                (out + done * outputLength).copyMemory(
                                    from: scratch.baseAddress!,
                                    byteCount: n * outputLength
                                )
                            }
                            done += n
                        }
                    }
                }
            }
        }
    }

    /// Chaining values of the chunks of `input` (at most `degree` chunks, the last may be partial).
    static func compressChunks(
        _ input: UnsafeRawBufferPointer,
        key: Words8,
        counter: UInt64,
        flags: UInt32,
        out: UnsafeMutableRawPointer
    ) -> Int {
        let fullChunks = input.count / chunkLength
        if fullChunks > 0 {
            hashMany(
                input.baseAddress!,
                count: fullChunks,
                stride: chunkLength,
                blocks: chunkLength / blockLength,
                key: key,
                counter: counter,
                incrementCounter: true,
                flags: flags,
                flagsStart: Flags.chunkStart,
                flagsEnd: Flags.chunkEnd,
                out: out
            )
        }
        let tail = input.count - fullChunks * chunkLength
        guard tail > 0 else { return fullChunks }
        var state = ChunkState(key: key, counter: counter + UInt64(fullChunks), flags: flags)
        state.update(UnsafeRawBufferPointer(rebasing: input[(fullChunks * chunkLength)...]))
        store(state.output().chainingValue(), to: out + fullChunks * outputLength)
        return fullChunks + 1
    }

    /// Parents of adjacent pairs of `count` chaining values; an odd one out is carried up as it is.
    static func compressParents(
        _ cvs: UnsafeRawPointer,
        count: Int,
        key: Words8,
        flags: UInt32,
        out: UnsafeMutableRawPointer
    ) -> Int {
        let pairs = count / 2
        hashMany(
            cvs,
            count: pairs,
            stride: blockLength,
            blocks: 1,
            key: key,
            counter: 0,
            incrementCounter: false,
            flags: flags | Flags.parent,
            flagsStart: 0,
            flagsEnd: 0,
            out: out
        )
        if count % 2 == 1 {
            (out + pairs * outputLength).copyMemory(from: cvs + pairs * blockLength, byteCount: outputLength)
            return pairs + 1
        }
        return pairs
    }

    /// The number of bytes in the left subtree of a node over `length` bytes: the largest power of two number
    /// of whole chunks that leaves at least one byte for the right.
    @inline(__always)
    static func leftLength(_ length: Int) -> Int {
        let fullChunks = (length - 1) / chunkLength
        return (1 << (Int.bitWidth - 1 - fullChunks.leadingZeroBitCount)) * chunkLength
    }

    /// Compresses a subtree (`input.count` > 0, starting at chunk `counter`, a power-of-two-aligned position)
    /// down to at most `degree` chaining values when it is larger than `degree` chunks, else one per chunk.
    /// `parallelDepth` > 0 lets this level split its two halves over two threads.
    static func compressSubtreeWide(
        _ input: UnsafeRawBufferPointer,
        key: Words8,
        counter: UInt64,
        flags: UInt32,
        parallelDepth: Int,
        out: UnsafeMutableRawPointer
    ) -> Int {
        if input.count <= degree * chunkLength {
            return compressChunks(input, key: key, counter: counter, flags: flags, out: out)
        }
        let left = leftLength(input.count)
        let leftInput = UnsafeRawBufferPointer(rebasing: input[..<left])
        let rightInput = UnsafeRawBufferPointer(rebasing: input[left...])
        let rightCounter = counter + UInt64(left / chunkLength)
        return withUnsafeTemporaryAllocation(byteCount: 2 * degree * outputLength, alignment: 16) { cvArray in
            let leftOut = SendablePointer(raw: cvArray.baseAddress!)
            let rightOut = SendablePointer(raw: cvArray.baseAddress! + degree * outputLength)
            var counts = (0, 0)
            if parallelDepth > 0 && input.count >= parallelThreshold {
                let results = UnsafeMutableBufferPointer<Int>.allocate(capacity: 2)
                defer { results.deallocate() }
                let shared = SendablePointer(raw: UnsafeMutableRawPointer(results.baseAddress!))
                let halves = (SendableBuffer(leftInput), SendableBuffer(rightInput))
                DispatchQueue.concurrentPerform(iterations: 2) { side in
                    let n = compressSubtreeWide(
                        side == 0 ? halves.0.buffer : halves.1.buffer,
                        key: key,
                        counter: side == 0 ? counter : rightCounter,
                        flags: flags,
                        parallelDepth: parallelDepth - 1,
                        out: side == 0 ? leftOut.raw : rightOut.raw
                    )
                    shared.raw.storeBytes(of: n, toByteOffset: side * MemoryLayout<Int>.stride, as: Int.self)
                }
                counts = (results[0], results[1])
            } else {
                counts.0 = compressSubtreeWide(
                    leftInput,
                    key: key,
                    counter: counter,
                    flags: flags,
                    parallelDepth: 0,
                    out: leftOut.raw
                )
                counts.1 = compressSubtreeWide(
                    rightInput,
                    key: key,
                    counter: rightCounter,
                    flags: flags,
                    parallelDepth: 0,
                    out: rightOut.raw
                )
            }
            // The left half is a full power-of-two subtree, so it always yields `degree` values and the two
            // outputs sit back to back in `cvArray`.
            assert(counts.0 == degree)
            return compressParents(
                cvArray.baseAddress!,
                count: counts.0 + counts.1,
                key: key,
                flags: flags,
                out: out
            )
        }
    }

    struct SendableBuffer: @unchecked Sendable {
        // Read-only view of the caller's input, which outlives the parallel split that reads it.
        let buffer: UnsafeRawBufferPointer
        init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }
    }

    /// Inputs at least this large are worth splitting over two threads (measured: below ~256 KiB the
    /// hand-off costs more than it saves).
    static let parallelThreshold = 256 * 1024

    /// How many times the tree may be split in two over threads, from the number of cores.
    static let maxParallelDepth: Int = {
        let cores = max(1, sysconfCores())
        return cores <= 1 ? 0 : (Int.bitWidth - (cores - 1).leadingZeroBitCount) + 1
    }()

    /// Compresses a subtree of more than one chunk to the two chaining values of its root node.
    static func compressSubtreeToParentNode(
        _ input: UnsafeRawBufferPointer,
        key: Words8,
        counter: UInt64,
        flags: UInt32,
        parallelDepth: Int
    ) -> (Words8, Words8) {
        withUnsafeTemporaryAllocation(byteCount: 2 * degree * outputLength, alignment: 16) { buffers in
            let cvs = buffers.baseAddress!
            let scratch = cvs + degree * outputLength
            var count = compressSubtreeWide(
                input,
                key: key,
                counter: counter,
                flags: flags,
                parallelDepth: parallelDepth,
                out: cvs
            )
            while count > 2 {
                count = compressParents(cvs, count: count, key: key, flags: flags, out: scratch)
                cvs.copyMemory(from: scratch, byteCount: count * outputLength)
            }
            return (loadWords8(cvs), loadWords8(cvs + outputLength))
        }
    }
}

private func sysconfCores() -> Int {
    ProcessInfo.processInfo.activeProcessorCount
}
