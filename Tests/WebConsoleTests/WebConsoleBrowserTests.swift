import Crypto
import Foundation
import Operations
import Testing
import TestSupport
import TestTraits
@testable import CoordinatorDaemon

/// The console in a real headless Chromium (Debian's chromium and chromium-driver, driven by
/// Selenium in `Browser/console_test.py`) against the built daemon under `--trust`, the built
/// console and a real redis-server: signing in the browser with an imported key, a wrong key,
/// approving by click to a completed plan, a reject without reason, hostile text, the live
/// event tail across a restart of the console; then, on a console with `--allow-unsigned`, dead
/// letters shown escaped, a POST without the CSRF token refused, requeue and purge after their
/// confirmation. It also takes a screenshot (the README's, with `COORD_SCREENSHOT=docs/web-console.png`).
@Suite(.sharesMachine)
struct WebConsoleBrowserTests {
    static let sourceRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func sign(_ message: String, kid: String, key: Curve25519.Signing.PrivateKey) throws -> String {
        try JWS.sign(payload: message, kid: kid, privateKey: key)
    }

    static func writeKey(_ key: Curve25519.Signing.PrivateKey, to url: URL) throws {
        try Data((key.rawRepresentation.base64EncodedString() + "\n").utf8).write(to: url)
        chmod(url.path, 0o600)
    }

    @Test func approvingSigningHostileTextAndTheLiveTailInChromium() throws {
        for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            try #require(FileManager.default.isExecutableFile(atPath: tool), "\(tool) is missing: run scripts/test.sh, which installs it")
        }
        let env = try WebEnvironment()
        defer { env.stop() }
        let agent = Curve25519.Signing.PrivateKey(), alice = Curve25519.Signing.PrivateKey(), wrong = Curve25519.Signing.PrivateKey()
        let trust: [String: Any] = ["principals": [
            "cost-agent-1": ["public_key": agent.publicKey.rawRepresentation.base64EncodedString(), "roles": ["agent"], "customers": ["*"], "actions": ["*"]],
            "alice@example.com": ["public_key": alice.publicKey.rawRepresentation.base64EncodedString(), "roles": ["approver"]],
        ]]
        let trustFile = env.directory.appendingPathComponent("trust.json")
        try JSONSerialization.data(withJSONObject: trust).write(to: trustFile)
        let aliceKey = env.directory.appendingPathComponent("alice.key"), wrongKey = env.directory.appendingPathComponent("wrong.key")
        try Self.writeKey(alice, to: aliceKey)
        try Self.writeKey(wrong, to: wrongKey)
        try env.startDaemon(["--trust", trustFile.path])

