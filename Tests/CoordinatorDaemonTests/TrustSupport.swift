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

    /// `message` signed by `kid` with the daemon's helper.
    func sign(_ message: String, as kid: String) throws -> String {
        try JWS.sign(payload: message, kid: kid, privateKey: keys[kid]!)
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}
