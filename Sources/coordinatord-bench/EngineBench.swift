import ArgumentParser

struct EngineBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "engine", abstract: "Not written yet.")
    func run() throws { throw ValidationError("not implemented yet") }
}
