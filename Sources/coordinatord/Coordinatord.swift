import ArgumentParser
import CoordinatorDaemon
import Foundation

@main
struct Coordinatord: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinatord",
        abstract: "Coordinates infrastructure-optimization agents through Redis.",
        version: DaemonVersion.current,
        subcommands: [Run.self, Health.self, Agent.self, KeysCommand.self]
    )
}
