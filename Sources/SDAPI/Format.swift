import Foundation

/// The one way sd writes sizes, counts and dates for people (the CLI, and messages the daemon sends).
public enum Format {
    /// Bytes in decimal units, three figures: "0 B", "6 B", "9.8 KB", "280 KB", "1.0 MB" (every command writes
    /// the same value the same way).
    public static func size(_ bytes: some BinaryInteger) -> String {
        let value = Double(bytes)
        let units = ["B", "KB", "MB", "GB", "TB", "PB", "EB"]
        var v = value, i = 0
        while abs(v) >= 1000 && i < units.count - 1 {
            v /= 1000
            i += 1
        }
        if i == 0 { return "\(bytes) B" }
        return String(format: abs(v) >= 99.95 ? "%.0f %@" : "%.1f %@", v, units[i])
    }

    /// A count with its noun, singular for one: "1 file", "2 files", "1 entry", "3 entries".
    public static func count(_ n: some BinaryInteger, _ singular: String, _ plural: String? = nil) -> String {
        "\(n) \(n == 1 ? singular : plural ?? Self.plural(of: singular))"
    }

    static func plural(of noun: String) -> String {
        switch noun {
        case "entry": "entries"
        case "copy": "copies"
        case "match": "matches"
        default: noun + "s"
        }
    }

    /// A moment, as every command writes it: ISO 8601 in UTC, to the second ("2026-12-08T01:17:20Z"), as in JSON.
    public static func date(_ date: Date) -> String {
        iso.string(from: date)
    }

    /// A moment given in milliseconds since 1970.
    public static func date(milliseconds: Int64) -> String {
        date(Date(timeIntervalSince1970: Double(milliseconds) / 1000))
    }

    nonisolated(unsafe) private static let iso: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f
    }()
}
