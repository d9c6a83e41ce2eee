// Rings + each blocking doorbell + event suppression: 10^6 descriptors with random pauses
// on both sides. Every sleep goes through the sleep protocol (publish "notify me", fence,
// re-check, sleep); a lost notification would stall a side for the 5 s timeout and fail.

import CPlatform
import Doorbell
import Testing
import Virtqueue
import VirtioMemory
@testable import VQBenchKit

/// What a stress run saw.
struct StressOutcome: Sendable {
    var moved = 0
    var errors: [String] = []
    var kicks = DoorbellCounters()
    var calls = DoorbellCounters()
}

/// Pauses for a random few hundred nanoseconds to tens of microseconds, now and then.
struct JitterSource {
    var state: UInt64
    mutating func next() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state >> 33
    }
    mutating func maybePause() {
        let r = next()
        guard r % 7 == 0 else { return }
        let until = cplatform_monotonic_ns() + (r % 40) * 500
        while cplatform_monotonic_ns() < until { cplatform_cpu_relax() }
    }
}

struct StressVisitor: DoorbellPairVisitor {
    let layout: RingLayoutKind
    let descriptors: Int

    func visit<KN: DoorbellNotifier, KW: DoorbellWaiter, CN: DoorbellNotifier, CW: DoorbellWaiter>(
        kick: (KN, KW), call: (CN, CW), sleeps: Bool) throws -> StressOutcome {
        switch layout {
        case .split:
            let s = try RingSetups.split(queueSize: 64, policy: .require(.smallPages), eventIndex: true)
            return try stress(s.driver, s.device, s.arena, kick, call)
        case .packed:
            let s = try RingSetups.packed(queueSize: 64, policy: .require(.smallPages), eventIndex: true)
            return try stress(s.driver, s.device, s.arena, kick, call)
        }
    }

    func stress<D: VirtqueueDriverHalf, V: VirtqueueDeviceHalf, KN: DoorbellNotifier, KW: DoorbellWaiter,
                CN: DoorbellNotifier, CW: DoorbellWaiter>(
        _ driver: D, _ device: V, _ arena: QueueArena, _ kick: (KN, KW), _ call: (CN, CW)
    ) throws -> StressOutcome {
        let n = arena.queueSize
        let driverSide = Slot((driver, kick.0, call.1))
        let deviceSide = Slot((device, kick.1, call.0))
        let driverOut = Slot(StressOutcome())
        let deviceOut = Slot(StressOutcome())
        let total = descriptors
        let placement = ThreadPlacement.current()

        let driverThread = try PinnedThread(cpu: placement.driverCPU) {
            var (d, kickN, callW) = driverSide.value
            var out = StressOutcome()
            var jitter = JitterSource(state: 1)
            var seqOf = [UInt64](repeating: 0, count: n)
            var posted: UInt64 = 0
            var expected: UInt64 = 0
            d.disableInterrupts()
            do {
                while out.moved < total {
                    // Post a random-sized batch, then publish and maybe kick.
                    let want = Int(jitter.next() % 16) + 1
                    var added = 0
                    while added < want && d.freeDescriptors > 0 && Int(posted) < total {
                        let slot = Int(posted % UInt64(n))
                        arena.bufferHost(slot).storeBytes(of: posted, as: UInt64.self)
                        let id = try d.post(Buffer(address: arena.bufferAddress(slot), length: 8))
                        seqOf[Int(id)] = posted
                        posted += 1
                        added += 1
                    }
                    if added > 0 {
                        d.publish()
                        try kickN.notify(if: d.kickNeeded())
                    }
                    jitter.maybePause()
                    var got = false
                    while let used = try d.reclaim() {
                        if seqOf[Int(used.id)] != expected { out.errors.append("buffer \(seqOf[Int(used.id)]) came back, expected \(expected)") }
                        expected += 1
                        out.moved += 1
                        got = true
                    }
                    if !got && (d.freeDescriptors == 0 || Int(posted) == total) && out.moved < total {
                        let ok = try waitUntil({ d.hasUsed() }, on: &callW, timeoutNanoseconds: 5_000_000_000,
                                               enableNotifications: { _ = d.enableInterrupts() },
                                               disableNotifications: { d.disableInterrupts() })
                        if !ok { out.errors.append("driver: no interrupt for 5 s with \(d.buffersInFlight) in flight (lost wakeup)"); break }
                    }
                    if out.errors.count > 5 { break }
                }
            } catch {
                out.errors.append("driver: \(error)")
            }
            out.kicks = kickN.counters
            out.calls = callW.counters
            driverOut.value = out
        }
        let deviceThread = try PinnedThread(cpu: placement.deviceCPU) {
            var (v, kickW, callN) = deviceSide.value
            var out = StressOutcome()
            var jitter = JitterSource(state: 2)
            var expected: UInt64 = 0
            v.disableKicks()
            do {
                while out.moved < total {
                    var popped = 0
                    let want = Int(jitter.next() % 16) + 1
                    while popped < want, let chain = try v.pop() {
                        let seq = v.segments[0].host!.load(as: UInt64.self)
                        if seq != expected { out.errors.append("device saw \(seq), expected \(expected)") }
                        expected += 1
                        v.pushUsed(chain, length: 0)
                        popped += 1
                    }
                    if popped > 0 {
                        v.publishUsed()
                        out.moved += popped
                        jitter.maybePause()
                        try callN.notify(if: v.interruptNeeded())
                    } else {
                        let ok = try waitUntil({ v.hasAvailable() }, on: &kickW, timeoutNanoseconds: 5_000_000_000,
                                               enableNotifications: { _ = v.enableKicks() },
                                               disableNotifications: { v.disableKicks() })
                        if !ok { out.errors.append("device: no kick for 5 s after \(out.moved) (lost wakeup)"); break }
                    }
                    if out.errors.count > 5 { break }
                }
            } catch {
                out.errors.append("device: \(error)")
            }
            out.kicks = kickW.counters
            out.calls = callN.counters
            deviceOut.value = out
        }
        driverThread.join()
        deviceThread.join()
        var result = driverOut.value
        result.errors += deviceOut.value.errors
        result.kicks = result.kicks + deviceOut.value.kicks
        result.calls = result.calls + deviceOut.value.calls
        if deviceOut.value.moved != total { result.errors.append("device moved \(deviceOut.value.moved) of \(total)") }
        return result
    }
}

@Suite(.serialized)
struct LostWakeupRingStressTests {
    static let blocking = ["eventfd", "io_uring-eventfd", "io_uring-msgring", "futex", "io_uring-futex", "hybrid-eventfd"]

    @Test(arguments: blocking)
    func aMillionDescriptorsWithRandomPausesNeverLoseAWakeup(doorbell: String) throws {
        let probe = DoorbellProbe.current
        if let why = DoorbellDispatch.unavailability(of: doorbell, probe: probe) { try Test.cancel("\(doorbell): \(why)") }
        // Alternate layouts across doorbells so both see every kind of sleep.
        let layout: RingLayoutKind = Self.blocking.firstIndex(of: doorbell)! % 2 == 0 ? .split : .packed
        let outcome = try DoorbellDispatch.dispatch(doorbell, probe: probe, StressVisitor(layout: layout, descriptors: 1_000_000))
        #expect(outcome.errors.isEmpty, "\(outcome.errors.prefix(3))")
        #expect(outcome.moved == 1_000_000)
        // The sides really slept and were woken (not a polling run in disguise).
        #expect(outcome.kicks.notificationsSent > 0)
        #expect(outcome.calls.notificationsSent > 0)
        #expect(outcome.kicks.wakeups + outcome.calls.wakeups > 0)
    }
}
