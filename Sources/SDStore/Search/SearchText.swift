import Foundation

/// How names are folded and split into words for search, identically for indexed names and queries.
///
/// Folding: lower case, diacritics removed (`Résumé` is `resume`), and runs of spaces, `_` and `-` made one
/// space, so `tax inv` is a prefix of `Tax_Invoice.pdf`. Words: runs of letters and digits, as SQLite's
/// `unicode61` tokenizer would cut them; `SearchGrams` cuts names the same way, so a word of a folded query has
/// the grams of the same word in a name.
public enum SearchText {
    /// The folded form of a name (bytes as the filesystem has them; invalid UTF-8 is replaced).
    ///
    /// #### Implementation details
    /// ASCII names (most of them) are folded byte by byte; others go through Foundation's case and diacritic
    /// folding, about 3 µs each.
    public static func fold(_ bytes: some Collection<UInt8>) -> String {
        var ascii = true
        for byte in bytes where byte >= 0x80 {
            ascii = false
            break
        }
        if ascii {
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count)
            for byte in bytes {
                var b = byte
                if b >= 0x41 && b <= 0x5A { b += 0x20 }
                if b == 0x5F || b == 0x2D || b == 0x20 {
                    if out.last == 0x20 { continue }
                    b = 0x20
                }
                out.append(b)
            }
            return String(decoding: out, as: UTF8.self)
        }
        return fold(String(decoding: bytes, as: UTF8.self))
    }

    /// The folded form of text (a query).
    public static func fold(_ text: String) -> String {
        if text.utf8.allSatisfy({ $0 < 0x80 }) { return fold(Array(text.utf8)) }
        let folded = text.folding(options: [.caseInsensitive, .diacriticInsensitive], locale: nil)
        var out = ""
        out.reserveCapacity(folded.utf8.count)
        for scalar in folded.unicodeScalars {
            let separator = scalar == "_" || scalar == "-" || scalar == " "
            if separator {
                if out.unicodeScalars.last != " " { out.unicodeScalars.append(" ") }
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Whether a character is part of a word (`unicode61`: letters, numbers, private use).
    @inline(__always)
    public static func isWordScalar(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.value < 0x80 {
            let v = scalar.value
            return (v >= 0x30 && v <= 0x39) || (v >= 0x61 && v <= 0x7A) || (v >= 0x41 && v <= 0x5A)
        }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter, .decimalNumber,
            .letterNumber, .otherNumber, .privateUse:
            return true
        default:
            return false
        }
    }

    /// The words of folded text, in order.
    public static func words(_ folded: String) -> [String] {
        var result: [String] = []
        if folded.utf8.allSatisfy({ $0 < 0x80 }) {
            var start: String.UTF8View.Index?
            var i = folded.utf8.startIndex
            let end = folded.utf8.endIndex
            while i < end {
                let b = folded.utf8[i]
                let word = (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A)
                if word {
                    if start == nil { start = i }
                } else if let s = start {
                    result.append(String(folded[s..<i]))
                    start = nil
                }
                i = folded.utf8.index(after: i)
            }
            if let s = start { result.append(String(folded[s..<end])) }
            return result
        }
        var current = String.UnicodeScalarView()
        for scalar in folded.unicodeScalars {
            if isWordScalar(scalar) {
                current.append(scalar)
            } else if !current.isEmpty {
                result.append(String(current))
                current = String.UnicodeScalarView()
            }
        }
        if !current.isEmpty { result.append(String(current)) }
        return result
    }
}
