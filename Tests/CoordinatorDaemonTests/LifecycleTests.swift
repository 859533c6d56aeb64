@testable import CoordinatorDaemon
import Foundation
import Logging
import Testing
import TestSupport
import TestTraits

extension RealRedis {
    @Suite("Lifecycle: every loop is a service of one group", .sharesMachine)
    struct LifecycleTests {
        struct ProbeFailure: Error {}

        /// A log handler that keeps every message, for a test to read.
        final class Lines: LogHandler, @unchecked Sendable {
            private let lock = NSLock()
            private var lines: [String] = []
            var metadata: Logger.Metadata = [:]
            var logLevel: Logger.Level = .info

            subscript(metadataKey key: String) -> Logger.Metadata.Value? {
                get { metadata[key] }
                set { metadata[key] = newValue }
            }

            func log(event: LogEvent) {
                lock.withLock { lines.append("\(event.level) \(event.message) \(event.metadata ?? [:])") }
            }

            var all: [String] { lock.withLock { lines } }
        }

        /// Holds what `Daemon.run` ended with.
        final class Outcome: @unchecked Sendable {
            private let lock = NSLock()
            private var error: (any Error)??
            let ended = DispatchSemaphore(value: 0)

            func set(_ error: (any Error)?) {
                lock.withLock { self.error = .some(error) }
                ended.signal()
            }

            var value: (any Error)?? { lock.withLock { error } }
        }

        @Test("a service that throws stops the whole daemon: the error and a log line name it, the other loops stop and hand back, no heartbeat is left")
        func failingServiceStopsTheDaemon() throws {
            let h = try Harness()
            let lines = Lines()
            let logger = Logger(label: "coordinatord.test") { _ in lines }
            let fail = Flag()
            // Not reachable from flags or the environment: the daemon's own services only
            // throw on faults a test cannot cause on demand.
            let probe = DaemonService("probe", logger: logger) {
                while !fail.isSet { try await Task.sleep(for: .milliseconds(10)) }
                throw ProbeFailure()
            }
            // A heartbeat TTL of 10 s, not the harness's 2: on a loaded 2-core machine the
            // housekeeping thread can miss a 2 s window, and the check below found no heartbeat.
            var configuration = h.configuration()
            configuration.heartbeatTTL = 10
            let daemon = try Daemon(configuration: configuration, logger: logger, extraServices: [probe])
            let outcome = Outcome()
            // On a thread of its own, as `start()` runs a daemon: tests running in parallel
            // block the cooperative pool's threads, and a daemon run there would wait for one.
            Task(executorPreference: DedicatedExecutor(label: "test.lifecycle")) {
                do {
                    try await daemon.run(signals: [])
                    outcome.set(nil)
                } catch {
                    outcome.set(error)
                }
            }
            try h.push(Wire.coordinate("life-1", replyTo: "test:life", [Wire.recommendation("r")]))
            #expect(try h.reply(on: "test:life", timeout: 30)["ok"] as? Bool == true)
            try h.wait("its heartbeat") { try !h.scanKeys(h.keys.worker("*")).isEmpty }
            // A child process started while the loops are connected, as another test's
            // redis-server is in a whole-suite run: one that inherited their sockets kept them
            // open on this server after the loops closed them (issue 21, 1 of 7 runs).
            let bystander = try RedisServer.start()
            defer { bystander.stop() }

            fail.set()
            #expect(outcome.ended.wait(timeout: .now() + 30) == .success, "the daemon did not stop within 30 s")
            let error = try #require(outcome.value ?? nil, "the daemon stopped without an error")
            #expect((error as? DaemonServiceError)?.service == "probe", "\(error)")
            #expect(lines.all.contains { $0.hasPrefix("critical service probe failed") }, "\(lines.all)")
            // The others stopped gracefully: housekeeping removed the heartbeat on its way out,
            // intake left nothing in flight, and no intake loop still waits on a queue.
            #expect(try h.scanKeys(h.keys.worker("*")).isEmpty)
            #expect(try h.inflightCount() == 0)
            do {
                try h.wait("intake loops to close their connections") {
                    !(try h.redis.send("CLIENT", "LIST").string ?? "").contains("cmd=blmove")
                }
            } catch {
                // Which connection stayed: its CLIENT LIST line names its name, age, idle
                // time and flags.
                let left = (try h.redis.send("CLIENT", "LIST").string ?? "").split(separator: "\n").filter { $0.contains("cmd=blmove") }
                Issue.record("\(error): \(left.joined(separator: " | "))")
            }
        }

        /// `.alone`: it blocks every thread of the cooperative pool, which would stall any test
        /// beside it, and a test beside it holding a pool thread would keep its blockers from
        /// starting.
        @Test("a daemon started in-process stops while its host blocks every thread of the cooperative pool", .alone)
        func stopsWithThePoolBlocked() throws {
            let h = try Harness()
            let daemon = try h.startDaemon()
            try h.push(Wire.coordinate("pool-1", replyTo: "test:pool", [Wire.recommendation("r")]))
            #expect(try h.reply(on: "test:pool", timeout: 30)["ok"] as? Bool == true)
            // Every pool thread (and more) blocked, as synchronous tests on a 2-core machine do.
            let release = DispatchSemaphore(value: 0)
            let blockers = ProcessInfo.processInfo.activeProcessorCount + 2
            let blocked = DispatchSemaphore(value: 0)
            for _ in 0..<blockers {
                Task.detached {
                    blocked.signal()
                    release.wait()
                }
            }
            defer { for _ in 0..<blockers { release.signal() } }
            // The pool is as wide as the machine has cores (this test runs on threads of its
            // own, `.sharesMachine`): all of them are blocked before stopping.
            for _ in 0..<ProcessInfo.processInfo.activeProcessorCount {
                #expect(blocked.wait(timeout: .now() + 10) == .success)
            }
            let stopped = DispatchSemaphore(value: 0)
            Thread.detachNewThread {
                daemon.stop()
                stopped.signal()
            }
            #expect(stopped.wait(timeout: .now() + 15) == .success, "stop() waited on the blocked pool")
            #expect(try h.scanKeys(h.keys.worker("*")).isEmpty, "housekeeping removed the heartbeat on its way out")
        }
    }
}
