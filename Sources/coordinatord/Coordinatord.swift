import ArgumentParser
import CoordinatorDaemon
import Foundation

@main
struct Coordinatord: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinatord",
        abstract: "Coordinates infrastructure-optimization agents through Redis.",
        version: DaemonVersion.current,
        subcommands: [
            Run.self, Health.self, Agent.self,
            Status.self, Approvals.self, Approve.self, Reject.self, PlanCommand.self, Events.self, Dead.self, KeysCommand.self, Web.self,
        ]
    )

    /// Exit status: 0 success, 1 an error answer, 2 a usage error (ArgumentParser's own is 64).
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var daemon = command as? any AsyncParsableCommand {
                try await daemon.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}
