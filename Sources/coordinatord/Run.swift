import ArgumentParser
import CoordinatorDaemon
import Logging

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the daemon until SIGTERM or SIGINT.")

    @OptionGroup var options: DaemonOptions

    func run() async throws {
        let config = try options.configuration()
        let format: LogLineHandler.Format = config.logFormat == .json ? .json : .text
        LoggingSystem.bootstrap { LogLineHandler(label: $0, format: format) }
        let daemon = try Daemon(configuration: config, logger: Logger(label: "coordinatord"))
        // A part that fails stops the others and ends here: logged, then exit 1.
        try await daemon.run()
    }
}
