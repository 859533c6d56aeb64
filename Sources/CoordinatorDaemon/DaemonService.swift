import Logging
import ServiceLifecycle

/// One long-running part of the daemon (intake, execution, housekeeping, metrics) as a
/// swift-service-lifecycle `Service`, named for the logs. When it fails, it says so in a log
/// line naming it before the group stops every other part.
struct DaemonService: Service, CustomStringConvertible {
    let description: String
    let logger: Logger
    let body: @Sendable () async throws -> Void

    init(_ name: String, logger: Logger, _ body: @escaping @Sendable () async throws -> Void) {
        self.description = name
        self.logger = logger
        self.body = body
    }

    func run() async throws {
        do {
            try await body()
        } catch {
            logger.critical("service \(description) failed; stopping the daemon",
                            metadata: ["service": "\(description)", "error": "\(error)"])
            throw DaemonServiceError(service: description, reason: "\(error)")
        }
    }

    /// The group's entry for this service: a failure shuts the others down gracefully (so
    /// they hand back what they hold) and the group then throws it.
    var configuration: ServiceGroupConfiguration.ServiceConfiguration {
        .init(service: self, successTerminationBehavior: .cancelGroup, failureTerminationBehavior: .gracefullyShutdownGroup,
              serviceName: description)
    }
}

/// A part of the daemon failed and the daemon stopped because of it.
public struct DaemonServiceError: Error, CustomStringConvertible {
    public let service: String
    public let reason: String

    public var description: String { "service \(service) failed: \(reason)" }
}
