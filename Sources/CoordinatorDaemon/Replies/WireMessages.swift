import Coordination
import Crypto
import Foundation

/// The error codes of PROTOCOL.md sections 2.4 and 6 (the last two only in dead letters).
public enum ErrorCode: String, Sendable, Codable {
    case invalidJSON = "invalid_json"
    case invalidRequest = "invalid_request"
    case tooLarge = "too_large"
    case notFound = "not_found"
    case conflictState = "conflict_state"
    case alreadyProcessed = "already_processed"
    case expired
    case forbidden
    case `internal`
    /// Delivered `--max-deliveries` times without being finished (section 6).
    case poison
    /// The reply could not be written to its `reply_to` (section 2.4).
    case replyUndeliverable = "reply_undeliverable"
}

/// Why a message could not be done, as the reply and the dead letter say it.
struct Refusal: Error, Sendable {
    var code: ErrorCode
    var message: String
    /// A refusal that is dead-lettered whatever its code (section 10's `forbidden` under `--trust`).
    var alwaysDeadLetter = false

    /// `message` is kept within 1 KiB (section 2.5): values it quotes should already be cut by
    /// `WireLimits.quoted`; this catches any text that was not.
    init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = WireLimits.boundedMessage(message)
    }

    /// Only messages that cannot be processed as sent are dead letters; a well-formed request
    /// refused by the rules (unknown id, already processed, …) is answered and done.
    var isDeadLetter: Bool {
        if alwaysDeadLetter { return true }
        switch code {
        case .invalidJSON, .invalidRequest, .tooLarge, .internal: return true
        default: return false
        }
    }
}

/// Builds the JSON the daemon writes: replies, dead letters and events.
enum WireMessages {
    static func okReply(requestID: String, kind: String, result: [UInt8]) -> [UInt8] {
        var w = JSONWriter(capacity: result.count + 96)
        w.beginObject()
        w.key("request_id"); w.string(requestID)
        w.key("kind"); w.string(kind)
        w.key("ok"); w.bool(true)
        w.key("result"); w.raw(result)
        w.endObject()
        return w.bytes
    }

    static func errorReply(requestID: String, kind: String, failure: Refusal) -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        w.key("request_id"); w.string(requestID)
        w.key("kind"); w.string(kind)
        w.key("ok"); w.bool(false)
        w.key("error")
        w.beginObject()
        w.key("code"); w.string(failure.code.rawValue)
        w.key("message"); w.string(failure.message)
        w.endObject()
        w.endObject()
        return w.bytes
    }

    /// `{"queue","raw"|"raw_base64","error":{"code","message"},"at"}` with the message intact
    /// (section 6). A message over `rawMax` bytes keeps its first `rawMax` bytes, with
    /// `"truncated": true`, `raw_bytes` (its full length) and `raw_sha256` (hex), so that one
    /// message can never make a dead letter Redis refuses or that fills its memory.
    /// Every dead letter the daemon writes from Swift is built here (`attempts` for `poison`).
    /// `wholeBytes`: `raw` is only the first bytes of a message this long, never read whole
    /// (it then has no `raw_sha256`).
    static func deadLetter(queue: String, raw: [UInt8], failure: Refusal, at: Date, rawMax: Int,
                           attempts: Int? = nil, wholeBytes: Int? = nil) -> [UInt8] {
        let truncated = raw.count > rawMax || (wholeBytes ?? 0) > raw.count
        let kept = truncated ? Array(raw.prefix(rawMax)) : raw
        var w = JSONWriter(capacity: min(kept.count, rawMax) * 2 + 256)
        w.beginObject()
        w.key("queue"); w.string(queue)
        switch DeadLetterRaw.form(of: kept, truncated: truncated, rawMax: rawMax) {
        case .text(let text): w.key("raw"); w.string(text)
        case .base64(let bytes): w.key("raw_base64"); w.string(Data(bytes).base64EncodedString())
        }
        if truncated {
            w.key("truncated"); w.bool(true)
            w.key("raw_bytes"); w.int(wholeBytes ?? raw.count)
            if wholeBytes == nil {
                w.key("raw_sha256"); w.string(SHA256.hash(data: raw).map { String(format: "%02x", $0) }.joined())
            }
        }
        w.key("error")
        w.beginObject()
        w.key("code"); w.string(failure.code.rawValue)
        w.key("message"); w.string(failure.message)
        w.endObject()
        if let attempts { w.key("attempts"); w.int(attempts) }
        w.key("at"); w.string(Timestamp.string(from: at))
        w.endObject()
        return w.bytes
    }

    static func event(_ event: DomainEvent, id: String, at: Date) -> [UInt8] {
        var w = JSONWriter(capacity: 256)
        w.beginObject()
        w.key("event_id"); w.string(id)
        w.key("type"); w.string(event.type.rawValue)
        w.key("at"); w.string(Timestamp.string(from: at))
        w.key("customer_id"); w.string(event.customerID)
        w.key("recommendation_id"); w.optionalString(event.recommendationID)
        w.key("plan_id"); w.optionalString(event.planID)
        w.key("approval_id"); w.optionalString(event.approvalID)
        w.key("step_index")
        if let index = event.stepIndex { w.int(index) } else { w.null() }
        w.key("data"); w.value(.object(event.data))
        w.endObject()
        return w.bytes
    }
}
