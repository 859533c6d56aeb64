import Coordination
import Foundation
import RedisClient

/// Takes agents' step results off the shared queue (PROTOCOL.md section 5) and checks each
/// against trust and the attempt it claims to answer. A result for a plan this daemon runs is
/// applied on the next commit of that plan (which also acknowledges it); any other goes to
/// that plan's mailbox, where the daemon running it finds it.
struct StepResults {
    let book: PlanBook

    private var context: DaemonContext { book.context }
    private var keys: Keys { book.keys }
    private var maxBytes: Int { context.configuration.maxMessageBytes }

    /// The commits of one collection: refusals, dead letters and mail.
    private struct Letters {
        let context: DaemonContext
        let queue: String
        let inflight: String
        let now: Date
        var commits: [Commit] = []

        /// Dead-letters a refused result and acknowledges it where it waits (`inflight` unless
        /// `list` is given).
        mutating func refuse(_ raw: [UInt8], _ failure: Refusal, from list: String? = nil) {
            var commit = list == nil ? Commit(acknowledging: raw, in: inflight) : Commit()
            if let list { context.store.release(raw, from: list, into: &commit) }
            context.deadLetter(raw, queue: queue, failure: failure, now: now, in: &commit)
            commits.append(commit)
            context.metrics.stepResult(failure)
        }

        /// Dead-letters a result over `--max-message-bytes` from its first bytes and acknowledges
        /// it by its place in the oversized list, where it waits unread.
        mutating func refuseOversized(_ head: [UInt8], bytes: Int, _ failure: Refusal, from list: String) {
            var commit = Commit(acknowledgingHeldIn: list)
            context.deadLetter(head, queue: queue, failure: failure, now: now, wholeBytes: bytes, in: &commit)
            commits.append(commit)
            context.metrics.stepResult(failure)
        }

        /// A result over a bound that still answers its step: dead-lettered with `too_large`
        /// (left for the step's own commit or the mailbox to acknowledge), its outcome the failure.
        mutating func deadLetterOnly(_ raw: [UInt8], _ failure: Refusal) {
            var commit = Commit()
            context.deadLetter(raw, queue: queue, failure: failure, now: now, in: &commit)
            commits.append(commit)
        }
    }

    /// Takes a batch of results, holds those for plans waiting here, mails the others, and
    /// looks in the mailboxes of the plans waiting on an agent.
    ///
    /// Results are bounded like requests (PROTOCOL.md 5, 6): a batch holds at most 16 MiB, and a
    /// result over `--max-message-bytes` is never read whole (see `refuseOversized`).
    func collect(_ connection: RedisConnection, now: Date) throws(RedisError) {
        let reply = try connection.run(
            Scripts.takeBatch, keys: [keys.stepResults, book.resultsInflight, book.inflightIndex, book.resultsOversized],
            args: [256, 0, maxBytes, maxBytes, QueueWorker.batchBytes, 0])
        var letters = Letters(context: context, queue: keys.stepResults, inflight: book.resultsInflight, now: now)
        var raws: [[UInt8]] = []
        var oversizedElsewhere: [(letter: Int, result: StepResultMessage)] = []
        for entry in reply.array ?? [] {
            if let bytes = entry.bytes {
                raws.append(bytes)
            } else if let parts = entry.array, parts.count == 2, let length = parts[0].integer, let head = parts[1].bytes {
                if let result = refuseOversized(head: head, bytes: Int(length), into: &letters) {
                    oversizedElsewhere.append((letters.commits.count - 1, result))
                }
            }
        }
        let elsewhere = admit(raws, now: now, into: &letters)
        try forward(elsewhere, connection, into: &letters)
        try forwardFailures(oversizedElsewhere, connection, into: &letters)
        try readMailboxes(connection, into: &letters)
        _ = try Commit.apply(letters.commits, on: connection)
    }

