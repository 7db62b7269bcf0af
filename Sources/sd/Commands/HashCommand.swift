import ArgumentParser
import Dispatch
import Foundation
import SDCore
import SDSystem

struct HashCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hash",
        abstract: "Print the content id of each file (or its full BLAKE3 with --full).",
        discussion: reflow(
            """
            Without --full, prints "ID  PATH" lines: the Spacedrive V2 content id (16 hex digits; files over
            100 KiB are sampled), "-" for an empty file. With --full, prints exactly what b3sum prints: the
            BLAKE3 of the whole file.

            Examples:
              sd hash ~/Pictures/*.jpg
              sd hash --full --json big.iso
            """
        )
    )

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Hash whole files with BLAKE3 (64 hex digits, as b3sum).")
    var full = false

    @Flag(help: "Use one thread only.")
    var singleThread = false

    @Argument(help: "Files to hash.")
    var operands: [String]

    var files: [String] { operands + BulkOperands.taken }

    struct Result: Encodable {
        var path: String
        var size: UInt64?
        var contentID: String?
        var contentUUID: String?
        var integrityHash: String?
        var error: String?
    }

    func run() throws {
        let threads: BLAKE3.Threads = singleThread ? .single : .automatic
        var results: [Result] = []
        var failed = false
        // Many files: hash them in batches over the cores, printing in argument order as each batch ends.
        let batchSize = 2048
        var start = 0
        while start < files.count {
            let batch = Array(files[start..<min(start + batchSize, files.count)])
            let computed = hashBatch(batch, threads: threads)
            for result in computed {
                if let error = result.error {
                    failed = true
                    Output.error(error)
                    if !global.json { continue }
                }
                if global.json {
                    results.append(result)
                } else if full {
                    print(B3SumFormat.line(hash: result.integrityHash!, path: result.path))
                } else {
                    print("\(result.contentID ?? "-")  \(result.path)")
                }
            }
            start += batchSize
        }
        if global.json { try Output.json(results) }
        if failed { throw ExitCode(1) }
    }

    private func hashBatch(_ paths: [String], threads: BLAKE3.Threads) -> [Result] {
        let workers = (paths.count == 1 || singleThread) ? 1 : ProcessInfo.processInfo.activeProcessorCount
        let full = self.full
        return ContentHasher.parallelMap(count: paths.count, workers: workers) { i, hasher in
            Self.hashOne(paths[i], full: full, threads: workers == 1 ? threads : .single, hasher: hasher)
        }
    }

    private static func hashOne(
        _ path: String,
        full: Bool,
        threads: BLAKE3.Threads,
        hasher: borrowing ContentHasher
    ) -> Result {
        do {
            let reader = try LocalFileReader(path: path)
            let size = try reader.size()
            if full {
                let hash = try ContentHasher.integrityHash(mapping: reader, threads: threads)
                return Result(path: path, size: size, integrityHash: hash.hex)
            }
            let id = try hasher.contentID(of: reader)
            return Result(path: path, size: size, contentID: id?.hex, contentUUID: id?.uuid.lowercased)
        } catch let error as SystemError {
            return Result(path: path, error: error.description)
        } catch {
            return Result(path: path, error: "\(path): \(error)")
        }
    }
}

/// b3sum's output format: "HASH  NAME", where a name holding a backslash or newline has them escaped and the
/// line starts with a backslash.
enum B3SumFormat {
    static func line(hash: String, path: String) -> String {
        guard path.contains("\\") || path.contains("\n") else { return "\(hash)  \(path)" }
        let escaped = path.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
        return "\\\(hash)  \(escaped)"
    }
}
