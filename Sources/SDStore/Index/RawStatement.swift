import GRDB
import GRDBSQLite

/// Binds and steps a GRDB cached statement through SQLite's C API directly, for the one statement run a
/// million times per scan (inserting entries). GRDB's `execute(arguments:)` boxes every value as an existential
/// and converts it; profiling a 100,000-entry scan put that at a sixth of the writer's time.
///
/// Use only inside a GRDB write closure, on the statement's own connection.
struct RawStatement {
    private let statement: OpaquePointer
    private let database: Database

    /// SQLite's SQLITE_TRANSIENT (a macro Swift cannot import): SQLite copies the bytes before returning.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    init(_ statement: Statement, _ database: Database) {
        self.statement = statement.sqliteStatement
        self.database = database
        sqlite3_reset(self.statement)
        sqlite3_clear_bindings(self.statement)
    }

    func bind(_ index: Int32, _ value: Int64) { sqlite3_bind_int64(statement, index, value) }

    func bind(_ index: Int32, _ value: Int64?) {
        if let value { sqlite3_bind_int64(statement, index, value) } else { sqlite3_bind_null(statement, index) }
    }

    func bind(_ index: Int32, bytes: [UInt8]?) {
        guard let bytes else { return bindNull(index) }
        _ = bytes.withUnsafeBytes { raw in
            // A zero-length blob still needs a non-null pointer, or SQLite stores NULL.
            sqlite3_bind_blob(
                statement,
                index,
                raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1),
                Int32(raw.count),
                Self.transient
            )
        }
    }

    func bind(_ index: Int32, text: String?) {
        guard var text else { return bindNull(index) }
        _ = text.withUTF8 { utf8 in
            sqlite3_bind_text(
                statement,
                index,
                UnsafeRawPointer(utf8.baseAddress!).assumingMemoryBound(to: CChar.self),
                Int32(utf8.count),
                Self.transient
            )
        }
    }

    func bindNull(_ index: Int32) { sqlite3_bind_null(statement, index) }

    /// Runs the statement to completion.
    func run() throws {
        let code = sqlite3_step(statement)
        sqlite3_reset(statement)
        guard code == SQLITE_DONE else {
            throw DatabaseError(
                resultCode: ResultCode(rawValue: code),
                message: String(cString: sqlite3_errmsg(database.sqliteConnection))
            )
        }
    }
}

/// Steps through a query's rows with SQLite's C API, for scans over every entry of a location where GRDB's
/// `Row` decoding cost more than the query (about 3 µs per row).
struct RawQuery {
    private let statement: OpaquePointer
    private let database: Database

    init(_ statement: Statement, _ database: Database, arguments: [Int64]) {
        self.statement = statement.sqliteStatement
        self.database = database
        sqlite3_reset(self.statement)
        for (i, value) in arguments.enumerated() { sqlite3_bind_int64(self.statement, Int32(i + 1), value) }
    }

    /// A query with one text argument.
    init(_ statement: Statement, _ database: Database, text: String) {
        self.statement = statement.sqliteStatement
        self.database = database
        sqlite3_reset(self.statement)
        sqlite3_bind_text(self.statement, 1, text, -1, unsafeBitCast(-1, to: sqlite3_destructor_type.self))
    }

    /// Moves to the next row; false at the end.
    func next() throws -> Bool {
        switch sqlite3_step(statement) {
        case SQLITE_ROW: return true
        case SQLITE_DONE:
            sqlite3_reset(statement)
            return false
        case let code:
            sqlite3_reset(statement)
            throw DatabaseError(
                resultCode: ResultCode(rawValue: code),
                message: String(cString: sqlite3_errmsg(database.sqliteConnection))
            )
        }
    }

    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(statement, column) }
    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(statement, column) == SQLITE_NULL }

    /// The column's bytes (a BLOB or TEXT), empty when NULL.
    func bytes(_ column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(statement, column))
        guard count > 0, let pointer = sqlite3_column_blob(statement, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    /// The column's bytes in place (valid only inside `body`, before the next step).
    func withBytes<T>(_ column: Int32, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        let count = Int(sqlite3_column_bytes(statement, column))
        guard count > 0, let pointer = sqlite3_column_blob(statement, column) else {
            return try body(UnsafeRawBufferPointer(start: nil, count: 0))
        }
        return try body(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    /// The column's text, or nil when NULL.
    func text(_ column: Int32) -> String? {
        guard let pointer = sqlite3_column_text(statement, column) else { return nil }
        return String(cString: pointer)
    }
}
