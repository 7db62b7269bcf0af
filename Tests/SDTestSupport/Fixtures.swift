import Foundation

/// Paths to the repository's test fixtures (`Tests/Fixtures/`), found from this source file's location so
/// that tests do not depend on the working directory.
public enum Fixtures {
    public static let directory: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // SDTestSupport
        .deletingLastPathComponent()  // Tests
        .appendingPathComponent("Fixtures")

    public static func url(_ name: String) -> URL { directory.appendingPathComponent(name) }

    /// The repository root (the folder holding Package.swift).
    public static let repositoryRoot: URL = directory.deletingLastPathComponent().deletingLastPathComponent()
}
