import Coordination
import Foundation
import Logging
import RedisClient

/// A stand-in agent for the `agents` executor (`coordinatord agent`): serves one agent's step
/// list with the seed's simulated actions and answers on the results queue.
public final class SimulatedAgent: @unchecked Sendable {
    public struct Options: Sendable {
        public var id: String
        /// Fail this action when asked to run it.
        public var failAction: String?
        /// Fail the rollback of this action.
        public var failRollback: String?
        /// Never answer this action (to see the daemon's step timeout).
        public var ignoreAction: String?
        public var delay: TimeInterval = 0
        /// Signs every answer (a daemon under `--trust`, PROTOCOL.md section 10).
        public var signer: MessageSigner?

        public init(id: String) { self.id = id }
    }

    private let options: Options
    private let redis: RedisConfiguration
    private let keys: Keys
    private let logger: Logger
    private let stopping = Flag()

    public init(options: Options, redis: RedisConfiguration, keys: Keys, logger: Logger) {
        self.options = options
        self.redis = redis
        self.keys = keys
        self.logger = logger
    }

    public func stop() { stopping.set() }

    /// Serves steps until `stop()`; reconnects when Redis goes away. On a Redis Cluster
    /// (`redis.isCluster`) the step list and the results queue are two slots: each command
    /// goes through a `RedisClusterClient` to the master of its key's slot.
    public func run() {
        RedisProcess.ignoreSIGPIPE()
        logger.info("agent serving", metadata: ["agent_id": "\(options.id)", "list": "\(keys.agentSteps(options.id))"])
        if redis.isCluster {
            // An answer re-sent after a lost connection may reach the results queue twice: the
            // daemon counts one result per attempt and refuses the second (PROTOCOL.md section 5).
            let client = RedisClusterClient(configuration: redis)
            defer { client.close() }
            serve { () throws(RedisClusterError) in
                try client.blockingPop([keys.agentSteps(options.id)], timeout: 1)?.value
            } push: { answer throws(RedisClusterError) in
                _ = try client.send("LPUSH", keys.stepResults, answer)
            }
            return
        }
        var connection: RedisConnection?
        defer { connection?.close() }
        serve { () throws(RedisError) in
            if connection == nil { connection = try RedisConnection(configuration: redis) }
            return try connection!.blockingPop([keys.agentSteps(options.id)], timeout: 1)?.1
        } push: { answer throws(RedisError) in
            _ = try connection!.send("LPUSH", keys.stepResults, answer)
        }
    }

    /// Pops a step (nil after a second without one), answers it, pushes the answer (signed
    /// when a signer is set); errors are logged and retried after a pause.
    private func serve<E: Error>(pop: () throws(E) -> [UInt8]?, push: ([UInt8]) throws(E) -> Void) {
        while !stopping.isSet {
            do {
                guard let raw = try pop(), let answer = answer(raw) else { continue }
                try push(try options.signer?.sign(answer) ?? answer)
            } catch {
                logger.error("agent: Redis unavailable, retrying", metadata: ["error": "\(error)"])
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
    }

    private struct Step {
        var plan_id: String
        var step_id: String
        var action: String
        var rollback: Bool?
        var attempt: String?
        var deadline: String?

        /// The step message as the daemon writes it (PROTOCOL.md section 5), read with
        /// `JSONLexer` like every queued message; nil when a member it needs is missing or
        /// of another type, or the message is not JSON.
        static func read(_ raw: [UInt8]) -> Step? {
            var plan: String?, step: String?, action: String?, rollback: Bool?, attempt: String?, deadline: String?
            let read = JSONLexer.readObject(raw) { name, lexer throws(JSONLexer.Malformed) in
                if try lexer.null() { return true }
                switch name {
                case "plan_id": plan = try lexer.string()
                case "step_id": step = try lexer.string()
                case "action": action = try lexer.string()
                case "rollback": rollback = try lexer.bool()
                case "attempt": attempt = try lexer.string()
                case "deadline": deadline = try lexer.string()
                default: return false
                }
                return true
            }
            guard read, let plan, let step, let action else { return nil }
            return Step(plan_id: plan, step_id: step, action: action, rollback: rollback, attempt: attempt, deadline: deadline)
        }
    }

    private func answer(_ raw: [UInt8]) -> [UInt8]? {
        guard let step = Step.read(raw) else {
            logger.error("agent: unreadable step message dropped", metadata: ["raw": "\(String(decoding: raw, as: UTF8.self))"])
            return nil
        }
        let rollback = step.rollback ?? false
        // Section 5: a step past its deadline was failed (and withdrawn) by the daemon; running
        // it now would change what the plan already counts as not done.
        if let text = step.deadline {
            guard let deadline = Timestamp.date(from: text) else {
                logger.error("agent: step with an unreadable deadline refused", metadata: ["plan_id": "\(step.plan_id)", "deadline": "\(text.prefix(64))"])
                return nil
            }
            if Date() > deadline {
                logger.warning("agent: step past its deadline refused", metadata: [
                    "plan_id": "\(step.plan_id)", "step_id": "\(step.step_id)", "deadline": "\(text)",
                ])
                return nil
            }
        }
        logger.info("agent: step", metadata: ["plan_id": "\(step.plan_id)", "action": "\(step.action)", "rollback": "\(rollback)"])
        if step.action == options.ignoreAction && !rollback { return nil }
        if options.delay > 0 { Thread.sleep(forTimeInterval: options.delay) }
        var w = JSONWriter()
        w.beginObject()
        w.key("plan_id"); w.string(step.plan_id)
        w.key("step_id"); w.string(step.step_id)
        // Echoed so the daemon knows which dispatch this answers.
        if let attempt = step.attempt { w.key("attempt"); w.string(attempt) }
        w.key("rollback"); w.bool(rollback)
        let fails = rollback ? step.action == options.failRollback : step.action == options.failAction
        if fails {
            w.key("ok"); w.bool(false)
            w.key("error"); w.string("agent \(options.id) failed \(rollback ? "rolling back " : "")\(step.action) (--fail)")
        } else {
            var ids = UUIDGenerator()
            let outcome = SimulatedActions.outcome(for: step.action, ids: &ids)
            w.key("ok"); w.bool(true)
            w.key("result"); w.value(.object(rollback ? [:] : outcome.result))
            w.key("rollback_data"); w.value(.object(rollback ? [:] : outcome.rollbackData))
        }
        w.endObject()
        return w.bytes
    }
}
