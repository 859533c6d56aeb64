import CoordinatorDaemon
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Operations
import RedisClient
import ServiceLifecycle

/// The live tail: Server-Sent Events. A client that reconnects (the browser does by itself,
/// sending `Last-Event-ID`) first gets what it missed, read with `XRANGE` (at most
/// `Limits.backfill` entries), then the shared `EventTail`'s batches.
extension Console {
    static let lastEventID = HTTPField.Name("Last-Event-ID")!

    func eventStream(_ request: Request) async throws -> Response {
        let filter = try Self.eventFilter(request)
        let resume = request.headers[Self.lastEventID] ?? Self.query(request, "after")
        if let resume, !StreamEvent.isStreamID(resume) { throw HTTPError(.badRequest, message: "Last-Event-ID: not a stream id") }
        // Subscribed before the backfill is read, so nothing falls between the two; what both
        // carry is sent once (ids only go up).
        let (subscription, batches) = tail.subscribe()
        let stream = keys.eventStream
        let backfill: (entries: [StreamEvent], gap: Bool)
        do {
            backfill = try await bridge.read { connection in
                if let resume {
                    let reply = try connection.send("XRANGE", stream, "(" + resume, "+", "COUNT", Limits.backfill)
                    let entries = StreamEvent.entries(reply)
                    return (entries, entries.count == Limits.backfill)
                }
                // A new tail shows the latest matching events among the last few hundred.
                let entries = StreamEvent.entries(try connection.send("XREVRANGE", stream, "+", "-", "COUNT", Limits.recentEvents))
                return (Array(entries.filter { filter.matches($0.event) }.prefix(50).reversed()), false)
            }
        } catch {
            tail.cancel(subscription)
            throw HTTPError(.serviceUnavailable, message: "Redis unavailable: \(error)")
        }
        let tail = self.tail
        let body = ResponseBody { writer in
            defer { tail.cancel(subscription) }
            var last = resume ?? "0-0"
            var buffer = ByteBuffer(string: "retry: 1000\n\n")
            if backfill.gap {
                buffer.writeString("event: gap\ndata: {\"message\":\"more events were missed than are replayed; some are not shown\"}\n\n")
            }
            for entry in backfill.entries {
                if filter.matches(entry.event) { Self.write(entry, to: &buffer) }
                last = entry.id
            }
            try await writer.write(buffer)
            // The console stopping (SIGTERM) ends the tail, so that the server need not wait for it.
            try await withGracefulShutdownHandler {
                try await Self.follow(batches, filter: filter, after: last, writer: &writer)
            } onGracefulShutdown: {
                tail.cancel(subscription)
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"], body: body)
    }

    /// Writes each batch's new, matching entries as they come; a comment every few idle seconds
    /// notices a client that went away.
    static func follow(_ batches: AsyncStream<EventTail.Batch>, filter: EventFilter, after: String,
                       writer: inout any ResponseBodyWriter) async throws {
        var last = after
        var idle = 0
        for await batch in batches {
            var out = ByteBuffer()
            for entry in batch where StreamID.isAfter(entry.id, last) {
                last = entry.id
                if filter.matches(entry.event) { Self.write(entry, to: &out) }
            }
            if out.readableBytes == 0 {
                // A comment now and then: proxies keep the connection, and a closed one is noticed.
                idle += 1
                guard idle >= 5 else { continue }
                out.writeString(": keep-alive\n\n")
            }
            idle = 0
            try await writer.write(out)
        }
    }

    /// One SSE message: `id` the stream id, `data` the event as JSON with every string made
    /// safe to show (`DisplayText`); the page puts it in the DOM as text only.
    static func write(_ entry: StreamEvent, to buffer: inout ByteBuffer) {
        var event = Self.shown(entry.event) as? [String: Any] ?? [:]
        event["stream_id"] = entry.id
        guard let data = try? JSONSerialization.data(withJSONObject: event, options: [.sortedKeys]) else { return }
        buffer.writeString("id: \(entry.id)\ndata: ")
        buffer.writeBytes(data)
        buffer.writeString("\n\n")
    }

    static func shown(_ value: Any) -> Any {
        switch value {
        case let text as String: return DisplayText.escaped(text)
        case let object as [String: Any]: return object.mapValues(shown)
        case let array as [Any]: return array.map(shown)
        default: return value
        }
    }
}
