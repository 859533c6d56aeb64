import Foundation
import Testing
import TestSupport

/// How a test uses the machine when suites run in parallel (`MachineGate`):
///
/// - `.sharesMachine`: beside other sharing tests. Put it on each suite whose tests start
///   redis-server, daemons or other processes (on the suite that holds the tests: it did not
///   reach tests through a suite nested from another file).
/// - `.alone`: no other gated test runs meanwhile. Only for a test that changes what every
///   other test depends on (it blocks every thread of the cooperative pool, say); say why
///   where it is used. It wins over a `.sharesMachine` of an enclosing suite.
///
/// Tests without either (pure computations on values) are not gated.
public struct MachineUse: TestTrait, SuiteTrait, TestScoping {
    public let alone: Bool

    public var isRecursive: Bool { true }

    /// Set while a test holds the gate.
    @TaskLocal private static var inside = false

    private static let reportTimes = ProcessInfo.processInfo.environment["COORD_TEST_TIMES"] == "1"

    public func scopeProvider(for test: Test, testCase: Test.Case?) -> MachineUse? {
        // Each run of a test, never a suite as a whole (a suite holding the gate while its
        // tests wait for it would never end).
        guard testCase != nil, !test.isSuite else { return nil }
        if !alone && test.traits.contains(where: { ($0 as? MachineUse)?.alone == true }) { return nil }
        return self
    }

    /// Waits for the gate, then runs the test on threads of its own (`TestThreads`), never on
    /// the cooperative pool.
    public func provideScope(for test: Test, testCase: Test.Case?,
                             performing function: @Sendable () async throws -> Void) async throws {
        // Once per test, however many of these reach it.
        if Self.inside { return try await function() }
        let arrived = ContinuousClock.now
        await MachineGate.shared.enter(alone: alone)
        let entered = ContinuousClock.now
        let threads = TestThreads(name: "test")
        defer {
            threads.finish()
            // COORD_TEST_TIMES=1: each test's time at the gate and its own, to find what paces the run.
            if Self.reportTimes {
                FileHandle.standardError.write(Data("gate: \(test.name) waited \(entered - arrived), ran \(ContinuousClock.now - entered)\n".utf8))
            }
        }
        do {
            try await Self.$inside.withValue(true) {
                try await withTaskExecutorPreference(threads) { try await function() }
            }
        } catch {
            await MachineGate.shared.leave(alone: alone)
            throw error
        }
        await MachineGate.shared.leave(alone: alone)
    }
}

extension Trait where Self == MachineUse {
    /// Runs beside other tests that share the machine.
    public static var sharesMachine: MachineUse { MachineUse(alone: false) }
    /// Runs with no other gated test beside it.
    public static var alone: MachineUse { MachineUse(alone: true) }
}
