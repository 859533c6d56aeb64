import ArgumentParser
import Crypto
import CoordinatorDaemon
import Foundation

/// What checking a signed message costs next to the Ed25519 verification inside it: the
/// daemon's whole check (split, base64url, header, principal look-up, verify) against one bare
/// `Curve25519.Signing.PublicKey.isValidSignature` over the same signing input, in the same run.
struct TrustBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trust",
        abstract: "Cost of verifying a signed message vs one bare Ed25519 verification; one JSON line per size.")

    @Option(help: "Verifications per timed block.") var iterations: Int = 2000
    @Option(help: "Timed blocks of each kind, interleaved; the median is reported.") var rounds: Int = 9
    @Option(help: "Payload sizes in bytes, comma-separated.") var sizes: String = "400,4000,64000"
    @Option(help: "Principals in the trust file (the look-up's table size).") var principals: Int = 1000

    func run() throws {
        // A trust file with many principals, as a large deployment's would be.
        var entries: [String] = []
        let key = Curve25519.Signing.PrivateKey()
        for index in 0..<principals {
            let publicKey = index == principals / 2 ? key.publicKey : Curve25519.Signing.PrivateKey().publicKey
            entries.append(#""agent-\#(index)":{"public_key":"\#(publicKey.rawRepresentation.base64EncodedString())","roles":["agent"],"customers":["*"],"actions":["*"]}"#)
        }
        let trust = try Trust.parse(Array(#"{"principals":{\#(entries.joined(separator: ","))}}"#.utf8))
        let kid = "agent-\(principals / 2)"

        for size in sizes.split(separator: ",").compactMap({ Int($0) }) {
            let payload = Self.request(bytes: size)
            let raw = try JWS.sign(payload: payload, kid: kid, privateKey: key)
            let parts = raw.split(separator: UInt8(ascii: "."))
            let signingInput = Array(raw[0..<(parts[0].count + 1 + parts[1].count)])
            let signature = Base64URL.decode(parts[2])!
            let publicKey = key.publicKey
            guard publicKey.isValidSignature(signature, for: signingInput), trust.verified(raw)?.message == payload else {
                throw ValidationError("the signed message does not verify")
            }

            var bare: [Double] = [], full: [Double] = []
            var sink = 0
            for _ in 0..<rounds {
                bare.append(Self.time(iterations) { if publicKey.isValidSignature(signature, for: signingInput) { sink += 1 } })
                full.append(Self.time(iterations) { if let verified = trust.verified(raw) { sink += verified.message.count & 1 } })
            }
            let bareMedian = Self.median(bare), fullMedian = Self.median(full)
            emit(String(format: #"{"case":"verify","payload_bytes":%d,"message_bytes":%d,"principals":%d,"iterations":%d,"rounds":%d,"bare_verify_us":%.2f,"daemon_check_us":%.2f,"ratio":%.3f,"sink":%d}"#,
                        payload.count, raw.count, principals, iterations, rounds, bareMedian, fullMedian, fullMedian / bareMedian, sink & 1))
        }
    }

    /// Microseconds per call of `body`, over `count` calls.
    private static func time(_ count: Int, _ body: () -> Void) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<count { body() }
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1000 / Double(count)
    }

    private static func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

    /// A `coordinate` request of about `bytes` bytes: as many small recommendations as fit.
    private static func request(bytes: Int) -> [UInt8] {
        var recs: [String] = []
        var length = 120
        repeat {
            let rec = #"{"id":"r\#(recs.count)","agent_id":"agent-x","type":"cost","action":"scale_up","risk_level":"low","estimated_savings":10,"affected_resources":["i-\#(recs.count)"],"priority":1,"confidence":0.9}"#
            recs.append(rec)
            length += rec.utf8.count + 1
        } while length < bytes
        return Array(#"{"kind":"coordinate","request_id":"bench","reply_to":"bench:replies","customer_id":"c","recommendations":[\#(recs.joined(separator: ","))]}"#.utf8)
    }
}

/// The `e2e` case `coordinate-signed`: one agent principal allowed everything, the trust file
/// its daemons run with, and its signature on each message (made before the timed part).
final class BenchSigner: @unchecked Sendable {
    static let agent = "bench-agent"
    private let key = Curve25519.Signing.PrivateKey()
    let trustFile: String

    init() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bench-trust-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        trustFile = directory.appendingPathComponent("trust.json").path
        let entry = #"{"principals":{"\#(Self.agent)":{"public_key":"\#(key.publicKey.rawRepresentation.base64EncodedString())","roles":["agent"],"customers":["*"],"actions":["*"]}}}"#
        try Data(entry.utf8).write(to: URL(fileURLWithPath: trustFile))
    }

    deinit { try? FileManager.default.removeItem(atPath: (trustFile as NSString).deletingLastPathComponent) }

    func sign(_ message: String) throws -> String {
        try JWS.sign(payload: message, kid: Self.agent, privateKey: key)
    }
}
