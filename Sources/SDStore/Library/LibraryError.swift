/// Why a library could not be created or opened, with a message that says what to do.
public struct LibraryError: Error, Sendable, CustomStringConvertible {
    /// A growable set of codes (a struct, so new ones don't break callers).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public var description: String { name }
        /// No library at that place.
        public static let notFound = Code(name: "notFound")
        /// A library of that name already exists.
        public static let alreadyExists = Code(name: "alreadyExists")
        /// The database or manifest is damaged.
        public static let corrupt = Code(name: "corrupt")
        /// Written by a newer sd with a schema this one does not know.
        public static let tooNew = Code(name: "tooNew")
        /// A file the library needs is missing.
        public static let missingFile = Code(name: "missingFile")
        /// A name that cannot be a library name.
        public static let invalidName = Code(name: "invalidName")
        /// The disk said no (permissions, space).
        public static let io = Code(name: "io")
        /// This device's identity was copied from another machine or folder (see `DeviceIdentity.checkPlace`).
        public static let copiedIdentity = Code(name: "copiedIdentity")
    }

    public var code: Code
    public var message: String
    public var underlying: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String { message }
}

extension LibraryError {
    /// `error` as a damaged library when that is what it is (SQLite found a malformed page, or a file that is
    /// not a database), with what to do; nil for any other error. Damage can show in any query, long after the
    /// library opened.
    public static func damage(_ error: any Error) -> LibraryError? {
        guard let message = Library.damageMessage(error) else { return nil }
        return LibraryError(
            .corrupt,
            "the library's index is damaged (\(message)); sd has not changed it. `sd library info --check` shows "
                + "the damage; restore the library folder from a copy, or create a new library and index again",
            underlying: error
        )
    }
}
