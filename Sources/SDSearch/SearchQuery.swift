import Foundation
import SDCore
import SDStore

/// A parsed search: what to match, what to exclude, and the filters.
///
/// The query language (also `sd search --help`):
/// - `tax invoice`: entries with words starting with `tax` and `invoice` in their name or their folders' names;
/// - `"exact phrase"`: those words next to each other in the name;
/// - `oice_20`: a term with punctuation inside is a substring of the name (case ignored);
/// - `-draft`, `-"old copy"`: leave out entries matching that;
/// - filters: `kind:document`, `ext:pdf`, `size:>1MB` (`<`, `>=`, `<=`, `10MB..2GB`), `modified:2025`
///   (`2025-06`, `2025-06-01`, `2024..2025-06`, `..2025`, `2025..`, `today`, `7d`), `tag:finance`,
///   `in:~/Documents`, `location:Pictures`, `is:dupe`.
/// - `ファ`, `🎉`, `ab`: text in a script written without spaces, with no letter or digit, or of one or two
///   characters is found anywhere in the name (case and accents ignored).
/// An unknown `key:value` is searched as plain words (and said so); an impossible filter, a filter without a
/// value and an empty phrase are errors.
public struct SearchQuery: Sendable, Equatable {
    /// Folded words, each matched as a word prefix.
    public var words: [String] = []
    /// Folded word sequences.
    public var phrases: [[String]] = []
    /// Substrings, lower-cased.
    public var substrings: [String] = []
    /// Folded text found anywhere in the folded name (as Unicode scalars): short terms (one or two
    /// characters), terms in scripts written without spaces (CJK, Thai, ...) and terms with no letter or digit
    /// (emoji, symbols), which word starts cannot find.
    public var inside: [String] = []
    /// Folded words and phrases that must not match.
    public var excluded: [[String]] = []
    public var kinds: [FileCategory] = []
    public var extensions: [String] = []
    public var minSize: Int64?
    public var maxSize: Int64?
    public var modifiedFrom: Date?
    public var modifiedBefore: Date?
    public var tags: [String] = []
    public var inPaths: [String] = []
    public var locations: [String] = []
    public var duplicatesOnly = false
    /// What the parser did with odd input, to show the user.
    public var notes: [String] = []

    public init() {}

    /// Whether there is text to match (else the filters alone list entries).
    public var hasText: Bool { !words.isEmpty || !phrases.isEmpty || !substrings.isEmpty || !inside.isEmpty }

    /// The positive text, folded, for exact-name and name-prefix matching.
    public var foldedText: String {
        (phrases.map { $0.joined(separator: " ") } + words + inside).joined(separator: " ")
    }
}

/// A query that cannot mean anything: the message says why.
public struct SearchQueryError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public enum SearchQueryParser {
    static let filterKeys: Set<String> = ["kind", "ext", "size", "modified", "tag", "in", "location", "is"]

    /// Parses the query text. `now` anchors relative dates (`today`, `7d`).
    ///
    /// #### Errors
    /// `SearchQueryError` for an unknown kind, a malformed size or date, or a range that is empty.
    public static func parse(_ text: String, now: Date = Date()) throws(SearchQueryError) -> SearchQuery {
        var query = SearchQuery()
        for token in tokenize(text, notes: &query.notes) {
            try apply(token, to: &query, now: now)
        }
        if let min = query.minSize, let max = query.maxSize, min > max {
            throw SearchQueryError(
                "size: the smallest size asked for (\(min) bytes) is above the largest (\(max) bytes)"
            )
        }
        if let from = query.modifiedFrom, let before = query.modifiedBefore, from >= before {
            throw SearchQueryError("modified: the range ends before it starts")
        }
        return query
    }

    struct Token {
        var text: String
        var quoted: Bool
        var negated: Bool
        var key: String?
    }

    /// Splits the query into tokens: words, "quoted phrases", -negations, key:value (values may be quoted).
    static func tokenize(_ text: String, notes: inout [String]) -> [Token] {
        var tokens: [Token] = []
        let chars = Array(text)
        var i = 0
        while i < chars.count {
            if chars[i].isWhitespace {
                i += 1
                continue
            }
            var negated = false
            if chars[i] == "-" && i + 1 < chars.count && !chars[i + 1].isWhitespace {
                negated = true
                i += 1
            }
            var key: String?
            // key:value (a key is letters only, followed by ':').
            var j = i
            while j < chars.count && chars[j].isLetter { j += 1 }
            if j > i && j < chars.count && chars[j] == ":" && j + 1 < chars.count && !chars[j + 1].isWhitespace {
                key = String(chars[i..<j]).lowercased()
                i = j + 1
            } else if j > i && j < chars.count && chars[j] == ":"
                && filterKeys.contains(String(chars[i..<j]).lowercased())
            {
                // A filter with nothing after it (`kind:`): kept, so that it is refused rather than searched.
                tokens.append(Token(text: "", quoted: false, negated: negated, key: String(chars[i..<j]).lowercased()))
                i = j + 1
                continue
            }
            if chars[i] == "\"" {
                var end = i + 1
                while end < chars.count && chars[end] != "\"" { end += 1 }
                if end == chars.count { notes.append("a quote was not closed: the rest is read as one phrase") }
                tokens.append(Token(text: String(chars[(i + 1)..<end]), quoted: true, negated: negated, key: key))
                i = min(end + 1, chars.count)
            } else {
                var end = i
                while end < chars.count && !chars[end].isWhitespace { end += 1 }
                tokens.append(Token(text: String(chars[i..<end]), quoted: false, negated: negated, key: key))
                i = end
            }
        }
        return tokens
    }

