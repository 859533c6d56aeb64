import Foundation
import Testing
@testable import Coordination

/// Decisions' JSON form read by `JSONLexer` (strict), answering as `JSONDecoder` and
/// `JSONSerialization` did: the same paths, the same refusals.
@Suite struct DecisionJSONTests {
    func path(_ text: String) -> String? {
        do { _ = try ApprovalDecisionMessage.parse(Array(text.utf8)); return nil } catch { return error.path }
    }

    @Test func wrongTypesAreNamedBeforeMissingMembers() {
        // JSONDecoder decoded the members in order, then the rules checked what was missing.
        #expect(path(#"{"decision": 5}"#) == "decision")
        #expect(path(#"{"user_id": true, "decision": "maybe"}"#) == "user_id")
        #expect(path(#"{"approval_id": "ap-1", "decision": "approve", "user_id": "bob", "reply_to": []}"#) == "reply_to")
        #expect(path(#"{"approval_id": "ap-1", "decision": "approve", "user_id": "bob", "request_id": {}}"#) == "request_id")
    }

    @Test func nullIsAbsent() throws {
        let message = try ApprovalDecisionMessage.parse(Array(#"{"approval_id": "ap-1", "decision": "approve", "user_id": "bob", "reason": null, "reply_to": null}"#.utf8))
        #expect(message.decision.reason == "")
        #expect(message.replyTo == nil)
        #expect(path(#"{"approval_id": null, "decision": "approve", "user_id": "bob"}"#) == "approval_id")
    }

    @Test(arguments: [
        #"{"approval_id": "\ud800", "decision": "approve", "user_id": "bob"}"#,  // a lone surrogate
        #"{"approval_id": "ap-1", "decision": "approve", "user_id": "bob", "x": ["\udc00"]}"#,
        #"{"approval_id": "ap-1", "decision": "approve", "user_id": "bob"} trailing"#,
    ])
    func malformedIsNotValidJSON(_ text: String) {
        #expect(path(text) == "")
        // What the daemon read with JSONSerialization before refuses it too.
        #expect((try? JSONSerialization.jsonObject(with: Data(text.utf8))) == nil)
        guard case .failure = TopLevelJSON.members(Array(text.utf8), strict: true) else {
            Issue.record("accepted: \(text)")
            return
        }
    }

    /// The one difference, deliberate: Foundation's parser on Linux lets a trailing comma
    /// through (a decision read with it would be applied); RFC 8259 and the lexer, which reads
    /// every request, do not. A decision is held to the same JSON as a request.
    @Test func trailingCommaIsRefusedLikeInARequest() throws {
        let text = #"{"approval_id": "ap-1", "decision": "approve", "user_id": "bob",}"#
        #expect(path(text) == "")
        #expect((try? JSONSerialization.jsonObject(with: Data(text.utf8))) != nil, "Foundation now refuses it: drop this note")
        #expect((try? JSONDecoder().decode([String: String].self, from: Data(text.utf8))) != nil, "Foundation now refuses it: drop this note")
    }

    @Test func unknownMembersAreIgnored() throws {
        let message = try ApprovalDecisionMessage.parse(Array(#"{"approval_id": "ap-1", "decision": "reject", "user_id": "bob", "reason": "no", "extra": {"deep": [1, 2, {"x": null}]}}"#.utf8))
        #expect(message.decision.kind == .reject)
    }
}
