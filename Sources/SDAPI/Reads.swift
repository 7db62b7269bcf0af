import Foundation
import SDActions
import SDCore
import SDStore
import SDSystem

/// `sd dupes`: duplicate groups, verified by full hash when asked.
public struct DupesReport: Codable, Sendable {
    public var groups: [DuplicateGroup]
    public var files: Int
    public var wastedBytes: Int64
    public var verified: Bool
    public var splits: [VerifiedDuplicates.Split]
    public var skipped: [ActionProblem]
}

/// `sd redundancy --if-lost`: what would have no copy left.
public struct LossReport: Codable, Sendable {
    public var lost: String
    public var report: RedundancyReport
    /// The library folder is on what is lost: without a copy elsewhere, the index goes too.
    public var libraryOnIt: Bool
    public var library: String
}

/// `sd resolve`: a content path's copies, ranked, or a physical path's entry.
public struct ResolveAnswer: Codable, Sendable {
    public struct Content: Codable, Sendable {
        public var contentID: String
        /// The copy to read: a path on this device, or the SdPath of another device's copy.
        public var chosen: String?
        public var copies: [CopyCandidate]
    }
    public struct Physical: Codable, Sendable {
        public var path: String
        public var exists: Bool
        public var indexed: Bool
        public var entry: EntryInfo?
        public var sdPath: String
    }
    public var content: Content?
    public var physical: Physical?
}

/// `POST /v1/tags/apply`: put a tag on paths, or take it off.
public struct TagRequest: Codable, Sendable {
    public var tag: String
    public var paths: [String]
    public var present: Bool
    public init(tag: String, paths: [String], present: Bool) {
        self.tag = tag
        self.paths = paths
        self.present = present
    }
}

/// `POST /v1/tags/edit`: create (with a color), rename or delete a tag.
public struct TagEdit: Codable, Sendable {
    /// create, rename or delete.
    public var action: String
    public var name: String
    public var newName: String?
    public var color: String?
    public init(action: String, name: String, newName: String? = nil, color: String? = nil) {
        self.action = action
        self.name = name
        self.newName = newName
        self.color = color
    }
}

/// `POST /v1/meta`: change ratings, favorite marks, notes.
public struct MetaRequest: Codable, Sendable {
    public var paths: [String]
    public var rating: Int?
    public var clearRating: Bool?
    public var favorite: Bool?
    /// A note; an empty one clears it.
    public var note: String?
    public init(paths: [String], rating: Int?, clearRating: Bool?, favorite: Bool?, note: String?) {
        self.paths = paths
        self.rating = rating
        self.clearRating = clearRating
        self.favorite = favorite
        self.note = note
    }
}

/// What a tag or metadata change touched, and the paths the index does not hold.
public struct ChangeAnswer: Codable, Sendable {
    public var changed: Int
    public var notIndexed: [String]
}

/// A file's rating, favorite mark, note and tags.
public struct MetaView: Codable, Sendable {
    public var rating: Int?
    public var favorite: Bool
    public var note: String?
    public var tags: [String]
}

extension Operations {
    public static func dupes(
        _ library: Library,
        minSize: String?,
        kind: String?,
        location: String?,
        verify: Bool,
        progress: @Sendable (Int, Int) -> Void = { _, _ in }
    ) throws -> DupesReport {
        let groups = try duplicateGroups(minSize: minSize, kind: kind, location: location, library: library)
        var report = DupesReport(groups: groups, files: 0, wastedBytes: 0, verified: false, splits: [], skipped: [])
        if verify {
            let verified = try DuplicateVerifier.verify(groups, library: library, progress: progress)
            report.groups = verified.groups
            report.splits = verified.splits
            report.skipped = verified.skipped
            report.verified = true
        }
        report.files = report.groups.reduce(0) { $0 + $1.files }
        report.wastedBytes = report.groups.reduce(0) { $0 + $1.wastedBytes }
        return report
    }

