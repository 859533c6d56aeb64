import Foundation

/// A direct parser for `coordinate` requests: `JSONDecoder` builds a tree of boxed values and
/// goes through keyed containers, several times slower than reading the bytes once.
///
/// It accepts only what it is sure `WireJSON.decoder()` decodes to the same value, and
/// answers nil for anything else (any error, duplicate or escaped member names, numbers it
/// cannot convert exactly, ...). `RequestDecoding` then runs `JSONDecoder`, so errors and
/// unusual input get exactly the decoder's answer.
enum FastRequestParser {
    static func parse(_ bytes: [UInt8]) -> CoordinationRequest? {
        bytes.withUnsafeBufferPointer { buffer in
            var parser = Parser(lexer: JSONLexer(buffer))
            return try? parser.request()
        }
    }

    struct Parser {
        var lexer: JSONLexer

        /// Nesting allowed in `parameters` and `metadata` (and skipped members).
        static let maxDepth = 63
        /// Input the fast path leaves to `JSONDecoder`.
        static let notFast = JSONLexer.Malformed(message: "not for the fast path")

        mutating func request() throws(JSONLexer.Malformed) -> CoordinationRequest {
            try lexer.expect(0x7B)
            var customerID: String?
            var recommendations: [Recommendation]?
            var autoApprove: Bool?
            var executeNow: Bool?
            var seen = (customer: false, recs: false, auto: false, execute: false)
            if try lexer.peek() != 0x7D {
                repeat {
                    let k = try lexer.plainKey()
                    if lexer.matches(k, "customer_id") {
                        guard !seen.customer else { throw Self.notFast }
                        seen.customer = true
                        customerID = try lexer.string()
                    } else if lexer.matches(k, "recommendations") {
                        guard !seen.recs else { throw Self.notFast }
                        seen.recs = true
                        recommendations = try recommendationList()
                    } else if lexer.matches(k, "auto_approve") {
                        guard !seen.auto else { throw Self.notFast }
                        seen.auto = true
                        autoApprove = try lexer.null() ? nil : try lexer.bool()
                    } else if lexer.matches(k, "execute_now") {
                        guard !seen.execute else { throw Self.notFast }
                        seen.execute = true
                        executeNow = try lexer.null() ? nil : try lexer.bool()
                    } else {
                        try lexer.skipValue(maxDepth: Self.maxDepth)
                    }
                } while try lexer.more(0x7D)
            } else {
                _ = try lexer.more(0x7D)
            }
            lexer.skipSpace()
            guard lexer.atEnd, let customerID, !customerID.isEmpty, let recommendations else { throw Self.notFast }
            return CoordinationRequest(customerID: customerID, recommendations: recommendations,
                                       autoApprove: autoApprove ?? true, executeNow: executeNow ?? false)
        }

        mutating func recommendationList() throws(JSONLexer.Malformed) -> [Recommendation] {
            try lexer.expect(0x5B)
            var items: [Recommendation] = []
            if try lexer.peek() == 0x5D {
                _ = try lexer.more(0x5D)
                return items
            }
            repeat { items.append(try recommendation()) } while try lexer.more(0x5D)
            return items
        }

        mutating func optionalString() throws(JSONLexer.Malformed) -> String {
            try lexer.null() ? "" : try lexer.string()
        }

        mutating func optionalDate() throws(JSONLexer.Malformed) -> Date? {
            if try lexer.null() { return nil }
            guard let date = Timestamp.date(from: try lexer.string()) else { throw Self.notFast }
            return date
        }

