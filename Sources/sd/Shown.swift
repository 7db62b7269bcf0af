import Foundation
import SDSystem
import Synchronization

// What sd prints, made safe: names from disk and from peers reach the terminal escaped (see `PathText`), and
// arguments reach sd with their bytes.

/// The command line with every argument's bytes kept: an argument that is not valid UTF-8 (a file name in
/// Latin-1, say) is carried exactly (`PathText`), where Swift's own `CommandLine.arguments` would replace its
/// bytes with U+FFFD.
enum RawArguments {
    static func all() -> [String] {
        (0..<Int(CommandLine.argc)).map { i -> String in
            guard let c = CommandLine.unsafeArgv[i] else { return "" }
            let bytes = Array(
                UnsafeBufferPointer(start: UnsafeRawPointer(c).assumingMemoryBound(to: UInt8.self), count: strlen(c))
            )
            // Valid UTF-8 is taken as typed (a note's newline stays a newline); anything else, or text holding the
            // stand-in plane's characters, is carried exactly.
            guard !bytes.contains(0xF4), let text = String(validating: bytes, as: UTF8.self) else {
                return PathText.string(bytes)
            }
            return text
        }
    }
}

/// Whether anything printed so far was escaped (then a note says how to read it, once, at the end).
let escapedSomething = Atomic<Bool>(false)

/// Text as it may be shown: escaped (`PathText.display`) except for the line breaks and tabs sd itself writes.
func shown(_ text: String) -> String {
    guard text.unicodeScalars.contains(where: { PathText.needsEscape($0) && $0 != "\n" && $0 != "\t" })
    else { return text }
    var out = ""
    var escaped = false
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        if line.startIndex != text.startIndex { out += "\n" }
        for field in line.split(separator: "\t", omittingEmptySubsequences: false) {
            if field.startIndex != line.startIndex { out += "\t" }
            let (text, didEscape) = PathText.display(String(field))
            out += text
            escaped = escaped || didEscape
        }
    }
    if escaped { escapedSomething.store(true, ordering: .relaxed) }
    return out
}

/// `print`, for this target: what it writes is `shown`, so a name can never move the cursor, recolour the
/// terminal or reorder what is shown (sd's own line breaks and tabs stay).
func print(_ items: Any..., separator: String = " ", terminator: String = "\n") {
    let text = items.map { "\($0)" }.joined(separator: separator)
    Swift.print(shown(text), terminator: terminator)
}

/// Says, once, how escaped names read (on standard error, at exit).
func noteEscapes() {
    guard escapedSomething.exchange(false, ordering: .relaxed) else { return }
    fflush(nil)
    FileHandle.standardError.write(
        Data(
            """
            sd: note: names shown with \\xHH, \\n, \\e, \\uXXXX or \\\\ hold bytes that are not UTF-8, control or \
            direction characters, or a backslash; in bash, $'...' around such a name gives its exact bytes, and \
            --json gives them as base64 (fields ending in Base64)

            """.utf8
        )
    )
}

extension Output {
    /// A JSON document with every string that carries bytes of a name that are not plain text (`PathText`
    /// stand-ins) shown escaped, and its exact bytes beside it: `KEYBase64` (an array of them for an array).
    static func withBytesBeside(_ data: Data) -> Data {
        guard data.contains(0xF4),
            let value = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        else { return data }
        func encoded(_ text: String) -> String { Data(PathText.bytes(text)).base64EncodedString() }
        func walk(_ value: Any) -> Any {
            if let dictionary = value as? [String: Any] {
                var out: [String: Any] = [:]
                for (key, item) in dictionary {
                    if let text = item as? String, PathText.hasStandIns(text) {
                        out[key] = PathText.display(text).text
                        out[key + "Base64"] = encoded(text)
                    } else if let texts = item as? [String], texts.contains(where: PathText.hasStandIns) {
                        out[key] = texts.map { PathText.display($0).text }
                        out[key + "Base64"] = texts.map(encoded)
                    } else {
                        out[key] = walk(item)
                    }
                }
                return out
            }
            if let array = value as? [Any] { return array.map(walk) }
            if let text = value as? String, PathText.hasStandIns(text) { return PathText.display(text).text }
            return value
        }
        guard
            let rewritten = try? JSONSerialization.data(
                withJSONObject: walk(value),
                options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes, .fragmentsAllowed]
            )
        else { return data }
        return rewritten
    }
}

/// "label… 3 s" on a terminal line while slow work runs (from its first second; silent when standard error is
/// not a terminal, and for work that ends sooner): a long preview is never a blank screen.
func whileWaiting<T>(_ label: String, enabled: Bool = true, _ work: () throws -> T) rethrows -> T {
    guard enabled, isatty(2) == 1 else { return try work() }
    let done = Atomic<Bool>(false)
    let started = ContinuousClock.now
    // (SD_PROGRESS_AFTER_MS: when it starts showing; tests set 0.)
    let after = Duration.milliseconds(
        Int(ProcessInfo.processInfo.environment["SD_PROGRESS_AFTER_MS"] ?? "") ?? 1_000
    )
    try? Threads.start(name: "sd-waiting") {
        var shown = false
        while !done.load(ordering: .acquiring) {
            let elapsed = ContinuousClock.now - started
            if elapsed >= after {
                FileHandle.standardError.write(Data("\r\u{1B}[K\(label)… \(elapsed.components.seconds) s".utf8))
                shown = true
            }
            usleep(after == .zero ? 20_000 : 250_000)
        }
        if shown { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
    defer { done.store(true, ordering: .releasing) }
    return try work()
}

/// Ctrl-C while a job runs: says that it stopped and how it goes on (here: the job is interrupted and resumes
/// from its last checkpoint; through sdd: it goes on there), then ends with the usual status for SIGINT.
enum Interrupt {
    nonisolated(unsafe) private static var source: (any DispatchSourceSignal)?

    static func onCtrlC(say message: String) {
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler {
            FileHandle.standardError.write(Data("\r\u{1B}[K\nsd: \(message)\n".utf8))
            exit(130)
        }
        source.resume()
        Self.source = source
    }

    static func clear() {
        source?.cancel()
        source = nil
        signal(SIGINT, SIG_DFL)
    }
}

/// A command's help text as one paragraph per paragraph: the lines of a paragraph are joined, so that the help
/// is wrapped once, to the terminal's width (it was wrapped twice: by the source's lines and by the terminal),
/// while indented lines (examples) and blank lines stay as written.
func reflow(_ text: String) -> String {
    var out: [String] = []
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        let indented = line.first == " "
        if !indented, !line.isEmpty, let last = out.last, !last.isEmpty, last.first != " ",
            !last.hasSuffix(":")
        {
            out[out.count - 1] = last + " " + line
        } else {
            out.append(String(line))
        }
    }
    return out.joined(separator: "\n")
}
