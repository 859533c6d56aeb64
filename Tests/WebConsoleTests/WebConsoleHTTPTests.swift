import Foundation
import RedisClient
import Testing
import TestSupport
import TestTraits

/// The console over HTTP, against the built daemon and console and a real redis-server: CSRF
/// and host checks, escaping of hostile text, dead letters, the modes, the overview's cost.
@Suite(.sharesMachine)
struct WebConsoleHTTPTests {
    static let hostileTitle = "<script>window.__pwned=1</script>\u{1B}[2J\u{1B}]0;owned\u{07} & \"q\" \u{202E}rtl"

    /// A page's session cookie and token.
    static func session(_ env: WebEnvironment, path: String = "/approvals") throws -> (cookie: String, token: String) {
        let page = try HTTP.request("GET", port: env.webPort, path: path)
        return (try #require(page.session), try #require(page.csrfToken))
    }

    @Test func stateChangesNeedTheSessionsTokenSameOriginAndTheConsolesHost() throws {
        let env = try WebEnvironment()
        defer { env.stop() }
        try env.startDaemon()
        try env.startWeb(["--allow-unsigned"])
        try env.connection.send("LPUSH", "coord:requests", WebEnvironment.coordinate(
            customer: "cust-csrf", autoApprove: false, [("rec-1", "Move batch fleet to spot", "migrate_to_spot", "high")])).checkNoError()
        let approval = try #require(env.pendingApprovals(customer: "cust-csrf", count: 1).first)
        let port = env.webPort

        // A page names only this console: a rebound DNS name is refused.
        #expect(try HTTP.request("GET", port: port, path: "/approvals", host: "evil.example:\(port)").status == 421)
        let page = try HTTP.request("GET", port: port, path: "/approvals")
        #expect(page.status == 200)
        let csp = try #require(page.header("content-security-policy"))
        #expect(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline") && csp.contains("frame-ancestors 'none'"))
        #expect(page.header("set-cookie")?.contains("SameSite=Strict") == true && page.header("set-cookie")?.contains("HttpOnly") == true)
        let cookie = try #require(page.session), token = try #require(page.csrfToken)

        let path = "/approvals/\(approval)/decide"
        let json = #"{"decision":"approve","reason":""}"#
        let user = "X-Forwarded-User"
        func post(_ headers: [String: String]) throws -> HTTP.Response {
            try HTTP.request("POST", port: port, path: path, headers: ["Content-Type": "application/json", user: "alice@example.com"].merging(headers) { $1 }, body: json)
        }
        let noToken = try post(["Cookie": "cw_session=\(cookie)"])
        #expect(noToken.status == 403 && noToken.body.contains("CSRF"), "\(noToken)")
        let badToken = try post(["Cookie": "cw_session=\(cookie)", "X-CSRF-Token": String(repeating: "0", count: token.count)])
        #expect(badToken.status == 403)
        let noCookie = try post(["X-CSRF-Token": token])
        #expect(noCookie.status == 403)
        let otherSession = try Self.session(env)
        let tokenOfAnotherSession = try post(["Cookie": "cw_session=\(cookie)", "X-CSRF-Token": otherSession.token])
        #expect(tokenOfAnotherSession.status == 403)
        let crossOrigin = try post(["Cookie": "cw_session=\(cookie)", "X-CSRF-Token": token, "Origin": "http://evil.example"])
        #expect(crossOrigin.status == 403 && crossOrigin.body.contains("cross-origin"))
        let crossSite = try post(["Cookie": "cw_session=\(cookie)", "X-CSRF-Token": token, "Sec-Fetch-Site": "cross-site"])
        #expect(crossSite.status == 403)
        let get = try HTTP.request("GET", port: port, path: path)
        #expect(get.status == 404 || get.status == 405)
        // None of those reached Redis.
        #expect(try env.connection.send("GET", "coord:approval:{\(approval)}").string?.contains("\"status\":\"pending\"") == true)

        // The page's own request, from its origin, is answered with the daemon's reply.
        let good = try post(["Cookie": "cw_session=\(cookie)", "X-CSRF-Token": token, "Origin": "http://127.0.0.1:\(port)", "Sec-Fetch-Site": "same-origin"])
        #expect(good.status == 200 && good.body.contains("\"ok\":true") && good.body.contains("\"status\":\"approved\""), "\(good)")
        #expect(good.body.contains("plan_id"))
        // Without the proxy's user header, no decision.
        let anonymous = try HTTP.request("POST", port: port, path: path, headers: ["Cookie": "cw_session=\(cookie)", "X-CSRF-Token": token], body: json)
        #expect(anonymous.status == 403 && anonymous.body.contains("X-Forwarded-User"))
    }

    @Test func hostileTextFromRedisShowsAsEscapedText() throws {
        let env = try WebEnvironment()
        defer { env.stop() }
        try env.startDaemon()
        try env.startWeb()
        try env.connection.send("LPUSH", "coord:requests", WebEnvironment.coordinate(
            customer: "cust-hostile", autoApprove: false, [("rec-x", Self.hostileTitle, "scale_down", "high")])).checkNoError()
        let approval = try #require(env.pendingApprovals(customer: "cust-hostile", count: 1).first)
        for path in ["/approvals", "/approvals/\(approval)"] {
            let page = try HTTP.request("GET", port: env.webPort, path: path)
            #expect(page.status == 200)
            #expect(!page.body.contains("<script>window"), "raw markup on \(path)")
            #expect(page.body.contains("&lt;script&gt;window.__pwned=1&lt;/script&gt;"), "\(path)")
            #expect(page.body.contains("\\u001b[2J") && page.body.contains("\\u0007") && page.body.contains("\\u202e"))
            #expect(!page.body.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 || $0.value == 0x202E })
            #expect(page.body.contains("&quot;q&quot;"))
        }
        // The live tail's JSON carries the same text escaped for display, never raw control bytes.
        let tail = try HTTP.request("GET", port: env.webPort, path: "/events/stream?customer=cust-hostile&after=0-0", readFor: 20) {
            $0.body.contains("approval.requested")
        }
        #expect(tail.body.contains("approval.requested"))
        #expect(!tail.body.unicodeScalars.contains { $0.value == 0x1B })
    }

    @Test func deadLettersShowEscapedAndRequeueAndPurgeAfterConfirmation() throws {
        let env = try WebEnvironment()
        defer { env.stop() }
        try env.startDaemon()
        try env.startWeb(["--allow-unsigned"])
        // Not UTF-8 (so raw_base64), and UTF-8 with terminal escapes (so raw): both dead-lettered.
        try env.connection.send("LPUSH", "coord:requests", [0xFF, 0xFE, 0x07] + Array("bell\u{1B}[31m".utf8)).checkNoError()
        try env.connection.send("LPUSH", "coord:requests", "{\"kind\": \u{1B}[2J <b>bold</b>").checkNoError()
        try waitUntil(timeout: 10, "two dead letters") { (try env.connection.send("LLEN", "coord:dead").integer ?? 0) == 2 }
        let port = env.webPort
        let list = try HTTP.request("GET", port: port, path: "/dead")
        #expect(list.status == 200 && list.body.contains("invalid_json"))
        // Which entry is which: the daemon's batches need not keep the push order.
        let first = try #require(env.connection.send("LINDEX", "coord:dead", 0).string)
        let (b64Index, rawIndex) = first.contains("raw_base64") ? (0, 1) : (1, 0)
        let base64 = try HTTP.request("GET", port: port, path: "/dead/\(b64Index)")
        #expect(base64.body.contains("from raw_base64"), "\(base64.body)")
        #expect(base64.body.contains("\\xff\\xfe\\u0007bell\\u001b[31m"))
        let raw = try HTTP.request("GET", port: port, path: "/dead/\(rawIndex)")
        #expect(raw.body.contains("\\u001b[2J &lt;b&gt;bold&lt;/b&gt;") && !raw.body.contains("<b>bold"))
        #expect(!(base64.body + raw.body).unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 })

        let user = ["X-Forwarded-User": "ops@example.com"]
        // Requeue: a confirmation page, then its form. Without the form's token nothing moves.
        let confirm = try HTTP.request("GET", port: port, path: "/dead/\(rawIndex)/requeue", headers: user)
        let cookie = try #require(confirm.session), token = try #require(confirm.csrfToken)
        let digest = try #require(confirm.body.range(of: "name=\"digest\" value=\"").map { String(confirm.body[$0.upperBound...].prefix(64)) })
        #expect(confirm.body.contains("id=\"confirm\""))
        let form = ["Cookie": "cw_session=\(cookie)", "Content-Type": "application/x-www-form-urlencoded"].merging(user) { $1 }
        let forged = try HTTP.request("POST", port: port, path: "/dead/\(rawIndex)/requeue", headers: form, body: "digest=\(digest)")
        #expect(forged.status == 403)
        #expect(try env.connection.send("LLEN", "coord:dead").integer == 2)
        let stale = try HTTP.request("POST", port: port, path: "/dead/\(rawIndex)/requeue", headers: form, body: "csrf=\(token)&digest=\(String(repeating: "0", count: 64))")
        #expect(stale.body.contains("no longer the entry you confirmed"))
        let requeued = try HTTP.request("POST", port: port, path: "/dead/\(rawIndex)/requeue", headers: form, body: "csrf=\(token)&digest=\(digest)")
        #expect(requeued.status == 200 && requeued.body.contains("Requeued dead letter \(rawIndex) onto coord:requests"), "\(requeued.body)")
        // The daemon takes it again and, as it is still not JSON, dead-letters it again.
        try waitUntil(timeout: 10, "the requeued message dead-lettered again") {
            let entries = (try env.connection.send("LRANGE", "coord:dead", 0, -1).array ?? []).compactMap(\.string)
            return entries.count == 2 && entries.filter { $0.contains("<b>bold") }.count == 1
        }

        // Purge: confirmed for the count the person saw.
        let purgePage = try HTTP.request("GET", port: port, path: "/dead/purge", headers: ["Cookie": "cw_session=\(cookie)"].merging(user) { $1 })
        #expect(purgePage.body.contains("Purge 2 dead letters"))
        let changed = try HTTP.request("POST", port: port, path: "/dead/purge", headers: form, body: "csrf=\(token)&count=5")
        #expect(changed.body.contains("nothing was purged"))
        #expect(try env.connection.send("LLEN", "coord:dead").integer == 2)
        let purged = try HTTP.request("POST", port: port, path: "/dead/purge", headers: form, body: "csrf=\(token)&count=2")
        #expect(purged.body.contains("Purged 2 dead letters"), "\(purged.body)")
        #expect(try env.connection.send("LLEN", "coord:dead").integer == 0)
    }

    @Test func readOnlyAndTrustedConsolesOfferNoUnsignedActions() throws {
        let env = try WebEnvironment()
        defer { env.stop() }
        try env.startDaemon()
        try env.connection.send("LPUSH", "coord:requests", "not json").checkNoError()
        try waitUntil(timeout: 10, "a dead letter") { (try env.connection.send("LLEN", "coord:dead").integer ?? 0) == 1 }
        try env.connection.send("LPUSH", "coord:requests", WebEnvironment.coordinate(
            customer: "cust-ro", autoApprove: false, [("rec-1", "Scale down", "scale_down", "medium")])).checkNoError()
        let approval = try #require(env.pendingApprovals(customer: "cust-ro", count: 1).first)
        let web = try env.startWeb()
        let page = try HTTP.request("GET", port: env.webPort, path: "/approvals/\(approval)")
        #expect(page.body.contains("Read-only console") && page.body.contains("id=\"approve\" class=\"good\" disabled"))
        let headers = ["Cookie": "cw_session=\(try #require(page.session))", "X-CSRF-Token": try #require(page.csrfToken), "X-Forwarded-User": "mallory"]
        let decide = try HTTP.request("POST", port: env.webPort, path: "/approvals/\(approval)/decide", headers: headers, body: #"{"decision":"approve"}"#)
        #expect(decide.status == 403 && decide.body.contains("read-only"))
        let requeue = try HTTP.request("POST", port: env.webPort, path: "/dead/0/requeue", headers: headers.merging(["Content-Type": "application/x-www-form-urlencoded"]) { $1 }, body: "digest=x")
        #expect(requeue.status == 403)
        #expect(!(try HTTP.request("GET", port: env.webPort, path: "/dead/0")).body.contains("Requeue…"))
        #expect(try env.connection.send("LLEN", "coord:dead").integer == 1)
        ChildProcess.stop(web)

        // Under --trust: no requeue or purge either (operators use the CLI).
        let trust = env.directory.appendingPathComponent("trust.json")
        try Data(#"{"principals": {"alice@example.com": {"public_key": "\#(Data(repeating: 7, count: 32).base64EncodedString())", "roles": ["approver"]}}}"#.utf8).write(to: trust)
        try env.startWeb(["--trust", trust.path])
        let dead = try HTTP.request("GET", port: env.webPort, path: "/dead/0")
        #expect(dead.body.contains("not offered under --trust") && !dead.body.contains("Requeue…"))
        let signedPage = try HTTP.request("GET", port: env.webPort, path: "/approvals/\(approval)")
        #expect(signedPage.body.contains("No signing key in this browser"))
    }

    /// A coordinate request of `customer` whose recommendations all act on the resource `db-1`.
    static func onOneResource(customer: String, _ recommendations: [(id: String, priority: Int, risk: String)]) throws -> String {
        let recs: [[String: Any]] = recommendations.map {
            ["id": $0.id, "agent_id": "cost-agent-1", "type": "cost", "title": "Resize \($0.id)", "action": "scale_down",
             "risk_level": $0.risk, "affected_resources": ["db-1"], "priority": $0.priority, "confidence": 0.9]
        }
        let request: [String: Any] = ["kind": "coordinate", "request_id": "req-\(UUID().uuidString.prefix(8))", "customer_id": customer,
                                      "auto_approve": false, "execute_now": false, "recommendations": recs]
        return String(decoding: try JSONSerialization.data(withJSONObject: request, options: [.sortedKeys]), as: UTF8.self)
    }

    @Test func theApprovalPageShowsTheConflictsItsRecommendationWasPartOf() throws {
        let env = try WebEnvironment()
        defer { env.stop() }
        try env.startDaemon()
        try env.startWeb()
        // Two recommendations on one resource: the better-ranked one waits for approval, the
        // other is discarded. Then a later request's recommendation on it is discarded because
        // the first is active. A third customer's conflict on its own rec-a is not this one's.
        try env.connection.send("LPUSH", "coord:requests", Self.onOneResource(customer: "cust-c", [("rec-a", 9, "high"), ("rec-b", 1, "high")])).checkNoError()
        try env.connection.send("LPUSH", "coord:requests", Self.onOneResource(customer: "cust-other", [("rec-a", 1, "high"), ("rec-z", 9, "high")])).checkNoError()
        let approval = try #require(env.pendingApprovals(customer: "cust-c", count: 1).first)
        // The first is committed (its approval pending): this one is later, whatever the clock
        // says (the page reads the stream from 2 s before the approval on).
        try env.connection.send("LPUSH", "coord:requests", Self.onOneResource(customer: "cust-c", [("rec-late", 9, "medium")])).checkNoError()
        try waitUntil(timeout: 10, "rec-late discarded") {
            let events = (try env.connection.send("XRANGE", "coord:events:stream", "-", "+").array ?? []).compactMap { $0.array?.last?.array?.last?.string }
            return events.contains { $0.contains("recommendation.discarded") && $0.contains("rec-late") }
        }
        let page = try HTTP.request("GET", port: env.webPort, path: "/approvals/\(approval)")
        #expect(page.status == 200)
        let table = try #require(page.body.range(of: "<table id=\"conflicts\">").map { String(page.body[$0.lowerBound...]) })
        let rows = table.components(separatedBy: "<tr data-conflict=").dropFirst().map { $0.components(separatedBy: "</tr>")[0] }
        #expect(rows.count == 2, "\(table.prefix(2000))")
        // In the coordination that admitted it: rec-b, discarded for the conflict.
        #expect(rows.contains { $0.contains("<code>rec-b</code>") && $0.contains("discarded: conflict<") && $0.contains("resource") }, "\(rows)")
        // Later: rec-late, discarded because rec-a was active.
        #expect(rows.contains { $0.contains("<code>rec-late</code>") && $0.contains("discarded: conflicts_with_active") }, "\(rows)")
        // Not the other customer's conflict of its own rec-a with rec-z.
        #expect(!table.contains("rec-z"))
        #expect(page.body.contains("id=\"dependencies\""))

        // A recommendation with no conflict says so.
        try env.connection.send("LPUSH", "coord:requests", Self.onOneResource(customer: "cust-alone", [("rec-1", 5, "high")])).checkNoError()
        let alone = try #require(env.pendingApprovals(customer: "cust-alone", count: 1).first)
        let quiet = try HTTP.request("GET", port: env.webPort, path: "/approvals/\(alone)")
        #expect(quiet.body.contains("id=\"no-conflicts\"") && !quiet.body.contains("<table id=\"conflicts\">"))
    }

    /// The overview's cost does not follow the number of pending approvals: once each
    /// approval's risk was read (1,000 per render at first), a render only counts them. Counted
    /// in Redis commands, which load on the machine cannot change; the render time is printed
    /// (docs/BENCHMARKS.md has the figures), not asserted.
    @Test(.alone) func overviewWithTenThousandPendingApprovalsRendersQuickly() throws {
        let env = try WebEnvironment()
        defer { env.stop() }
        try env.startDaemon(["--max-recommendations", "10000", "--max-message-bytes", "16777216"])
        try env.startWeb()
        let count = 10_000
        let risks = ["medium", "high", "critical"]
        let recs = (0..<count).map { (id: "rec-\($0)", title: "Right-size \($0)", action: "scale_down", risk: risks[$0 % 3]) }
        try env.connection.send("LPUSH", "coord:requests", WebEnvironment.coordinate(customer: "cust-big", autoApprove: false, executeNow: false, recs)).checkNoError()
        try waitUntil(timeout: 60, "\(count) pending approvals") { (try env.connection.send("ZCARD", "coord:approvals:pending").integer ?? 0) == count }
        var timings: [Double] = []
        func commandsProcessed() throws -> Int {
            let info = try #require(try env.connection.send("INFO", "stats").string)
            let line = try #require(info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("total_commands_processed:") })
            return try #require(Int(line.dropFirst("total_commands_processed:".count)))
        }
        var steadyCommands: [Int] = []
        for round in 0..<14 {
            let before = try commandsProcessed()
            let page = try HTTP.request("GET", port: env.webPort, path: "/")
            // Minus this test's own INFO; the daemon's background commands (heartbeat, pops)
            // are counted too, so the bound is loose but far below one read per approval.
            if round >= 12 { steadyCommands.append(try commandsProcessed() - before - 1) }
            #expect(page.status == 200 && page.body.contains("id=\"pending-count\">\(count)<"))
            let timing = try #require(page.header("server-timing"))
            timings.append(try #require(Double(timing.replacingOccurrences(of: "render;dur=", with: ""))))
        }
        // Risks are read 1000 per request at first (each approval once), then only counted.
        let last = try HTTP.request("GET", port: env.webPort, path: "/")
        #expect(!last.body.contains("risk read for"), "risks still being read after 14 refreshes")
        print("web overview, \(count) pending approvals: server time per render (ms) \(timings.map { String(format: "%.1f", $0) }.joined(separator: ", ")); Redis commands per steady render \(steadyCommands)")
        #expect(steadyCommands.allSatisfy { $0 < 500 }, "a steady render sent \(steadyCommands) commands for \(count) approvals")
    }
}

extension RedisReply {
    func checkNoError() throws {
        if let message = errorMessage { throw WaitTimeout(description: "Redis error: \(message)") }
    }
}