        mutating func recommendation() throws(JSONLexer.Malformed) -> Recommendation {
            try lexer.expect(0x7B)
            var id: String?, agentID: String?, action: String?
            var type: RecommendationType?, risk: RiskLevel?
            var agentType = "", customerID = "", title = "", description = "", impact = ""
            var savings = 0.0, confidence = 0.0, priority = 0
            var resources: [String] = [], dependencies: [String] = []
            var parameters: [String: JSONValue] = [:], metadata: [String: JSONValue] = [:]
            var createdAt: Date?, expiresAt: Date?
            var status: RecommendationStatus?
            var seen: UInt32 = 0
            func once(_ bit: UInt32) throws(JSONLexer.Malformed) {
                guard seen & bit == 0 else { throw Self.notFast }
                seen |= bit
            }
            if try lexer.peek() == 0x7D {
                throw Self.notFast  // required members missing
            }
            repeat {
                let k = try lexer.plainKey()
                switch k.1 {
                case 2 where lexer.matches(k, "id"):
                    try once(1 << 0); id = try lexer.string()
                case 8 where lexer.matches(k, "agent_id"):
                    try once(1 << 1); agentID = try lexer.string()
                case 10 where lexer.matches(k, "agent_type"):
                    try once(1 << 2); agentType = try optionalString()
                case 11 where lexer.matches(k, "customer_id"):
                    try once(1 << 3); customerID = try optionalString()
                case 4 where lexer.matches(k, "type"):
                    try once(1 << 4)
                    guard let value = RecommendationType(rawValue: try lexer.string()) else { throw Self.notFast }
                    type = value
                case 5 where lexer.matches(k, "title"):
                    try once(1 << 5); title = try optionalString()
                case 11 where lexer.matches(k, "description"):
                    try once(1 << 6); description = try optionalString()
                case 6 where lexer.matches(k, "action"):
                    try once(1 << 7); action = try lexer.string()
                case 10 where lexer.matches(k, "risk_level"):
                    try once(1 << 8)
                    guard let value = RiskLevel(rawValue: try lexer.string()) else { throw Self.notFast }
                    risk = value
                case 17 where lexer.matches(k, "estimated_savings"):
                    try once(1 << 9); savings = try lexer.null() ? 0 : try lexer.double()
                case 16 where lexer.matches(k, "estimated_impact"):
                    try once(1 << 10); impact = try optionalString()
                case 18 where lexer.matches(k, "affected_resources"):
                    try once(1 << 11); resources = try lexer.null() ? [] : try lexer.strings()
                case 10 where lexer.matches(k, "parameters"):
                    try once(1 << 12); parameters = try lexer.null() ? [:] : try lexer.object(maxDepth: Self.maxDepth)
                case 12 where lexer.matches(k, "dependencies"):
                    try once(1 << 13); dependencies = try lexer.null() ? [] : try lexer.strings()
                case 8 where lexer.matches(k, "priority"):
                    try once(1 << 14); priority = try lexer.null() ? 0 : try lexer.int()
                case 10 where lexer.matches(k, "confidence"):
                    try once(1 << 15); confidence = try lexer.null() ? 0 : try lexer.double()
                case 10 where lexer.matches(k, "created_at"):
                    try once(1 << 16); createdAt = try optionalDate()
                case 10 where lexer.matches(k, "expires_at"):
                    try once(1 << 17); expiresAt = try optionalDate()
                case 6 where lexer.matches(k, "status"):
                    // Anything but a known status string means none (as the Codable init).
                    try once(1 << 18)
                    if try lexer.peek() == 0x22 { status = RecommendationStatus(rawValue: try lexer.string()) } else { try lexer.skipValue(maxDepth: Self.maxDepth) }
                case 8 where lexer.matches(k, "metadata"):
                    try once(1 << 19); metadata = try lexer.null() ? [:] : try lexer.object(maxDepth: Self.maxDepth)
                default:
                    try lexer.skipValue(maxDepth: Self.maxDepth)
                }
            } while try lexer.more(0x7D)
            guard let id, !id.isEmpty, let agentID, !agentID.isEmpty, let action, !action.isEmpty,
                  let type, let risk, (0...1).contains(confidence) else { throw Self.notFast }
            return Recommendation(id: id, agentID: agentID, agentType: agentType, customerID: customerID, type: type,
                                  title: title, description: description, action: action, riskLevel: risk,
                                  estimatedSavings: savings, estimatedImpact: impact, affectedResources: resources,
                                  parameters: parameters, dependencies: dependencies, priority: priority,
                                  confidence: confidence, createdAt: createdAt, expiresAt: expiresAt, status: status,
                                  metadata: metadata)
        }
    }
}

/// The daemon's stored form of an active recommendation, read directly (a request of a
/// customer with history reads many of them): `{"recommendation": {...}, "execute_now": b,
/// "request_id": s, "approval_id": s?, "plan_id": s?}`. Nil for anything else, which the
/// caller then reads with `JSONDecoder`.
public enum FastRecordParser {
    public struct Record: Sendable {
        public var recommendation: Recommendation
        public var executeNow: Bool
        public var requestID: String
        public var approvalID: String?
        public var planID: String?
    }

    public static func parse(_ bytes: [UInt8]) -> Record? {
        bytes.withUnsafeBufferPointer { buffer in
            var parser = FastRequestParser.Parser(lexer: JSONLexer(buffer))
            return try? parser.record()
        }
    }
}

extension FastRequestParser.Parser {
    mutating func record() throws(JSONLexer.Malformed) -> FastRecordParser.Record {
        try lexer.expect(0x7B)
        var recommendation: Recommendation?, executeNow: Bool?, requestID: String?
        var approvalID: String?, planID: String?
        repeat {
            let k = try lexer.plainKey()
            if lexer.matches(k, "recommendation"), recommendation == nil {
                recommendation = try self.recommendation()
            } else if lexer.matches(k, "execute_now"), executeNow == nil {
                executeNow = try lexer.bool()
            } else if lexer.matches(k, "request_id"), requestID == nil {
                requestID = try lexer.string()
            } else if lexer.matches(k, "approval_id"), approvalID == nil {
                approvalID = try lexer.null() ? nil : try lexer.string()
            } else if lexer.matches(k, "plan_id"), planID == nil {
                planID = try lexer.null() ? nil : try lexer.string()
            } else {
                throw Self.notFast
            }
        } while try lexer.more(0x7D)
        lexer.skipSpace()
        guard lexer.atEnd, let recommendation, let executeNow, let requestID else { throw Self.notFast }
        return FastRecordParser.Record(recommendation: recommendation, executeNow: executeNow, requestID: requestID,
                                       approvalID: approvalID, planID: planID)
    }
}
