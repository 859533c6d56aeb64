import Foundation
import Testing
@testable import Coordination

/// PROTOCOL.md sections 2.1 and 2.5: identifiers, reply_to, free text and maps, in bytes.
@Suite struct IdentifierTests {
    @Test func identifiersAreBytesOfPrintableASCII() {
        #expect(WireLimits.identifierProblem("req-7f3a") == nil)
        #expect(WireLimits.identifierProblem("a:b/c.d_e@f") == nil)
        #expect(WireLimits.identifierProblem(String(repeating: "x", count: 128)) == nil)
        #expect(WireLimits.identifierProblem(String(repeating: "x", count: 129)) != nil)
        #expect(WireLimits.identifierProblem("") != nil)
        for bad in ["a b", "a{b", "a}b", "a*b", "a?b", "a[b", "a]b", "a\\b", "a\"b", "a\tb", "a\u{7F}b", "é"] {
            #expect(WireLimits.identifierProblem(bad) != nil, "\(bad)")
        }
    }

    @Test("129 bytes of multi-byte characters are over the limit although they are 43 characters")
    func bytesNotCharacters() {
        let id = String(repeating: "€", count: 43)  // 3 bytes each
        #expect(id.count == 43 && id.utf8.count == 129)
        let problem = WireLimits.identifierProblem(id)
        #expect(problem != nil)
        // 64 grapheme clusters of two scalars each, all ASCII-free: rejected for its bytes.
        #expect(WireLimits.identifierProblem(String(repeating: "e\u{301}", count: 64)) != nil)
    }

    @Test func replyToRules() {
        #expect(WireLimits.replyToProblem("agent:cost-1:replies", prefix: "coord", replyPrefix: nil) == nil)
        #expect(WireLimits.replyToProblem("coordinator:replies", prefix: "coord", replyPrefix: nil) == nil)
        for own in ["coord", "coord:dead", "coord:requests", "coord:customer:c:version", "coord:plan:x:lease"] {
            #expect(WireLimits.replyToProblem(own, prefix: "coord", replyPrefix: nil) != nil, "\(own)")
        }
        #expect(WireLimits.replyToProblem(String(repeating: "r", count: 256), prefix: "coord", replyPrefix: nil) == nil)
        #expect(WireLimits.replyToProblem(String(repeating: "r", count: 257), prefix: "coord", replyPrefix: nil) != nil)
        #expect(WireLimits.replyToProblem("a b", prefix: "coord", replyPrefix: nil) != nil)
        #expect(WireLimits.replyToProblem("a\nb", prefix: "coord", replyPrefix: nil) != nil)
        #expect(WireLimits.replyToProblem("réponse", prefix: "coord", replyPrefix: nil) != nil)
        #expect(WireLimits.replyToProblem("replies:me", prefix: "coord", replyPrefix: "replies:") == nil)
        #expect(WireLimits.replyToProblem("other:me", prefix: "coord", replyPrefix: "replies:") != nil)
        #expect(WireLimits.replyToProblem("replies:me", prefix: "replies", replyPrefix: "replies:") != nil)
    }

    func request(_ rec: String, customer: String = "cust-1") -> [UInt8] {
        Array(#"{"customer_id": "\#(customer)", "recommendations": [\#(rec)]}"#.utf8)
    }

    func failure(_ bytes: [UInt8]) -> ValidationError? {
        do {
            _ = try RequestDecoding.coordinationRequest(from: bytes)
            return nil
        } catch {
            return error
        }
    }

    @Test("bad identifiers are invalid_request, named by their JSON path")
    func requestIdentifiers() throws {
        let base = #""agent_id": "a", "type": "cost", "action": "scale_up", "risk_level": "low""#
        let cases: [(String, String, String)] = [
            (#"{"id": "r 1", \#(base)}"#, "cust-1", "recommendations[0].id"),
            (#"{"id": "r1", "agent_id": "\#(String(repeating: "a", count: 129))", "type": "cost", "action": "x", "risk_level": "low"}"#, "cust-1", "recommendations[0].agent_id"),
            (#"{"id": "r1", "dependencies": ["ok", "b*d"], \#(base)}"#, "cust-1", "recommendations[0].dependencies[1]"),
            (#"{"id": "r1", "customer_id": "c{1}", \#(base)}"#, "cust-1", "recommendations[0].customer_id"),
            (#"{"id": "r1", \#(base)}"#, "c[1]", "customer_id"),
        ]
        for (rec, customer, path) in cases {
            let error = try #require(failure(request(rec, customer: customer)), "\(path)")
            #expect(error.path == path)
            #expect(!error.tooLarge)
        }
    }

    @Test("free text over 4 KiB and maps over 64 KiB are too_large")
    func sizes() throws {
        let base = #""id": "r1", "agent_id": "a", "type": "cost", "action": "scale_up", "risk_level": "low""#
        let big = String(repeating: "x", count: 4097)
        for field in ["title", "description", "estimated_impact"] {
            let error = try #require(failure(request(#"{\#(base), "\#(field)": "\#(big)"}"#)))
            #expect(error.path == "recommendations[0].\(field)")
            #expect(error.tooLarge)
        }
        // 4096 bytes of 2-byte characters (2048 characters) is within; one more is not.
        #expect(failure(request(#"{\#(base), "title": "\#(String(repeating: "é", count: 2048))"}"#)) == nil)
        #expect(failure(request(#"{\#(base), "title": "\#(String(repeating: "é", count: 2049))"}"#))?.tooLarge == true)
        let map = #"{"k": "\#(String(repeating: "v", count: 65_536))"}"#
        for field in ["parameters", "metadata"] {
            let error = try #require(failure(request(#"{\#(base), "\#(field)": \#(map)}"#)))
            #expect(error.path == "recommendations[0].\(field)")
            #expect(error.tooLarge)
        }
        #expect(failure(request(#"{\#(base), "parameters": {"k": "\#(String(repeating: "v", count: 60_000))"}}"#)) == nil)
    }

    @Test("decisions: identifiers, reason size, request_id in bytes")
    func decisions() throws {
        func parse(_ text: String) -> ValidationError? {
            do {
                _ = try ApprovalDecisionMessage.parse(Array(text.utf8))
                return nil
            } catch {
                return error
            }
        }
        #expect(parse("approve ap-1 alice@example.com") == nil)
        #expect(parse("approve ap*1 alice@example.com")?.path == "approval_id")
        #expect(parse(#"{"approval_id": "ap-1", "decision": "approve", "user_id": "al\"ice"}"#)?.path == "user_id")
        #expect(parse(#"{"approval_id": "ap-1", "decision": "approve", "user_id": "u", "request_id": "\#(String(repeating: "€", count: 43))"}"#)?.path == "request_id")
        let reject = parse("reject ap-1 bob " + String(repeating: "r", count: 4097))
        #expect(reject?.path == "reason" && reject?.tooLarge == true)
        // A decision that is JSON but not an object is JSON of the wrong shape.
        #expect(parse("[1,2,3]") != nil)
        #expect(parse("3") != nil)
    }
}
