import Crypto
import Foundation
import HTTPTypes
import Hummingbird

/// What keeps another site, or a rebound DNS name, from using a person's console:
/// - every request must name this console in `Host` (a DNS-rebinding page names its own);
/// - a session cookie (`HttpOnly`, `SameSite=Strict`) and a CSRF token derived from it with a
///   key that lives only in this process; every state-changing request is a POST that carries
///   the token (header `X-CSRF-Token` or form field `csrf`), and whose `Origin` and
///   `Sec-Fetch-Site`, when the browser sends them, say it came from this console's own pages.
struct Security: Sendable {
    static let cookie = "cw_session"
    static let tokenHeader = HTTPField.Name("X-CSRF-Token")!
    static let originHeader = HTTPField.Name("Origin")!
    static let fetchSiteHeader = HTTPField.Name("Sec-Fetch-Site")!

    /// `host:port` values a request may name in `Host`.
    let allowedHosts: Set<String>
    /// Served over HTTPS: the cookie is `Secure`, and `Origin` must be `https://`.
    let secure: Bool
    /// The key tokens are derived with; it lives only in this process.
    private let key: [UInt8]

    /// `serverNames`: what people reach the console by (`name`, or `name:port` when the port they
    /// use is not the one bound, behind a port mapping); a bare name stands for `name:port`, and
    /// for `name` too on the scheme's default port (443 with TLS, 80 without).
    init(host: String, port: Int, serverNames: [String] = [], secure: Bool = false) {
        let shownHost = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        var hosts: Set<String> = ["\(shownHost.lowercased()):\(port)"]
        if ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host) {
            hosts.formUnion(["127.0.0.1:\(port)", "localhost:\(port)", "[::1]:\(port)"])
        }
        for name in serverNames.map({ $0.lowercased() }) {
            if name.contains(":") && !name.hasSuffix("]") {
                hosts.insert(name)
            } else {
                hosts.insert("\(name):\(port)")
                if port == (secure ? 443 : 80) { hosts.insert(name) }
            }
        }
        allowedHosts = hosts
        self.secure = secure
        key = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
    }

    static func newSession() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(format: "%016llx", generator.next() as UInt64) }.joined()
    }

    func token(for session: String) -> String {
        HMAC<SHA256>.authenticationCode(for: Data(session.utf8), using: SymmetricKey(data: key)).map { String(format: "%02x", $0) }.joined()
    }

    /// Whether `Host` names this console.
    func hostAllowed(_ request: Request) -> Bool {
        guard let host = request.head.authority else { return false }
        return allowedHosts.contains(host.lowercased())
    }

    /// The session a request carries, if it is well-formed.
    static func session(_ request: Request) -> String? {
        guard let value = request.cookies[cookie]?.value, value.count == 64,
              value.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else { return nil }
        return value
    }

    /// Why a state-changing request is refused, or nil when it may go on. `formToken` is the
    /// token from a form body, when the request sent one.
    func refusal(_ request: Request, formToken: String? = nil) -> String? {
        guard request.method == .post else { return "state changes are POST only" }
        if let fetchSite = request.headers[Self.fetchSiteHeader], fetchSite != "same-origin" {
            return "cross-site request refused (Sec-Fetch-Site: \(fetchSite))"
        }
        if let origin = request.headers[Self.originHeader] {
            let scheme = secure ? "https://" : "http://"
            let host = origin.hasPrefix(scheme) ? String(origin.dropFirst(scheme.count)) : ""
            guard allowedHosts.contains(host.lowercased()) else { return "cross-origin request refused (Origin: \(origin))" }
        }
        guard let session = Self.session(request) else { return "no session: reload the page" }
        guard let sent = request.headers[Self.tokenHeader] ?? formToken else { return "missing CSRF token: reload the page" }
        let expected = token(for: session)
        guard sent.utf8.count == expected.utf8.count,
              zip(sent.utf8, expected.utf8).reduce(0, { $0 | ($1.0 ^ $1.1) }) == 0 else {
            return "bad CSRF token: reload the page"
        }
        return nil
    }
}