    static func checkKind(_ kind: String?) throws {
        if let kind, FileCategory(rawValue: kind.lowercased()) == nil {
            throw RequestError(
                "no kind '\(kind)'; kinds: \(FileCategory.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
    }

    /// Contents with fewer copies than `minCopies` (default: 2, or the library's min-copies if higher).
    public static func redundancy(_ library: Library, minCopies: Int?, kind: String?) throws -> RedundancyReport {
        try checkKind(kind)
        if let minCopies, !(1...100).contains(minCopies) { throw RequestError("--min-copies is 1 to 100") }
        let configured = Int(try library.setting("min-copies") ?? "") ?? 1
        return try library.redundancy(minCopies: minCopies ?? max(2, configured), category: kind?.lowercased())
    }

    /// What would have no copy left if the disk holding `what` (an absolute path) or the device `what` were lost.
    public static func loss(_ library: Library, _ what: String, kind: String?) throws -> LossReport {
        try checkKind(kind)
        let loss: Loss
        let libraryOnIt: Bool
        if what.hasPrefix("/") {
            guard let dev = FileSystem.identity(what)?.device else {
                throw RequestError("cannot read '\(what)'; give a path on a mounted disk, or a device id")
            }
            loss = .filesystem(dev)
            libraryOnIt = FileSystem.identity(library.path)?.device == dev
        } else {
            guard let device = try library.knownDevices().first(where: { $0.lowercased() == what.lowercased() }) else {
                throw RequestError("'\(what)' is neither a path nor a device of this library")
            }
            loss = .device(device)
            libraryOnIt = device == library.device.id.description
        }
        let report = try library.redundancy(minCopies: 1, category: kind?.lowercased(), ifLost: loss)
        return LossReport(lost: what, report: report, libraryOnIt: libraryOnIt, library: library.path)
    }

    /// A content path's copies, ranked; or what a physical path (absolute, or an SdPath) is in the index.
    /// `peers`: how other devices can be reached now (their copies are ranked by it, after this device's).
    public static func resolveAnswer(_ text: String, _ library: Library, peers: [String: PeerReach]? = nil) throws
        -> ResolveAnswer
    {
        if text.hasPrefix(SDPath.scheme), case .content(let id)? = try? SDPath(parsing: text) {
            let copies = try ContentResolver.copies(of: id, library: library, peers: peers)
            let content = ResolveAnswer.Content(
                contentID: id.hex,
                chosen: copies.first { $0.reachable }.map { copy in
                    copy.local
                        ? copy.path
                        : DeviceID(copy.device).map {
                            SDPath.physical(device: $0, path: PathText.bytes(copy.path)).description
                        }
                            ?? copy.path
                },
                copies: copies
            )
            return ResolveAnswer(content: content, physical: nil)
        }
        let local = try resolve(text, library)
        let entry = try library.resolveEntry(path: PathText.bytes(local)).flatMap { try library.fetchEntry(id: $0.1) }
        let physical = ResolveAnswer.Physical(
            path: local,
            exists: FileSystem.exists(local),
            indexed: entry != nil,
            entry: entry,
            sdPath: SDPath.physical(device: library.device.id, path: local).description
        )
        return ResolveAnswer(content: nil, physical: physical)
    }

    /// Puts a tag on paths (absolute or SdPaths) or takes it off; audited.
    public static func setTag(_ request: TagRequest, _ library: Library) throws -> ChangeAnswer {
        let paths = try request.paths.map { try resolve($0, library) }
        let (changed, missing) = try library.setTag(request.tag, on: paths, present: request.present)
        try library.appendAudit(
            action: request.present ? "tag-add" : "tag-remove",
            target: request.tag,
            details: jsonText(["changed": changed, "notIndexed": missing.count]),
            outcome: missing.isEmpty ? "ok" : "partial",
            jobID: nil
        )
        return ChangeAnswer(changed: changed, notIndexed: missing)
    }

    /// Creates, renames or deletes a tag; audited. Returns what the CLI says.
    public static func editTag(_ edit: TagEdit, _ library: Library) throws -> String {
        switch edit.action {
        case "create":
            _ = try library.createTag(edit.name, color: edit.color)
            try library.appendAudit(action: "tag-create", target: edit.name, details: nil, outcome: "ok", jobID: nil)
            return "created tag \(edit.name)"
        case "rename":
            guard let newName = edit.newName else { throw RequestError("give the tag's new name") }
            try library.renameTag(edit.name, to: newName)
            try library.appendAudit(
                action: "tag-rename",
                target: edit.name,
                details: newName,
                outcome: "ok",
                jobID: nil
            )
            return "renamed tag \(edit.name) to \(newName)"
        case "delete":
            try library.deleteTag(edit.name)
            try library.appendAudit(action: "tag-delete", target: edit.name, details: nil, outcome: "ok", jobID: nil)
            return "deleted tag \(edit.name)"
        default:
            throw RequestError("a tag edit is create, rename or delete, not '\(edit.action)'")
        }
    }

    /// The tags on a file or folder.
    public static func tags(of path: String, _ library: Library) throws -> [String] {
        let absolute = try resolve(path, library)
        guard let tags = try library.tags(ofEntryAt: absolute) else {
            throw NotInIndex(message: "'\(absolute)' is not in the index")
        }
        return tags
    }

    /// Changes ratings, favorite marks and notes.
    public static func setMetadata(_ request: MetaRequest, _ library: Library) throws -> ChangeAnswer {
        guard !request.paths.isEmpty else { throw RequestError("give the files to change") }
        let clear = request.clearRating ?? false
        guard request.rating != nil || request.favorite != nil || request.note != nil || clear else {
            throw RequestError("say what to change: --rating N, --favorite/--no-favorite, --note TEXT, --clear-rating")
        }
        if clear && request.rating != nil { throw RequestError("--rating and --clear-rating cannot go together") }
        let paths = try request.paths.map { try resolve($0, library) }
        var change = MetadataChange(favorite: request.favorite)
        if let rating = request.rating { change.rating = .some(rating) } else if clear { change.rating = .some(nil) }
        if let note = request.note { change.note = .some(note.isEmpty ? nil : note) }
        let (changed, missing) = try library.setMetadata(change, on: paths)
        return ChangeAnswer(changed: changed, notIndexed: missing)
    }

    /// A file's rating, favorite mark, note and tags.
    public static func metadata(of path: String, _ library: Library) throws -> MetaView {
        let absolute = try resolve(path, library)
        guard let meta = try library.metadata(ofEntryAt: absolute), let tags = try library.tags(ofEntryAt: absolute)
        else { throw NotInIndex(message: "'\(absolute)' is not in the index") }
        return MetaView(rating: meta.rating, favorite: meta.favorite, note: meta.note, tags: tags)
    }
}

/// A JSON request body of the API: the daemon accepts only the fields its example has.
public protocol APIBody: Codable, Sendable {
    /// An instance with every field set, for the field list and the API document's test.
    static var example: Self { get }
}

extension ActionRequest: APIBody {
    public static var example: ActionRequest {
        ActionRequest(
            action: "copy",
            paths: ["/home/me/a.txt"],
            destination: "/mnt/backup",
            newName: "b.txt",
            onConflict: .fail,
            verifyFull: false,
            permanent: false,
            forceLastCopy: false,
            job: "3f2a",
            all: false,
            mode: .hardlink,
            keep: .oldest,
            acrossDisks: false,
            minSize: "1MB",
            kind: "image",
            location: "Photos"
        )
    }
}

extension IndexRequest: APIBody {
    public static var example: IndexRequest {
        IndexRequest(locations: ["Photos"], noContent: false, allowMassDelete: false, noSearchIndex: false)
    }
}

extension TagRequest: APIBody {
    public static var example: TagRequest { TagRequest(tag: "holiday", paths: ["/home/me/a.jpg"], present: true) }
}

extension TagEdit: APIBody {
    public static var example: TagEdit {
        TagEdit(action: "create", name: "holiday", newName: "trips", color: "#2a9d8f")
    }
}

extension MetaRequest: APIBody {
    public static var example: MetaRequest {
        MetaRequest(paths: ["/home/me/a.jpg"], rating: 5, clearRating: false, favorite: true, note: "the beach")
    }
}

/// A message for the user (what a tag edit did).
public struct MessageAnswer: Codable, Sendable {
    public var message: String
    public init(message: String) { self.message = message }
}

/// `POST /v1/locations`: a folder to index.
public struct LocationRequest: APIBody {
    /// An absolute path.
    public var path: String
    public var name: String?
    public var noContent: Bool?
    public init(path: String, name: String?, noContent: Bool?) {
        self.path = path
        self.name = name
        self.noContent = noContent
    }
    public static var example: LocationRequest {
        LocationRequest(path: "/home/me/Pictures", name: "Pictures", noContent: false)
    }
}

/// What removing a location removed from the index (never a file).
public struct RemovedLocation: Codable, Sendable {
    public var location: String
    public var removedEntries: Int
}

extension Operations {
    public static func addLocation(_ request: LocationRequest, _ library: Library) throws -> Location {
        guard request.path.hasPrefix("/") else { throw RequestError("'\(request.path)' is not an absolute path") }
        guard !PathText.hasDotDot(request.path) else {
            throw RequestError("a path with '..' is not allowed; give it resolved")
        }
        if let folder = OwnFolders.holding(request.path, library: library) {
            throw RequestError(
                "'\(request.path)' is in sd's own folder \(folder); a location holds your files, not sd's"
            )
        }
        let volume = Mounts.volume(containing: request.path, in: Mounts.list())
        do {
            return try library.addLocation(
                path: PathText.bytes(request.path),
                name: request.name,
                volume: volume,
                indexContent: !(request.noContent ?? false)
            )
        } catch let error as IndexError {
            throw RequestError(error.message)
        }
    }

    /// The location a key names (number, name, uuid or path).
    public static func location(_ key: String, _ library: Library) throws -> Location {
        guard let found = try library.fetchLocation(key) else {
            throw NotInIndex(message: "no location '\(key)'; see `sd location list`")
        }
        return found
    }

    /// What removing the location would forget (nothing is changed).
    public static func locationRemoval(_ location: Location, _ library: Library) throws -> LocationRemoval {
        try library.locationRemoval(id: location.id)
    }

    public static func removeLocation(_ location: Location, _ library: Library) throws -> RemovedLocation {
        RemovedLocation(location: location.name, removedEntries: try library.removeLocation(id: location.id))
    }
}
