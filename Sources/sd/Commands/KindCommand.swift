import ArgumentParser

struct KindCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kind")
}
