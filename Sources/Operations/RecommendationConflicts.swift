import CoordinatorDaemon
import Foundation
import RedisClient

/// The conflicts one recommendation was part of, as the event stream tells them (PROTOCOL.md
/// sections 2 and 4): every `conflict.resolved` of its customer that names it, with how it was
/// resolved and what became of the other recommendations (`recommendation.discarded` with that
/// `conflict_id`, or with `active_id` naming it: a later request that conflicted with it while
/// it was active). That covers the coordination that admitted it and every later one.
///
/// The stream is read from shortly before `since` (the approval's `requested_at`, when the
/// coordination that admitted it committed its events) forwards, at most `limit` entries: a
/// bounded read, whatever the stream holds. `searched` and `complete` say how far it got.
public struct RecommendationConflicts: @unchecked Sendable {
    public struct Entry: @unchecked Sendable {
        public var streamID: String
        public var at: Date?
        public var conflictID: String
        public var type: String
        /// The other recommendations of the conflict (a cycle can have several).
        public var others: [String]
        public var resolution: String
        /// Other recommendation id -> why it was discarded (`conflict`, `conflicts_with_active`, …).
        public var discarded: [String: String]
    }

    public var entries: [Entry]
    /// Entries of the stream read.
    public var searched: Int
    /// Whether the read reached the end of the stream (else later events were not searched).
    public var complete: Bool
    /// The first and last stream ids read.
    public var from: String?
    public var to: String?

    /// The events of `customer` that concern recommendation `id` from `since` (less `margin`
    /// seconds) onwards, at most `limit` stream entries read from `stream`.
    public static func read(_ redis: any StateRedis, stream: String, customer: String, recommendation id: String,
                            since: Date, margin: Double = 2, limit: Int) throws -> RecommendationConflicts {
        let start = max(0, Int64((since.timeIntervalSince1970 - margin) * 1000))
        let events = StreamEvent.entries(try redis.call(RedisCommand("XRANGE", stream, "\(start)", "+", "COUNT", limit)))
        var entries: [Entry] = []
        var index: [String: Int] = [:]
        // Discards seen before their conflict's event (the engine writes conflicts first, but
        // a reader should not depend on it): conflict id -> [(recommendation, reason)].
        var discards: [String: [(String, String)]] = [:]
        for event in events {
            let body = event.event
            guard body.string("customer_id") == customer else { continue }
            let data = body["data"] as? [String: Any] ?? [:]
            switch body.string("type") {
            case "conflict.resolved":
                let ids = (data["recommendation_ids"] as? [Any] ?? []).compactMap { $0 as? String }
                guard ids.contains(id), let conflictID = data.string("conflict_id"), index[conflictID] == nil else { continue }
                index[conflictID] = entries.count
                var entry = Entry(streamID: event.id, at: body.date("at"), conflictID: conflictID, type: data.string("type") ?? "?",
                                  others: ids.filter { $0 != id }, resolution: data.string("resolution") ?? "", discarded: [:])
                for (other, reason) in discards.removeValue(forKey: conflictID) ?? [] { entry.discarded[other] = reason }
                entries.append(entry)
            case "recommendation.discarded":
                guard let discarded = body.string("recommendation_id") else { continue }
                let reason = data.string("reason") ?? "discarded"
                if let conflictID = data.string("conflict_id") {
                    if let at = index[conflictID] {
                        entries[at].discarded[discarded] = reason
                    } else {
                        discards[conflictID, default: []].append((discarded, reason))
                    }
                } else if data.string("active_id") == id, discarded == id {
                    // A later request reused its id while it was active: no pair conflict is
                    // listed for that, only the discard.
                    entries.append(Entry(streamID: event.id, at: body.date("at"), conflictID: "", type: "same id", others: [id],
                                         resolution: "A later recommendation with the same id was discarded", discarded: [id: reason]))
                }
            default:
                continue
            }
        }
        return RecommendationConflicts(entries: entries, searched: events.count, complete: events.count < limit,
                                       from: events.first?.id, to: events.last?.id)
    }
}
