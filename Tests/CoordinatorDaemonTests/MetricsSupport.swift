import Foundation
import TestSupport

/// Scrapes a `/metrics` endpoint and parses it with the Prometheus project's own Python
/// client (`prometheus_client.parser.text_string_to_metric_families`), not a regex of ours.
enum PrometheusScrape {
    struct Sample: Hashable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    /// What one scrape answered: the HTTP status, and the samples when it was 200.
    struct Answer {
        var status: Int
        var samples: [Sample]

        func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
            samples.first { $0.name == name && $0.labels == labels }?.value
        }

        func all(_ name: String) -> [Sample] { samples.filter { $0.name == name } }
    }

    static let script = #"""
    import json, sys, urllib.request, urllib.error
    from prometheus_client.parser import text_string_to_metric_families
    url = sys.argv[1]
    method = sys.argv[2] if len(sys.argv) > 2 else "GET"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as response:
            status = response.status
            text = response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        print(json.dumps({"status": error.code}))
        sys.exit(0)
    print(json.dumps({"status": status}))
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            print(json.dumps({"name": sample.name, "labels": sample.labels, "value": sample.value, "type": family.type}))
    """#

    /// A python3 that has prometheus_client (the test command, scripts/test.sh, installs it).
    static let python: String? = {
        for candidate in ["/usr/bin/env python3", "/usr/bin/python3"] {
            let parts = candidate.split(separator: " ").map(String.init)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: parts[0])
            process.arguments = Array(parts.dropFirst()) + ["-c", "import prometheus_client"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            guard let deadline = try? ChildProcess.run(process, deadline: 60), (try? deadline.wait()) != nil else { continue }
            if process.terminationStatus == 0 { return candidate }
        }
        return nil
    }()

    static func scrape(_ url: String, method: String = "GET") throws -> Answer {
        guard let python else {
            throw HarnessError.malformed("no python3 with prometheus_client: run scripts/test.sh, which installs it (pip install prometheus-client)")
        }
        let parts = python.split(separator: " ").map(String.init)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: parts[0])
        process.arguments = Array(parts.dropFirst()) + ["-c", script, url, method]
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let deadline = try ChildProcess.run(process, deadline: 60)
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        try deadline.wait()
        guard process.terminationStatus == 0 else {
            throw HarnessError.malformed("the Prometheus parser failed on \(url): \(String(decoding: errors, as: UTF8.self))")
        }
        var lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map { try? Harness.object(Array($0.utf8)) }
        guard let head = lines.removeFirst(), let status = head["status"] as? Int else {
            throw HarnessError.malformed("scrape of \(url) answered nothing")
        }
        let samples = try lines.map { line -> Sample in
            guard let line, let name = line["name"] as? String, let value = line["value"] as? Double,
                  let labels = line["labels"] as? [String: String] else {
                throw HarnessError.malformed("a sample the parser printed cannot be read: \(String(describing: line))")
            }
            return Sample(name: name, labels: labels, value: value)
        }
        return Answer(status: status, samples: samples)
    }

    /// The local addresses listening on `port` (from /proc/net/tcp and tcp6), as "a.b.c.d".
    static func listeningAddresses(port: Int) -> [String] {
        var found: [String] = []
        for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                // local_address is "HEXADDR:HEXPORT"; state 0A is LISTEN.
                guard fields.count > 3, fields[3] == "0A" else { continue }
                let local = fields[1].split(separator: ":")
                guard local.count == 2, Int(local[1], radix: 16) == port else { continue }
                let hex = String(local[0])
                if hex.count == 8, let value = UInt32(hex, radix: 16) {
                    let bytes = withUnsafeBytes(of: value.littleEndian) { Array($0) }
                    found.append(bytes.map(String.init).joined(separator: "."))
                } else {
                    found.append(hex)
                }
            }
        }
        return found
    }
}
