import Testing

@testable import KeelPool

/// The gate with real threads: a blocked `waitForFreeSlot` must wake on `give` or `drain`.
/// Waits are bounded by deadlines so a broken gate fails the test instead of hanging it.
@Suite struct SlotGateTests {
    /// How long a waiter is given to prove it stays blocked.
    static let blockedFor = 0.05
    /// How long a woken waiter may take to return before the test fails.
    static let deadline = 5.0

    /// `waitForFreeSlot` on a thread of its own.
    static func waiter(_ gate: SlotGate) -> BackgroundCall<Bool> { BackgroundCall { gate.waitForFreeSlot() } }

    @Test(arguments: [1, 2, 8])
    func gateIsFullAfterExactlyThreadsTakesAndOneGiveFreesIt(threads: Int) {
        let gate = SlotGate(threads: threads)
        defer { gate.drain() }  // releases the waiter if an expectation failed
        for _ in 0..<(threads - 1) { gate.take() }
        #expect(gate.waitForFreeSlot())

        gate.take()
        let waiter = Self.waiter(gate)
        #expect(!waiter.finished(within: Self.blockedFor))

        gate.give()
        #expect(waiter.finished(within: Self.deadline))
        #expect(waiter.result == true)
    }

    @Test func freshGateDoesNotBlock() {
        let gate = SlotGate(threads: 2)
        #expect(gate.waitForFreeSlot())
        #expect(gate.waitForFreeSlot())  // waiting reserves nothing
        #expect(!gate.isDraining)
    }

    /// A keep-alive request may take a slot past the limit; each one must be given back first.
    @Test func takesPastTheLimitAreAllOwedBack() {
        let gate = SlotGate(threads: 2)
        defer { gate.drain() }
        gate.take()
        gate.take()
        gate.take()
        let waiter = Self.waiter(gate)
        #expect(!waiter.finished(within: Self.blockedFor))

        gate.give()  // 2 of 2 still taken
        #expect(!waiter.finished(within: Self.blockedFor))

        gate.give()
        #expect(waiter.finished(within: Self.deadline))
        #expect(waiter.result == true)
    }

    @Test func drainWakesABlockedWaiterWithFalse() {
        let gate = SlotGate(threads: 1)
        gate.take()
        let waiter = Self.waiter(gate)
        #expect(!waiter.finished(within: Self.blockedFor))

        gate.drain()
        #expect(waiter.finished(within: Self.deadline))
        #expect(waiter.result == false)
        #expect(gate.isDraining)
    }

    @Test func drainedGateRefusesEvenWithFreeSlots() {
        let gate = SlotGate(threads: 4)
        gate.drain()
        #expect(gate.isDraining)
        #expect(!gate.waitForFreeSlot())
        gate.take()
        gate.give()
        #expect(!gate.waitForFreeSlot())
        gate.drain()  // draining twice is harmless
        #expect(gate.isDraining)
    }

    @Test func drainWakesEveryWaiter() {
        let gate = SlotGate(threads: 1)
        gate.take()
        let first = Self.waiter(gate)
        let second = Self.waiter(gate)
        #expect(!first.finished(within: Self.blockedFor))
        #expect(!second.finished(within: 0))

        gate.drain()
        #expect(first.finished(within: Self.deadline))
        #expect(second.finished(within: Self.deadline))
        #expect(first.result == false)
        #expect(second.result == false)
    }
}
