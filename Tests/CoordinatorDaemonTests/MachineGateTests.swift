import Testing
import TestSupport

/// The gate the parallel suites go through (`.sharesMachine`, `.alone`).
@Suite("MachineGate: who has the machine")
struct MachineGateTests {
    actor Entered {
        var names: [String] = []
        func add(_ name: String) { names.append(name) }
    }

    /// Yields until the gate's state satisfies `condition` (each step of the gate is an actor
    /// call, so the state is the proof that a waiter is waiting, not a pause).
    func until(_ gate: MachineGate, _ condition: @Sendable ((sharing: Int, alone: Bool, waiting: Int)) -> Bool) async {
        while !condition(await gate.state) { await Task.yield() }
    }

    @Test("at most `width` tests share it; one waiting to be alone lets sharing ones go first, runs once none is left, and keeps the others out meanwhile")
    func order() async {
        let gate = MachineGate(width: 2)
        let entered = Entered()
        await gate.enter(alone: false)
        await gate.enter(alone: false)
        let lonely = Task { await gate.enter(alone: true); await entered.add("alone") }
        await until(gate) { $0.waiting == 1 }
        let third = Task { await gate.enter(alone: false); await entered.add("third") }
        await until(gate) { $0.waiting == 2 }
        #expect(await entered.names.isEmpty, "the gate is full: nobody came in")

        // A place frees: the sharing test goes, the one waiting to be alone still waits.
        await gate.leave(alone: false)
        await third.value
        #expect(await entered.names == ["third"])
        #expect(await gate.state == (sharing: 2, alone: false, waiting: 1))

        // Once no test shares it, the lonely one has it, and a sharing one waits for it.
        await gate.leave(alone: false)
        await gate.leave(alone: false)
        await lonely.value
        #expect(await gate.state == (sharing: 0, alone: true, waiting: 0))
        let late = Task { await gate.enter(alone: false); await entered.add("late") }
        await until(gate) { $0.waiting == 1 }
        #expect(await entered.names == ["third", "alone"])
        await gate.leave(alone: true)
        await late.value
        #expect(await gate.state == (sharing: 1, alone: false, waiting: 0))
    }
}
