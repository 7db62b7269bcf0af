extension BLAKE3 {
    /// An incremental BLAKE3 hasher: feed it pieces of any size; the result is the same as hashing the
    /// concatenation at once.
    public struct Hasher: Sendable {
        let key: Words8
        let flags: UInt32
        let threads: Threads
        var chunk: ChunkState
        // At most 54 entries: one per level of a tree over 2^64 bytes.
        var stack: [Words8] = []

        /// A hasher for the plain BLAKE3 hash.
        public init(threads: Threads = .single) {
            self.init(key: iv, flags: 0, threads: threads)
        }

        /// A hasher for the keyed hash under a 32-byte key.
        public init(key: [UInt8], threads: Threads = .single) {
            self.init(key: words8(fromKey: key), flags: Flags.keyedHash, threads: threads)
        }

        /// A hasher for key derivation, for the purpose named by `context`.
        public init(derivingKeyFromContext context: String, threads: Threads = .single) {
            var contextHasher = Hasher(key: iv, flags: Flags.deriveKeyContext, threads: .single)
            contextHasher.update(Array(context.utf8))
            let contextKey = contextHasher.finalize().bytes
            self.init(key: words8(fromKey: contextKey), flags: Flags.deriveKeyMaterial, threads: threads)
        }

        init(key: Words8, flags: UInt32, threads: Threads) {
            self.key = key
            self.flags = flags
            self.threads = threads
            self.chunk = ChunkState(key: key, counter: 0, flags: flags)
            stack.reserveCapacity(8)
        }

        public mutating func update(_ bytes: some Sequence<UInt8>) {
            let handled: Void? = bytes.withContiguousStorageIfAvailable { buffer in
                update(UnsafeRawBufferPointer(buffer))
            }
            if handled == nil {
                let copy = Array(bytes)
                copy.withUnsafeBytes { update($0) }
            }
        }

        public mutating func update(_ input: UnsafeRawBufferPointer) {
            guard input.count > 0 else { return }
            var input = input
            // Top up a partly filled chunk first.
            if chunk.count > 0 {
                let take = min(chunkLength - chunk.count, input.count)
                chunk.update(UnsafeRawBufferPointer(rebasing: input[..<take]))
                input = UnsafeRawBufferPointer(rebasing: input[take...])
                guard !input.isEmpty else { return }
                pushChainingValue(chunk.output().chainingValue(), chunkCounter: chunk.counter)
                chunk = ChunkState(key: key, counter: chunk.counter + 1, flags: flags)
            }
            // Whole subtrees straight from the input. At least one byte is always kept back for the chunk
            // state, because the last chunk must be finalized as part of the root.
            let depth = threads == .automatic ? maxParallelDepth : 0
            while input.count > chunkLength {
                var subtreeLength = 1 << (Int.bitWidth - 1 - input.count.leadingZeroBitCount)
                let countSoFar = chunk.counter &* UInt64(chunkLength)
                // A subtree must start at a multiple of its own size in the whole tree.
                while UInt64(subtreeLength - 1) & countSoFar != 0 { subtreeLength /= 2 }
                let subtree = UnsafeRawBufferPointer(rebasing: input[..<subtreeLength])
                let subtreeChunks = UInt64(subtreeLength / chunkLength)
                if subtreeLength <= chunkLength {
                    var state = ChunkState(key: key, counter: chunk.counter, flags: flags)
                    state.update(subtree)
                    pushChainingValue(state.output().chainingValue(), chunkCounter: state.counter)
                } else {
                    let (left, right) = compressSubtreeToParentNode(
                        subtree,
                        key: key,
                        counter: chunk.counter,
                        flags: flags,
                        parallelDepth: depth
                    )
                    pushChainingValue(left, chunkCounter: chunk.counter)
                    pushChainingValue(right, chunkCounter: chunk.counter + subtreeChunks / 2)
                }
                chunk.counter += subtreeChunks
                input = UnsafeRawBufferPointer(rebasing: input[subtreeLength...])
            }
            if !input.isEmpty {
                chunk.update(input)
                mergeStack(totalChunks: chunk.counter)
            }
        }

        /// Merges completed subtrees so that the stack holds one value per 1 bit of `totalChunks`.
        private mutating func mergeStack(totalChunks: UInt64) {
            let target = totalChunks.nonzeroBitCount
            while stack.count > target {
                let right = stack.removeLast()
                let left = stack.removeLast()
                stack.append(parentOutput(left, right, key: key, flags: flags).chainingValue())
            }
        }

        private mutating func pushChainingValue(_ cv: Words8, chunkCounter: UInt64) {
            mergeStack(totalChunks: chunkCounter)
            stack.append(cv)
        }

        func rootOutput() -> Output {
            guard !stack.isEmpty else { return chunk.output() }
            var remaining = stack.count
            var output: Output
            if chunk.count > 0 {
                output = chunk.output()
            } else {
                // Only reachable when the stack holds at least two values.
                output = parentOutput(stack[remaining - 2], stack[remaining - 1], key: key, flags: flags)
                remaining -= 2
            }
            while remaining > 0 {
                output = parentOutput(stack[remaining - 1], output.chainingValue(), key: key, flags: flags)
                remaining -= 1
            }
            return output
        }

        /// The 32-byte hash of everything given so far. The hasher can go on being updated.
        public func finalize() -> Digest {
            let block = rootOutput().rootBlock(0)
            return withUnsafeBytes(of: block) { Digest(bytes: Array($0.prefix(outputLength))) }
        }

        /// A reader of the extendable output (any length, seekable) of everything given so far.
        public func finalizeXOF() -> OutputReader {
            OutputReader(root: rootOutput())
        }
    }

    /// Reads BLAKE3's extendable output: the first 32 bytes are the hash, and any length can follow.
    public struct OutputReader: Sendable {
        let root: Output
        /// The offset of the next byte `read` returns.
        public var position: UInt64 = 0

        init(root: Output) { self.root = root }

        /// The next `count` bytes of output.
        public mutating func read(count: Int) -> [UInt8] {
            var out = [UInt8](repeating: 0, count: count)
            out.withUnsafeMutableBytes { fill($0) }
            return out
        }

        /// Fills `buffer` with the next bytes of output.
        public mutating func fill(_ buffer: UnsafeMutableRawBufferPointer) {
            var written = 0
            while written < buffer.count {
                let blockIndex = position / UInt64(blockLength)
                let offset = Int(position % UInt64(blockLength))
                let block = root.rootBlock(blockIndex)
                let take = min(blockLength - offset, buffer.count - written)
                withUnsafeBytes(of: block) { bytes in
                    (buffer.baseAddress! + written).copyMemory(from: bytes.baseAddress! + offset, byteCount: take)
                }
                written += take
                position += UInt64(take)
            }
        }
    }
}
