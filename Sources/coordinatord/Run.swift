import ArgumentParser
import CoordinatorDaemon
import Logging

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the daemon until SIGTERM or SIGINT.")

    @OptionGroup var options: DaemonOptions

    func run() throws {
        let config = try options.configuration()
        let format: LogLineHandler.Format = config.logFormat == .json ? .json : .text
        LoggingSystem.bootstrap { LogLineHandler(label: $0, format: format) }
        let daemon = try Daemon(configuration: config, logger: Logger(label: "coordinatord"))
        daemon.runUntilSignalled()
    }
}
