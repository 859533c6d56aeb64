import Coordination
import Foundation

/// Puts events into a commit: published on the channel for live subscribers and appended to
/// the capped stream for replay (PROTOCOL.md section 4). Being part of the commit, an event
/// exists exactly when the change it reports does.
struct EventEmitter: Sendable {
    let keys: Keys
    let streamMaxLength: Int

    func emit(_ events: [DomainEvent], at now: Date, into commit: inout Commit) {
        for event in encode(events, at: now) {
            commit.event(event.json, type: event.type, channel: keys.events, stream: keys.eventStream,
                         maxLength: streamMaxLength)
        }
    }

    /// Each event as published, with its type (the stream entry's first field).
    func encode(_ events: [DomainEvent], at now: Date) -> [(type: String, json: [UInt8])] {
        var ids = UUIDGenerator()
        return events.map { ($0.type.rawValue, WireMessages.event($0, id: ids.next(), at: now)) }
    }
}
