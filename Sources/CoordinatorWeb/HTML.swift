import CoordinatorDaemon
import Foundation
import Operations

/// HTML text built by the console: everything that came from Redis (agents can put anything in a
/// field) goes through `h`, which escapes control characters as the commands do (`\u001b`) and
/// then the characters HTML gives meaning to.
enum HTML {
    static func h(_ text: String) -> String {
        let shown = DisplayText.escaped(text)
        var out = ""
        out.reserveCapacity(shown.utf8.count)
        for scalar in shown.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func h(_ value: Any?) -> String {
        switch value {
        case nil, is NSNull: return ""
        case let text as String: return h(text)
        case let number as NSNumber: return h(number.stringValue)
        default: return h(String(describing: value!))
        }
    }

    /// A value of a URL's query or path segment.
    static func url(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }

    /// JSON for people: pretty, then escaped.
    static func json(_ value: Any) -> String {
        guard JSONSerialization.isValidJSONObject(value),
              let data = try? JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]) else {
            return h(String(describing: value))
        }
        // Pretty printing's own line breaks stay; inside strings JSON escapes every control character.
        return String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .map { h(String($0)) }.joined(separator: "\n")
    }

    /// A status, risk or outcome word's CSS class.
    static func tone(_ word: String) -> String {
        switch word {
        case "completed", "approved", "ok", "low": "good"
        case "failed", "rolled_back", "critical", "rejected", "expired", "dead": "bad"
        case "running", "pending", "high", "medium", "waiting", "held": "warn"
        default: "plain"
        }
    }

    static func badge(_ word: String) -> String {
        "<span class=\"badge \(tone(word))\">\(h(word))</span>"
    }

    static func time(_ date: Date?, now: Date) -> String {
        guard let date else { return "" }
        let iso = ISO8601DateFormatter().string(from: date)
        return "<time datetime=\"\(iso)\" title=\"\(iso)\">\(h(Timestamps.relative(date, now: now)))</time>"
    }
}
