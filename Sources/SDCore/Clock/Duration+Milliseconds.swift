extension Duration {
    /// The duration in milliseconds, as a floating-point number (for round trips and latencies shown).
    public var milliseconds: Double {
        Double(components.seconds) * 1_000 + Double(components.attoseconds) / 1e15
    }
}
