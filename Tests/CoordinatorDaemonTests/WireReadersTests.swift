import Coordination
import Crypto
import Foundation
import Testing
@testable import CoordinatorDaemon

/// The lexer-based readers of untrusted input and of the daemon's own records (no Redis):
/// step results (`StepResultMessage.parse`), JWS headers (`JWS.parse`), the trust file, and
/// the stored step attempt.
@Suite("Wire readers: step results, JWS headers, trust file, step attempts (no Redis)")
struct WireReadersTests {
    static let identity = #""plan_id":"p-1","step_id":"s-1","attempt":"a-1","rollback":false"#

    private func parse(_ json: String, maxBytes: Int = 1 << 20) -> Result<StepResultMessage, Refusal> {
        StepResultMessage.parse(Array(json.utf8), maxBytes: maxBytes)
    }

    private func refusal(_ json: String) -> (code: String, message: String)? {
        guard case .failure(let refusal) = parse(json) else { return nil }
        return (refusal.code.rawValue, refusal.message)
    }

    @Test("a step result's nested output is kept whole, with any member names")
    func nestedOutput() throws {
        let json = #"{\#(Self.identity),"ok":true,"result":{"output":{"lines":["ok","日本"],"exit":0,"caf\u00e9":{"deep":[[{"x":null}]]}}},"rollback_data":{"snapshot":"s"},"extra":{"ignored":[1,2]}}"#
        let result = try parse(json).get()
        #expect(result.planID == "p-1" && result.stepID == "s-1" && result.attempt == "a-1" && !result.rollback)
        guard case .success(let output, let rollbackData) = result.outcome else {
            Issue.record("\(result.outcome)")
            return
        }
        #expect(output == ["output": ["lines": ["ok", "日本"], "exit": 0, "café": ["deep": [[["x": nil]]]]]])
        #expect(rollbackData == ["snapshot": "s"])
        let failed = try parse(#"{\#(Self.identity),"ok":false,"error":"disk full","result":null}"#).get()
        #expect("\(failed.outcome)".contains("disk full"))
    }

    @Test("not JSON is invalid_json saying where; JSON of another shape is invalid_request naming the member")
    func refusals() {
        let cases: [(String, String, String)] = [
            ("{oops", "invalid_json", "step result is not valid JSON: expected a member name at byte 1"),
            (#"{"plan_id":"p-1",}"#, "invalid_json", "step result is not valid JSON: expected a member name at byte 17"),
            ("{\(Self.identity),\"ok\":true} x", "invalid_json", "step result is not valid JSON: unexpected data after the JSON object at byte 77"),
            ("", "invalid_json", "step result is not valid JSON: empty message"),
            ("[1,2]", "invalid_request", "step result must be a JSON object"),
            ("\"text\"", "invalid_request", "step result must be a JSON object"),
            (#"{\#(Self.identity),"ok":true,"result":{"a":"\ud800"}}"#, "invalid_json", "step result is not valid JSON: lone surrogate in a string at byte 98"),
            (#"{"plan_id":5,"step_id":"x","ok":true}"#, "invalid_request", "plan_id: expected a string"),
            (#"{\#(Self.identity),"ok":"yes"}"#, "invalid_request", "ok: expected true or false"),
            (#"{\#(Self.identity),"ok":true,"result":[]}"#, "invalid_request", "result: expected an object"),
            // Type errors first, in the order plan_id … error, whatever the order sent.
            (#"{"error":1,"step_id":2}"#, "invalid_request", "step_id: expected a string"),
            (#"{"plan_id":"p-1","step_id":"s-1","ok":true,"rollback":false}"#, "invalid_request", "attempt: required"),
            (#"{\#(Self.identity),"ok":true,"plan_id":"p-2"}"#, "invalid_request", "plan_id: given twice"),
            (#"{\#(Self.identity),"ok":true,"result":{"a":1,"a":2}}"#, "invalid_request", #"result: member "a" given twice at byte 97"#),
            (#"{\#(Self.identity),"ok":true,"result":{"n":1e400}}"#, "invalid_request", "result: number out of range at byte 95"),
        ]
        for (json, code, message) in cases {
            let got = refusal(json)
            #expect(got?.code == code, "\(json): \(String(describing: got))")
            #expect(got?.message == message, "\(json)")
        }
    }

    @Test("nesting is bounded like a request's: deeper is invalid_json, wherever it is")
    func tooDeep() {
        let limit = TopLevelJSON.maxDepth
        func nested(_ depth: Int) -> String { String(repeating: "[", count: depth) + String(repeating: "]", count: depth) }
        // The top-level object is depth 0, `result` 1, its member's array 2.
        #expect(refusal(#"{\#(Self.identity),"ok":true,"result":{"a":\#(nested(limit - 2))}}"#) == nil)
        for member in ["result", "unknown"] {
            let got = refusal(#"{\#(Self.identity),"ok":true,"\#(member)":{"a":\#(nested(limit - 1))}}"#)
            #expect(got?.code == "invalid_json" && got?.message.contains("nested deeper than \(limit)") == true, "\(member): \(String(describing: got))")
        }
    }

    // MARK: JWS headers

    private func header(_ json: String) -> JWS.Malformed? {
        let key = Curve25519.Signing.PrivateKey()
        let signed = try! JWS.sign(payload: #"{"kind":"get_plan","plan_id":"p"}"#, kid: "k", privateKey: key)
        let parts = signed.split(separator: ".").map(String.init)
        return JWS.parse(Array((Base64URL.encode(Array(json.utf8)) + "." + parts[1] + "." + parts[2]).utf8)).failureValue
    }

    @Test("JWS headers: unknown members are skipped; duplicates, deep nesting, oversize and bad JSON are refused")
    func jwsHeaders() {
        #expect(header(#"{"alg":"EdDSA","kid":"k","iat":1764590400}"#) == nil)
        #expect(header(#"{"typ":"JWT","alg":"EdDSA","x5u":"https://x","kid":"k","jwk":{"kty":"OKP","x":[1,{"y":null}]},"iat":1.7645904e9}"#) == nil)
        #expect(header(#"{"alg":"EdDSA","kid":"k","kid":"alice"}"#) == .badHeader(#"member "kid" given twice at byte 25"#))
        #expect(header(#"{"alg":"none","alg":"EdDSA","kid":"k"}"#) == .badHeader(#"member "alg" given twice at byte 14"#))
        let deep = String(repeating: "[", count: JWSHeader.maxDepth) + String(repeating: "]", count: JWSHeader.maxDepth)
        #expect(header(#"{"alg":"EdDSA","kid":"k","x":\#(deep)}"#) == .badHeader("nested deeper than \(JWSHeader.maxDepth) at byte \(29 + JWSHeader.maxDepth - 1)"))
        let shallow = String(repeating: "[", count: JWSHeader.maxDepth - 1) + String(repeating: "]", count: JWSHeader.maxDepth - 1)
        #expect(header(#"{"alg":"EdDSA","kid":"k","x":\#(shallow)}"#) == nil)
        let big = #"{"alg":"EdDSA","kid":"k","pad":""# + String(repeating: "x", count: JWSHeader.maxBytes) + #""}"#
        #expect(header(big) == .badHeader("\(big.utf8.count) bytes, at most \(JWSHeader.maxBytes)"))
        #expect(header(#"{"alg":"EdDSA","kid":"k""#) == .badHeader("unexpected end of input in an object at byte 24"))
        #expect(header(#"["alg"]"#) == .badHeader("must be a JSON object"))
        #expect(header(#"{"alg":"EdDSA","kid":"k"} {}"#) == .badHeader("unexpected data after the JSON object at byte 26"))
        #expect(header(#"{"alg":"EdDSA","kid":"\ud800"}"#) == .badHeader("lone surrogate in a string at byte 29"))
        #expect(header(#"{"alg":"EdDSA","kid":"k","crit":null}"#) == .badHeader("crit: no header extension is supported"))
        #expect(header(#"{"alg":"EdDSA","kid":"k","iat":-}"#) == .badHeader("invalid value at byte 32"))
        #expect(header(#"{"alg":"EdDSA","kid":"k","iat":[1]}"#) == .badHeader("iat: must be a number (whole seconds since the Unix epoch)"))
    }

    // MARK: The trust file and the stored attempt

    @Test("the trust file: a principal given twice and malformed JSON are errors that say where")
    func trustFile() {
        let key = Curve25519.Signing.PrivateKey().publicKey.rawRepresentation.base64EncodedString()
        let entry = #""a":{"public_key":"\#(key)","roles":["agent"]}"#
        func error(_ json: String) -> String? {
            do {
                _ = try Trust.parse(Array(json.utf8))
                return nil
            } catch {
                return error.description
            }
        }
        #expect(error(#"{"principals":{\#(entry)}}"#) == nil)
        #expect(error(#"{"principals":{"caf\u00e9":{}}}"#)?.contains(#"principals.café: a principal id is"#) == true)
        #expect(error(#"{"principals":{\#(entry),\#(entry)}}"#)?.contains(#"not a JSON object: member "a" given twice at byte"#) == true)
        #expect(error(#"{"principals":{\#(entry)}"#)?.contains("not a JSON object: unexpected end of input in an object at byte") == true)
        #expect(error(#"{"principals":{"a":{"public_key":"\#(key)","roles":["agent",7]}}}"#)?.contains("principals.a.roles: required") == true)
        #expect(error("[]") == "trust file <inline>: not a JSON object")
    }

    @Test("a stored step attempt reads back as written; anything else is nil")
    func stepAttempt() {
        let attempt = StepAttempt(index: 2, stepID: "s-2", rollback: true, token: StepAttempt.newToken(), deadlineMs: 1_764_590_400_123,
                                  list: "coord:agent:a:steps", message: Array(#"{"plan_id":"p","note":"日本 \"q\""}"#.utf8))
        #expect(StepAttempt.decode(attempt.encoded()) == attempt)
        var extra = attempt.encoded()
        extra.insert(contentsOf: Array(#""future":{"x":[1]},"#.utf8), at: 1)
        #expect(StepAttempt.decode(extra) == attempt)
        #expect(StepAttempt.decode(Array(#"{"index":1}"#.utf8)) == nil)
        #expect(StepAttempt.decode(Array("not json".utf8)) == nil)
        #expect(StepAttempt.decode(attempt.encoded() + Array(" x".utf8)) == nil)
    }
}
