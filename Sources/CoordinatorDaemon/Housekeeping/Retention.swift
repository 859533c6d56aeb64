/// Retention (PROTOCOL.md section 9): every key the daemon writes is bounded by a TTL, a cap or
/// the life of something live. Retention itself is no sweep here: it is a TTL (`EX`/`EXPIRE`
/// `--retention`) that `Store.retire` and `Store.storePlan` set in the same commit that ends a
/// plan, an approval or a recommendation, so nothing has to remember to delete them later.
///
/// | what | bound | set by |
/// |---|---|---|
/// | a plan, approval or recommendation record in a final state | `--retention` (7 d) from that moment | `Store.retire` (record, approval, plan), `Store.storePlan` (a plan written final) |
/// | a plan approved but never started | cancelled after `--plan-hold` (7 d) | `PlanHold` |
/// | an idempotency record | `--dedupe-ttl` | the request's commit |
/// | a reply list | `--reply-ttl`, newest `--reply-max` replies | `DaemonContext.reply` |
/// | the event stream | `--event-stream-maxlen` entries | `EventEmitter` |
/// | dead letters | `--dead-letter-max` entries | `DaemonContext.deadLetter` |
/// | a worker's heartbeat | `--heartbeat-ttl` | `Maintenance` |
enum Retention {
    /// `--retention` when not set: how long a final plan, approval or record stays readable.
    static let defaultSeconds = 7 * 86_400
    /// `--plan-hold` when not set: how long an approved plan may wait to start.
    static let defaultPlanHoldSeconds = 7 * 86_400
}
