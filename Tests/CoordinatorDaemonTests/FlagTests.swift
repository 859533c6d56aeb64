import Foundation
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    /// Duration and size flags of the real binary: finite, positive, within bounds, with a clear
    /// message and the usage exit code (2, as every `coordinatord` command; see Coordinatord.main)
    /// instead of a trap.
    @Suite("Flags", .sharesMachine)
    struct FlagTests {
        /// Runs the binary to its end; returns its exit status and what it wrote to stderr.
        func run(_ arguments: [String], environment extra: [String: String] = [:]) throws -> (Int32, String) {
            let process = Process()
            process.executableURL = Harness.binary
            process.arguments = arguments
            // Never reached: the flags are refused first.
            process.environment = ChildProcess.environment(["REDIS_URL": "redis://127.0.0.1:1/0"].merging(extra) { $1 })
            // A file, not a pipe: a read of a pipe interrupted by a signal traps in Foundation.
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("flagtests-\(UUID().uuidString).err")
            _ = FileManager.default.createFile(atPath: path.path, contents: nil)
            defer { try? FileManager.default.removeItem(at: path) }
            let stderr = try FileHandle(forWritingTo: path)
            process.standardOutput = FileHandle.nullDevice
            process.standardError = stderr
            // A flag that is wrongly accepted starts a daemon that never ends: killed, and failed.
            try ChildProcess.run(process, deadline: 30).wait()
            try stderr.close()
            let output = (try? Data(contentsOf: path)) ?? Data()
            return (process.terminationStatus, String(decoding: output, as: UTF8.self))
        }

        @Test("`--step-timeout inf` and other non-finite or out-of-range values are usage errors, not traps")
        func badValues() throws {
            let cases: [([String], String)] = [
                (["run", "--step-timeout", "inf"], "--step-timeout"),
                (["run", "--step-timeout", "nan"], "--step-timeout"),
                (["run", "--step-timeout", "0"], "--step-timeout"),
                (["run", "--step-timeout", "-5"], "--step-timeout"),
                (["run", "--plan-lease", "inf"], "--plan-lease"),
                (["run", "--heartbeat-ttl", "1e300"], "--heartbeat-ttl"),
                (["run", "--sim-speed", "inf"], "--sim-speed"),
                (["run", "--reply-ttl", "0"], "--reply-ttl"),
                (["run", "--max-message-bytes", "9223372036854775807"], "--max-message-bytes"),
                (["run", "--dead-letter-raw-max", "0"], "--dead-letter-raw-max"),
                (["run", "--dead-letter-max", "-1"], "--dead-letter-max"),
                (["run", "--retention", "inf"], "--retention"),
                (["agent", "--id", "a", "--delay", "inf"], "--delay"),
            ]
            for (arguments, flag) in cases {
                let (status, stderr) = try run(arguments)
                #expect(status == 2, "\(arguments): exit \(status), \(stderr)")
                #expect(stderr.contains(flag), "\(arguments): \(stderr)")
            }
            let (status, stderr) = try run(["run"], environment: ["COORD_STEP_TIMEOUT": "inf"])
            #expect(status == 2, "COORD_STEP_TIMEOUT=inf: exit \(status), \(stderr)")
            #expect(stderr.contains("--step-timeout"))
        }
    }
}