    /// Checks each result taken from the queue and holds those answering a plan waiting here;
    /// returns those for plans not waiting here.
    private func admit(_ raws: [[UInt8]], now: Date,
                       into letters: inout Letters) -> [(raw: [UInt8], result: StepResultMessage)] {
        var elsewhere: [(raw: [UInt8], result: StepResultMessage)] = []
        for raw in raws {
            // Section 10: signed by an agent before anything is read; by the step's own agent
            // once known, and within its time window. (A replay inside the window answers an
            // attempt that is no longer outstanding, or is the second answer to it: refused below.)
            let admitted = context.trust.admit(raw)
            if let refusal = admitted.refusal ?? context.trust.refusal(stepResultBy: admitted.principal)
                ?? context.trust.refusal(signedAt: admitted.issuedAt, by: admitted.principal, now: now,
                                         maxAge: context.configuration.signatureMaxAge) {
                letters.refuse(raw, refusal)
                continue
            }
            let result: StepResultMessage
            switch StepResultMessage.parse(admitted.message, maxBytes: maxBytes) {
            case .success(let parsed): result = parsed
            case .failure(let failure):
                letters.refuse(raw, failure)
                continue
            }
            guard let plan = book.running[result.planID], let wait = plan.wait, let attempt = wait.attempt,
                  wait.stepID == result.stepID else {
                elsewhere.append((raw, result))
                continue
            }
            if let problem = Self.mismatch(result, attempt) {
                letters.refuse(raw, result.refusal ?? Refusal(.forbidden, problem))
                continue
            }
            if plan.arrived != nil {
                letters.refuse(raw, result.refusal ?? Refusal(.forbidden, "attempt \(attempt.token) of step \(attempt.stepID) was already answered"))
                continue
            }
            if let refusal = context.trust.refusal(stepResultBy: admitted.principal, stepAgent: plan.machine.plan.steps[wait.index].agentID) {
                letters.refuse(raw, refusal)
                continue
            }
            plan.arrived = (result.outcome, (raw, book.resultsInflight), result.attempt)
            if let refusal = result.refusal { letters.deadLetterOnly(raw, refusal) }
            context.metrics.stepResult(result.refusal)
        }
        return elsewhere
    }

    /// A result over `--max-message-bytes`, of which only its first `--max-message-bytes` were
    /// read: dead-lettered `too_large` and acknowledged. When its identity stands in those bytes
    /// and it answers the attempt of its plan, that step fails at once with the error: here,
    /// or through the plan's mailbox when the plan runs elsewhere (returned, for
    /// `forwardFailures`; its refusal is `letters`' last commit). With its identity past the
    /// cut, the step fails at its `--step-timeout`. Under `--trust` it could not be verified,
    /// so it changes no step.
    private func refuseOversized(head: [UInt8], bytes: Int, into letters: inout Letters) -> StepResultMessage? {
        let refusal = Refusal(.tooLarge, "step result is \(bytes) bytes, over --max-message-bytes (\(maxBytes))")
        letters.refuseOversized(head, bytes: bytes, refusal, from: book.resultsOversized)
        guard !context.trust.enforcing,
              case .success(let result) = StepResultMessage.oversized(head: head, bytes: bytes, maxBytes: maxBytes) else { return nil }
        context.logger.warning("step result over --max-message-bytes refused unread; its step fails",
                               metadata: ["plan_id": "\(result.planID)", "step_id": "\(result.stepID)", "bytes": "\(bytes)"])
        guard let plan = book.running[result.planID] else { return result }
        guard plan.arrived == nil, let wait = plan.wait, let attempt = wait.attempt,
              wait.stepID == result.stepID, Self.mismatch(result, attempt) == nil else { return nil }
        plan.arrived = (result.outcome, nil, result.attempt)
        return nil
    }

    /// Oversized results whose identity was read, for plans not running in this lane (another
    /// lane's, or another daemon's): when one answers the attempt stored with its plan, the
    /// failure it stands for goes to that plan's mailbox as a small result of its own
    /// (`ok: false`, the `too_large` error), in the commit that dead-letters and acknowledges
    /// it, so the step fails at once wherever its plan runs.
    private func forwardFailures(_ results: [(letter: Int, result: StepResultMessage)], _ connection: RedisConnection,
                                 into letters: inout Letters) throws(RedisError) {
        guard !results.isEmpty else { return }
        let stored = try connection.pipeline(results.map { RedisCommand("GET", keys.stepAttempt($0.result.planID)) })
        for ((letter, result), record) in zip(results, stored) {
            guard let attempt = record.bytes.flatMap(StepAttempt.decode), Self.mismatch(result, attempt) == nil,
                  case .failure(let error) = result.outcome else { continue }
            var json = JSONWriter(capacity: 256)
            json.beginObject()
            json.key("plan_id"); json.string(result.planID)
            json.key("step_id"); json.string(result.stepID)
            json.key("attempt"); json.string(result.attempt)
            json.key("rollback"); json.bool(result.rollback)
            json.key("ok"); json.bool(false)
            json.key("error"); json.string(error)
            json.endObject()
            context.store.mail(json.bytes, toPlan: result.planID, into: &letters.commits[letter])
        }
    }

