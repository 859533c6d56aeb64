import Coordination
import Foundation

/// The fields every request shares (PROTOCOL.md section 2.1), plus the few that the
/// non-`coordinate` kinds carry. The `coordinate` body is decoded by `RequestDecoding`.
/// Ids for requests that came without one. Foundation's `UUID()` opens /dev/urandom on every
/// call on Linux, which showed up as a tenth of a small request's cost.
enum RequestIDs {
    static func next() -> String {
        var ids = UUIDGenerator()
        return ids.next()
    }
}

enum Envelope {
    enum Kind: String, CaseIterable {
        case coordinate
        case executePlan = "execute_plan"
        case getPlan = "get_plan"
        case getApproval = "get_approval"
        case listApprovals = "list_approvals"
    }

    /// What can be read of a message, as far as it can be read: a reply goes wherever
    /// `reply_to` could be found, even when the rest is malformed.
    struct Parsed {
        var kind: Kind?
        var kindName: String
        var requestID: String
        var requestIDGiven: Bool
        var replyTo: String?
        var planID = ""
        var approvalID = ""
        var customerID = ""
        var failure: Failure?
    }

    static func parse(_ raw: [UInt8], maxBytes: Int) -> Parsed {
        var parsed = Parsed(kind: nil, kindName: "coordinate", requestID: RequestIDs.next(),
                            requestIDGiven: false, replyTo: nil, failure: nil)
        guard String(validating: raw, as: UTF8.self) != nil else {
            parsed.failure = Failure(.invalidJSON, "message is not valid UTF-8")
            return parsed
        }
        let object: [String: TopLevelJSON.Value]
        switch TopLevelJSON.members(raw) {
        case .success(let members): object = members
        case .failure(let malformed):
            parsed.failure = Failure(.invalidJSON, "message is not valid JSON: \(malformed.message)")
            return parsed
        }
        // Read what routes the answer first, so even a bad message is answered.
        if case .string(let replyTo) = object["reply_to"], !replyTo.isEmpty { parsed.replyTo = replyTo }
        if case .string(let id) = object["request_id"], !id.isEmpty, id.count <= 200 {
            parsed.requestID = id
            parsed.requestIDGiven = true
        }
        if case .string(let kind) = object["kind"] { parsed.kindName = kind }

        if raw.count > maxBytes {
            parsed.failure = Failure(.tooLarge, "message is \(raw.count) bytes, over --max-message-bytes (\(maxBytes))")
            return parsed
        }
        if let failure = fieldFailure(object) {
            parsed.failure = failure
            return parsed
        }
        parsed.kind = Kind(rawValue: parsed.kindName)
        parsed.planID = object["plan_id"]?.string ?? ""
        parsed.approvalID = object["approval_id"]?.string ?? ""
        parsed.customerID = object["customer_id"]?.string ?? ""
        return parsed
    }

    private static func fieldFailure(_ object: [String: TopLevelJSON.Value]) -> Failure? {
        if let kind = object["kind"] {
            guard let name = kind.string else { return Failure(.invalidRequest, "kind: must be a string") }
            guard Kind(rawValue: name) != nil else {
                let known = Kind.allCases.map(\.rawValue).joined(separator: ", ")
                return Failure(.invalidRequest, "kind: unknown value \"\(name)\" (expected one of \(known))")
            }
        }
        if let id = object["request_id"], id != .null {
            guard let text = id.string else { return Failure(.invalidRequest, "request_id: must be a string") }
            if text.isEmpty { return Failure(.invalidRequest, "request_id: must not be empty") }
            if text.count > 200 { return Failure(.invalidRequest, "request_id: at most 200 characters, got \(text.count)") }
        }
        if let replyTo = object["reply_to"], replyTo != .null {
            guard let text = replyTo.string, !text.isEmpty else {
                return Failure(.invalidRequest, "reply_to: must be a non-empty string")
            }
        }
        let kind = object["kind"]?.string.flatMap(Kind.init(rawValue:)) ?? .coordinate
        let required: String? = switch kind {
        case .coordinate: nil
        case .executePlan, .getPlan: "plan_id"
        case .getApproval: "approval_id"
        case .listApprovals: "customer_id"
        }
        if let field = required {
            guard let value = object[field]?.string, !value.isEmpty else {
                return Failure(.invalidRequest, "\(field): required (a non-empty string) for kind \"\(kind.rawValue)\"")
            }
        }
        return nil
    }
}

extension TopLevelJSON.Value {
    var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }
}
