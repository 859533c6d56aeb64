import Foundation
import Testing
@testable import Coordination

@Suite struct FastDecodingTests {
    /// What `JSONDecoder` makes of the bytes (before the cross-field rules), or its error.
    func slow(_ bytes: [UInt8]) -> Result<CoordinationRequest, ValidationError> {
        Result { () throws(ValidationError) in try RequestDecoding.decodeWithJSONDecoder(bytes) }
    }

    /// The fast parser either declines or agrees with `JSONDecoder`.
    func check(_ json: String, fastAccepts: Bool? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
        let bytes = Array(json.utf8)
        let fast = FastRequestParser.parse(bytes)
        if let fast {
            #expect((try? slow(bytes).get()) == fast, "\(json)", sourceLocation: sourceLocation)
        }
        if let fastAccepts {
            #expect((fast != nil) == fastAccepts, "\(json)", sourceLocation: sourceLocation)
        }
    }

    func wrap(_ rec: String, top: String = "") -> String {
        #"{"customer_id": "c"\#(top), "recommendations": [\#(rec)]}"#
    }

    static let base = #""id": "r0", "agent_id": "a", "type": "cost", "action": "scale_up", "risk_level": "low""#

    @Test func encodedRequestsRoundTrip() throws {
        var rng = SplitMix64(seed: 3)
        for trial in 0..<30 {
            let recs = OrderIndependenceTests().randomRequest(&rng, count: 50).enumerated().map { index, r -> Recommendation in
                var r = r
                r.customerID = "cust-1"
                r.title = ["", "plain", "q \" b \\ s / \n\t\u{1} ü 日本 🎉", "\u{7F}"][index % 4]
                r.description = "d\(trial)-\(index)"
                r.estimatedImpact = "impact"
                r.estimatedSavings = Double(index) * 1234.567 + Double(trial) / 3
                r.confidence = Double(index % 11) / 10
                r.priority = index % 2 == 0 ? -index : index * 1000
                r.parameters = ["n": .number(Double(index)), "f": 0.1, "big": 1e300, "neg": -2.5e-8, "s": "x/y",
                                "nested": ["a": [1, nil, true, ["deep": "v"]]], "empty": [:], "list": []]
                r.metadata = index % 3 == 0 ? ["source": "gen", "n": 3] : [:]
                r.createdAt = baseTime.addingTimeInterval(Double(index))
                r.status = [nil, .approved, .pendingApproval, .rolledBack][index % 4]
                return r
            }
            let request = CoordinationRequest(customerID: "cust-1", recommendations: recs, autoApprove: trial % 2 == 0,
                                              executeNow: trial % 3 == 0)
            let bytes = Array(try WireJSON.encoder().encode(request))
            let fast = try #require(FastRequestParser.parse(bytes))
            #expect(fast == (try slow(bytes).get()))
            #expect(fast == request)
        }
    }

