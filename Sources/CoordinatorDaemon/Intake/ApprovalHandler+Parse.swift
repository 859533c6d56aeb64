import Coordination
import Foundation

extension ApprovalHandler {
    /// A queued decision: its signature checked first (section 10: before anything is read for
    /// it), then its form, its reply_to, and what its signer may decide.
    func parse(_ signed: [UInt8]) -> Item {
        let admitted = context.trust.admit(signed)
        var item = parse(raw: signed, message: admitted.message)
        item.principal = admitted.principal
        item.issuedAt = admitted.issuedAt
        item.signatureDigest = admitted.signatureDigest
        if let refusal = admitted.refusal {
            // PROTOCOL.md section 10: nobody vouched for this message, its reply_to included: no
            // reply, a dead letter.
            item.failure = refusal
            item.message = nil
            item.replyTo = nil
        } else if item.failure == nil,
                  let refusal = context.trust.refusal(replyTo: item.replyTo, by: admitted.principal, replyPrefix: context.configuration.replyPrefix) {
            // Outside the signer's reply namespace: refused into coord:dead, not answered there.
            item.failure = refusal
            item.message = nil
            item.replyTo = nil
        } else if let refusal = context.trust.refusal(decision: item.message, in: admitted.message, by: admitted.principal) {
            item.failure = refusal
            item.message = nil
        }
        return item
    }

    /// `raw` as taken from the queue (acknowledged and dead-lettered as is); `message` the
    /// decision in it (the JWS payload under `--trust`).
    private func parse(raw queued: [UInt8], message raw: [UInt8]) -> Item {
        var item = Item(raw: queued, requestID: RequestIDs.next())
        if raw.count > context.configuration.maxMessageBytes {
            item.failure = Refusal(.tooLarge, "message is \(raw.count) bytes, over --max-message-bytes (\(context.configuration.maxMessageBytes))")
        } else if String(validating: raw, as: UTF8.self) == nil {
            item.failure = Refusal(.invalidJSON, "message is not valid UTF-8")
        } else if raw.first(where: { !$0.isWhitespace }) == UInt8(ascii: "{") {
            parseJSON(raw, into: &item)
        } else {
            accept(try ApprovalDecisionMessage.parse(raw), into: &item)
        }
        // Section 2.1: a reply_to that breaks the rules gets no reply; refused into coord:dead.
        if let replyTo = item.replyTo, let problem = context.replyRules.problem(replyTo) {
            item.replyTo = nil
            item.message = nil
            item.failure = Refusal(.invalidRequest, "reply_to: \(problem)")
        }
        return item
    }

    /// The JSON form, lexed once (`JSONLexer`, strict as `JSONSerialization` was): even a
    /// decision that breaks the rules says where to answer and what request_id to echo.
    private func parseJSON(_ raw: [UInt8], into item: inout Item) {
        switch TopLevelJSON.members(raw, strict: true) {
        case .failure:
            item.failure = Refusal(.invalidJSON, "decision starts like JSON but is not a valid JSON object")
        case .success(let members):
            if case .string(let replyTo) = members["reply_to"], !replyTo.isEmpty { item.replyTo = replyTo }
            if case .string(let id) = members["request_id"], !id.isEmpty, id.utf8.count <= Envelope.echoedRequestIDMax {
                item.requestID = id
            }
            accept(try ApprovalDecisionMessage.parse(json: members), into: &item)
        }
    }

    /// The parsed decision, or why it is refused.
    private func accept(_ parsed: @autoclosure () throws(ValidationError) -> ApprovalDecisionMessage, into item: inout Item) {
        do {
            let message = try parsed()
            item.message = message
            item.replyTo = message.replyTo
            if let id = message.requestID { item.requestID = id }
        } catch {
            item.failure = Refusal(error.tooLarge ? .tooLarge : .invalidRequest, error.description)
        }
    }
}

private extension UInt8 {
    var isWhitespace: Bool { self == 0x20 || self == 0x0A || self == 0x0D || self == 0x09 }
}
