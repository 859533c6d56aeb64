import CoordinatorDaemon
import Foundation

/// `--key FILE` (PROTOCOL.md section 10): a decision is sent as its JSON, or, with a key, as a
/// JWS (EdDSA) over exactly that JSON with `kid` = the deciding user and `iat` = now (a
/// daemon refuses a signature older than its `--signature-max-age`), which a daemon under
/// `--trust` checks against the user's public key.
enum DecisionSigning {
    static func message(_ json: [UInt8], keyFile: String?, principal: String) throws -> [UInt8] {
        guard let keyFile else { return json }
        do {
            return try JWS.sign(payload: json, kid: principal, privateKey: SigningKeyFile.load(path: keyFile), issuedAt: Date())
        } catch {
            throw CommandFailure("--key: \(error)")
        }
    }
}
