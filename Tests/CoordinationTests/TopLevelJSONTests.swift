import Coordination
import Foundation
import Testing

@Suite("Envelope scanner")
struct TopLevelJSONTests {
    private func members(_ text: String) -> [String: TopLevelJSON.Value]? {
        try? TopLevelJSON.members(Array(text.utf8)).get()
    }

    @Test("reads top-level strings, with escapes, and names the other values")
    func reads() throws {
        let m = try #require(members(#"{"kind":"get_plan","request_id":"a\"b\\c\u00e9\ud83d\ude00\n","n":-1.5e3,"o":{"x":[1,true,null]},"z":null}"#))
        #expect(m["kind"] == .string("get_plan"))
        #expect(m["request_id"] == .string("a\"b\\cé😀\n"))
        #expect(m["n"] == .other("a number"))
        #expect(m["o"] == .other("an object"))
        #expect(m["z"] == .null)
    }

    @Test("accepts exactly RFC 8259 objects", arguments: [
        ("{}", true), (" {\"a\": [1, 2, {\"b\": \"c\"}]} ", true), ("{\"a\":1e5,\"b\":2E-3,\"c\":0.5}", true),
        ("{\"a\":{\"b\":{}}}", true), ("{\"a\":\"\\u00e9\"}", true),
        ("{\"a\":1}x", false), ("{\"a\":01}", false), ("{\"a\":1.}", false), ("{\"a\":-}", false), ("[1]", false),
        ("\"s\"", false), ("{\"a\":tru}", false), ("{\"a\":\"\\x\"}", false), ("{\"a\":\"\u{01}\"}", false),
        ("{\"a\" 1}", false), ("{\"a\":1,}", false), ("{,}", false), ("", false), ("   ", false),
        ("{\"a\":[1,]}", false), ("{\"a\":\"\\u12\"}", false), ("{\"a\":[}", false),
    ])
    func validity(_ text: String, _ valid: Bool) {
        #expect((members(text) != nil) == valid, "\(text)")
    }

    @Test("deep nesting is refused, not a crash")
    func deep() {
        let text = "{\"a\":" + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}"
        #expect(members(text) == nil)
    }
}
