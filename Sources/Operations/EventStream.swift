import CoordinatorDaemon
import Foundation
import RedisClient

/// The event stream (`<prefix>:events:stream`, PROTOCOL.md section 4) as `coordinatord events`
/// and the console read it.
public struct StreamEvent: @unchecked Sendable {
    /// The stream id (`1764583200123-0`).
    public var id: String
    /// The event's JSON, as stored.
    public var json: [UInt8]
    public var event: [String: Any]

    public init(id: String, json: [UInt8], event: [String: Any]) {
        self.id = id
        self.json = json
        self.event = event
    }

    /// Entries of an XRANGE / XREVRANGE reply, or of one stream in an XREAD reply.
    public static func entries(_ reply: RedisReply) -> [StreamEvent] {
        (reply.array ?? []).compactMap { item in
            guard let parts = item.array, parts.count == 2, let id = parts[0].string else { return nil }
            let fields = parts[1].array ?? []
            var index = 0
            while index + 1 < fields.count {
                if fields[index].string == "event", let bytes = fields[index + 1].bytes, let event = jsonObject(bytes) {
                    return StreamEvent(id: id, json: bytes, event: event)
                }
                index += 2
            }
            return StreamEvent(id: id, json: Array("{}".utf8), event: [:])
        }
    }

    /// Whether `text` is a stream id (`ms` or `ms-seq`).
    public static func isStreamID(_ text: String) -> Bool {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        return (1...2).contains(parts.count) && parts.allSatisfy { !$0.isEmpty && $0.count <= 20 && $0.allSatisfy(\.isNumber) }
    }
}

/// Which events a person asked for: a customer, a type or a family of types (`plan.`).
public struct EventFilter: Sendable {
    public var customer: String?
    public var type: String?

    public init(customer: String?, type: String?) {
        self.customer = customer
        self.type = type
    }

    public func matches(_ event: [String: Any]) -> Bool {
        if let customer, event.string("customer_id") != customer { return false }
        if let type {
            let actual = event.string("type") ?? ""
            if type.hasSuffix(".") ? !actual.hasPrefix(type) : actual != type { return false }
        }
        return true
    }
}
