import ArgumentParser

struct PathCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "path")
}
