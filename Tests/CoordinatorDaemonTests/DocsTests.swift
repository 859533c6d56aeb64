import Foundation
import Testing
import TestSupport
import TestTraits

/// The README stays true: its flag table (or a page it links) names every flag of `run`, and
/// every file or type its layout table names exists.
@Suite("Docs", .sharesMachine)
struct DocsTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func read(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    /// The README and every page under docs/ it links to.
    static func readmeAndLinkedPages() throws -> String {
        let readme = try read("README.md")
        let links = readme.matches(of: /\]\((docs\/[A-Za-z]+\.md)[#)]/).map { String($0.output.1) }
        return try ([readme] + Set(links).sorted().map(read)).joined(separator: "\n")
    }

    /// What `coordinatord run --help` prints.
    static func runHelp() throws -> String {
        let process = Process()
        process.executableURL = Harness.binary
        process.arguments = ["run", "--help"]
        process.environment = ChildProcess.environment([:])
        // A file, not a pipe: a read of a pipe interrupted by a signal traps in Foundation.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("docstests-\(UUID().uuidString).out")
        _ = FileManager.default.createFile(atPath: path.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: path) }
        let output = try FileHandle(forWritingTo: path)
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try ChildProcess.run(process, deadline: 30).wait()
        try output.close()
        return String(decoding: (try? Data(contentsOf: path)) ?? Data(), as: UTF8.self)
    }

    @Test("every flag of `coordinatord run --help` is in the README's flag table or a page it links")
    func everyFlagDocumented() throws {
        let help = try Self.runHelp()
        let flags = Set(help.matches(of: /--[a-z][a-z0-9-]*/).map { String($0.output) }).subtracting(["--help", "--version"])
        #expect(flags.count >= 30, "too few flags read from the help: \(help)")
        let docs = try Self.readmeAndLinkedPages()
        let readme = try Self.read("README.md")
        for flag in flags.sorted() {
            #expect(readme.contains("| `\(flag)` |") || docs.contains("`\(flag)`"), "\(flag) is in no flag table")
        }
    }

    @Test("every file and type the README's layout table names exists")
    func layoutTableIsTrue() throws {
        let readme = try Self.read("README.md")
        let start = try #require(readme.range(of: "## Layout"))
        let table = readme[start.upperBound...].split(separator: "\n").prefix { !$0.hasPrefix("## ") }.filter { $0.hasPrefix("|") }
        #expect(table.count > 10)
        var target = ""
        var checked = 0
        for row in table.dropFirst(2) {
            let cells = row.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 4 else { continue }
            if let name = cells[1].firstMatch(of: /`([A-Za-z-]+)`/)?.output.1 { target = String(name) }
            let folder = cells[2].firstMatch(of: /`([A-Za-z]+\/)`/).map { String($0.output.1) } ?? ""
            let sources = Self.root.appendingPathComponent("Sources/\(target)")
            let files = FileManager.default.enumerator(atPath: sources.path)?.compactMap { $0 as? String } ?? []
            #expect(!files.isEmpty, "Sources/\(target) named in the layout table does not exist")
            if !folder.isEmpty {
                #expect(files.contains { $0.hasPrefix(folder) }, "Sources/\(target)/\(folder) does not exist")
            }
            let code = try files.filter { $0.hasSuffix(".swift") }.map {
                try String(contentsOf: sources.appendingPathComponent($0), encoding: .utf8)
            }.joined(separator: "\n")
            for match in cells[3].matches(of: /`\+?([A-Z][A-Za-z0-9]+)`/) {
                let name = String(match.output.1)
                let isFile = files.contains { $0.hasSuffix("/\(name).swift") || $0 == "\(name).swift" || $0.hasSuffix("+\(name).swift") }
                let isType = ["struct", "class", "enum", "protocol", "actor", "extension"].contains {
                    code.contains("\($0) \(name) ") || code.contains("\($0) \(name):") || code.contains("\($0) \(name)<")
                }
                #expect(isFile || isType, "`\(name)` in the layout row of Sources/\(target)/\(folder) is neither a file nor a type there")
                checked += 1
            }
        }
        #expect(checked > 50, "only \(checked) names checked")
    }
}
