import Foundation
import SDSystem

/// Computes content ids and integrity hashes through a `RangedReader`.
///
/// Keep one per worker thread: it owns a reusable buffer, so hashing a million small files allocates nothing
/// per file.
public struct ContentHasher: ~Copyable {
    /// Files up to this size are hashed whole.
    public static let wholeFileLimit: UInt64 = 102_400
    /// Bytes taken from the start and from the end of a larger file.
    public static let edgeLength = 8192
    /// Bytes in each of the four samples from the middle.
    public static let sampleLength = 10_240
    public static let sampleCount = 4

    /// Holds the size prefix and the sampled bytes: at most 8 + 100 KiB.
    private let buffer: UnsafeMutableRawBufferPointer
    /// Bytes per read when hashing whole files.
    static let pieceLength = 8 << 20

    public init() {
        buffer = .allocate(byteCount: Int(Self.wholeFileLimit) + 8, alignment: 64)
    }

    deinit { buffer.deallocate() }

    /// The byte ranges hashed for a file of `size` bytes (after the 8-byte size prefix), in order.
    public static func sampledRanges(size: UInt64) -> [(offset: UInt64, length: Int)] {
        if size <= wholeFileLimit { return [(0, Int(size))] }
        let edge = UInt64(edgeLength)
        let jump = (size - 2 * edge) / UInt64(sampleCount)
        var ranges: [(UInt64, Int)] = [(0, edgeLength)]
        for i in 0..<UInt64(sampleCount) { ranges.append((edge + i * jump, sampleLength)) }
        ranges.append((size - edge, edgeLength))
        return ranges
    }

    /// The content id of what `reader` holds, or nil for empty content.
    ///
    /// #### Errors
    /// Whatever the reader throws; `ContentHashError.changedWhileReading` if the content got shorter while
    /// it was read.
    public func contentID(of reader: borrowing some RangedReader & ~Copyable) throws -> ContentID? {
        let size = try reader.size()
        guard size > 0 else { return nil }
        buffer.storeBytes(of: size.littleEndian, as: UInt64.self)
        var filled = 8
        for (offset, length) in Self.sampledRanges(size: size) {
            let target = UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<(filled + length)])
            let n = try reader.read(into: target, at: offset)
            guard n == length else { throw ContentHashError.changedWhileReading }
            filled += length
        }
        return ContentID(digest: BLAKE3.hash(UnsafeRawBufferPointer(rebasing: buffer[..<filled])))
    }

    /// The content id, and the first bytes of the content (up to `FileKinds.headerLength`, read anyway by the
    /// sampling) for a magic-byte check.
    public func contentIDAndHeader(of reader: borrowing some RangedReader & ~Copyable) throws -> (ContentID?, [UInt8]) {
        let id = try contentID(of: reader)
        guard id != nil else { return (nil, []) }
        let size = try reader.size()
        let headerLength = Int(min(size, UInt64(FileKinds.headerLength)))
        return (id, Array(UnsafeRawBufferPointer(rebasing: buffer[8..<(8 + headerLength)])))
    }

    /// The BLAKE3 hash of all of `reader`'s bytes, read in 8 MiB pieces (hashed over the cores when
    /// `threads` is `.automatic`).
    public func integrityHash(
        of reader: borrowing some RangedReader & ~Copyable,
        threads: BLAKE3.Threads = .automatic
    ) throws -> IntegrityHash {
        let size = try reader.size()
        var hasher = BLAKE3.Hasher(threads: threads)
        var offset: UInt64 = 0
        let piece = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.pieceLength, alignment: 64)
        defer { piece.deallocate() }
        while offset < size {
            let n = try reader.read(into: piece, at: offset)
            if n == 0 { throw ContentHashError.changedWhileReading }
            hasher.update(UnsafeRawBufferPointer(rebasing: piece[..<n]))
            offset += UInt64(n)
        }
        return IntegrityHash(digest: hasher.finalize())
    }

    /// The BLAKE3 hash of a local file, mapped into memory rather than copied (the fastest path; see
    /// `ReadOnlyFile.withMappedBytes` for the SIGBUS caveat if the file is truncated meanwhile).
    public static func integrityHash(
        mapping file: borrowing LocalFileReader,
        threads: BLAKE3.Threads = .automatic
    ) throws -> IntegrityHash {
        try file.file.withMappedBytes { bytes in
            IntegrityHash(digest: BLAKE3.hash(bytes, threads: threads))
        }
    }
}

public enum ContentHashError: Error, Sendable, CustomStringConvertible {
    case changedWhileReading

    public var description: String {
        switch self {
        case .changedWhileReading: "the file got shorter while it was being read; hash it again once it is settled"
        }
    }
}
