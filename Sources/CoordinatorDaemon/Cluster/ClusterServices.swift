import Foundation
import Logging
import ServiceLifecycle

/// The services of a daemon on a Redis Cluster (PROTOCOL.md section 11): the partitions'
/// leases (which run the partitions held), then ingress from the three entry queues. They
/// stop in reverse: ingress first, then the partitions, each finishing what it holds.
enum ClusterServices {
    static func services(_ context: DaemonContext) -> [DaemonService] {
        let logger = context.logger
        let leases = PartitionLeases(context: context)
        let movers = ["requests", "approvals", "steps:results"].map { IngressMover(context: context, queueName: $0) }
        return [
            DaemonService("partitions", logger: logger) { try await leases.run() },
            DaemonService("ingress", logger: logger) { [movers] in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for mover in movers { group.addTask { try await mover.run() } }
                    try await group.waitForAll()
                }
            },
        ]
    }
}