        let request = try WebEnvironment.coordinate(customer: "cust-web", autoApprove: false, [
            ("rec-approve", "Move batch fleet to spot", "migrate_to_spot", "high"),
            ("rec-reject", "Scale down the API tier", "scale_down", "high"),
            ("rec-hostile", WebConsoleHTTPTests.hostileTitle, "resize_disk", "high"),
        ])
        try env.connection.send("LPUSH", "coord:requests", Self.sign(request, kid: "cost-agent-1", key: agent)).checkNoError()
        let ids = try env.pendingApprovals(customer: "cust-web", count: 3)
        var byRecommendation: [String: String] = [:]
        for id in ids {
            let approval = try #require(jsonObject(try env.connection.send("GET", "coord:approval:{\(id)}").bytes))
            byRecommendation[try #require(approval["recommendation_id"] as? String)] = id
        }
        // Two more requests the script pushes itself (while the tail is open, and while the console is down).
        let live = env.directory.appendingPathComponent("live.jws"), restart = env.directory.appendingPathComponent("restart.jws")
        try Data(Self.sign(try WebEnvironment.coordinate(customer: "cust-live", autoApprove: true, [("rec-live", "Scale down", "scale_down", "low")]),
                           kid: "cost-agent-1", key: agent).utf8).write(to: live)
        try Data(Self.sign(try WebEnvironment.coordinate(customer: "cust-restart", autoApprove: true, [("rec-restart", "Scale down", "scale_down", "low")]),
                           kid: "cost-agent-1", key: agent).utf8).write(to: restart)

        // Messages a daemon under --trust dead-letters unanswered (unsigned): not UTF-8 (kept as
        // raw_base64) and with terminal escapes and markup (kept as raw).
        try env.connection.send("LPUSH", "coord:requests", [0xFF, 0xFE, 0x07] + Array("bell\u{1B}[31m".utf8)).checkNoError()
        try env.connection.send("LPUSH", "coord:requests", "{\"kind\": \u{1B}[2J <b>bold</b>").checkNoError()
        try waitUntil(timeout: 10, "two dead letters") { (try env.connection.send("LLEN", "coord:dead").integer ?? 0) == 2 }

        // Held for the whole test (the consoles bind them with SO_REUSEADDR, restarts included):
        // no server of a test running in parallel can take them meanwhile.
        let ports = (try PortReservation(forListener: true), try PortReservation(forListener: true))
        defer {
            ports.0.release()
            ports.1.release()
        }
        let webPort = ports.0.port, unsignedPort = ports.1.port
        // The README's screenshot is taken anew only when asked (COORD_SCREENSHOT=path): a test
        // run leaves the source tree as it found it.
        let screenshot = ProcessInfo.processInfo.environment["COORD_SCREENSHOT"].map { URL(fileURLWithPath: $0) }
            ?? env.directory.appendingPathComponent("web-console.png")
        let script = Self.sourceRoot.appendingPathComponent("Tests/WebConsoleTests/Browser/console_test.py")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [script.path, "--binary", WebEnvironment.binary.path, "--redis-url", env.redis.url, "--trust", trustFile.path,
                             "--port", "\(webPort)", "--alice-key", aliceKey.path, "--wrong-key", wrongKey.path,
                             "--approve-id", try #require(byRecommendation["rec-approve"]), "--reject-id", try #require(byRecommendation["rec-reject"]),
                             "--hostile-id", try #require(byRecommendation["rec-hostile"]), "--live-request", live.path,
                             "--restart-request", restart.path, "--screenshot", screenshot.path,
                             "--log", env.directory.appendingPathComponent("web.log").path,
                             "--unsigned-port", "\(unsignedPort)", "--dead-seeded", "2"]
        process.environment = ChildProcess.environment()
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        let deadline = try ChildProcess.run(process, deadline: 75)
        let data = output.fileHandleForReading.readDataToEndOfFile()
        try? deadline.wait()
        let printed = String(decoding: data, as: UTF8.self)
        print(printed)
        #expect(process.terminationStatus == 0, "browser script failed:\n\(printed)\n--- console log:\n\(env.log("web.log").suffix(3000))")
        #expect(printed.contains("all browser checks passed"))

        // What the daemon recorded: the decision made in the browser was verified as alice's.
        let events = (try env.connection.send("XRANGE", "coord:events:stream", "-", "+").array ?? []).compactMap {
            $0.array?.last?.array?.last?.bytes.flatMap(jsonObject)
        }
        let approveID = try #require(byRecommendation["rec-approve"])
        let approved = try #require(events.first { $0["type"] as? String == "approval.approved" && $0["approval_id"] as? String == approveID })
        let data2 = try #require(approved["data"] as? [String: Any], "\(approved)")
        #expect(data2["verified"] as? Bool == true && data2["principal"] as? String == "alice@example.com", "\(approved)")
        #expect(events.contains { $0["type"] as? String == "plan.completed" && $0["recommendation_id"] as? String == "rec-approve" })
        // The reject without reason was never sent (the script checked the wrong key never
        // reached Redis, and purged the dead letters after requeueing one).
        #expect(try env.connection.send("LLEN", "coord:dead").integer == 0)
        let rejectID = try #require(byRecommendation["rec-reject"])
        let rejected = try #require(jsonObject(try env.connection.send("GET", "coord:approval:{\(rejectID)}").bytes))
        #expect(rejected["status"] as? String == "pending")
    }
}
