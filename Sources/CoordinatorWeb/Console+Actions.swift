import CoordinatorDaemon
import Foundation
import HTTPTypes
import Hummingbird
import Operations
import RedisClient

/// What changes state: decisions and dead-letter actions. Each is a POST that passed the CSRF
/// checks (`checkedBody`), and each is offered only in the mode that allows it.
extension Console {
    /// Signed mode, step one: the exact decision JSON the browser is to sign (its reply key is
    /// in the signer's namespace, as the daemon requires under `--reply-prefix`).
    func prepare(_ request: Request, _ context: ConsoleContext) async throws -> Response {
        let id = try Self.identifier(context, "id")
        let body = try await checkedBody(request, form: false)
        guard case .signed(let trust) = configuration.decisions else {
            return Self.json(["ok": false, "error": "this console does not sign decisions (started without --trust)"], status: .forbidden)
        }
        let fields = jsonObject(body) ?? [:]
        let verb = fields.string("decision") ?? "", reason = fields.string("reason") ?? "", principal = fields.string("principal") ?? ""
        if let refusal = Self.decisionRefusal(verb: verb, reason: reason) { return Self.json(["ok": false, "error": refusal], status: .badRequest) }
        guard Trust.isPrincipalID(principal), trust.principals[principal] != nil else {
            return Self.json(["ok": false, "error": "\(DisplayText.escaped(principal)) is not a principal of the trust file"], status: .forbidden)
        }
        let replyTo = Decisions.replyKey(replyPrefix: configuration.replyPrefix, user: principal, tool: "web", keys: keys)
        let payload = try Decisions.payload(approvalID: id, verb: verb, user: principal, reason: reason,
                                            replyTo: replyTo, requestID: "web-\(randomToken())")
        return Self.json(["ok": true, "payload": Base64URL.encode(payload)])
    }

    /// Sends a decision and waits for the daemon's reply. Unsigned mode: `{"decision","reason"}`
    /// by the user the proxy names. Signed mode: `{"jws"}`, a decision `prepare` made and the
    /// browser signed, checked here against the trust file before it is pushed.
    func decide(_ request: Request, _ context: ConsoleContext) async throws -> Response {
        let id = try Self.identifier(context, "id")
        let body = try await checkedBody(request, form: false)
        let fields = jsonObject(body) ?? [:]
        let message: [UInt8], replyTo: String, user: String
        switch configuration.decisions {
        case .readOnly:
            return Self.json(["ok": false, "error": "this console is read-only (started without --trust or --allow-unsigned)"], status: .forbidden)
        case .unsigned(let header):
            guard let name = request.headers[HTTPField.Name(header)!], Self.isIdentifier(name) else {
                return Self.json(["ok": false, "error": "no user: the proxy in front of this console did not pass \(header)"], status: .forbidden)
            }
            let verb = fields.string("decision") ?? "", reason = fields.string("reason") ?? ""
            if let refusal = Self.decisionRefusal(verb: verb, reason: reason) { return Self.json(["ok": false, "error": refusal], status: .badRequest) }
            user = name
            replyTo = Decisions.replyKey(replyPrefix: configuration.replyPrefix, user: user, tool: "web", keys: keys)
            message = try Decisions.payload(approvalID: id, verb: verb, user: user, reason: reason, replyTo: replyTo, requestID: "web-\(randomToken())")
        case .signed(let trust):
            let jws = Array((fields.string("jws") ?? "").utf8)
            guard case .success(let parts) = JWS.parse(jws), let decision = jsonObject(parts.payload) else {
                return Self.json(["ok": false, "error": "not a signed decision"], status: .badRequest)
            }
            guard decision.string("approval_id") == id, decision.string("user_id") == parts.kid,
                  let key = decision.string("reply_to"),
                  Self.isOwnReplyKey(key, kid: parts.kid, replyPrefix: configuration.replyPrefix) else {
                return Self.json(["ok": false, "error": "the signed decision is not the one this page prepared"], status: .badRequest)
            }
            guard trust.verified(jws) != nil else {
                return Self.json(["ok": false, "error": "signature refused: it does not verify with the public key of \(DisplayText.escaped(parts.kid)) in the trust file (wrong key?)"], status: .forbidden)
            }
            message = jws
            replyTo = key
            user = parts.kid
        }
        logger.info("web: decision", metadata: ["approval": "\(id)", "user": "\(DisplayText.escaped(user))"])
        let keys = self.keys, timeout = configuration.decisionTimeout
        let reply: [UInt8]?
        do {
            reply = try await bridge.decide { redis in
                try Decisions.push(message, replyTo: replyTo, keys: keys, redis: redis, timeout: timeout)
            }
        } catch let error as RedisError {
            return Self.json(["ok": false, "error": "Redis unavailable: \(error)"], status: .serviceUnavailable)
        }
        guard let reply else {
            return Self.json(["ok": false, "error": "no answer within \(Int(timeout)) s: is a daemon running? The decision stays queued on \(keys.approvals) or went to \(keys.dead)."], status: .gatewayTimeout)
        }
        switch Decisions.outcome(reply) {
        case .failure(let failure):
            return Self.json(["ok": false, "error": DisplayText.escaped(failure.description)])
        case .success(let approval):
            var answer: [String: Any] = ["ok": true, "status": approval.string("status") ?? "?",
                                         "text": Decisions.describe(approval, verb: "decision")]
            if let plan = approval.string("plan_id") { answer["plan_id"] = plan }
            return Self.json(answer)
        }
    }

