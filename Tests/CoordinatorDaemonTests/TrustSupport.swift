import Crypto
import Foundation
@testable import CoordinatorDaemon

/// Principals with fresh keys, the trust file naming them, and signing as each of them.
struct TrustFixture {
    struct Entry {
        var id: String
        var roles: [String]
        var customers: [String]?
        var actions: [String]?
    }

    let directory: URL
    let path: String
    private(set) var keys: [String: Curve25519.Signing.PrivateKey] = [:]

    init(_ entries: [Entry], riskFloor: [String: String]? = nil) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("trust-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("trust.json").path
        var principals: [String: Any] = [:]
        for entry in entries {
            let key = Curve25519.Signing.PrivateKey()
            keys[entry.id] = key
            var object: [String: Any] = ["public_key": key.publicKey.rawRepresentation.base64EncodedString(), "roles": entry.roles]
            if let customers = entry.customers { object["customers"] = customers }
            if let actions = entry.actions { object["actions"] = actions }
            principals[entry.id] = object
        }
        var file: [String: Any] = [:]
        if !principals.isEmpty { file["principals"] = principals }
        if let riskFloor { file["risk_floor"] = riskFloor }
        try JSONSerialization.data(withJSONObject: file, options: [.sortedKeys]).write(to: URL(fileURLWithPath: path))
    }

    /// The usual cast: two agents of cust-1, three approvers, a reader.
    static func standard(riskFloor: [String: String]? = nil) throws -> TrustFixture {
        try TrustFixture([
            Entry(id: "cost-agent-1", roles: ["agent"], customers: ["cust-1"], actions: ["*"]),
            Entry(id: "prod-db-agent", roles: ["agent"], customers: ["cust-1"], actions: ["*"]),
            Entry(id: "application-agent", roles: ["agent"], customers: ["*"], actions: ["*"]),
            Entry(id: "alice@example.com", roles: ["approver"]),
            Entry(id: "bob@example.com", roles: ["approver"]),
            Entry(id: "carol@example.com", roles: ["approver", "reader"]),
            Entry(id: "reader-1", roles: ["reader"]),
        ], riskFloor: riskFloor)
    }

    /// `message` signed by `kid`, the header carrying `iat` (PROTOCOL.md section 10, v3): now
    /// by default, `issuedAt` seconds since the epoch when given, none with `withoutIssuedAt`.
    /// Built here by hand from RFC 7515, so the tests do not lean on the daemon's own signer.
    func sign(_ message: String, as kid: String, issuedAt: Int? = nil, withoutIssuedAt: Bool = false) throws -> String {
        try Self.sign(message, kid: kid, key: keys[kid]!, issuedAt: withoutIssuedAt ? nil : issuedAt ?? Int(Date().timeIntervalSince1970))
    }

    /// A compact JWS of `message` with the header `{"alg":"EdDSA","kid":…[,"iat":…]}`, signed with `key`.
    static func sign(_ message: String, kid: String, key: Curve25519.Signing.PrivateKey, issuedAt: Int?) throws -> String {
        var header = "{\"alg\":\"EdDSA\",\"kid\":\"\(kid)\""
        if let issuedAt { header += ",\"iat\":\(issuedAt)" }
        header += "}"
        let input = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(message.utf8))
        return input + "." + Base64URL.encode(Array(try key.signature(for: Array(input.utf8))))
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}
