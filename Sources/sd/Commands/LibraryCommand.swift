import ArgumentParser

struct LibraryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "library")
}
