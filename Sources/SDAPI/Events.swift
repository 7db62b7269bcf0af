import Foundation
import SDIndexer
import SDStore

/// Events as the CLI prints them and the daemon streams them (`/v1/events`: one JSON object per line).
public enum Events {
    /// A watcher's event: its line for people (empty for a warning, which goes to standard error) and its
    /// JSON fields.
    public static func describe(_ event: WatchEvent) -> (line: String, object: [String: Any]) {
        var object: [String: Any] = [:]
        var line: String
        func changes(_ r: LiveReport) -> String {
            let c = r.counts
            var parts: [String] = []
            if c.inserted > 0 { parts.append("\(c.inserted) new") }
            if c.updated > 0 { parts.append("\(c.updated) changed") }
            if r.removals.removed > 0 { parts.append("\(r.removals.removed) removed") }
            if r.removals.moved > 0 { parts.append("\(r.removals.moved) moved") }
            if r.hashed > 0 { parts.append("\(r.hashed) identified") }
            if c.unreadableFolders > 0 { parts.append("\(Format.count(c.unreadableFolders, "folder")) unreadable") }
            return parts.isEmpty ? "no changes" : parts.joined(separator: ", ")
        }
        func fields(_ r: LiveReport) -> [String: Any] {
            [
                "inserted": r.counts.inserted, "updated": r.counts.updated, "removed": r.removals.removed,
                "moved": r.removals.moved, "identified": r.hashed, "foldersRead": r.foldersRead,
                "seconds": r.seconds,
            ]
        }
        switch event {
        case .watching(let location, let folders, let recovery):
            line =
                "\(location): watching \(Format.count(folders, "folder")); recovery read \(recovery.foldersRead) of \(Format.count(recovery.foldersTotal, "folder")): \(changes(recovery)) (\(String(format: "%.2f", recovery.seconds)) s)"
            object = ["event": "watching", "location": location, "folders": folders, "recovery": fields(recovery)]
            object["foldersTotal"] = recovery.foldersTotal
        case .applied(let location, let report):
            line = "\(location): \(changes(report)) (\(Int(report.seconds * 1000)) ms)"
            object = ["event": "applied", "location": location, "changes": fields(report)]
        case .sweepDone(let location, let folders, let report):
            line = "\(location): sweep of \(Format.count(folders, "folder")) done: \(changes(report))"
            object = ["event": "sweepDone", "location": location, "folders": folders, "changes": fields(report)]
        case .offline(let location, let reason):
            line = "\(location): offline: \(reason)"
            object = ["event": "offline", "location": location, "reason": reason]
        case .online(let location):
            line = "\(location): back online"
            object = ["event": "online", "location": location]
        case .overflow:
            line = "events were lost (kernel queue overflow): rescanning changed folders"
            object = ["event": "overflow"]
        case .warning(let message):
            line = ""
            object = ["event": "warning", "message": message]
        }
        return (line, object)
    }

    /// One JSON line (no newline) for `object`.
    public static func jsonLine(_ object: [String: Any]) -> String? {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    /// A job's progress or end.
    public static func job(_ record: JobRecord) -> [String: Any] {
        var object: [String: Any] = [
            "event": "job", "id": record.id, "kind": record.kind, "state": record.state, "done": record.progressDone,
        ]
        if let total = record.progressTotal { object["total"] = total }
        return object
    }
}
