import CoordinatorDaemon
import Foundation

/// Standard output as people see it: colour only on a terminal (and never with `NO_COLOR`
/// or `TERM=dumb`), tables fitted to the terminal's width, 80 columns when not a terminal.
enum Terminal {
    static let isTerminal = isatty(STDOUT_FILENO) == 1

    static let colours: Bool = {
        let env = ProcessInfo.processInfo.environment
        return isTerminal && env["NO_COLOR"] == nil && env["TERM"] != "dumb"
    }()

    static var width: Int {
        var size = winsize()
        if isTerminal, ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col >= 40 {
            return Int(size.ws_col)
        }
        return 80
    }

    enum Colour: String {
        case bold = "1", dim = "2", red = "31", green = "32", yellow = "33", cyan = "36"
    }

    static func paint(_ text: String, _ colour: Colour?) -> String {
        guard colours, let colour, !text.isEmpty else { return text }
        return "\u{1B}[\(colour.rawValue)m\(text)\u{1B}[0m"
    }

    /// One line on standard output, flushed (follow mode is read through pipes).
    static func line(_ text: String = "") {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    /// Errors and notes quote what they are about (a stored entry, a reply's message): escaped
    /// whole, as they never carry colour.
    static func error(_ message: String) {
        FileHandle.standardError.write(Data("error: \(shown(message))\n".utf8))
    }

    static func note(_ message: String) {
        FileHandle.standardError.write(Data("\(shown(message))\n".utf8))
    }

    /// The colour a status, risk or outcome reads best in.
    static func colour(for word: String) -> Colour? {
        switch word {
        case "completed", "approved", "ok", "low": .green
        case "failed", "rolled_back", "critical", "rejected", "expired", "dead": .red
        case "running", "pending", "high", "medium", "waiting": .yellow
        case "cancelled": .dim
        default: nil
        }
    }
}

/// Text that came from a client (an id, a kind, a reason, a raw message), as a person may see it:
/// control characters and bidirectional overrides escaped (`\u001b`), by the daemon's one
/// escaping function. Everything a command prints that it did not write itself goes through it.
func shown(_ text: String) -> String { DisplayText.escaped(text) }

/// A table whose flexible columns shrink (cut with "…") so that it fits the width.
struct Table {
    struct Column {
        var title: String
        var rightAligned = false
        /// May be cut to fit; fixed columns never are.
        var flexible = false
        var minimum = 6
    }

    var columns: [Column]
    var rows: [[String]] = []
    /// Optional colour per cell, by column index.
    var colouring: [Int: (String) -> Terminal.Colour?] = [:]

    init(_ columns: [Column]) { self.columns = columns }

    /// Cells hold what clients sent: each is escaped here, before it is measured or cut.
    mutating func add(_ row: [String]) { rows.append(row.map(shown)) }

    func render(width: Int = Terminal.width) -> [String] {
        var widths = columns.indices.map { index in
            rows.reduce(columns[index].title.count) { max($0, $1[index].count) }
        }
        let gaps = 2 * (columns.count - 1)
        var excess = widths.reduce(gaps, +) - width
        // Shrink the widest flexible column first, down to its minimum.
        while excess > 0 {
            let candidates = columns.indices.filter { columns[$0].flexible && widths[$0] > columns[$0].minimum }
            guard let widest = candidates.max(by: { widths[$0] < widths[$1] }) else { break }
            widths[widest] -= 1
            excess -= 1
        }
        func cell(_ text: String, _ index: Int, header: Bool) -> String {
            var value = text
            if value.count > widths[index] { value = String(value.prefix(max(0, widths[index] - 1))) + "…" }
            let pad = String(repeating: " ", count: widths[index] - value.count)
            let painted = header ? Terminal.paint(value, .bold) : Terminal.paint(value, colouring[index]?(text) ?? nil)
            return columns[index].rightAligned ? pad + painted : painted + pad
        }
        func line(_ values: [String], header: Bool) -> String {
            var text = values.indices.map { cell(values[$0], $0, header: header) }.joined(separator: "  ")
            while text.hasSuffix(" ") { text.removeLast() }
            return text
        }
        return [line(columns.map(\.title), header: true)] + rows.map { line($0, header: false) }
    }

    func print() {
        for line in render() { Terminal.line(line) }
    }
}
