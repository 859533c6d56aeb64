import Foundation
import Operations

/// The HTML around each page, and the parts that need no Redis.
enum Pages {
    static let sections = [("overview", "Overview", "/"), ("approvals", "Approvals", "/approvals"), ("plans", "Plans", "/plans"),
                           ("events", "Events", "/events"), ("dead", "Dead letters", "/dead")]

    static func layout(title: String, section: String, configuration: WebConsoleConfiguration, token: String,
                       live: String?, content: String) -> String {
        var nav = sections.map { id, name, href in
            "<a href=\"\(href)\"\(id == section ? " aria-current=\"page\"" : "")>\(name)</a>"
        }
        if case .signed = configuration.decisions {
            nav.append("<a href=\"/key\"\("key" == section ? " aria-current=\"page\"" : "") id=\"key-link\">Signing key</a>")
        }
        let liveAttributes = live.map { " data-live=\"\(HTML.h($0))\"" } ?? ""
        return """
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <meta name="color-scheme" content="light dark">
            <meta name="csrf-token" content="\(token)">
            <meta name="decision-mode" content="\(configuration.modeName)">
            <title>\(HTML.h(title)) · coordinatord</title>
            <link rel="stylesheet" href="/static/style.css">
            <script type="module" src="/static/app.js"></script>
            </head>
            <body>
            <a class="skip" href="#main">Skip to content</a>
            <header><span class="brand">coordinatord</span><nav aria-label="Sections">\(nav.joined())</nav><span class="mode mode-\(configuration.modeName)" title="\(modeExplanation(configuration))">\(configuration.modeName)</span></header>
            <main id="main" tabindex="-1"><h1>\(HTML.h(title))</h1><div id="live"\(liveAttributes)>\(content)</div></main>
            </body>
            </html>
            """
    }

    static func modeExplanation(_ configuration: WebConsoleConfiguration) -> String {
        switch configuration.decisions {
        case .readOnly: "Read-only: started without --trust or --allow-unsigned."
        case .unsigned(let header): "Decisions carry the user the proxy names in \(HTML.h(header)); they are not signed."
        case .signed: "Decisions are signed in this browser with your own key (PROTOCOL.md section 10)."
        }
    }

    static func deadActionsNote(_ configuration: WebConsoleConfiguration) -> String {
        switch configuration.decisions {
        case .signed: "Requeue and purge are not offered under --trust: operators use coordinatord dead requeue / purge."
        case .readOnly: "Requeue and purge are not offered: this console is read-only (started without --trust or --allow-unsigned)."
        case .unsigned: ""
        }
    }

    /// Approve / reject, and where their result and the events that follow show. The buttons
    /// start disabled; the script enables them when this mode (and, signed, a key) allows.
    static func decisionPanel(_ configuration: WebConsoleConfiguration, pending: Bool) -> String {
        guard pending else { return "<section id=\"decision\" data-done=\"1\"><div id=\"result\" role=\"status\"></div><ol id=\"decision-events\" class=\"events\"></ol></section>" }
        let why: String
        switch configuration.decisions {
        case .readOnly: why = "Read-only console: started without --trust or --allow-unsigned, so it cannot decide."
        case .unsigned: why = ""
        case .signed: why = "No signing key in this browser: import yours on the Signing key page."
        }
        return """
            <section id="decision"><h2>Decide</h2>
            <label for="reason">Reason <small>(needed to reject)</small></label>
            <textarea id="reason" maxlength="4096" rows="2"></textarea>
            <p class="buttons"><button type="button" id="approve" class="good" disabled>Approve</button> <button type="button" id="reject" class="danger" disabled>Reject</button></p>
            <p id="why-disabled" class="note">\(HTML.h(why))</p>
            <div id="result" role="status"></div>
            <ol id="decision-events" class="events" aria-label="Events of this decision"></ol>
            </section>
            """
    }

    static func events(_ filter: EventFilter) -> String {
        var query: [String] = []
        if let customer = filter.customer { query.append("customer=\(HTML.url(customer))") }
        if let type = filter.type { query.append("type=\(HTML.url(type))") }
        let stream = "/events/stream" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
        return """
            <form class="filter" method="get" action="/events">
            <label>Customer <input name="customer" value="\(HTML.h(filter.customer ?? ""))" maxlength="128"></label>
            <label>Type <input name="type" value="\(HTML.h(filter.type ?? ""))" placeholder="plan. or step.completed" maxlength="64"></label>
            <button type="submit">Filter</button></form>
            <p id="stream-status" class="note" role="status">connecting…</p>
            <div class="scroll"><table id="events" data-stream="\(HTML.h(stream))"><thead><tr><th>Stream id</th><th>Time</th><th>Type</th><th>Customer</th><th>Details</th></tr></thead><tbody></tbody></table></div>
            """
    }

    static func key(_ configuration: WebConsoleConfiguration) -> String {
        guard case .signed = configuration.decisions else {
            return "<p class=\"note\">This console does not sign decisions (it was started without --trust).</p>"
        }
        return """
            <p>Decisions are signed here, in this browser, with your own Ed25519 key: the file <code>coordinatord keys generate</code> wrote. It is imported into the browser's WebCrypto as a non-extractable key and kept in this browser's storage for this site; it never leaves the browser, and the server never sees it.</p>
            <p id="key-status" role="status">No key imported.</p>
            <form id="key-form">
            <label for="principal">Your principal id (as in the trust file)</label>
            <input id="principal" name="principal" required maxlength="128" autocomplete="username">
            <label for="key-file">Key file</label>
            <input id="key-file" type="file" required>
            <p class="buttons"><button type="submit" id="import-key">Import key</button> <button type="button" id="forget-key" class="danger">Forget key</button></p>
            </form>
            """
    }
}
