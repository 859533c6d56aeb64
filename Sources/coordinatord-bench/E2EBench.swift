import ArgumentParser

struct E2EBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "e2e", abstract: "Not written yet.")
    func run() throws { throw ValidationError("not implemented yet") }
}
