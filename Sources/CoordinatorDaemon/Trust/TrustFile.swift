import Coordination
import Foundation

/// Why a trust file cannot be used; the daemon does not start with one (PROTOCOL.md section 10).
public struct TrustFileError: Error, Sendable, CustomStringConvertible {
    public var file: String
    /// JSON path of the offending field (`principals.alice.public_key`), empty for the whole file.
    public var path: String
    public var message: String

    public var description: String {
        "trust file \(file): " + (path.isEmpty ? message : "\(path): \(message)")
    }
}

/// Reads the trust file:
/// ```json
/// {"principals": {"<id>": {"public_key": "<base64 of 32 bytes>", "roles": ["agent"],
///                          "customers": ["cust-1"], "actions": ["*"]}},
///  "risk_floor": {"drop_database": "critical"}}
/// ```
/// Strict on purpose: an unknown field or role is a typo that would otherwise silently grant
/// or withhold something.
enum TrustFile {
    static func load(path: String) throws(TrustFileError) -> Trust {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw TrustFileError(file: path, path: "", message: "cannot be read (\(error.localizedDescription))")
        }
        return try parse(Array(data), file: path)
    }

    static func parse(_ bytes: [UInt8], file: String = "<inline>") throws(TrustFileError) -> Trust {
        func fail(_ path: String, _ message: String) -> TrustFileError {
            TrustFileError(file: file, path: path, message: message)
        }
        let object = try tree(bytes, fail)
        for key in object.keys where key != "principals" && key != "risk_floor" {
            throw fail(key, "unknown field (expected principals, risk_floor)")
        }
        var principals: [String: Principal] = [:]
        if let value = object["principals"] {
            guard case .object(let entries) = value else { throw fail("principals", "must be an object of principal id to principal") }
            for (id, entry) in entries.sorted(by: { $0.key < $1.key }) {
                principals[id] = try principal(id, entry, fail)
            }
        }
        var floor: [String: RiskLevel] = [:]
        if let value = object["risk_floor"] {
            guard case .object(let entries) = value else { throw fail("risk_floor", "must be an object of action to risk level") }
            for (action, level) in entries {
                guard case .string(let name) = level, let risk = RiskLevel(rawValue: name) else {
                    throw fail("risk_floor.\(action)", "must be one of low, medium, high, critical")
                }
                floor[action] = risk
            }
        }
        return Trust(principals: principals, riskFloor: RiskFloor(floor))
    }

    private static func principal(_ id: String, _ entry: JSONValue, _ fail: (String, String) -> TrustFileError) throws(TrustFileError) -> Principal {
        let at = "principals.\(id)"
        guard isPrincipalID(id) else {
            throw fail(at, "a principal id is 1-128 bytes of A-Z a-z 0-9 @ . _ + - (no ':', so that one principal's reply namespace and Redis key pattern never cover another's)")
        }
        guard case .object(let fields) = entry else { throw fail(at, "must be an object") }
        for key in fields.keys where !["public_key", "roles", "customers", "actions"].contains(key) {
            throw fail("\(at).\(key)", "unknown field (expected public_key, roles, customers, actions)")
        }
        guard case .string(let text)? = fields["public_key"] else { throw fail("\(at).public_key", "required (base64 of the 32-byte Ed25519 public key)") }
        guard let raw = decodeKey(text), raw.count == 32, let key = try? VerifyingKey(rawRepresentation: raw) else {
            throw fail("\(at).public_key", "must be base64 of exactly 32 bytes (an Ed25519 public key)")
        }
        guard let roleNames = strings(fields["roles"]) else {
            throw fail("\(at).roles", "required: a list of agent, approver, reader")
        }
        var roles: Set<Principal.Role> = []
        for (index, name) in roleNames.enumerated() {
            guard let role = Principal.Role(rawValue: name) else {
                throw fail("\(at).roles[\(index)]", "unknown role \"\(name)\" (agent, approver, reader)")
            }
            roles.insert(role)
        }
        return Principal(id: id, key: key, roles: roles,
                         customers: try allowance(fields["customers"], "\(at).customers", fail),
                         actions: try allowance(fields["actions"], "\(at).actions", fail))
    }

    private static func allowance(_ value: JSONValue?, _ path: String, _ fail: (String, String) -> TrustFileError) throws(TrustFileError) -> Principal.Allowance {
        guard let value else { return .only([]) }
        guard let list = strings(value) else { throw fail(path, "must be a list of strings (\"*\" allows all)") }
        return list.contains("*") ? .all : .only(Set(list))
    }

    /// The file as a tree, read with `JSONLexer` (strict; any member name, each at most once
    /// per object: a principal listed twice is a mistake to show, not to settle silently).
    private static func tree(_ bytes: [UInt8], _ fail: (String, String) -> TrustFileError) throws(TrustFileError) -> [String: JSONValue] {
        let read: Result<[String: JSONValue], JSONLexer.Malformed>? = bytes.withUnsafeBufferPointer { buffer in
            var lexer = JSONLexer(buffer, strict: true)
            lexer.skipSpace()
            guard lexer.next == UInt8(ascii: "{") else { return nil }
            do throws(JSONLexer.Malformed) {
                let object = try lexer.object(maxDepth: maxDepth, anyNames: true)
                lexer.skipSpace()
                guard lexer.atEnd else { throw lexer.fail("unexpected data after the JSON object") }
                return .success(object)
            } catch {
                return .failure(error)
            }
        }
        switch read {
        case nil: throw fail("", "not a JSON object")
        case .failure(let malformed)?: throw fail("", "not a JSON object: \(malformed.message)")
        case .success(let object)?: return object
        }
    }

    /// Containers in a trust file nest at most this deep (it needs 3).
    private static let maxDepth = 32

    /// A list of strings, or nil.
    private static func strings(_ value: JSONValue?) -> [String]? {
        guard case .array(let items)? = value else { return nil }
        var out: [String] = []
        for item in items {
            guard case .string(let text) = item else { return nil }
            out.append(text)
        }
        return out
    }

    /// Standard base64 (what `coordinatord keys generate` prints), or base64url as in a JWK.
    static func decodeKey(_ text: String) -> [UInt8]? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let data = Data(base64Encoded: trimmed) { return Array(data) }
        return Base64URL.decode(String(trimmed.reversed().drop(while: { $0 == "=" }).reversed()))
    }

    /// PROTOCOL.md section 10: 1-128 bytes of `[A-Za-z0-9@._+-]`. A principal's reply
    /// namespace is `P<id>:` and its Redis user reads `P<id>:*`: without `:` (or a glob
    /// character) in ids, no principal's pattern covers another's. Such ids also follow the
    /// identifier rules of 2.5, since they are compared with `agent_id` and `user_id`.
    static func isPrincipalID(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        return (1...128).contains(bytes.count) && bytes.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || Array("@._+-".utf8).contains(byte)
        }
    }
}
