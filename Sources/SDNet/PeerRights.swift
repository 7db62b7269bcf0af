/// What a paired device may do on this one: kept here, on the device that is asked, never taken from the
/// other side's word. A list of grants (a right, everywhere or in one location) and exceptions (a right taken
/// back in one location), so later work can add rights without changing what is stored.
///
/// A new pairing gets `read`, `sync` and `metadata`; nothing else until the user allows it
/// (`sd peer allow DEVICE write --location ~/Inbox`).
public struct PeerRights: Codable, Sendable, Equatable {
    /// The rights sd knows. `read`, `write`, `overwrite` and `act` apply per location.
    public enum Right: String, Sendable, CaseIterable {
        /// Read files in this device's locations (`sd cp sd://THIS/...` there).
        case read
        /// Exchange the library's index (its rows, and the shared changes).
        case sync
        /// Change shared metadata here (tags, ratings, favorites, notes).
        case metadata
        /// Change the library's settings here (min-copies, sync retention).
        case settings
        /// Put new files and folders into this device's locations.
        case write
        /// Replace existing files with ones it sends (with `write`).
        case overwrite
        /// Run actions on this device (not used yet).
        case act
        /// Pass other devices' rows and connections on (not used yet).
        case relay

        public var perLocation: Bool { [.read, .write, .overwrite, .act].contains(self) }

        public var meaning: String {
            switch self {
            case .read: "read files in this device's locations"
            case .sync: "exchange the library's index and shared changes"
            case .metadata: "change tags, ratings, favorites and notes"
            case .settings: "change the library's settings (min-copies, sync retention)"
            case .write: "put new files and folders into this device's locations"
            case .overwrite: "replace existing files (with write)"
            case .act: "run actions on this device"
            case .relay: "pass other devices' rows and connections on"
            }
        }
    }

    /// One right, everywhere (`location` nil) or in one location (its uuid); `except`: taken back there.
    public struct Grant: Codable, Sendable, Equatable, Hashable {
        /// Kept as text: rights a newer sd stored are kept and ignored, never a reason to fail.
        public var right: String
        public var location: String?
        public var except: Bool?

        public init(_ right: String, location: String? = nil, except: Bool = false) {
            self.right = right
            self.location = location
            self.except = except ? true : nil
        }
    }

    public var grants: [Grant]

    public init(grants: [Grant]) { self.grants = grants }

    /// A new pairing's: read, sync, metadata.
    public static let defaults = PeerRights(grants: [Right.read, .sync, .metadata].map { Grant($0.rawValue) })
    /// Every right everywhere (for tests, and a user who says so right by right).
    public static let all = PeerRights(grants: Right.allCases.map { Grant($0.rawValue) })
    /// Nothing.
    public static let none = PeerRights(grants: [])

    /// Whether `right` is granted (in `location`, a location's uuid, when it applies per location).
    public func allows(_ right: Right, location: String? = nil) -> Bool {
        let mine = grants.filter { $0.right == right.rawValue }
        if let location, mine.contains(where: { $0.except == true && $0.location == location }) { return false }
        return mine.contains { $0.except != true && ($0.location == nil || $0.location == location) }
    }

    /// Grants `right` everywhere (taking back every exception) or in one location.
    public mutating func allow(_ right: Right, location: String? = nil) {
        if let location {
            grants.removeAll { $0.right == right.rawValue && $0.location == location }
            if !allows(right, location: location) { grants.append(Grant(right.rawValue, location: location)) }
        } else {
            grants.removeAll { $0.right == right.rawValue }
            grants.append(Grant(right.rawValue))
        }
    }

    /// Takes `right` back everywhere, or in one location (an exception when it is granted everywhere).
    public mutating func deny(_ right: Right, location: String? = nil) {
        if let location {
            grants.removeAll { $0.right == right.rawValue && $0.location == location }
            if allows(right, location: location) {
                grants.append(Grant(right.rawValue, location: location, except: true))
            }
        } else {
            grants.removeAll { $0.right == right.rawValue }
        }
    }

    /// The rights granted, as `sd peer list` shows them: `read`, `write in LOCATION`, `read except in L`.
    public func described(locationName: (String) -> String = { $0 }) -> [String] {
        Right.allCases.flatMap { right -> [String] in
            let mine = grants.filter { $0.right == right.rawValue }
            let everywhere = mine.contains { $0.location == nil && $0.except != true }
            if everywhere {
                let exceptions = mine.filter { $0.except == true }.compactMap(\.location).map(locationName)
                return [
                    exceptions.isEmpty
                        ? right.rawValue : "\(right.rawValue) except in \(exceptions.joined(separator: ", "))"
                ]
            }
            return mine.filter { $0.except != true }.compactMap(\.location).map {
                "\(right.rawValue) in \(locationName($0))"
            }
        }
    }
}