    static func apply(_ token: Token, to query: inout SearchQuery, now: Date) throws(SearchQueryError) {
        if let key = token.key {
            if filterKeys.contains(key) {
                try applyFilter(key, token.text, negated: token.negated, to: &query, now: now)
                return
            }
            query.notes.append(
                "'\(key):' is not a filter (known: \(filterKeys.sorted().joined(separator: ", "))); searched as words"
            )
            query.words += SearchText.words(SearchText.fold(key)) + SearchText.words(SearchText.fold(token.text))
            return
        }
        let folded = SearchText.fold(token.text)
        let words = SearchText.words(folded)
        if token.quoted && words.isEmpty && token.text.allSatisfy(\.isWhitespace) {
            throw SearchQueryError("an empty phrase (\"\"): put words between the quotes, or leave them out")
        }
        if token.negated {
            if !words.isEmpty { query.excluded.append(words) }
            return
        }
        if !token.quoted, let inside = insideTerm(token.text, folded: folded, words: words) {
            query.inside.append(inside)
            return
        }
        if token.quoted {
            if words.count == 1 {
                query.words.append(words[0])
            } else if words.count > 1 {
                query.phrases.append(words)
            }
            return
        }
        // Punctuation inside a term makes it a substring ("oice_20"); otherwise it is words.
        let inner = token.text.unicodeScalars.contains { !SearchText.isWordScalar($0) }
        if inner && words.count >= 1 && token.text.count >= 3 {
            query.substrings.append(token.text.lowercased())
        } else {
            query.words += words
        }
    }

    /// The folded text to find anywhere in names, when word starts cannot find `text`: it is written in a
    /// script without spaces between words, has no letter or digit (emoji, symbols), or is one or two
    /// characters long. Nil for ordinary words.
    static func insideTerm(_ text: String, folded: String, words: [String]) -> String? {
        let trimmed = folded.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { return nil }
        if words.isEmpty { return trimmed }
        if trimmed.unicodeScalars.contains(where: isWrittenWithoutSpaces) { return trimmed }
        if words.count == 1 && trimmed.unicodeScalars.count <= 2 { return trimmed }
        return nil
    }

