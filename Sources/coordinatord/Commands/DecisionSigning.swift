import CoordinatorDaemon

/// `--key FILE` (PROTOCOL.md section 10): a decision is sent as its JSON, or, with a key, as a
/// JWS (EdDSA) over exactly that JSON with `kid` = the deciding user, which a daemon under
/// `--trust` checks against the user's public key.
enum DecisionSigning {
    static func message(_ json: [UInt8], keyFile: String?, principal: String) throws -> [UInt8] {
        guard let keyFile else { return json }
        do {
            return try JWS.sign(payload: json, kid: principal, privateKey: SigningKeyFile.load(path: keyFile))
        } catch {
            throw CommandFailure("--key: \(error)")
        }
    }
}
