import ArgumentParser
import CoordinatorDaemon
import Foundation
import Logging
import RedisClient

struct Agent: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve one agent's step list with the simulated actions (for the agents executor).")

    @Option(help: "The agent id whose steps to serve (coord:agent:<id>:steps).") var id: String
    @Option(help: "Fail this step action.") var fail: String?
    @Option(help: "Fail the rollback of this step action.") var failRollback: String?
    @Option(help: "Never answer this step action (shows the daemon's --step-timeout).") var ignore: String?
    @Option(help: "Seconds to take per step.") var delay: Double = 0
    @Option(help: "Sign the answers with this Ed25519 key file, as the agent id (for a daemon under --trust).") var key: String?
    @Option(help: "Redis URL (env REDIS_URL).") var redisURL: String?
    @Option(help: "Key prefix (env COORD_PREFIX).") var prefix: String?
    @Flag(help: "Redis is a Redis Cluster; the URL names a seed node (env COORD_CLUSTER=1; a redis+cluster:// URL implies it).") var cluster = false

    func validate() throws {
        _ = try DaemonOptions.finite(delay, "--delay", 0...3600, "seconds between 0 and 3600")
    }

    func run() throws {
        LoggingSystem.bootstrap { LogLineHandler(label: $0, format: .text) }
        var options = SimulatedAgent.Options(id: id)
        options.failAction = fail
        options.failRollback = failRollback
        options.ignoreAction = ignore
        options.delay = delay
        options.signer = try key.map { MessageSigner(kid: id, key: try SigningKeyFile.load(path: $0)) }
        let url = Environment.redisURL(redisURL)
        var redis = try RedisConfiguration(url: url)
        if Environment.isCluster(cluster, url: url) { redis = try redis.clustered() }
        let agent = SimulatedAgent(options: options, redis: redis, keys: Environment.keys(prefix),
                                   logger: Logger(label: "coordinatord.agent"))
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { agent.stop() }
            source.resume()
            Agent.signalSources.append(source)
        }
        agent.run()
    }

    nonisolated(unsafe) static var signalSources: [DispatchSourceSignal] = []
}
