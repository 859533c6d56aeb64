import Coordination
import Crypto
import Foundation
import Testing
@testable import CoordinatorDaemon

@Suite("Trust: JWS, base64url, the trust file and its rules (no Redis)")
struct TrustJWSTests {
    /// RFC 8037 appendix A.1 (the RFC 8032 test key 1) and A.4.
    static let rfcSeed = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
    static let rfcPublic = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    static let rfcCompact = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
        + "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"

    /// base64url as RFC 7515 appendix C spells it: Foundation's base64, `+/` → `-_`, no `=`.
    static func referenceEncode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    @Test("base64url agrees with the RFC 7515 appendix C construction on every length and byte")
    func base64URLRoundTrip() throws {
        var generator = SystemRandomNumberGenerator()
        for length in 0..<200 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let encoded = Base64URL.encode(bytes)
            #expect(encoded == Self.referenceEncode(bytes))
            #expect(Base64URL.decode(encoded) == bytes)
        }
        #expect(Base64URL.decode("") == [])
        #expect(Base64URL.decode("QQ==") == nil, "padding is refused")
        #expect(Base64URL.decode("Q") == nil, "a length of 4n+1 is refused")
        #expect(Base64URL.decode("a+b/") == nil, "the standard alphabet's + and / are refused")
        #expect(Base64URL.decode("QR") == nil, "unused bits must be zero (one encoding per byte string)")
        #expect(Base64URL.decode("QQ") == [0x41])
    }

    @Test("RFC 8037 A.4: the vector's signature verifies, and Ed25519 signing of its input gives it exactly")
    func rfc8037Vector() throws {
        let parts = Self.rfcCompact.split(separator: ".").map(String.init)
        #expect(Base64URL.decode(parts[0]).map { String(decoding: $0, as: UTF8.self) } == #"{"alg":"EdDSA"}"#)
        #expect(Base64URL.decode(parts[1]).map { String(decoding: $0, as: UTF8.self) } == "Example of Ed25519 signing")
        let privateKey = try Curve25519.Signing.PrivateKey(rawRepresentation: try #require(Base64URL.decode(Self.rfcSeed)))
        #expect(Base64URL.encode(privateKey.publicKey.rawRepresentation) == Self.rfcPublic)
        let signingInput = Array("\(parts[0]).\(parts[1])".utf8)
        let signature = try #require(Base64URL.decode(parts[2]))
        let publicKey = try Curve25519.Signing.PublicKey(rawRepresentation: try #require(Base64URL.decode(Self.rfcPublic)))
        #expect(publicKey.isValidSignature(signature, for: signingInput))
        // Ed25519 is deterministic (RFC 8032): the same key and input give the vector's bytes.
        #expect(Base64URL.encode(try privateKey.signature(for: signingInput)) == parts[2])

        // The vector has no kid, which the daemon needs to find the key: refused for that alone.
        #expect(JWS.parse(Array(Self.rfcCompact.utf8)).failureValue == .badHeader("kid: required (the signing principal's id)"))

        // The same key under a trust file, with a kid: the daemon's helper reproduces what a
        // hand-made JWS of RFC 7515 would be, and the daemon's check accepts it.
        let header = #"{"alg":"EdDSA","kid":"rfc","iat":1764590400}"#
        let message = #"{"kind":"get_plan","plan_id":"p"}"#
        let input = Self.referenceEncode(Array(header.utf8)) + "." + Self.referenceEncode(Array(message.utf8))
        let handMade = input + "." + Self.referenceEncode(Array(try privateKey.signature(for: Array(input.utf8))))
        #expect(try JWS.sign(payload: message, kid: "rfc", privateKey: privateKey, issuedAt: Date(timeIntervalSince1970: 1_764_590_400.9)) == handMade)
        #expect(try JWS.parse(Array(handMade.utf8)).get().issuedAt == 1_764_590_400)
        let trust = Trust(principals: ["rfc": Principal(id: "rfc", key: VerifyingKey(publicKey), roles: [.reader])])
        let admitted = trust.admit(Array(handMade.utf8))
        #expect(admitted.refusal == nil)
        #expect(admitted.principal?.id == "rfc")
        #expect(admitted.message == Array(message.utf8))
    }

    @Test("admit refuses unsigned, malformed, unknown-kid, tampered and other-key messages; passes all through without principals")
    func admission() throws {
        let fixture = try TrustFixture.standard()
        defer { fixture.remove() }
        let trust = try Trust.load(path: fixture.path)
        #expect(trust.enforcing)
        let message = #"{"kind":"get_plan","plan_id":"p-1","reply_to":"r"}"#
        let signed = try fixture.sign(message, as: "reader-1")
        let ok = trust.admit(Array(signed.utf8))
        #expect(ok.refusal == nil && ok.principal?.id == "reader-1" && ok.message == Array(message.utf8))
        #expect(trust.admit(Array((signed + "\n").utf8)).refusal == nil, "a trailing newline from a shell is fine")

        func refusal(_ raw: String) -> String? {
            let admission = trust.admit(Array(raw.utf8))
            #expect(admission.principal == nil)
            if let failure = admission.refusal {
                #expect(failure.code == .forbidden)
                #expect(failure.isDeadLetter)
            }
            return admission.refusal?.message
        }
        #expect(refusal(message)?.contains("not a signed message") == true)
        #expect(refusal("approve a-1 alice@example.com")?.contains("not a signed message") == true)
        let parts = signed.split(separator: ".").map(String.init)
        // The payload changed after signing (declared risk lowered, say).
        let tampered = parts[0] + "." + Base64URL.encode(Array(message.replacingOccurrences(of: "p-1", with: "p-2").utf8)) + "." + parts[2]
        #expect(refusal(tampered)?.contains("does not verify") == true)
        // Signed by one principal, claiming to be another.
        let otherKey = try fixture.sign(message, as: "alice@example.com").split(separator: ".").map(String.init)
        #expect(refusal(parts[0] + "." + parts[1] + "." + otherKey[2])?.contains("does not verify") == true)
        // A key nobody listed.
        let stranger = try JWS.sign(payload: message, kid: "mallory", privateKey: Curve25519.Signing.PrivateKey())
        #expect(refusal(stranger)?.contains("not a principal") == true)
        let forgedKid = try JWS.sign(payload: message, kid: "reader-1", privateKey: Curve25519.Signing.PrivateKey())
        #expect(refusal(forgedKid)?.contains("does not verify") == true)
        // Header and shape.
        let none = Self.referenceEncode(Array(#"{"alg":"none","kid":"reader-1"}"#.utf8))
        #expect(refusal(none + "." + parts[1] + ".")?.contains("alg \"none\"") == true)
        let crit = Self.referenceEncode(Array(#"{"alg":"EdDSA","kid":"reader-1","crit":["b64"],"b64":false}"#.utf8))
        #expect(refusal(crit + "." + parts[1] + "." + parts[2])?.contains("crit") == true)
        #expect(refusal(parts[0] + "." + parts[1])?.contains("not a signed message") == true)
        #expect(refusal(signed + ".x")?.contains("not a signed message") == true)
        #expect(refusal(parts[0] + "." + parts[1] + "." + parts[2] + "==")?.contains("signature") == true)
        #expect(refusal(parts[0] + "." + parts[1] + "." + String(parts[2].dropLast(4)))?.contains("signature") == true)

        // Without principals nothing is verified and the message is the raw bytes.
        let open = Trust.none.admit(Array(message.utf8))
        #expect(open.refusal == nil && open.principal == nil && open.message == Array(message.utf8))
    }

    @Test("v3 iat: read from the header as whole seconds; refused when missing, over --signature-max-age old or over 60 s ahead")
    func issuedAt() throws {
        let fixture = try TrustFixture.standard()
        defer { fixture.remove() }
        let trust = try Trust.load(path: fixture.path)
        let message = #"{"kind":"get_plan","plan_id":"p-1"}"#
        let signed = try fixture.sign(message, as: "reader-1", issuedAt: 1_000_000)
        let admitted = trust.admit(Array(signed.utf8))
        #expect(admitted.refusal == nil && admitted.issuedAt == 1_000_000)
        #expect(admitted.signatureDigest?.count == 64)
        #expect(trust.admit(Array((signed + "\n").utf8)).signatureDigest == admitted.signatureDigest, "the digest is of the signature, not of the bytes around it")
        let reader = admitted.principal
        let now = Date(timeIntervalSince1970: 1_000_000.5)
        #expect(trust.refusal(signedAt: 1_000_000, by: reader, now: now, maxAge: 300) == nil)
        #expect(trust.refusal(signedAt: 1_000_000 - 300, by: reader, now: now, maxAge: 300) == nil)
        #expect(trust.refusal(signedAt: 1_000_000 - 301, by: reader, now: now, maxAge: 300)?.message.contains("signature expired") == true)
        #expect(trust.refusal(signedAt: 1_000_060, by: reader, now: now, maxAge: 300) == nil)
        #expect(trust.refusal(signedAt: 1_000_061, by: reader, now: now, maxAge: 300)?.code == .forbidden)
        #expect(trust.refusal(signedAt: nil, by: reader, now: now, maxAge: 300)?.message.contains("no iat") == true)
        #expect(Trust.none.refusal(signedAt: nil, by: nil, now: now, maxAge: 300) == nil, "without principals nothing is checked")
        #expect(Trust.seenTTL(maxAge: 300) > 300 + 60, "a seen signature outlives every moment it could still be accepted")

        let parts = signed.split(separator: ".").map(String.init)
        for bad in ["1.5", "\"1000000\"", "true", "1e400"] {
            let header = Self.referenceEncode(Array(#"{"alg":"EdDSA","kid":"reader-1","iat":\#(bad)}"#.utf8))
            let failure = JWS.parse(Array((header + "." + parts[1] + "." + parts[2]).utf8)).failureValue
            #expect(failure.map { "\($0)" }?.contains("iat") == true, "iat \(bad): \(String(describing: failure))")
        }
    }

    @Test("section 10's rules: role, kid = agent_id / user_id, customers, actions, the step's own agent")
    func rules() throws {
        let fixture = try TrustFixture([
            .init(id: "agent-a", roles: ["agent"], customers: ["cust-1"], actions: ["scale_down"]),
            .init(id: "agent-star", roles: ["agent"], customers: ["*"], actions: ["*"]),
            .init(id: "agent-none", roles: ["agent"]),
            .init(id: "alice", roles: ["approver"]),
            .init(id: "reader", roles: ["reader"]),
        ])
        defer { fixture.remove() }
        let trust = try Trust.load(path: fixture.path)
        let p = trust.principals
        func request(_ agent: String, customer: String = "cust-1", action: String = "scale_down") -> CoordinationRequest {
            CoordinationRequest(customerID: customer, recommendations: [
                Recommendation(id: "r1", agentID: agent, customerID: customer, action: action),
            ])
        }
        #expect(trust.refusal(coordinate: request("agent-a"), by: p["agent-a"]) == nil)
        #expect(trust.refusal(coordinate: request("agent-b"), by: p["agent-a"])?.message.contains("recommendations[0].agent_id") == true)
        #expect(trust.refusal(coordinate: request("agent-a", customer: "cust-2"), by: p["agent-a"])?.message.contains("cust-2") == true)
        #expect(trust.refusal(coordinate: request("agent-a", action: "drop_database"), by: p["agent-a"])?.message.contains("drop_database") == true)
        #expect(trust.refusal(coordinate: request("agent-star", customer: "any", action: "anything"), by: p["agent-star"]) == nil)
        #expect(trust.refusal(coordinate: request("agent-none"), by: p["agent-none"]) != nil, "an absent list allows none")
        #expect(trust.refusal(coordinate: request("alice"), by: p["alice"])?.message.contains("lacks the agent role") == true)

        let decision = ApprovalDecisionMessage(approvalID: "a1", decision: ApprovalDecision(kind: .approve, userID: "alice"))
        let json = Array(#"{"approval_id":"a1","decision":"approve","user_id":"alice"}"#.utf8)
        #expect(trust.refusal(decision: decision, in: json, by: p["alice"]) == nil)
        #expect(trust.refusal(decision: decision, in: Array("approve a1 alice".utf8), by: p["alice"])?.message.contains("plain-text") == true)
        var bob = decision
        bob.decision.userID = "bob"
        #expect(trust.refusal(decision: bob, in: json, by: p["alice"])?.message.contains("user_id") == true)
        #expect(trust.refusal(decision: decision, in: json, by: p["agent-a"])?.message.contains("approver") == true)

        #expect(trust.refusal(stepResultBy: p["agent-a"], stepAgent: "agent-a") == nil)
        #expect(trust.refusal(stepResultBy: p["agent-star"], stepAgent: "agent-a") != nil, "any other agent is refused")
        #expect(trust.refusal(stepResultBy: p["alice"]) != nil)

        let plan = Array(#"{"id":"p1","customer_id":"cust-1","status":"pending"}"#.utf8)
        let otherPlan = Array(#"{"id":"p2","customer_id":"cust-9","status":"pending"}"#.utf8)
        for kind in [Envelope.Kind.executePlan, .getPlan] {
            #expect(trust.refusal(kind, customer: "", by: p["agent-a"]) == nil)
            #expect(trust.refusal(kind, stored: plan, by: p["agent-a"]) == nil)
            #expect(trust.refusal(kind, stored: otherPlan, by: p["agent-a"]) != nil)
            #expect(trust.refusal(kind, stored: otherPlan, by: p["alice"]) == nil)
        }
        #expect(trust.refusal(.executePlan, customer: "", by: p["reader"]) != nil, "a reader may not start plans")
        #expect(trust.refusal(.getPlan, stored: otherPlan, by: p["reader"]) == nil)
        #expect(trust.refusal(.listApprovals, customer: "cust-1", by: p["agent-a"]) == nil)
        #expect(trust.refusal(.listApprovals, customer: "cust-2", by: p["agent-a"]) != nil)
        #expect(trust.refusal(.listApprovals, customer: "cust-2", by: p["reader"]) == nil)
    }

    @Test("a bad trust file is a clear error naming the field")
    func trustFileErrors() throws {
        let key = Curve25519.Signing.PrivateKey().publicKey.rawRepresentation.base64EncodedString()
        func error(_ json: String) -> String? {
            do {
                _ = try Trust.parse(Array(json.utf8))
                return nil
            } catch {
                return error.description
            }
        }
        #expect(error(#"{"principals":{"a":{"public_key":"\#(key)","roles":["agent"]}}}"#) == nil)
        #expect(error("not json")?.contains("not a JSON object") == true)
        #expect(error(#"{"principal":{}}"#)?.contains("principal: unknown field") == true)
        #expect(error(#"{"principals":{"a":{"public_key":"AAAA","roles":["agent"]}}}"#)?.contains("principals.a.public_key") == true)
        #expect(error(#"{"principals":{"a":{"public_key":"\#(key)","roles":["admin"]}}}"#)?.contains("principals.a.roles[0]") == true)
        #expect(error(#"{"principals":{"a":{"public_key":"\#(key)","roles":["agent"],"customer":["x"]}}}"#)?.contains("principals.a.customer") == true)
        #expect(error(#"{"principals":{"a b":{"public_key":"\#(key)","roles":["agent"]}}}"#)?.contains("principals.a b") == true)
        #expect(error(#"{"risk_floor":{"drop_database":"extreme"}}"#)?.contains("risk_floor.drop_database") == true)
        let floorOnly = try Trust.parse(Array(#"{"risk_floor":{"drop_database":"critical"}}"#.utf8))
        #expect(!floorOnly.enforcing)
        #expect(floorOnly.riskFloor.floors == ["drop_database": .critical])
    }

    @Test("risk_floor raises a declared level below the floor and records it; never lowers")
    func riskFloor() {
        let floor = RiskFloor(["drop_database": .critical, "migrate_database": .high])
        var request = CoordinationRequest(customerID: "c", recommendations: [
            Recommendation(id: "a", agentID: "x", action: "drop_database", riskLevel: .low),
            Recommendation(id: "b", agentID: "x", action: "migrate_database", riskLevel: .critical),
            Recommendation(id: "c", agentID: "x", action: "scale_down", riskLevel: .low),
        ])
        floor.apply(to: &request)
        #expect(request.recommendations.map(\.riskLevel) == [.critical, .critical, .low])
        #expect(request.recommendations[0].metadata["declared_risk_level"] == .string("low"))
        #expect(request.recommendations[1].metadata["declared_risk_level"] == nil)
        #expect(request.recommendations[2].metadata["declared_risk_level"] == nil)
    }

    @Test("the key file: written 0600, never over an existing one, read back to the same key")
    func keyFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("key-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let key = try SigningKeyFile.generate(path: path)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect(try SigningKeyFile.load(path: path).rawRepresentation == key.rawRepresentation)
        #expect(throws: SigningKeyFile.LoadError.self) { _ = try SigningKeyFile.generate(path: path) }
        let entry = SigningKeyFile.trustEntry(id: "alice", key: key, roles: ["approver"])
        let trust = try Trust.parse(Array("{\"principals\":{\(entry)}}".utf8))
        #expect(trust.principals["alice"]?.key.publicKey.rawRepresentation == key.publicKey.rawRepresentation)
        #expect(trust.principals["alice"]?.roles == [.approver])
    }
}

extension Result {
    var failureValue: Failure? {
        if case .failure(let failure) = self { return failure }
        return nil
    }
}
