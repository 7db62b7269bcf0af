/// File operands of `sd hash` and `sd kind` beyond the first, taken out of the command line before
/// swift-argument-parser sees it.
///
/// Why: argument-parser merges a set of input origins for every value of an array argument, which is
/// quadratic; with `find ... | xargs sd hash` (thousands of paths) parsing took 60% of the run (measured with
/// perf on 10,000 files). These two commands take no option with a value, so every argument that does not
/// start with "-" (and every argument after "--") is a file, and the split is exact.
enum BulkOperands {
    static let commands: Set<String> = ["hash", "kind"]
    /// Operands in order after the first; set once in `main` before any command runs, read-only after.
    nonisolated(unsafe) private(set) static var taken: [String] = []

    /// Returns the arguments to parse: all options, and at most the first operand.
    static func take(from arguments: [String]) -> [String] {
        guard let first = arguments.first, commands.contains(first), arguments.count > 64 else { return arguments }
        var kept: [String] = [first]
        var operands: [String] = []
        var afterTerminator = false
        for argument in arguments.dropFirst() {
            if afterTerminator || !argument.hasPrefix("-") || argument == "-" {
                operands.append(argument)
            } else if argument == "--" {
                afterTerminator = true
            } else {
                kept.append(argument)
            }
        }
        guard let head = operands.first else { return arguments }
        kept.append("--")
        kept.append(head)
        taken = Array(operands.dropFirst())
        return kept
    }
}
