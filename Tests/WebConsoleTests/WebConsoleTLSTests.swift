import Crypto
import Foundation
import Testing
import TestSupport
import TestTraits

/// `coordinatord web` over HTTPS (`--tls-cert`, `--tls-key`): a self-signed certificate made by
/// `openssl` for the test, pages fetched with `curl --cacert` (which checks the chain and the
/// name), plain HTTP not served on the port, and off loopback only with TLS.
@Suite(.sharesMachine)
struct WebConsoleTLSTests {
    static func tool(_ path: String) throws {
        try #require(FileManager.default.isExecutableFile(atPath: path), "\(path) is missing: run scripts/test.sh, which installs it")
    }

    /// Runs `arguments[0]` with the rest; its standard output and error and exit status.
    static func run(_ arguments: [String], in directory: URL, timeout: Double = 30) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        process.environment = ChildProcess.environment([:])
        // A file, not a pipe: a read of a pipe interrupted by a signal traps in Foundation.
        let out = directory.appendingPathComponent("out-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: out) }
        let handle = try FileHandle(forWritingTo: out)
        process.standardOutput = handle
        process.standardError = handle
        try ChildProcess.run(process, deadline: timeout).wait()
        try handle.close()
        return (process.terminationStatus, (try? String(contentsOf: out, encoding: .utf8)) ?? "")
    }

    /// A self-signed certificate for localhost, console.test and 127.0.0.1, and its key (PEM).
    static func certificate(in directory: URL) throws -> (cert: URL, key: URL) {
        let cert = directory.appendingPathComponent("cert.pem"), key = directory.appendingPathComponent("key.pem")
        let made = try run(["/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                            "-nodes", "-keyout", key.path, "-out", cert.path, "-days", "2", "-subj", "/CN=localhost",
                            "-addext", "subjectAltName=DNS:localhost,DNS:console.test,IP:127.0.0.1"], in: directory)
        try #require(made.status == 0, "openssl: \(made.output)")
        return (cert, key)
    }

    /// `curl` over HTTPS trusting only `cert`: the status line and headers, then the body.
    static func curl(_ url: String, cert: URL, in directory: URL, extra: [String] = []) throws -> (status: Int32, output: String) {
        try run(["/usr/bin/curl", "--silent", "--show-error", "--include", "--max-time", "10", "--cacert", cert.path] + extra + [url], in: directory)
    }

    @Test func servesHTTPSWithTheGivenCertificateAndNoPlainHTTP() throws {
        try Self.tool("/usr/bin/openssl")
        try Self.tool("/usr/bin/curl")
        let env = try WebEnvironment()
        defer { env.stop() }
        let (cert, key) = try Self.certificate(in: env.directory)
        let reservation = try PortReservation()
        let port = reservation.port
        reservation.release()
        _ = try env.launch(["web", "--port", "\(port)", "--tls-cert", cert.path, "--tls-key", key.path, "--allow-unsigned"], log: "web-tls.log")
        var page: (status: Int32, output: String) = (1, "")
        try waitUntil(timeout: 15, "the console to answer over HTTPS on \(port)") {
            page = try Self.curl("https://127.0.0.1:\(port)/approvals", cert: cert, in: env.directory)
            return page.status == 0
        }
        #expect(page.output.hasPrefix("HTTP/1.1 200"), "\(page.output.prefix(300))")
        #expect(page.output.contains("<meta name=\"csrf-token\""))
        // The session cookie is only sent back over HTTPS.
        let cookie = page.output.split(separator: "\r\n").first { $0.lowercased().hasPrefix("set-cookie:") } ?? ""
        #expect(cookie.contains("; Secure") && cookie.contains("SameSite=Strict"), "\(cookie)")
        // By name too, as the certificate says.
        let byName = try Self.curl("https://localhost:\(port)/", cert: cert, in: env.directory)
        #expect(byName.status == 0 && byName.output.hasPrefix("HTTP/1.1 200"), "\(byName.output.prefix(300))")
        #expect(env.log("web-tls.log").contains("serving https://127.0.0.1:\(port)/"))

        // A client that does not trust the certificate gets no page (curl exit 60: unverified).
        let untrusted = try Self.run(["/usr/bin/curl", "--silent", "--max-time", "10", "https://127.0.0.1:\(port)/"], in: env.directory)
        #expect(untrusted.status == 60, "\(untrusted)")
        // Plain HTTP on the port is not answered with a page: no HTTP response at all.
        let plain = try? HTTP.request("GET", port: port, path: "/approvals")
        #expect(plain == nil || plain?.status != 200, "plain HTTP served: \(String(describing: plain))")
        #expect(!(plain?.body.contains("csrf-token") ?? false))
        // An origin in clear is not this console's.
        let session = try #require(page.output.firstMatch(of: /cw_session=([0-9a-f]{64})/)?.output.1)
        let token = try #require(page.output.firstMatch(of: /name="csrf-token" content="([0-9a-f]+)"/)?.output.1)
        let post = try Self.curl("https://127.0.0.1:\(port)/dead/purge", cert: cert, in: env.directory, extra: [
            "-X", "POST", "-H", "Cookie: cw_session=\(session)", "-H", "Origin: http://127.0.0.1:\(port)",
            "-H", "X-Forwarded-User: alice", "--data", "csrf=\(token)",
        ])
        #expect(post.output.hasPrefix("HTTP/1.1 403") && post.output.contains("cross-origin"), "\(post.output.prefix(300))")
    }