    /// Scripts written without spaces between words: a name's "word" there is a whole phrase.
    static func isWrittenWithoutSpaces(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x0E00...0x0EFF,  // Thai, Lao
            0x1000...0x109F,  // Myanmar
            0x1780...0x17FF,  // Khmer
            0x0F00...0x0FFF,  // Tibetan
            0x2E80...0x2FDF,  // CJK radicals
            0x3000...0x30FF,  // CJK punctuation, Hiragana, Katakana
            0x3100...0x31FF,  // Bopomofo, Hangul compatibility, Katakana extensions
            0x3400...0x4DBF,  // CJK extension A
            0x4E00...0x9FFF,  // CJK unified ideographs
            0xAC00...0xD7AF,  // Hangul syllables
            0xF900...0xFAFF,  // CJK compatibility ideographs
            0xFF66...0xFF9F,  // half-width Katakana
            0x20000...0x3134F:  // CJK extensions B to G
            return true
        default:
            return false
        }
    }

    static func applyFilter(
        _ key: String,
        _ value: String,
        negated: Bool,
        to query: inout SearchQuery,
        now: Date
    ) throws(SearchQueryError) {
        if negated { throw SearchQueryError("'-\(key):' is not supported: filters cannot be negated yet") }
        if value.trimmingCharacters(in: .whitespaces).isEmpty {
            let example =
                [
                    "kind": "kind:image", "ext": "ext:pdf", "size": "size:>1MB", "modified": "modified:2025",
                    "tag": "tag:finance", "in": "in:~/Documents", "location": "location:Pictures", "is": "is:dupe",
                ][key]
                ?? "\(key):VALUE"
            throw SearchQueryError("\(key): needs a value, e.g. \(example)")
        }
        switch key {
        case "kind":
            for part in value.split(separator: ",") {
                let name = part.lowercased()
                guard let kind = FileCategory(rawValue: name) ?? FileCategory(rawValue: String(name.dropLast()))
                else {
                    throw SearchQueryError(
                        "kind:\(part) is not a kind; kinds are \(FileCategory.allCases.map(\.rawValue).joined(separator: ", "))"
                    )
                }
                query.kinds.append(kind)
            }
        case "ext":
            for part in value.split(separator: ",") {
                let ext = part.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "."))
                guard !ext.isEmpty else { throw SearchQueryError("ext: needs an extension, e.g. ext:pdf") }
                query.extensions.append(ext)
            }
        case "size":
            let (min, max) = try sizeRange(value)
            if let min { query.minSize = Swift.max(query.minSize ?? min, min) }
            if let max { query.maxSize = Swift.min(query.maxSize ?? max, max) }
        case "modified":
            let (from, before) = try dateRange(value, now: now)
            if let from { query.modifiedFrom = Swift.max(query.modifiedFrom ?? from, from) }
            if let before { query.modifiedBefore = Swift.min(query.modifiedBefore ?? before, before) }
        case "tag": query.tags.append(value)
        case "in": query.inPaths.append(value)
        case "location": query.locations.append(value)
        case "is":
            guard ["dupe", "dupes", "duplicate"].contains(value.lowercased()) else {
                throw SearchQueryError("is:\(value) is not known; try is:dupe")
            }
            query.duplicatesOnly = true
        default: break
        }
    }

    /// `>1MB`, `<10k`, `>=2GiB`, `1MB..5MB`, `500` (exactly).
    static func sizeRange(_ value: String) throws(SearchQueryError) -> (Int64?, Int64?) {
        if let range = value.range(of: "..") {
            let low = String(value[..<range.lowerBound]), high = String(value[range.upperBound...])
            return (low.isEmpty ? nil : try bytes(low), high.isEmpty ? nil : try bytes(high))
        }
        for (op, kind) in [(">=", 0), ("<=", 1), (">", 2), ("<", 3)] where value.hasPrefix(op) {
            let n = try bytes(String(value.dropFirst(op.count)))
            switch kind {
            case 0: return (n, nil)
            case 1: return (nil, n)
            case 2: return (n + 1, nil)
            default:
                guard n > 0 else { throw SearchQueryError("size:<0 can match nothing") }
                return (nil, n - 1)
            }
        }
        let n = try bytes(value)
        return (n, n)
    }

    public static func bytes(_ text: String) throws(SearchQueryError) -> Int64 {
        let units: [(String, Double)] = [
            ("kib", 1024), ("mib", 1_048_576), ("gib", 1_073_741_824), ("tib", 1_099_511_627_776), ("kb", 1e3),
            ("mb", 1e6),
            ("gb", 1e9), ("tb", 1e12), ("k", 1e3), ("m", 1e6), ("g", 1e9), ("t", 1e12), ("b", 1),
        ]
        let lower = text.lowercased()
        var number = lower
        var scale = 1.0
        for (suffix, factor) in units where lower.hasSuffix(suffix) {
            number = String(lower.dropLast(suffix.count))
            scale = factor
            break
        }
        guard let value = Double(number), value >= 0, value.isFinite, value * scale < 9e18 else {
            throw SearchQueryError("size: '\(text)' is not a size; write e.g. 10MB, 1.5GiB, 500k")
        }
        return Int64(value * scale)
    }

    /// `2025`, `2025-06`, `2025-06-01`, `A..B`, `..B`, `A..`, `today`, `yesterday`, `7d`: [from, before).
    static func dateRange(_ value: String, now: Date) throws(SearchQueryError) -> (Date?, Date?) {
        if let range = value.range(of: "..") {
            let low = String(value[..<range.lowerBound]), high = String(value[range.upperBound...])
            return (low.isEmpty ? nil : try period(low, now: now).0, high.isEmpty ? nil : try period(high, now: now).1)
        }
        let (from, before) = try period(value, now: now)
        return (from, before)
    }

    static func period(_ text: String, now: Date) throws(SearchQueryError) -> (Date, Date) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone.current
        let lower = text.lowercased()
        let today = calendar.startOfDay(for: now)
        switch lower {
        case "today": return (today, today.addingTimeInterval(86_400))
        case "yesterday": return (today.addingTimeInterval(-86_400), today)
        default: break
        }
        if lower.hasSuffix("d"), let days = Int(lower.dropLast()), days > 0, days < 100_000 {
            return (now.addingTimeInterval(-Double(days) * 86_400), now.addingTimeInterval(1))
        }
        let parts = lower.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
        guard (1...3).contains(parts.count), parts.allSatisfy({ $0 != nil }) else {
            throw SearchQueryError("modified: '\(text)' is not a date; write 2025, 2025-06, 2025-06-01, today or 7d")
        }
        let year = parts[0]!, month = parts.count > 1 ? parts[1]! : 1, day = parts.count > 2 ? parts[2]! : 1
        guard (1...9999).contains(year), (1...12).contains(month), (1...31).contains(day),
            let start = calendar.date(from: DateComponents(year: year, month: month, day: day)),
            calendar.component(.month, from: start) == month
        else { throw SearchQueryError("modified: '\(text)' is not a real date") }
        let unit: Calendar.Component = parts.count == 1 ? .year : parts.count == 2 ? .month : .day
        guard let end = calendar.date(byAdding: unit, value: 1, to: start) else {
            throw SearchQueryError("modified: '\(text)' is out of range")
        }
        return (start, end)
    }
}
