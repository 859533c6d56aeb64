import Foundation
import Testing
import TestSupport
import TestTraits

/// deploy/: the systemd unit and the Prometheus scrape example and alert rules, checked by
/// the real tools where this machine has them (systemd-analyze, promtool), by reading the
/// files otherwise. Each test says in its output which check ran.
@Suite("deploy/ is checked", .sharesMachine)
struct MetricsDeployTests {
    static let deploy = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("deploy")

    private static func tool(_ name: String) -> String? {
        for dir in ["/usr/bin", "/usr/local/bin", "/bin"] where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
            return "\(dir)/\(name)"
        }
        return nil
    }

    private static func run(_ executable: String, _ arguments: [String], in directory: URL? = nil) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        // The daemon's binary gets an explicit environment (no ambient COORD_*); the tools theirs.
        if executable == Harness.binary.path { process.environment = ChildProcess.environment() }
        if let directory { process.currentDirectoryURL = directory }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let deadline = try ChildProcess.run(process, deadline: 120)
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        try deadline.wait()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// The unit's `Key=value` lines by section.
    private static func unitKeys(_ text: String) -> [String: [String: [String]]] {
        var sections: [String: [String: [String]]] = [:]
        var section = ""
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("[") { section = String(line.dropFirst().dropLast()); continue }
            guard let eq = line.firstIndex(of: "=") else { continue }
            sections[section, default: [:]][String(line[..<eq]), default: []].append(String(line[line.index(after: eq)...]))
        }
        return sections
    }

    @Test("the systemd unit: systemd-analyze verify where present, and its keys read in every case")
    func systemdUnit() throws {
        let unit = Self.deploy.appendingPathComponent("systemd/coordinatord.service")
        let text = try String(contentsOf: unit, encoding: .utf8)
        let keys = Self.unitKeys(text)
        let exec = try #require(keys["Service"]?["ExecStart"]?.first)
        #expect(exec.hasPrefix("/usr/local/bin/coordinatord run "))
        #expect(exec.contains("--metrics-port 9467"))
        #expect(keys["Service"]?["Type"] == ["simple"])
        #expect(keys["Service"]?["KillSignal"] == ["SIGTERM"])
        #expect(keys["Service"]?["Restart"] == ["on-failure"])
        #expect(keys["Service"]?["User"] == ["coordinatord"])
        #expect(keys["Service"]?["EnvironmentFile"] == ["-/etc/coordinatord/coordinatord.env"])
        #expect(keys["Service"]?["NoNewPrivileges"] == ["yes"])
        #expect(keys["Install"]?["WantedBy"] == ["multi-user.target"])
        // Descriptors set explicitly, well above what the daemon holds (the metrics port at most 64).
        let nofile = try #require(keys["Service"]?["LimitNOFILE"]?.first, "the unit sets no LimitNOFILE")
        #expect((Int(nofile.split(separator: ":").first ?? "") ?? 0) >= 4096, "LimitNOFILE=\(nofile)")
        // Replies only under replies: (what deploy/redis/users.acl lets the daemon write).
        #expect(keys["Service"]?["Environment"]?.contains("COORD_REPLY_PREFIX=replies:") == true)
        #expect(!exec.contains("--reply-prefix") || exec.contains("--reply-prefix replies:"))
        // The flags in ExecStart are ones `run` accepts.
        let (status, help) = try Self.run(Harness.binary.path, ["run", "--help"])
        #expect(status == 0)
        for flag in exec.split(separator: " ").filter({ $0.hasPrefix("--") }) {
            #expect(help.contains(String(flag)), "run has no \(flag)")
        }

        guard let analyze = Self.tool("systemd-analyze") else {
            print("deploy: systemd-analyze not found; the unit's keys were checked by reading it")
            return
        }
        // verify needs ExecStart's binary to exist: point it at the one just built.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("unit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let copy = dir.appendingPathComponent("coordinatord.service")
        try text.replacingOccurrences(of: "/usr/local/bin/coordinatord", with: Harness.binary.path)
            .write(to: copy, atomically: true, encoding: .utf8)
        let (verified, output) = try Self.run(analyze, ["verify", copy.path], in: dir)
        print("deploy: systemd-analyze verify ran: exit \(verified) \(output)")
        #expect(verified == 0, "\(output)")
        #expect(!output.contains("coordinatord.service:"), "\(output)")
    }

    @Test("one unit file and one environment example ship, and the environment sets the reply prefix and only flags run knows")
    func oneUnitOneEnvironment() throws {
        var units: [String] = []
        var environments: [String] = []
        let walker = FileManager.default.enumerator(atPath: Self.deploy.path)
        while let path = walker?.nextObject() as? String {
            let name = (path as NSString).lastPathComponent
            if name.hasSuffix(".service") { units.append(path) }
            if name.contains(".env") { environments.append(path) }
        }
        #expect(units == ["systemd/coordinatord.service"], "\(units)")
        #expect(environments == ["systemd/coordinatord.env"], "\(environments)")

        let text = try String(contentsOf: Self.deploy.appendingPathComponent("systemd/coordinatord.env"), encoding: .utf8)
        var settings: [String: String] = [:]
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty, !line.hasPrefix("#"), let eq = line.firstIndex(of: "=") else { continue }
            settings[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        #expect(settings["COORD_REPLY_PREFIX"] == "replies:")
        #expect(settings["REDIS_URL"] != nil)
        // Every COORD_<FLAG> names a flag of run.
        let (status, help) = try Self.run(Harness.binary.path, ["run", "--help"])
        #expect(status == 0)
        for name in settings.keys where name.hasPrefix("COORD_") {
            let flag = "--" + name.dropFirst("COORD_".count).lowercased().replacingOccurrences(of: "_", with: "-")
            #expect(help.contains(flag), "\(name): run has no \(flag)")
        }
    }

    @Test("alert rules and scrape config: promtool check and promtool test rules where present, a YAML parse otherwise")
    func prometheus() throws {
        let dir = Self.deploy.appendingPathComponent("prometheus")
        let rules = try String(contentsOf: dir.appendingPathComponent("alerts.yml"), encoding: .utf8)
        for alert in ["CoordinatordNoLiveDaemon", "CoordinatordQueueGrowing", "CoordinatordDeadLettersGrowing",
                      "CoordinatordApprovalsAboutToExpire"] {
            #expect(rules.contains("alert: \(alert)"))
        }
        // Every metric the rules use is one the daemon serves.
        for metric in ["coordinatord_up", "coordinatord_queue_depth", "coordinatord_dead_letters_total",
                       "coordinatord_approvals_expiring_soon", "coordinatord_redis_errors_total"] {
            #expect(rules.contains(metric))
        }
        if let promtool = Self.tool("promtool") {
            for arguments in [["check", "rules", "alerts.yml"], ["check", "config", "prometheus.yml"], ["test", "rules", "alerts_test.yml"]] {
                let (status, output) = try Self.run(promtool, arguments, in: dir)
                print("deploy: promtool \(arguments.joined(separator: " ")) ran: exit \(status)")
                #expect(status == 0, "promtool \(arguments.joined(separator: " ")):\n\(output)")
            }
            return
        }
        let check = """
        import sys, yaml
        rules = yaml.safe_load(open("alerts.yml"))
        alerts = [r for g in rules["groups"] for r in g["rules"]]
        assert all("alert" in r and "expr" in r for r in alerts), alerts
        config = yaml.safe_load(open("prometheus.yml"))
        assert config["scrape_configs"][0]["metrics_path"] == "/metrics"
        yaml.safe_load(open("alerts_test.yml"))
        print(len(alerts))
        """
        let (status, output) = try Self.run("/usr/bin/env", ["python3", "-c", check], in: dir)
        print("deploy: promtool not found; YAML parsed with python3: \(output)")
        #expect(status == 0, "\(output)")
    }
}