    @Test func offLoopbackOnlyWithTLSAndOnlyUnderItsNames() throws {
        try Self.tool("/usr/bin/openssl")
        try Self.tool("/usr/bin/curl")
        let env = try WebEnvironment()
        defer { env.stop() }
        // Plain HTTP off loopback: a usage error naming the TLS flags, nothing served.
        let refused = try Self.run([WebEnvironment.binary.path, "web", "--host", "0.0.0.0", "--port", "0"], in: env.directory)
        #expect(refused.status == 64 || refused.status == 2 || refused.status == 1, "\(refused)")
        #expect(refused.output.contains("--tls-cert"), "\(refused.output)")
        let half = try Self.run([WebEnvironment.binary.path, "web", "--tls-cert", "/nonexistent.pem"], in: env.directory)
        #expect(half.status != 0 && half.output.contains("--tls-key"), "\(half.output)")
        let (cert, key) = try Self.certificate(in: env.directory)
        let badKey = try Self.run([WebEnvironment.binary.path, "web", "--port", "0", "--tls-cert", cert.path, "--tls-key", cert.path], in: env.directory)
        #expect(badKey.status == 1 && badKey.output.contains("--tls-key"), "\(badKey.output)")

        // On every address with TLS, answering to the name people use (--server-name).
        let reservation = try PortReservation()
        let port = reservation.port
        reservation.release()
        _ = try env.launch(["web", "--host", "0.0.0.0", "--port", "\(port)", "--tls-cert", cert.path, "--tls-key", key.path,
                            "--server-name", "localhost"], log: "web-any.log")
        var page: (status: Int32, output: String) = (1, "")
        try waitUntil(timeout: 15, "the console to answer over HTTPS on 0.0.0.0:\(port)") {
            page = try Self.curl("https://localhost:\(port)/", cert: cert, in: env.directory)
            return page.status == 0
        }
        #expect(page.output.hasPrefix("HTTP/1.1 200"), "\(page.output.prefix(300))")
        // A name it was not given (here the address itself) is refused, as a rebound DNS name is.
        let other = try Self.curl("https://127.0.0.1:\(port)/", cert: cert, in: env.directory)
        #expect(other.output.hasPrefix("HTTP/1.1 421"), "\(other.output.prefix(300))")
    }

    @Test func underANameThatIsNotLoopbackOnlyHTTPSGivesTheBrowserWebCrypto() throws {
        for tool in ["/usr/bin/openssl", "/usr/bin/chromium", "/usr/bin/chromedriver"] { try Self.tool(tool) }
        let env = try WebEnvironment()
        defer { env.stop() }
        let (cert, key) = try Self.certificate(in: env.directory)
        let alice = Curve25519.Signing.PrivateKey()
        let aliceKey = env.directory.appendingPathComponent("alice.key")
        try WebConsoleBrowserTests.writeKey(alice, to: aliceKey)
        let trust = env.directory.appendingPathComponent("trust.json")
        try Data(#"{"principals": {"alice@example.com": {"public_key": "\#(alice.publicKey.rawRepresentation.base64EncodedString())", "roles": ["approver"]}}}"#.utf8).write(to: trust)
        // The same console twice, both answering to console.test: in clear on loopback, and over TLS.
        try env.startWeb(["--trust", trust.path, "--server-name", "console.test"])
        let httpPort = env.webPort
        let reservation = try PortReservation()
        let httpsPort = reservation.port
        reservation.release()
        _ = try env.launch(["web", "--port", "\(httpsPort)", "--trust", trust.path, "--server-name", "console.test",
                            "--tls-cert", cert.path, "--tls-key", key.path], log: "web-tls.log")
        try waitUntil(timeout: 15, "the console to answer over HTTPS on \(httpsPort)") {
            try Self.curl("https://127.0.0.1:\(httpsPort)/static/style.css", cert: cert, in: env.directory).status == 0
        }
        let script = WebConsoleBrowserTests.sourceRoot.appendingPathComponent("Tests/WebConsoleTests/Browser/secure_context_test.py")
        let (status, printed) = try Self.run(["/usr/bin/python3", script.path, "--http-port", "\(httpPort)", "--https-port", "\(httpsPort)",
                                              "--cert", cert.path, "--alice-key", aliceKey.path], in: env.directory, timeout: 60)
        print(printed)
        #expect(status == 0, "browser script failed:\n\(printed)\n--- console logs:\n\(env.log("web.log").suffix(1500))\n\(env.log("web-tls.log").suffix(1500))")
        #expect(printed.contains("all secure-context checks passed"))
    }
}
