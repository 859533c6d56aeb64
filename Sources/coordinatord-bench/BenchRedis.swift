import Foundation
import RedisClient
import TestSupport

/// The Redis an e2e case runs on: a redis-server of its own, a local Redis Cluster of its own,
/// or the one `--url` names; with a connection to each node (each master of a cluster) for
/// `CostMeter`.
struct BenchRedis {
    enum Target { case single, cluster }

    /// What the daemons get as `--redis-url`.
    let url: String
    let configuration: RedisConfiguration
    /// One plain connection per Redis node that serves keys (each master of a cluster).
    let nodes: [RedisConnection]
    private let server: RedisServer?
    private let cluster: RedisCluster?

    /// Persistence as deployed (AOF, fsync every second), not the tests' fsync-per-write. A
    /// cluster has no replicas (throughput, not failover) and `cluster-node-timeout` 15 s (a
    /// node starved of CPU by the load on a small machine is not taken for failed).
    static func start(_ target: Target, url: String?, masters: Int) throws -> BenchRedis {
        let persistence = ["--appendonly", "yes", "--appendfsync", "everysec"]
        switch target {
        case .cluster:
            let cluster = try RedisCluster.start(masters: masters, replicasPerMaster: 0, nodeTimeout: 15000,
                                                 arguments: persistence)
            do {
                let nodes = try cluster.masterPorts().sorted().map { try cluster.direct($0) }
                return BenchRedis(url: cluster.url, configuration: cluster.configuration, nodes: nodes, server: nil, cluster: cluster)
            } catch {
                cluster.stop()
                throw error
            }
        case .single:
            let server: RedisServer? = url == nil ? try RedisServer.start(arguments: ["--appendfsync", "everysec"]) : nil
            let configuration = try url.map { try RedisConfiguration(url: $0) } ?? server!.configuration
            return BenchRedis(url: url ?? server!.url, configuration: configuration,
                              nodes: [try RedisConnection(configuration: configuration)], server: server, cluster: nil)
        }
    }

    func stop() {
        for node in nodes { node.close() }
        server?.stop()
        cluster?.stop()
    }
}
