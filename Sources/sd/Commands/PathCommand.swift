import ArgumentParser
import Foundation
import SDCore
import SDStore
import SDSystem

struct PathCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "path",
        abstract: "Parse and format SdPaths (sd://<device-id>/<path>, sd://content/<content-id>).",
        discussion: reflow(
            """
            Examples:
              sd path format ~/notes.txt
              sd path parse sd://content/9c1e5d0a1b2c3d4e
            """
        ),
        subcommands: [Parse.self, Format.self]
    )

    struct Parse: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check an SdPath and show its parts.",
            discussion: reflow(
                """
                Examples:
                  sd path parse sd://content/9c1e5d0a1b2c3d4e
                  sd path parse 'sd://6ba7b810-9dad-11d1-80b4-00c04fd430c8/home/me/a%20b.txt'
                """
            )
        )
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The SdPath.") var text: String

        struct Parts: Encodable {
            var kind: String
            var device: String?
            var path: String?
            var pathBytesHex: String?
            var contentID: String?
            var contentUUID: String?
            var canonical: String
        }

        func run() throws {
            let parsed: SDPath
            do { parsed = try SDPath(parsing: text) } catch { throw UserError(error.message) }
            var parts: Parts
            switch parsed {
            case .physical(let device, let bytes):
                parts = Parts(
                    kind: "physical",
                    device: device.description,
                    path: PathText.string(bytes),
                    pathBytesHex: Hex.encode(bytes),
                    canonical: parsed.description
                )
                if parsed.pathString == nil { parts.path = nil }
            case .content(let id):
                parts = Parts(
                    kind: "content",
                    contentID: id.hex,
                    contentUUID: id.uuid.lowercased,
                    canonical: parsed.description
                )
            case .contentUUID(let uuid):
                parts = Parts(kind: "content", contentUUID: uuid.lowercased, canonical: parsed.description)
            }
            if global.json { return try Output.json(parts) }
            print("kind       \(parts.kind)")
            if let d = parts.device { print("device     \(d)") }
            if let p = parts.path {
                print("path       \(p)")
            } else if let h = parts.pathBytesHex {
                print("path hex   \(h)")
            }
            if let c = parts.contentID { print("content    \(c)") }
            if let u = parts.contentUUID { print("uuid       \(u)") }
            print("canonical  \(parts.canonical)")
        }
    }

    struct Format: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make the SdPath of a local file (on this device), or of a content id.",
            discussion: reflow(
                """
                Examples:
                  sd path format ~/Documents/report.pdf
                  sd path format --content 9c1e5d0a1b2c3d4e
                  sd path format --device 6ba7b810-9dad-11d1-80b4-00c04fd430c8 /srv/a.txt
                """
            )
        )
        @OptionGroup var global: GlobalOptions
        @Option(help: "A content id (16 hex digits) instead of a file.") var content: String?
        @Option(help: "The device id (default: this device).") var device: String?
        @Argument(help: "A path (made absolute against the current folder).") var path: String?

        func run() throws {
            let result: SDPath
            if let content {
                guard path == nil else { throw UserError("give either --content or a path, not both") }
                guard let id = ContentID(content) else {
                    throw UserError("'\(content)' is not a content id (16 hex digits)")
                }
                result = .content(id)
            } else {
                guard let path else { throw UserError("give a path, or --content ID (see sd path format --help)") }
                let deviceID: DeviceID
                if let device {
                    guard let parsed = DeviceID(device) else {
                        throw UserError("'\(device)' is not a device id (a UUID)")
                    }
                    deviceID = parsed
                } else {
                    deviceID = try LibraryOptions().device().id
                }
                result = .physical(device: deviceID, path: LibraryLocator.absolute(path))
            }
            if global.json { return try Output.json(["sdPath": result.description]) }
            print(result.description)
        }
    }
}
