import Coordination
import Foundation

/// Puts events into a commit: published on the channel for live subscribers and appended to
/// the capped stream for replay (PROTOCOL.md section 4). Being part of the commit, an event
/// exists exactly when the change it reports does.
struct EventEmitter: Sendable {
    let keys: Keys
    let streamMaxLength: Int

    func emit(_ events: [DomainEvent], at now: Date, into commit: inout Commit) {
        var ids = UUIDGenerator()
        for event in events {
            let json = WireMessages.event(event, id: ids.next(), at: now)
            commit.event(json, type: event.type.rawValue, channel: keys.events, stream: keys.eventStream,
                         maxLength: streamMaxLength)
        }
    }
}
