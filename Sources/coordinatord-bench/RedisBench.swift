import ArgumentParser

struct RedisBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "redis", abstract: "Not written yet.")
    func run() throws { throw ValidationError("not implemented yet") }
}