    /// Results for plans not waiting here, checked against the attempt stored with the plan and
    /// put in that plan's mailbox.
    private func forward(_ elsewhere: [(raw: [UInt8], result: StepResultMessage)], _ connection: RedisConnection,
                         into letters: inout Letters) throws(RedisError) {
        guard !elsewhere.isEmpty else { return }
        let stored = try connection.pipeline(elsewhere.map { RedisCommand("GET", keys.stepAttempt($0.result.planID)) })
        for ((raw, result), record) in zip(elsewhere, stored) {
            guard let attempt = record.bytes.flatMap(StepAttempt.decode) else {
                letters.refuse(raw, result.refusal ?? Refusal(.forbidden, "plan \(result.planID) has no step waiting for a result"))
                continue
            }
            if let problem = Self.mismatch(result, attempt) {
                letters.refuse(raw, result.refusal ?? Refusal(.forbidden, problem))
                continue
            }
            // The daemon running the plan finds it in the plan's mailbox (one over a bound
            // too: it fails the step there; it is dead-lettered here, once).
            var commit = Commit(acknowledging: raw, in: book.resultsInflight)
            context.store.mail(raw, toPlan: result.planID, into: &commit)
            letters.commits.append(commit)
            if let refusal = result.refusal { letters.deadLetterOnly(raw, refusal) }
            context.metrics.stepResult(result.refusal)
        }
    }

    /// The mailboxes of the plans waiting on an agent: the first result answering the current
    /// attempt is held; one that does not answer it is refused.
    private func readMailboxes(_ connection: RedisConnection, into letters: inout Letters) throws(RedisError) {
        let waitingIDs = book.running.filter { $0.value.wait?.attempt != nil && $0.value.arrived == nil }.map(\.key)
        guard !waitingIDs.isEmpty else { return }
        let mail = try connection.pipeline(waitingIDs.map { RedisCommand("LRANGE", keys.planResults($0), 0, -1) })
        for (id, messages) in zip(waitingIDs, mail) {
            guard let plan = book.running[id], let wait = plan.wait, let attempt = wait.attempt else { continue }
            let mailbox = keys.planResults(id)
            for raw in (messages.array ?? []).compactMap(\.bytes) {
                let admitted = context.trust.admit(raw)
                guard admitted.refusal == nil, case .success(let result) = StepResultMessage.parse(admitted.message, maxBytes: maxBytes)
                else { continue }
                guard result.stepID == wait.stepID else { continue }
                if let problem = Self.mismatch(result, attempt) {
                    letters.refuse(raw, Refusal(.forbidden, problem), from: mailbox)
                    continue
                }
                if let refusal = context.trust.refusal(stepResultBy: admitted.principal, stepAgent: plan.machine.plan.steps[wait.index].agentID) {
                    letters.refuse(raw, refusal, from: mailbox)
                    continue
                }
                if plan.arrived == nil {
                    plan.arrived = (result.outcome, (raw, mailbox), result.attempt)
                }
            }
        }
    }

    /// Why `result` does not answer `attempt`, or nil when it does: the same step, the same
    /// token and the same direction (a forward result never answers a rollback).
    private static func mismatch(_ result: StepResultMessage, _ attempt: StepAttempt) -> String? {
        if result.stepID != attempt.stepID || result.attempt != attempt.token {
            return "attempt: not the current attempt of step \(result.stepID) of plan \(result.planID)"
        }
        if result.rollback != attempt.rollback {
            return "rollback: \(result.rollback) answers a \(result.rollback ? "rollback" : "forward") dispatch; the current attempt is a \(attempt.rollback ? "rollback" : "forward step")"
        }
        return nil
    }
}
