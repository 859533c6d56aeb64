/// The seam for `--key FILE` (PROTOCOL.md section 10): a decision is sent as its JSON, or,
/// with a key, as a JWS (EdDSA) over exactly that JSON with `kid` = the deciding user.
enum DecisionSigning {
    static func message(_ json: [UInt8], keyFile: String?, principal: String) throws -> [UInt8] {
        guard let keyFile else { return json }
        // Signing arrives with the trust work (JWS.sign); until then --key cannot be honoured,
        // and sending the decision unsigned instead would be a surprise.
        throw CommandFailure("--key \(keyFile): this build cannot sign decisions yet (no JWS signer); send without --key")
    }
}
