import Testing
@testable import Coordination

/// The one tokenizer behind `TopLevelJSON` (lenient) and the fast request parser (strict).
@Suite("JSONLexer")
struct JSONLexerTests {
    private func string(_ json: String, strict: Bool) -> Result<String, JSONLexer.Malformed> {
        Array(json.utf8).withUnsafeBufferPointer { buffer in
            var lexer = JSONLexer(buffer, strict: strict)
            do throws(JSONLexer.Malformed) { return .success(try lexer.string()) } catch { return .failure(error) }
        }
    }

    @Test("escapes and surrogate pairs decode the same either way")
    func escapes() throws {
        for strict in [true, false] {
            #expect(try string(#""a\/b\"\\\b\f\n\r\t\u00e9\ud83d\ude00""#, strict: strict).get() == "a/b\"\\\u{08}\u{0C}\n\r\té😀")
        }
    }

    @Test("a lone surrogate is an error when strict (as JSONDecoder), U+FFFD when lenient", arguments: [
        #""\ud800""#, #""\ud800x""#, #""\udc00""#, #""\ud800\ud800""#, #""\ud800\n""#,
    ])
    func loneSurrogates(_ json: String) throws {
        if case .success(let value) = string(json, strict: true) { Issue.record("strict lexer accepted \(json) as \(value.debugDescription)") }
        #expect(try string(json, strict: false).get().contains("\u{FFFD}"))
    }

    @Test("errors name what and where")
    func errors() {
        #expect(string(#""abc"#, strict: true) == .failure(JSONLexer.Malformed(message: "unterminated string at byte 4")))
        #expect(string(#""a\x""#, strict: true) == .failure(JSONLexer.Malformed(message: "invalid escape at byte 3")))
        #expect(string("\"a\u{01}\"", strict: false) == .failure(JSONLexer.Malformed(message: "control character in a string at byte 2")))
    }

    @Test("skipping is bounded in depth")
    func depth() {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        let result: Result<Void, JSONLexer.Malformed> = Array(deep.utf8).withUnsafeBufferPointer { buffer in
            var lexer = JSONLexer(buffer)
            do throws(JSONLexer.Malformed) { return .success(try lexer.skipValue(maxDepth: 64)) } catch { return .failure(error) }
        }
        #expect(throws: JSONLexer.Malformed.self) { try result.get() }
    }
}
