import SDSystem

/// Something whose bytes can be read by offset: a local file now, a remote object (S3 ranged GET) later.
/// The content hasher reads only through this, so every volume gets the same ids.
public protocol RangedReader: ~Copyable {
    /// The size in bytes.
    func size() throws -> UInt64
    /// Reads up to `buffer.count` bytes at `offset`; returns the count read, short only at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int
}

/// A local file as a `RangedReader`. Its size is the size when it was opened, so every read of one hashing
/// pass agrees on it; a file that shrinks meanwhile makes the hasher fail rather than hash a mix.
public struct LocalFileReader: RangedReader, ~Copyable {
    public let file: ReadOnlyFile

    public init(path: String) throws(SystemError) {
        file = try ReadOnlyFile(path: path)
    }

    public init(pathBytes: [UInt8]) throws(SystemError) {
        file = try ReadOnlyFile(pathBytes: pathBytes)
    }

    public init(file: consuming ReadOnlyFile) {
        self.file = file
    }

    public func size() throws -> UInt64 { file.sizeAtOpen }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        try file.read(into: buffer, at: offset)
    }
}

/// A byte array as a `RangedReader`, for tests and in-memory content.
public struct MemoryReader: RangedReader {
    public let bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public func size() throws -> UInt64 { UInt64(bytes.count) }
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        guard offset < UInt64(bytes.count) else { return 0 }
        let n = min(buffer.count, bytes.count - Int(offset))
        bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + Int(offset), byteCount: n) }
        return n
    }
}
