import ArgumentParser
import Foundation
import SDCore
import SDStore

/// What `sd device` shows of this device.
struct DeviceView: Encodable {
    var id: String
    var name: String
    var created: Date
    var configFolder: String
}

struct DeviceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "device",
        abstract: "This device: its name and identity.",
        discussion: reflow(
            """
            A device's identity (its id, key and paired devices) lives in the config folder ($SD_CONFIG_DIR, else
            $XDG_CONFIG_HOME/sd, else ~/.config/sd). A config folder copied to another machine or folder is
            refused until you say which it is: `sd device keep` (this is now the only place that uses it) or
            `sd device new` (this becomes a new device, to pair again).

            Examples:
              sd device show
              sd device rename laptop
            """
        ),
        subcommands: [Show.self, Rename.self, Keep.self, New.self],
        defaultSubcommand: Show.self
    )

    static var folder: String { DeviceIdentity.configDirectory() }

    static func view(_ identity: DeviceIdentity) -> DeviceView {
        DeviceView(id: identity.id.description, name: identity.name, created: identity.created, configFolder: folder)
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show this device's name and id.")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let identity = try DeviceIdentity.loadOrCreate(configDirectory: DeviceCommand.folder)
            if global.json { return try Output.json(DeviceCommand.view(identity)) }
            print("\(identity.name)  \(identity.id)  (config \(DeviceCommand.folder))")
        }
    }

    struct Rename: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give this device a name (shown on the devices it syncs with).",
            discussion: reflow(
                """
                Libraries take the new name when they are next opened (restart sdd to have it now); the devices a
                library syncs with see it at their next sync.

                Example:
                  sd device rename laptop
                """
            )
        )
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The new name (1-64 bytes).") var name: String

        func run() throws {
            let identity = try DeviceIdentity.rename(to: name, configDirectory: DeviceCommand.folder)
            if global.json { return try Output.json(DeviceCommand.view(identity)) }
            print("this device is now named '\(identity.name)' (\(identity.id))")
        }
    }

    struct Keep: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Keep using a config folder that was moved or restored here (it is used nowhere else now)."
        )
        @OptionGroup var global: GlobalOptions

        func run() throws {
            guard let identity = try DeviceIdentity.loadUnchecked(configDirectory: DeviceCommand.folder) else {
                throw UserError("no device identity in \(DeviceCommand.folder) yet: any sd command makes one")
            }
            try DeviceIdentity.recordPlace(in: DeviceCommand.folder)
            if global.json { return try Output.json(DeviceCommand.view(identity)) }
            print("this machine goes on as device '\(identity.name)' (\(identity.id)); no other may use this identity")
        }
    }

    struct New: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make this machine a new device (the identity here is moved aside, never deleted).",
            discussion: reflow(
                """
                For a config folder copied from another machine that still uses it. The new device has no paired
                devices: pair it again (`sd pair`). Locations added under the old identity stay that device's:
                add them again here.
                """
            )
        )
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let (aside, identity) = try DeviceIdentity.startOver(configDirectory: DeviceCommand.folder)
            if global.json { return try Output.json(DeviceCommand.view(identity)) }
            print("this machine is now a new device, '\(identity.name)' (\(identity.id)); pair it again with `sd pair`")
            print("the identity it had is kept in \(aside)")
        }
    }
}