    @Test func acceptedShapesAgree() {
        check(wrap("{\(Self.base)}"), fastAccepts: true)
        check(" \n\t{ \"customer_id\" : \"c\" , \"recommendations\" : [ { \(Self.base) } ] } \n", fastAccepts: true)
        check(wrap("{\(Self.base)}", top: #", "auto_approve": null, "execute_now": true, "kind": "coordinate", "x": {"y": [1, 2.5e3, null]}"#),
              fastAccepts: true)
        check(#"{"customer_id": "c", "recommendations": []}"#, fastAccepts: true)
        let nulls = #""agent_type": null, "customer_id": null, "title": null, "description": null, "estimated_savings": null, "#
            + #""estimated_impact": null, "affected_resources": null, "parameters": null, "dependencies": null, "priority": null, "#
            + #""confidence": null, "created_at": null, "expires_at": null, "status": null, "metadata": null"#
        check(wrap("{\(Self.base), \(nulls)}"), fastAccepts: true)
        for status in [#""approved""#, #""bogus""#, "5", "[1]", #"{"a": 1}"#, "true"] {
            check(wrap(#"{\#(Self.base), "status": \#(status)}"#), fastAccepts: true)
        }
        for number in ["0", "-0", "1", "0.5", "1e-1", "1E-1", "0.1000000000000000055511151231257827", "1.0", "12e-2"] {
            check(wrap(#"{\#(Self.base), "confidence": \#(number)}"#), fastAccepts: true)
        }
        for number in ["0", "-0", "123.456", "1e3", "-2.5E+2", "123456789012345678901234567890", "0.30000000000000004",
                       "9007199254740993", "1.7976931348623157e308", "4.9e-324", "2.2250738585072014e-308"] {
            check(wrap(#"{\#(Self.base), "estimated_savings": \#(number), "parameters": {"v": \#(number)}}"#), fastAccepts: true)
        }
        for text in [#""caf\u00e9""#, #""\ud83c\udf89""#, #""tab\tnew\nline\/ \"q\" \\""#, #""日本""#, #""\u0000""#] {
            check(wrap(#"{\#(Self.base), "title": \#(text), "affected_resources": [\#(text)]}"#), fastAccepts: true)
        }
        check(wrap(#"{\#(Self.base), "created_at": "2026-11-24T12:15:30.5+02:00", "expires_at": "2026-11-24 10:15:30Z"}"#),
              fastAccepts: true)
    }

    @Test func declinesWhatItCannotBeSureOf() {
        let declined = [
            wrap(#"{\#(Self.base), "id": "again"}"#),                     // duplicate member
            #"{"customer_id": "c", "customer_id": "d", "recommendations": []}"#,
            wrap(#"{\#(Self.base), "parameters": {"a": 1, "a": 2}}"#),
            wrap(#"{\#(Self.base), "agent\u005ftype": "x"}"#),            // escaped name
            wrap(#"{\#(Self.base), "priority": 5.0}"#),                    // integer spelled as a fraction
            wrap(#"{\#(Self.base), "priority": 1e2}"#),
            wrap(#"{\#(Self.base), "priority": 12345678901234567890}"#),
            wrap(#"{\#(Self.base), "estimated_savings": 1e400}"#),
            wrap(#"{\#(Self.base), "title": "\ud800"}"#),                  // lone surrogate
            wrap(#"{\#(Self.base), "title": "\x"}"#),
            wrap("{\(Self.base)}") + " x",
            wrap("{\(Self.base),}"),
            wrap(#"{\#(Self.base), "priority": 01}"#),
            wrap(#"{\#(Self.base), "confidence": 1.5}"#),
            wrap(#"{\#(Self.base), "risk_level": "extreme"}"#),
            wrap(#"{"id": "r0", "type": "cost", "action": "x", "risk_level": "low"}"#),
            wrap(#"{\#(Self.base), "created_at": "yesterday"}"#),
            wrap(#"{\#(Self.base), "title": 5}"#),
            wrap("{\(Self.base)}", top: #", "auto_approve": "yes""#),
            #"{"customer_id": "", "recommendations": []}"#,
            #"{"customer_id": "c"}"#,
            #"{"customer_id": "c", "recommendations": null}"#,
            "[]", "", "nul", "{",
        ]
        for json in declined { check(json, fastAccepts: false) }
        #expect(FastRequestParser.parse([0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D]) == nil)
        #expect(FastRequestParser.parse(Array(wrap(#"{\#(Self.base), "title": "\#u{1}"}"#).utf8)) == nil)  // raw control character
    }

    @Test func fixturesTakeTheFastPath() throws {
        for name in ["scenario1-conflict", "scenario2-approval", "scenario3-rollback"] {
            let bytes = try fixture(name)
            let fast = try #require(FastRequestParser.parse(bytes))
            #expect(fast == (try slow(bytes).get()))
        }
    }
}
