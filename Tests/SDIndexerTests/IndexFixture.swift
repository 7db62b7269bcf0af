import Foundation
import SDCore
import SDIndexer
import SDStore
import SDSystem
import SDTestSupport

/// A temporary tree and library for indexer tests.
final class IndexFixture {
    let dir: TemporaryDirectory
    let library: Library
    let root: String

    init(prefix: String = "sd-idx") throws {
        dir = try TemporaryDirectory(prefix: prefix)
        root = dir.file("tree")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let device = try DeviceIdentity.loadOrCreate(configDirectory: dir.file("config"))
        library = try Library.create(name: "Test", in: dir.file("data"), device: device)
    }

    deinit { try? library.close() }

    @discardableResult
    func write(_ relative: String, _ text: String) throws -> String {
        try dir.write("tree/\(relative)", Array(text.utf8))
    }

    func addLocation(content: Bool = true) throws -> Location {
        try library.addLocation(path: Array(root.utf8), name: "tree", volume: nil, indexContent: content)
    }

    func index(
        _ location: Location,
        content: Bool = true,
        allowMassDelete: Bool = false,
        progress: (@Sendable (IndexProgress) -> Void)? = nil
    ) throws -> IndexReport {
        var options = IndexOptions()
        options.indexContent = content
        options.allowMassDelete = allowMassDelete
        return try Indexer(library: library, options: options, progress: progress).index(location)
    }

    func entry(_ relative: String) throws -> EntryInfo? {
        let path = relative.isEmpty ? root : "\(root)/\(relative)"
        guard let (_, id) = try library.resolveEntry(path: Array(path.utf8)) else { return nil }
        return try library.fetchEntry(id: id)
    }

    func entry(bytes relative: [UInt8]) throws -> EntryInfo? {
        guard let (_, id) = try library.resolveEntry(path: Array(root.utf8) + [0x2F] + relative) else { return nil }
        return try library.fetchEntry(id: id)
    }

    func names(_ relative: String = "") throws -> [String] {
        guard let e = try entry(relative) else { return [] }
        return try library.fetchChildren(of: e.id).map { String(decoding: $0.name, as: UTF8.self) }
    }
}
