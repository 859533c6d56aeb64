import Foundation
import RedisClient
import Synchronization

/// Backpressure from the executor to intake (PROTOCOL.md section 9: the executor completes
/// plans at least as fast as intake starts them). Redis is the one resource both share, and a
/// request that starts a plan costs it less than running that plan does, so under a flood of
/// `execute_now` requests an intake without it starts plans three times faster than the
/// executors finish them: 100,000 plans pile up on the ready list (half a gigabyte of Redis).
///
/// While more than `--plan-backlog` plans wait on the ready list for an executor, the request
/// workers take no new requests; they take again once the list is down to three quarters of
/// that. Requests then wait on `coord:requests` (a few hundred bytes each) instead of plans in
/// Redis, and no request is refused or lost. The list's length is read at most every
/// `period` by one worker of the daemon, for all of them.
final class PlanBacklog: Sendable {
    let limit: Int
    private let key: String
    private let period: UInt64
    private let context: DaemonContext
    private struct State {
        var readAt: UInt64 = 0
        var reading = false
        var paused = false
        var pausedSince: UInt64 = 0
    }
    private let state = Mutex(State())

    init(context: DaemonContext, period: Duration = .milliseconds(20)) {
        self.context = context
        limit = context.configuration.planBacklog
        key = context.keys.readyPlans
        let (seconds, attoseconds) = period.components
        self.period = UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
    }

    /// Whether a request worker may take more requests now. Reads the ready list's length when
    /// the last read is older than the period (one worker reads; the others use its answer).
    func admits(_ connection: RedisConnection) throws(RedisError) -> Bool {
        guard limit > 0 else { return true }
        let now = DaemonMetrics.now()
        let due = state.withLock { state -> Bool in
            guard !state.reading, now &- state.readAt >= period else { return false }
            state.reading = true
            return true
        }
        if due {
            let length: Int
            do {
                length = Int(try connection.send("LLEN", key).integer ?? 0)
            } catch {
                state.withLock { $0.reading = false }
                throw error
            }
            update(length, at: now)
        }
        return state.withLock { !$0.paused }
    }

    private func update(_ length: Int, at now: UInt64) {
        enum Change { case paused, resumed(Double) }
        let change = state.withLock { state -> Change? in
            state.readAt = now
            state.reading = false
            if !state.paused, length > limit {
                state.paused = true
                state.pausedSince = now
                return .paused
            }
            if state.paused, length <= limit * 3 / 4 {
                state.paused = false
                return .resumed(Double(now &- state.pausedSince) / 1e9)
            }
            return nil
        }
        switch change {
        case .paused:
            context.logger.warning("intake paused: plans wait for an executor past --plan-backlog",
                                   metadata: ["queued_plans": "\(length)", "plan_backlog": "\(limit)"])
        case .resumed(let seconds):
            context.metrics.intakePaused(seconds: seconds)
            context.logger.info("intake resumed", metadata: ["queued_plans": "\(length)",
                                                            "paused_seconds": "\(String(format: "%.3f", seconds))"])
        case nil:
            break
        }
    }
}
