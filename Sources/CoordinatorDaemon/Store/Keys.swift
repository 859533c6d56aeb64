import Crypto
import Foundation

/// The Redis key layout, all under one prefix (docs/OPERATING.md "Key layout" mirrors this
/// file). This is the only place that spells a key.
///
/// Every key of one customer carries the hash tag `{<customer>}` right after the prefix, and
/// keys of a plan or an approval carry `{<id>}`. Identifiers never contain `{` or `}`
/// (PROTOCOL.md 2.5), so the closing brace ends the identifier and the fixed suffix after it
/// makes every key unambiguous: (`a:b`, `c`) and (`a`, `b:c`) give different keys.
///
/// On a Redis Cluster (`--cluster`, PROTOCOL.md section 11) a partition's keys are the same
/// layout under the prefix `coord:{p<k>}` (`partition(_:)`, in `Keys+Cluster.swift`): the
/// partition's tag comes first, so every key of a customer, approval or plan of partition k
/// hashes to k's slot; `root` stays the configured prefix, for the event channel.
public struct Keys: Sendable {
    public let prefix: String
    /// The configured prefix (`prefix` itself on one Redis; without the partition's tag on a
    /// cluster), for what stays global: the event channel.
    public let root: String

    public init(prefix: String) {
        self.prefix = prefix
        self.root = prefix
    }

    init(prefix: String, root: String) {
        self.prefix = prefix
        self.root = root
    }

    // Queues producers write (PROTOCOL.md section 1).
    /// The queue named `name` under the prefix ("requests" -> "coord:requests").
    public func queue(_ name: String) -> String { "\(prefix):\(name)" }
    public var requests: String { "\(prefix):requests" }
    public var approvals: String { "\(prefix):approvals" }
    public var stepResults: String { "\(prefix):steps:results" }
    /// Plans ready to be started or re-examined (their dependencies moved); executors consume it.
    public var readyPlans: String { "\(prefix):plans:ready" }

    public var dead: String { "\(prefix):dead" }
    public var events: String { "\(root):events" }
    public var eventStream: String { "\(prefix):events:stream" }

    /// Heartbeat hash of one worker (with TTL).
    public func worker(_ id: String) -> String { "\(prefix):workers:\(id)" }
    /// Set of worker ids that ever held in-flight lists, so lapsed ones can be recovered.
    public var workerIndex: String { "\(prefix):workers" }
    /// Messages a worker has taken from `queue` and not yet finished.
    public func inflight(worker: String, queue: String) -> String { "\(prefix):inflight:\(worker):\(queue)" }
    /// Where a worker holds one message over `--max-message-bytes`, apart from its in-flight
    /// list, so that the message is refused without its bytes ever being read whole.
    public func oversized(inflight: String) -> String { inflight + Self.oversizedSuffix }
    public static let oversizedSuffix = ":oversized"
    /// The names of one worker's in-flight lists with the queue each hands back to (hash:
    /// in-flight list -> queue), so recovery needs no keyspace scan.
    public func inflightLists(worker: String) -> String { "\(prefix):inflight-lists:\(worker)" }
    /// How many times a message (by queue and SHA-256 of its bytes) was handed back unfinished.
    public func deliveries(queue: String, message: [UInt8]) -> String {
        "\(prefix):deliveries:\(queue):\(SHA256.hash(data: message).map { String(format: "%02x", $0) }.joined())"
    }

    // MARK: - One customer (hash tag {customer})

    private func customerKey(_ customer: String, _ suffix: String) -> String { "\(prefix):{\(customer)}:\(suffix)" }

    /// The stored reply of a customer's `coordinate` for idempotent re-delivery (PROTOCOL 2.3).
    public func dedupe(customer: String, requestID: String) -> String { customerKey(customer, "dedupe:\(requestID)") }
    /// A signed message of this customer already processed (PROTOCOL.md section 10), by the
    /// SHA-256 (hex) of its signature; that of a `coordinate` without `request_id` holds
    /// "reply_to\nreply" as `dedupe` does, any other "1".
    /// Lives `--signature-max-age` + 61 s, past which the signature is refused as expired anyway.
    public func seenSignature(customer: String, digest: String) -> String { customerKey(customer, "sig:\(digest)") }

