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
            guard let base = buffer.baseAddress, !buffer.isEmpty else { return nil }
            var parser = Parser(base: base, end: buffer.count)
            return try? parser.request()
        }
    }

    struct Bail: Error {}

    struct Parser {
        let base: UnsafePointer<UInt8>
        let end: Int
        var at = 0
        var depth = 0
        var scratch: [UInt8] = []

        init(base: UnsafePointer<UInt8>, end: Int) {
            self.base = base
            self.end = end
        }

        // MARK: Lexing

        @inline(__always) mutating func skipSpace() {
            while at < end {
                let c = base[at]
                guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { return }
                at += 1
            }
        }

        @inline(__always) mutating func peek() throws(Bail) -> UInt8 {
            skipSpace()
            guard at < end else { throw Bail() }
            return base[at]
        }

        @inline(__always) mutating func expect(_ c: UInt8) throws(Bail) {
            guard try peek() == c else { throw Bail() }
            at += 1
        }

        /// After a value in an object or array: true for `,`, false for the closing bracket.
        @inline(__always) mutating func more(_ close: UInt8) throws(Bail) -> Bool {
            let c = try peek()
            at += 1
            if c == 0x2C { return true }
            if c == close { return false }
            throw Bail()
        }

        mutating func literal(_ text: StaticString) throws(Bail) {
            let count = text.utf8CodeUnitCount
            guard at + count <= end, memcmp(base + at, text.utf8Start, count) == 0 else { throw Bail() }
            at += count
        }

        /// `null` (consumed) or not.
        @inline(__always) mutating func null() throws(Bail) -> Bool {
            guard try peek() == 0x6E else { return false }
            try literal("null")
            return true
        }

        /// A member name in plain ASCII without escapes, as a range of the input.
        mutating func key() throws(Bail) -> (Int, Int) {
            try expect(0x22)
            let start = at
            while at < end {
                let c = base[at]
                if c == 0x22 {
                    let range = (start, at - start)
                    at += 1
                    try expect(0x3A)
                    return range
                }
                guard c >= 0x20, c != 0x5C, c < 0x80 else { throw Bail() }
                at += 1
            }
            throw Bail()
        }

        @inline(__always) func isKey(_ key: (Int, Int), _ name: StaticString) -> Bool {
            key.1 == name.utf8CodeUnitCount && memcmp(base + key.0, name.utf8Start, key.1) == 0
        }

        mutating func string() throws(Bail) -> String {
            try expect(0x22)
            let start = at
            var ascii = true
            while at < end {
                let c = base[at]
                if c == 0x22 {
                    let slice = UnsafeBufferPointer(start: base + start, count: at - start)
                    at += 1
                    if ascii { return String(decoding: slice, as: UTF8.self) }
                    guard let text = String(validating: slice, as: UTF8.self) else { throw Bail() }
                    return text
                }
                if c == 0x5C { return try escapedString(from: start) }
                guard c >= 0x20 else { throw Bail() }
                if c >= 0x80 { ascii = false }
                at += 1
            }
            throw Bail()
        }

        mutating func escapedString(from start: Int) throws(Bail) -> String {
            scratch.removeAll(keepingCapacity: true)
            scratch.append(contentsOf: UnsafeBufferPointer(start: base + start, count: at - start))
            while at < end {
                let c = base[at]
                at += 1
                if c == 0x22 {
                    guard let text = String(validating: scratch, as: UTF8.self) else { throw Bail() }
                    return text
                }
                guard c >= 0x20 else { throw Bail() }
                guard c == 0x5C else {
                    scratch.append(c)
                    continue
                }
                guard at < end else { throw Bail() }
                let e = base[at]
                at += 1
                switch e {
                case 0x22, 0x5C, 0x2F: scratch.append(e)
                case 0x62: scratch.append(0x08)
                case 0x66: scratch.append(0x0C)
                case 0x6E: scratch.append(0x0A)
                case 0x72: scratch.append(0x0D)
                case 0x74: scratch.append(0x09)
                case 0x75:
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        try literal("\\u")
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw Bail() }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw Bail() }
                    scratch.append(contentsOf: UTF8.encode(unicode)!)
                default: throw Bail()
                }
            }
            throw Bail()
        }

        mutating func hex4() throws(Bail) -> UInt32 {
            guard at + 4 <= end else { throw Bail() }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let c = base[at]
                let digit: UInt8
                switch c {
                case 0x30...0x39: digit = c - 0x30
                case 0x41...0x46: digit = c - 0x37
                case 0x61...0x66: digit = c - 0x57
                default: throw Bail()
                }
                value = value << 4 | UInt32(digit)
                at += 1
            }
            return value
        }

        /// A number token: its range, and whether it is a plain integer.
        mutating func numberToken() throws(Bail) -> (start: Int, count: Int, integer: Bool) {
            skipSpace()
            let start = at
            var integer = true
            if at < end && base[at] == 0x2D { at += 1 }
            guard at < end else { throw Bail() }
            if base[at] == 0x30 {
                at += 1
            } else {
                guard base[at] >= 0x31 && base[at] <= 0x39 else { throw Bail() }
                while at < end && base[at] >= 0x30 && base[at] <= 0x39 { at += 1 }
            }
            if at < end && base[at] == 0x2E {
                integer = false
                at += 1
                let digits = at
                while at < end && base[at] >= 0x30 && base[at] <= 0x39 { at += 1 }
                guard at > digits else { throw Bail() }
            }
            if at < end && (base[at] == 0x65 || base[at] == 0x45) {
                integer = false
                at += 1
                if at < end && (base[at] == 0x2B || base[at] == 0x2D) { at += 1 }
                let digits = at
                while at < end && base[at] >= 0x30 && base[at] <= 0x39 { at += 1 }
                guard at > digits else { throw Bail() }
            }
            return (start, at - start, integer)
        }

        static let powers: [Double] = (0...22).map { pow(10, Double($0)) }

        /// A number as `Double`: exact when mantissa and power of ten are exact doubles (one
        /// correctly rounded division), else the standard library's correctly rounded parser.
        mutating func double() throws(Bail) -> Double {
            let token = try numberToken()
            var i = token.start
            let negative = base[i] == 0x2D
            if negative { i += 1 }
            var mantissa: UInt64 = 0
            var digits = 0
            var scale = 0
            var simple = true
            let stop = token.start + token.count
            while i < stop {
                let c = base[i]
                if c == 0x2E { i += 1; continue }
                if c == 0x65 || c == 0x45 { simple = false; break }
                mantissa = mantissa &* 10 &+ UInt64(c - 0x30)
                digits += 1
                if digits > 15 { simple = false; break }
                i += 1
            }
            if simple, let dot = (token.start..<stop).first(where: { base[$0] == 0x2E }) {
                scale = stop - dot - 1
            }
            let value: Double
            if simple && scale <= 22 {
                let magnitude = scale == 0 ? Double(mantissa) : Double(mantissa) / Self.powers[scale]
                value = negative ? -magnitude : magnitude
            } else {
                let text = String(decoding: UnsafeBufferPointer(start: base + token.start, count: token.count), as: UTF8.self)
                guard let parsed = Double(text) else { throw Bail() }
                value = parsed
            }
            guard value.isFinite else { throw Bail() }
            return value
        }

        mutating func int() throws(Bail) -> Int {
            let token = try numberToken()
            guard token.integer, token.count <= 18 else { throw Bail() }
            var i = token.start
            let negative = base[i] == 0x2D
            if negative { i += 1 }
            var value = 0
            while i < token.start + token.count {
                value = value * 10 + Int(base[i] - 0x30)
                i += 1
            }
            return negative ? -value : value
        }

        mutating func bool() throws(Bail) -> Bool {
            switch try peek() {
            case 0x74: try literal("true"); return true
            case 0x66: try literal("false"); return false
            default: throw Bail()
            }
        }

        mutating func enter() throws(Bail) {
            depth += 1
            guard depth < 64 else { throw Bail() }
        }

        /// Any JSON value, checked and dropped.
        mutating func skip() throws(Bail) {
            switch try peek() {
            case 0x22: _ = try string()
            case 0x7B, 0x5B: _ = try json()
            case 0x74, 0x66: _ = try bool()
            case 0x6E: try literal("null")
            default: _ = try numberToken()
            }
        }

        mutating func json() throws(Bail) -> JSONValue {
            switch try peek() {
            case 0x22: return .string(try string())
            case 0x74, 0x66: return .bool(try bool())
            case 0x6E: try literal("null"); return .null
            case 0x5B:
                try enter()
                at += 1
                var items: [JSONValue] = []
                if try peek() == 0x5D {
                    at += 1
                } else {
                    repeat { items.append(try json()) } while try more(0x5D)
                }
                depth -= 1
                return .array(items)
            case 0x7B: return .object(try object())
            default: return .number(try double())
            }
        }

        mutating func object() throws(Bail) -> [String: JSONValue] {
            try enter()
            try expect(0x7B)
            var members: [String: JSONValue] = [:]
            if try peek() == 0x7D {
                at += 1
            } else {
                repeat {
                    let (start, count) = try key()
                    let name = String(decoding: UnsafeBufferPointer(start: base + start, count: count), as: UTF8.self)
                    guard members.updateValue(try json(), forKey: name) == nil else { throw Bail() }
                } while try more(0x7D)
            }
            depth -= 1
            return members
        }

        mutating func strings() throws(Bail) -> [String] {
            try expect(0x5B)
            var items: [String] = []
            if try peek() == 0x5D {
                at += 1
                return items
            }
            repeat { items.append(try string()) } while try more(0x5D)
            return items
        }

        // MARK: The request

        mutating func request() throws(Bail) -> CoordinationRequest {
            try expect(0x7B)
            var customerID: String?
            var recommendations: [Recommendation]?
            var autoApprove: Bool?
            var executeNow: Bool?
            var seen = (customer: false, recs: false, auto: false, execute: false)
            if try peek() != 0x7D {
                repeat {
                    let k = try key()
                    if isKey(k, "customer_id") {
                        guard !seen.customer else { throw Bail() }
                        seen.customer = true
                        customerID = try string()
                    } else if isKey(k, "recommendations") {
                        guard !seen.recs else { throw Bail() }
                        seen.recs = true
                        recommendations = try recommendationList()
                    } else if isKey(k, "auto_approve") {
                        guard !seen.auto else { throw Bail() }
                        seen.auto = true
                        autoApprove = try null() ? nil : try bool()
                    } else if isKey(k, "execute_now") {
                        guard !seen.execute else { throw Bail() }
                        seen.execute = true
                        executeNow = try null() ? nil : try bool()
                    } else {
                        try skip()
                    }
                } while try more(0x7D)
            } else {
                at += 1
            }
            skipSpace()
            guard at == end, let customerID, !customerID.isEmpty, let recommendations else { throw Bail() }
            return CoordinationRequest(customerID: customerID, recommendations: recommendations,
                                       autoApprove: autoApprove ?? true, executeNow: executeNow ?? false)
        }

        mutating func recommendationList() throws(Bail) -> [Recommendation] {
            try expect(0x5B)
            var items: [Recommendation] = []
            if try peek() == 0x5D {
                at += 1
                return items
            }
            repeat { items.append(try recommendation()) } while try more(0x5D)
            return items
        }

        mutating func optionalString() throws(Bail) -> String {
            try null() ? "" : try string()
        }

        mutating func optionalDate() throws(Bail) -> Date? {
            if try null() { return nil }
            guard let date = Timestamp.date(from: try string()) else { throw Bail() }
            return date
        }

        mutating func recommendation() throws(Bail) -> Recommendation {
            try expect(0x7B)
            var id: String?, agentID: String?, action: String?
            var type: RecommendationType?, risk: RiskLevel?
            var agentType = "", customerID = "", title = "", description = "", impact = ""
            var savings = 0.0, confidence = 0.0, priority = 0
            var resources: [String] = [], dependencies: [String] = []
            var parameters: [String: JSONValue] = [:], metadata: [String: JSONValue] = [:]
            var createdAt: Date?, expiresAt: Date?
            var status: RecommendationStatus?
            var seen: UInt32 = 0
            func once(_ bit: UInt32) throws(Bail) {
                guard seen & bit == 0 else { throw Bail() }
                seen |= bit
            }
            if try peek() == 0x7D {
                throw Bail()  // required members missing
            }
            repeat {
                let k = try key()
                switch k.1 {
                case 2 where isKey(k, "id"):
                    try once(1 << 0); id = try string()
                case 8 where isKey(k, "agent_id"):
                    try once(1 << 1); agentID = try string()
                case 10 where isKey(k, "agent_type"):
                    try once(1 << 2); agentType = try optionalString()
                case 11 where isKey(k, "customer_id"):
                    try once(1 << 3); customerID = try optionalString()
                case 4 where isKey(k, "type"):
                    try once(1 << 4)
                    guard let value = RecommendationType(rawValue: try string()) else { throw Bail() }
                    type = value
                case 5 where isKey(k, "title"):
                    try once(1 << 5); title = try optionalString()
                case 11 where isKey(k, "description"):
                    try once(1 << 6); description = try optionalString()
                case 6 where isKey(k, "action"):
                    try once(1 << 7); action = try string()
                case 10 where isKey(k, "risk_level"):
                    try once(1 << 8)
                    guard let value = RiskLevel(rawValue: try string()) else { throw Bail() }
                    risk = value
                case 17 where isKey(k, "estimated_savings"):
                    try once(1 << 9); savings = try null() ? 0 : try double()
                case 16 where isKey(k, "estimated_impact"):
                    try once(1 << 10); impact = try optionalString()
                case 18 where isKey(k, "affected_resources"):
                    try once(1 << 11); resources = try null() ? [] : try strings()
                case 10 where isKey(k, "parameters"):
                    try once(1 << 12); parameters = try null() ? [:] : try object()
                case 12 where isKey(k, "dependencies"):
                    try once(1 << 13); dependencies = try null() ? [] : try strings()
                case 8 where isKey(k, "priority"):
                    try once(1 << 14); priority = try null() ? 0 : try int()
                case 10 where isKey(k, "confidence"):
                    try once(1 << 15); confidence = try null() ? 0 : try double()
                case 10 where isKey(k, "created_at"):
                    try once(1 << 16); createdAt = try optionalDate()
                case 10 where isKey(k, "expires_at"):
                    try once(1 << 17); expiresAt = try optionalDate()
                case 6 where isKey(k, "status"):
                    // Anything but a known status string means none (as the Codable init).
                    try once(1 << 18)
                    if try peek() == 0x22 { status = RecommendationStatus(rawValue: try string()) } else { try skip() }
                case 8 where isKey(k, "metadata"):
                    try once(1 << 19); metadata = try null() ? [:] : try object()
                default:
                    try skip()
                }
            } while try more(0x7D)
            guard let id, !id.isEmpty, let agentID, !agentID.isEmpty, let action, !action.isEmpty,
                  let type, let risk, (0...1).contains(confidence) else { throw Bail() }
            return Recommendation(id: id, agentID: agentID, agentType: agentType, customerID: customerID, type: type,
                                  title: title, description: description, action: action, riskLevel: risk,
                                  estimatedSavings: savings, estimatedImpact: impact, affectedResources: resources,
                                  parameters: parameters, dependencies: dependencies, priority: priority,
                                  confidence: confidence, createdAt: createdAt, expiresAt: expiresAt, status: status,
                                  metadata: metadata)
        }
    }
}
