import CoordinatorDaemon
import Crypto
import Foundation
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    /// `--key` and a private key file anyone could read: as ssh does, the built binary refuses
    /// one its group or others can access, naming the file and its mode, before anything is
    /// sent.
    @Suite("--key refuses a key file others can read (attack 11)", .sharesMachine)
    struct KeyFileModeTests {
        @Test("approve and agent --key refuse a 0644 or 0640 key file, naming it and its mode; 0600 and 0400 are used")
        func keyFileMode() throws {
            let h = try Harness()
            let cli = CLI(redisURL: h.server.url)
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keymode-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let keyFile = directory.appendingPathComponent("alice.key").path
            let seed = Curve25519.Signing.PrivateKey().rawRepresentation.base64EncodedString() + "\n"
            try seed.write(toFile: keyFile, atomically: false, encoding: .utf8)
            let approval = UUID().uuidString.lowercased()

            for mode in [0o644, 0o640, 0o604, 0o660] {
                try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: keyFile)
                let shownMode = "0" + String(mode, radix: 8)
                let refused = try cli.run(["approve", approval, "--user", "alice@example.com", "--key", keyFile, "--timeout", "1"])
                #expect(refused.status == 1, "\(refused)")
                #expect(refused.err.contains("key file \(keyFile)"), "\(refused)")
                #expect(refused.err.contains(shownMode), "mode \(shownMode) not named: \(refused)")
                #expect(refused.err.contains("too open"), "\(refused)")
                // Refused before anything was pushed.
                #expect(try h.length(h.keys.approvals) == 0)

                let agent = try cli.run(["agent", "--id", "cost-agent-1", "--key", keyFile], timeout: 10)
                #expect(agent.status != 0, "\(agent)")
                #expect(agent.err.contains("key file \(keyFile)") && agent.err.contains(shownMode), "\(agent)")
            }

            for mode in [0o600, 0o400] {
                try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: keyFile)
                // Signed and pushed; no daemon runs, so no answer comes.
                let signed = try cli.run(["approve", approval, "--user", "alice@example.com", "--key", keyFile, "--timeout", "1"])
                #expect(signed.status == 1, "\(signed)")
                #expect(signed.err.contains("no answer within 1 s"), "\(signed)")
                let pushed = try #require(try h.redis.send("RPOP", h.keys.approvals).bytes)
                #expect(String(decoding: pushed, as: UTF8.self).split(separator: ".").count == 3, "not a compact JWS")
            }
        }

        @Test("keys generate writes its key 0600, and --key uses it")
        func generatedKeyIsUsable() throws {
            let h = try Harness()
            let cli = CLI(redisURL: h.server.url)
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keygen-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let keyFile = directory.appendingPathComponent("alice.key").path
            let generated = try cli.run(["keys", "generate", "--id", "alice@example.com", "--out", keyFile])
            #expect(generated.status == 0, "\(generated)")
            let mode = try FileManager.default.attributesOfItem(atPath: keyFile)[.posixPermissions] as? NSNumber
            #expect(mode?.intValue == 0o600)
            let signed = try cli.run(["approve", UUID().uuidString.lowercased(), "--user", "alice@example.com", "--key", keyFile, "--timeout", "1"])
            #expect(signed.err.contains("no answer within 1 s"), "\(signed)")
        }
    }
}
