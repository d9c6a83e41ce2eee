// Gate B's instruments: deterministic single-threaded schedules whose counts are exact —
// kicks and interrupts per 1000 descriptors under each event suppression mode, and system
// calls per 1000 notifications of each doorbell. Same code, same counts, on any machine.

import Doorbell
import Virtqueue
import VirtioMemory

public enum SuppressionSchedule {
    /// Kicks and interrupts per 1000 descriptors when one thread plays a driver that sleeps
    /// while buffers are in flight and a device that sleeps when its ring is empty, posting
    /// and consuming in a fixed pattern of uneven batches (so EVENT_IDX and flags differ).
    public static func run(layout: RingLayoutKind, eventIndex: Bool, rounds: Int = 4000) throws -> (kicks: Double, interrupts: Double, descriptors: Int) {
        switch layout {
        case .split:
            var s = try RingSetups.split(queueSize: 256, policy: .require(.smallPages), eventIndex: eventIndex)
            return try schedule(&s.driver, &s.device, s.addresses, rounds: rounds)
        case .packed:
            var s = try RingSetups.packed(queueSize: 256, policy: .require(.smallPages), eventIndex: eventIndex)
            return try schedule(&s.driver, &s.device, s.addresses, rounds: rounds)
        }
    }

    static func schedule<D: VirtqueueDriverHalf, V: VirtqueueDeviceHalf>(
        _ driver: inout D, _ device: inout V, _ addresses: [UInt64], rounds: Int
    ) throws -> (kicks: Double, interrupts: Double, descriptors: Int) {
        var kicks = 0, interrupts = 0, moved = 0, next = 0
        var deviceAsleep = !device.enableKicks()
        var driverAsleep = false
        driver.disableInterrupts()
        for r in 0..<rounds {
            // The driver posts 1...32 buffers in two publications, deciding on a kick after each.
            let n = 1 + (r &* 7) % 32
            for part in [n / 2, n - n / 2] where part > 0 {
                for _ in 0..<part where driver.freeDescriptors > 0 {
                    _ = try driver.post(Buffer(address: addresses[next], length: 64))
                    next = (next + 1) % addresses.count
                }
                driver.publish()
                if driver.kickNeeded() {
                    kicks += 1
                    if deviceAsleep { deviceAsleep = false; device.disableKicks() }
                }
            }
            // The device, if awake, completes up to 24 and publishes them together.
            if !deviceAsleep {
                var popped = 0
                while popped < 24, let chain = try device.pop() {
                    device.pushUsed(chain, length: 0)
                    popped += 1
                }
                device.publishUsed()
                if device.interruptNeeded() {
                    interrupts += 1
                    if driverAsleep { driverAsleep = false; driver.disableInterrupts() }
                }
                if !device.hasAvailable() { deviceAsleep = !device.enableKicks() }
            }
            // The driver reclaims what came back and sleeps while anything is in flight.
            if !driverAsleep {
                while try driver.reclaim() != nil { moved += 1 }
                if driver.buffersInFlight > 0 { driverAsleep = !driver.enableInterrupts() }
            }
        }
        let per1k = 1000 / Double(max(moved, 1))
        return (Double(kicks) * per1k, Double(interrupts) * per1k, moved)
    }
}

public enum DoorbellSyscalls {
    /// System calls per 1000 notifications of `transport`: one thread rings and then waits
    /// (the notification is already there, so the wait returns at once), both ends counted.
    public static func per1000(_ transport: DoorbellTransport, probe: DoorbellProbe = .current) throws -> Double {
        struct Visitor: DoorbellPairVisitor {
            func visit<KN: DoorbellNotifier, KW: DoorbellWaiter, CN: DoorbellNotifier, CW: DoorbellWaiter>(
                kick: (KN, KW), call: (CN, CW), sleeps: Bool) throws -> Double {
                var (notifier, waiter) = kick
                for _ in 0..<1000 {
                    try notifier.notify()
                    guard try waiter.wait(timeoutNanoseconds: 1_000_000_000) else {
                        throw DoorbellError.systemCall(name: "wait (notification not delivered)", errno: 0)
                    }
                }
                return Double((notifier.counters + waiter.counters).syscalls)
            }
        }
        return try DoorbellDispatch.dispatch(transport.id, probe: probe, Visitor())
    }
}