    /// A customer's active recommendations (pending approval, approved, executing): id -> record.
    public func active(customer: String) -> String { customerKey(customer, "active") }
    /// Ids of the customer's active recommendations that act on `resource`.
    public func resourceIndex(customer: String, resource: String) -> String { customerKey(customer, "resource:\(resource)") }
    /// Ids of the customer's active recommendations with this action.
    public func actionIndex(customer: String, action: String) -> String { customerKey(customer, "action:\(action)") }
    /// Ids of the customer's active customer-wide recommendations (no resources).
    public func wideIndex(customer: String) -> String { customerKey(customer, "wide") }
    /// The customer's version tokens, one field per index: a field's token is replaced whenever
    /// recommendations are kept in that index, and the field goes when the index empties. A
    /// commit that read an index is guarded by its field (unique tokens: no ABA). One hash, so
    /// a commit reads and bumps all its fields in one command each.
    public func versions(customer: String) -> String { customerKey(customer, "versions") }
    /// The field of `versions` for the index of this resource.
    public static func resourceVersion(_ resource: String) -> String { "r:" + resource }
    /// The field of `versions` for the index of this action.
    public static func actionVersion(_ action: String) -> String { "a:" + action }
    /// The field of `versions` for the customer-wide index.
    public static let wideVersion = "w"
    /// Short lock a request that keeps losing takes, so it wins its next round (burst fairness).
    public func customerLock(_ customer: String) -> String { customerKey(customer, "lock") }
    /// A staged commit's parts still to apply (hash: `next`, `parts`, `p<i>`), while it holds
    /// `customerLock` (docs/DESIGN.md, "Staged commits").
    public func journal(customer: String) -> String { customerKey(customer, "journal") }
    /// The later parts of the staged commit holding `token`: `p<i>` -> that call's arguments.
    public func journalParts(customer: String, token: String) -> String { customerKey(customer, "journal:\(token)") }
    /// A staged commit's reply ("reply_to\nreply"), by the SHA-256 (hex) of its message, when it
    /// has no request_id, for `--dedupe-ttl`: a copy of that message handed back meanwhile is
    /// answered with it, not computed again.
    public func staged(customer: String, digest: String) -> String { customerKey(customer, "staged:\(digest)") }
    /// A recommendation that has left the active set, kept for `--retention`.
    public func recommendation(customer: String, id: String) -> String { customerKey(customer, "recommendation:\(id)") }
    /// Plans waiting for this recommendation's plan to end.
    public func waiters(customer: String, recommendation: String) -> String { customerKey(customer, "waiters:\(recommendation)") }
    /// One customer's pending approvals by expiry time (ms), for `list_approvals`.
    public func pendingApprovals(customer: String) -> String { customerKey(customer, "approvals:pending") }

    // MARK: - Approvals and plans (hash tag {id})

    public func approval(_ id: String) -> String { "\(prefix):approval:{\(id)}" }
    /// A signed decision or read of this approval already processed (as `seenSignature(customer:digest:)`).
    public func seenSignature(approval id: String, digest: String) -> String { "\(prefix):approval:{\(id)}:sig:\(digest)" }
    /// `approval(id)` is `approvalKeyHead + id + approvalKeyTail` (for scripts that build it).
    public var approvalKeyHead: String { "\(prefix):approval:{" }
    public var approvalKeyTail: String { "}" }
    /// Pending approvals by expiry time (ms), for the sweeper.
    public var pendingApprovals: String { "\(prefix):approvals:pending" }

    public func plan(_ id: String) -> String { "\(prefix):plan:{\(id)}" }
    /// A signed `execute_plan` or read of this plan already processed (as `seenSignature(customer:digest:)`).
    public func seenSignature(plan id: String, digest: String) -> String { "\(prefix):plan:{\(id)}:sig:\(digest)" }
    /// `plan(id)` is `planKeyHead + id + planKeyTail` (for finding plans by a prefix of their id).
    public var planKeyHead: String { "\(prefix):plan:{" }
    public var planKeyTail: String { "}" }
    /// Set once a plan was handed to the executors, so it is never started twice.
    public func planQueued(_ id: String) -> String { "\(prefix):plan:{\(id)}:queued" }
    /// Held by the worker running the plan; lapses when it dies.
    public func planLease(_ id: String) -> String { "\(prefix):plan:{\(id)}:lease" }
    /// The outstanding dispatch of a plan's step (a `StepAttempt`), while an agent has one.
    /// No request can name it (ids have no braces), so no reply can read a token.
    public func stepAttempt(_ planID: String) -> String { "\(plan(planID)):attempt" }
    /// Agents' results for this plan that reached a daemon not running it.
    public func planResults(_ id: String) -> String { "\(prefix):plan:{\(id)}:results" }
    /// Running plans by lease deadline (ms), so a lapsed one is found without a scan.
    public var runningPlans: String { "\(prefix):plans:running" }
    /// Plans created but not started, by creation time (ms), for `--plan-hold`.
    public var heldPlans: String { "\(prefix):plans:held" }

    public func agentSteps(_ agentID: String) -> String { "\(prefix):agent:\(agentID):steps" }
}
