import ArgumentParser
import Foundation
import SDCore

struct KindCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kind",
        abstract: "Identify each file's kind: category, MIME type, and how it was decided.",
        discussion: reflow(
            """
            Decides by extension where that is enough, by magic bytes where the extension is missing, unknown
            or ambiguous, and by a text-or-binary check otherwise. With --check-content the bytes are always
            read, so an extension the bytes contradict is caught.

            Example:
              sd kind --check-content ~/Downloads/*
            """
        )
    )

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Always read the file's first bytes, even when the extension is known.") var checkContent = false
    @Argument(help: "Files to identify.") var operands: [String]

    var files: [String] { operands + BulkOperands.taken }

    struct Result: Encodable {
        var path: String
        var category: String?
        var mime: String?
        var method: String?
        var error: String?
    }

    func run() throws {
        var results: [Result] = []
        var failed = false
        for path in files {
            let name = (path as NSString).lastPathComponent
            do {
                let reader = try LocalFileReader(path: path)
                let kind = try FileKinds.identify(name: name, reader: reader, alwaysCheckContent: checkContent)
                results.append(
                    Result(path: path, category: kind.category.rawValue, mime: kind.mime, method: kind.method.rawValue)
                )
                if !global.json { print("\(kind.category.rawValue)  \(kind.mime)  \(kind.method.rawValue)  \(path)") }
            } catch {
                failed = true
                Output.error("\(error)")
                results.append(Result(path: path, error: "\(error)"))
            }
        }
        if global.json { try Output.json(results) }
        if failed { throw ExitCode(1) }
    }
}
