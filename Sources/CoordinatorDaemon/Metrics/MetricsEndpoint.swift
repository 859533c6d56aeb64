import Foundation

/// The metrics endpoint of one daemon: the HTTP server (bound when the daemon is created, so
/// a port already in use fails start-up with a clear error) and the sampler of Redis gauges.
final class MetricsEndpoint: Sendable {
    private let server: MetricsServer
    private let sampler: MetricsSampler

    /// The bound port.
    var port: Int { server.port }

    /// Nil when metrics are off (`--metrics-port 0`).
    static func open(_ context: DaemonContext) throws -> MetricsEndpoint? {
        let config = context.configuration
        guard config.metricsPort != 0, context.metrics.isOn else { return nil }
        do {
            let server = try MetricsServer(host: config.metricsHost, port: config.metricsPort, metrics: context.metrics)
            return MetricsEndpoint(server: server, sampler: MetricsSampler(context: context))
        } catch {
            throw MetricsEndpointError.cannotBind("\(config.metricsHost):\(config.metricsPort)", "\(error)")
        }
    }

    private init(server: MetricsServer, sampler: MetricsSampler) {
        self.server = server
        self.sampler = sampler
    }

    /// Samples until graceful shutdown, then closes the server (on a thread of its own: the
    /// close waits for NIO's event loop, which must not hold a thread of the cooperative pool).
    func run() async throws {
        do {
            try await sampler.run()
        } catch {
            await close()
            throw error
        }
        await close()
    }

    private func close() async {
        await withCheckedContinuation { (closed: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread { [server] in
                server.stop()
                closed.resume()
            }
        }
    }
}

/// Why the metrics endpoint could not be opened.
public enum MetricsEndpointError: Error, CustomStringConvertible {
    case cannotBind(String, String)

    public var description: String {
        switch self {
        case .cannotBind(let address, let reason): "--metrics-port: cannot serve metrics on \(address): \(reason)"
        }
    }
}
