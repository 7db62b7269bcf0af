/// The AVX2 (Haswell) build of the 8-way BLAKE3 kernel. See `hash8Impl` for the contract.
public enum BLAKE3Kernel8AVX2 {
    public static func hash8(
        _ inputs: UnsafePointer<UnsafeRawPointer>,
        blocks: Int,
        key: UnsafePointer<UInt32>,
        counter: UInt64,
        incrementCounter: Bool,
        flags: UInt32,
        flagsStart: UInt32,
        flagsEnd: UInt32,
        out: UnsafeMutableRawPointer
    ) {
        hash8Impl(inputs, blocks, key, counter, incrementCounter, flags, flagsStart, flagsEnd, out)
    }
}