    /// A reply key `Decisions.replyKey` makes for the console: the console waits on it and
    /// deletes it, so a signed decision may not name any other key.
    static func isOwnReplyKey(_ key: String, kid: String, replyPrefix: String?) -> Bool {
        if let replyPrefix { return key.hasPrefix("\(replyPrefix)\(kid):web:") }
        return key.hasPrefix("coordinatord:web:") || key.hasPrefix("coordinatord-web:")
    }

    static func decisionRefusal(verb: String, reason: String) -> String? {
        guard verb == "approve" || verb == "reject" else { return "decision: approve or reject" }
        if verb == "reject", reason.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return "a rejection needs a reason" }
        if reason.utf8.count > 4096 { return "reason: at most 4 KiB" }
        return nil
    }

    // MARK: - Dead letters

    func requeueConfirm(_ redis: any StateRedis, n: DeadLetterAddress, _ context: ConsoleContext) throws -> String {
        guard deadLetterActions else { return "<p class=\"note\">\(Pages.deadActionsNote(configuration))</p>" }
        guard let bytes = try DeadLetters.entry(n, layout: layout, redis: redis) else { throw OperationFailure("No dead letter \(n).") }
        let letter = DeadLetter(jsonObject(bytes) ?? [:], keys: n.keys(layout))
        var out = "<p>Put dead letter \(n) (\(HTML.h(letter.code)), \(letter.size.map(String.init) ?? "?") bytes) back on <code>\(HTML.h(letter.queueName))</code>? The daemon processes it again.</p>"
        if let (_, text) = letter.shownRaw { out += "<pre class=\"clip\">\(HTML.h(String(text.prefix(2000))))</pre>" }
        out += "<form method=\"post\" action=\"/dead/\(n)/requeue\"><input type=\"hidden\" name=\"csrf\" value=\"\(security.token(for: context.session))\"><input type=\"hidden\" name=\"digest\" value=\"\(DeadLetter.digest(bytes))\">"
        out += "<button type=\"submit\" id=\"confirm\">Requeue dead letter \(n)</button> <a href=\"/dead/\(n)\">Cancel</a></form>"
        return out
    }

    func requeue(_ request: Request, _ context: ConsoleContext) async throws -> Response {
        let n = try index(context)
        let form = Form.parse(try await checkedBody(request, form: true))
        guard deadLetterActions else { throw HTTPError(.forbidden, message: Pages.deadActionsNote(configuration)) }
        let user = try actingUser(request)
        let digest = form["digest"] ?? ""
        let layout = self.layout
        let outcome: String = try await bridge.read { redis in
            guard let bytes = try DeadLetters.entry(n, layout: layout, redis: redis), DeadLetter.digest(bytes) == digest else {
                return "<p class=\"error\" id=\"outcome\">Dead letter \(n) is no longer the entry you confirmed (the list changed); nothing was requeued. <a href=\"/dead\">Back to the list</a></p>"
            }
            do {
                let (queue, count) = try DeadLetters.requeue(bytes, at: n, layout: layout, redis: redis)
                return "<p class=\"ok\" id=\"outcome\">Requeued dead letter \(n) onto \(HTML.h(queue)) (\(count) bytes). <a href=\"/dead\">Back to the list</a></p>"
            } catch let failure as OperationFailure {
                return "<p class=\"error\" id=\"outcome\">Not requeued: \(HTML.h(failure.description)). <a href=\"/dead\">Back to the list</a></p>"
            }
        }
        logger.notice("web: dead letter requeue", metadata: ["index": "\(n)", "user": "\(user)"])
        return Self.html(Pages.layout(title: "Requeue", section: "dead", configuration: configuration,
                                      token: security.token(for: context.session), live: nil, content: outcome))
    }

    func purgeConfirm(_ redis: any StateRedis, _ context: ConsoleContext) throws -> String {
        guard deadLetterActions else { return "<p class=\"note\">\(Pages.deadActionsNote(configuration))</p>" }
        let count = try DeadLetters.count(redis, layout: layout)
        return "<p>Delete all \(count) dead letters? Their messages are gone for good.</p><form method=\"post\" action=\"/dead/purge\"><input type=\"hidden\" name=\"csrf\" value=\"\(security.token(for: context.session))\"><input type=\"hidden\" name=\"count\" value=\"\(count)\"><button type=\"submit\" class=\"danger\" id=\"confirm\">Purge \(count) dead letters</button> <a href=\"/dead\">Cancel</a></form>"
    }

    func purge(_ request: Request, _ context: ConsoleContext) async throws -> Response {
        let form = Form.parse(try await checkedBody(request, form: true))
        guard deadLetterActions else { throw HTTPError(.forbidden, message: Pages.deadActionsNote(configuration)) }
        let confirmed = Int(form["count"] ?? "") ?? -1
        let user = try actingUser(request)
        let layout = self.layout
        let outcome: String = try await bridge.read { redis in
            let count = try DeadLetters.count(redis, layout: layout)
            guard count == confirmed else {
                return "<p class=\"error\" id=\"outcome\">The list changed (\(count) entries now, \(confirmed) when you confirmed); nothing was purged. <a href=\"/dead/purge\">Confirm again</a></p>"
            }
            let purged = try DeadLetters.purge(layout: layout, redis: redis)
            return "<p class=\"ok\" id=\"outcome\">Purged \(purged) dead letter\(purged == 1 ? "" : "s"). <a href=\"/dead\">Back to the list</a></p>"
        }
        logger.notice("web: dead letters purged", metadata: ["user": "\(user)"])
        return Self.html(Pages.layout(title: "Purge", section: "dead", configuration: configuration,
                                      token: security.token(for: context.session), live: nil, content: outcome))
    }

    /// Who acts, as the proxy names them (for the log); refused when the proxy named no one.
    func actingUser(_ request: Request) throws -> String {
        guard case .unsigned(let header) = configuration.decisions,
              let name = request.headers[HTTPField.Name(header)!], Self.isIdentifier(name) else {
            throw HTTPError(.forbidden, message: "no user: the proxy in front of this console did not pass its user header")
        }
        return name
    }
}
