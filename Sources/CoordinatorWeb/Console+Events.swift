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
/// `Limits.backfill` entries), then the shared feed's batches (`EventTail`, or on a cluster
/// `PartitionedTail`).
extension Console {
    static let lastEventID = HTTPField.Name("Last-Event-ID")!

    func eventStream(_ request: Request) async throws -> Response {
        let filter = try Self.eventFilter(request)
        let resumeText = request.headers[Self.lastEventID] ?? Self.query(request, "after")
        let resume: TailPosition? = try resumeText.map { text in
            guard let position = self.tail.position(text) else {
                throw HTTPError(.badRequest, message: "Last-Event-ID: not a stream id (ms-seq, or ms-seq.partition on a cluster)")
            }
            return position
        }
        // Subscribed before the backfill is read, so nothing falls between the two; what both
        // carry is sent once (positions only go up).
        let subscription: TailSubscription
        let backfill: (entries: [TailEntry], gap: Bool)
        do {
            subscription = try await tail.subscribe()
        } catch {
            throw HTTPError(.serviceUnavailable, message: "Redis unavailable: \(error)")
        }
        do {
            backfill = try await tail.backfill(after: resume, upTo: subscription.watermark, filter: filter)
        } catch {
            tail.cancel(subscription.id)
            throw HTTPError(.serviceUnavailable, message: "Redis unavailable: \(error)")
        }
        let tail = self.tail
        let body = ResponseBody { writer in
            defer { tail.cancel(subscription.id) }
            // Live batches carry what is after the feed's watermark (a cluster's) or after the
            // last entry sent.
            var last = resume ?? TailPosition(ms: 0, seq: 0, partition: -1)
            var buffer = ByteBuffer(string: "retry: 1000\n\n")
            if backfill.gap {
                buffer.writeString("event: gap\ndata: {\"message\":\"more events were missed than are replayed; some are not shown\"}\n\n")
            }
            for entry in backfill.entries {
                if filter.matches(entry.event.event) { Self.write(entry, to: &buffer) }
                last = max(last, entry.position)
            }
            if let watermark = subscription.watermark { last = max(last, watermark) }
            try await writer.write(buffer)
            // The console stopping (SIGTERM) ends the tail, so that the server need not wait for it.
            try await withGracefulShutdownHandler {
                try await Self.follow(subscription.batches, filter: filter, after: last, writer: &writer)
            } onGracefulShutdown: {
                tail.cancel(subscription.id)
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"], body: body)
    }

    /// Writes each batch's new, matching entries as they come; a comment every few idle seconds
    /// notices a client that went away.
    static func follow(_ batches: AsyncStream<EventTail.Batch>, filter: EventFilter, after: TailPosition,
                       writer: inout any ResponseBodyWriter) async throws {
        var last = after
        var idle = 0
        for await batch in batches {
            var out = ByteBuffer()
            for entry in batch where entry.position > last {
                last = entry.position
                if filter.matches(entry.event.event) { Self.write(entry, to: &out) }
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
    static func write(_ entry: TailEntry, to buffer: inout ByteBuffer) {
        var event = Self.shown(entry.event.event) as? [String: Any] ?? [:]
        event["stream_id"] = entry.event.id
        if let partition = entry.partition { event["partition"] = partition }
        guard let data = try? JSONSerialization.data(withJSONObject: event, options: [.sortedKeys]) else { return }
        buffer.writeString("id: \(entry.sseID)\ndata: ")
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
