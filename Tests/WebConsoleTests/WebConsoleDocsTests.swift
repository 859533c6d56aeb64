import Foundation
import Testing
import TestSupport

/// docs/CONSOLE.md stays true to `coordinatord web --help`: its flag table names every flag.
@Suite
struct WebConsoleDocsTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func everyFlagOfWebIsInTheConsolesFlagTable() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("web-help-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let (status, help) = try WebConsoleTLSTests.run([WebEnvironment.binary.path, "web", "--help"], in: directory)
        #expect(status == 0)
        let flags = Set(help.matches(of: /--[a-z][a-z0-9-]*/).map { String($0.output) }).subtracting(["--help", "--version"])
        #expect(flags.count >= 14, "too few flags read from the help: \(help)")
        let doc = try String(contentsOf: Self.root.appendingPathComponent("docs/CONSOLE.md"), encoding: .utf8)
        let table = doc.split(separator: "\n").filter { $0.hasPrefix("| `--") }.joined(separator: "\n")
        for flag in flags.sorted() {
            #expect(table.contains("`\(flag)`"), "\(flag) is not in docs/CONSOLE.md's flag table")
        }
        // And the table names no flag the command lacks.
        for match in table.matches(of: /`(--[a-z][a-z0-9-]*)`/) where !flags.contains(String(match.output.1)) {
            Issue.record("docs/CONSOLE.md's flag table names \(match.output.1), which `coordinatord web` does not have")
        }
    }
}
