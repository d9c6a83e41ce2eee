// Lost-wakeup stress: a producer and a consumer share a small single-producer ring; the
// consumer sleeps through `waitUntil` (publish, fence, re-check), the producer rings only
// when the consumer said it sleeps, in random bursts it waits to see drained. Random pauses
// on both sides; nothing lost, no hang.

import Atomics
import CPlatform
import Doorbell
import Glibc
import Testing

/// A single-producer single-consumer ring of sequence numbers, the stand-in for a
/// virtqueue until the Virtqueue layer's rings replace it in the full stress.
final class SequenceRing: @unchecked Sendable {
    static let capacity: UInt64 = 256
    let slots = UnsafeMutablePointer<UInt64>.allocate(capacity: Int(capacity))
    /// Written by the producer (release), read by the consumer (acquire).
    let tail = ManagedAtomic<UInt64>(0)
    /// Written by the consumer (release), read by the producer (acquire).
    let head = ManagedAtomic<UInt64>(0)
    /// The consumer's "I am about to sleep" — the event-suppression state the producer reads.
    let consumerSleeping = ManagedAtomic<Bool>(false)
    let stop = ManagedAtomic<Bool>(false)

    deinit { slots.deallocate() }
}

struct StressOutcome {
    var consumed: UInt64 = 0
    var firstMismatch: (expected: UInt64, got: UInt64)?
    var failure: String?
    var notifier = DoorbellCounters()
    var waiter = DoorbellCounters()
}

/// Moves one end into the thread that owns it and its counters back out.
final class Handoff<Value>: @unchecked Sendable {
    var value: Value?
    init(_ value: Value) { self.value = value }
}

func stress<D: Doorbell>(_ doorbell: D.Type, _ configuration: D.Configuration, items: UInt64) throws -> StressOutcome {
    let (notifierEnd, waiterEnd) = try D.makePair(configuration, probe: .current)
    let ring = SequenceRing()
    let producerBox = Handoff(notifierEnd)
    let consumerBox = Handoff(waiterEnd)
    let outcome = Handoff(StressOutcome())
    let producerFailure = Handoff<String?>(nil)
    let cpus = WakeupRoundTrip.defaultCPUs

    let consumer = try PinnedThread(cpu: cpus?.1) {
        var waiter = consumerBox.value.take()!
        var result = StressOutcome()
        var pauses = Pauses(seed: 0x9E37_79B9_7F4A_7C15)
        var head: UInt64 = 0
        var expected: UInt64 = 1
        do {
            while expected <= items, !ring.stop.load(ordering: .relaxed) {
                let ready = try waitUntil(
                    { ring.tail.load(ordering: .acquiring) != head },
                    on: &waiter, timeoutNanoseconds: generousTimeout,
                    enableNotifications: { ring.consumerSleeping.store(true, ordering: .relaxed) },
                    disableNotifications: { ring.consumerSleeping.store(false, ordering: .relaxed) })
                // A timed-out sleep is a lost wakeup even when the final re-check then finds
                // the item: nothing rang for it. Fail at the first, not after many 10 s waits.
                guard ready, waiter.counters.timeouts == 0 else {
                    result.failure = "consumer slept \(generousTimeout / 1_000_000_000) s with item \(expected) "
                        + (ready ? "already in the ring and no ring for it" : "never seen") + ": a lost wakeup"
                    break
                }
                // acquire: pairs with the producer's release of tail, so the slots are written.
                let tail = ring.tail.load(ordering: .acquiring)
                while head != tail {
                    let got = ring.slots[Int(head % SequenceRing.capacity)]
                    if got != expected, result.firstMismatch == nil { result.firstMismatch = (expected, got) }
                    expected += 1
                    head += 1
                }
                // release: the producer may reuse the slots only after they were read.
                ring.head.store(head, ordering: .releasing)
                pauses.pause()
            }
        } catch {
            result.failure = "consumer: \(error)"
        }
        if result.failure != nil { ring.stop.store(true, ordering: .relaxed) }
        result.consumed = expected - 1
        result.waiter = waiter.counters
        outcome.value!.consumed = result.consumed
        outcome.value!.firstMismatch = result.firstMismatch
        outcome.value!.waiter = result.waiter
        if let failure = result.failure { outcome.value!.failure = failure }
    }

    let producer = try PinnedThread(cpu: cpus?.0) {
        var notifier = producerBox.value.take()!
        var pauses = Pauses(seed: 0xD1B5_4A32_D192_ED03)
        var tail: UInt64 = 0
        var burst = 1
        do {
            for value in 1...items {
                // Full: wait for the consumer, which never sleeps while the ring holds items.
                var spins = 0
                while tail - ring.head.load(ordering: .acquiring) == SequenceRing.capacity {
                    if ring.stop.load(ordering: .relaxed) { break }
                    spins += 1
                    if spins % 64 == 0 { sched_yield() } else { cplatform_cpu_relax() }
                }
                if ring.stop.load(ordering: .relaxed) { break }
                ring.slots[Int(tail % SequenceRing.capacity)] = value
                tail += 1
                // release: the slot is written before the consumer can see the new tail.
                ring.tail.store(tail, ordering: .releasing)
                // The producer's half of the sleep protocol: publish, full fence, then read
                // the consumer's suppression state ("should I notify?").
                atomicMemoryFence(ordering: .sequentiallyConsistent)
                try notifier.notify(if: ring.consumerSleeping.load(ordering: .relaxed))
                pauses.pause()
                // End of a burst: wait until the consumer has taken everything. A consumer
                // asleep with items in the ring (a lost wakeup) is then never rescued by a
                // later item's ring; it times out and the test fails.
                burst -= 1
                if burst == 0 {
                    burst = 1 + Int(pauses.next() % 64)
                    var spins = 0
                    while ring.head.load(ordering: .acquiring) != tail, !ring.stop.load(ordering: .relaxed) {
                        spins += 1
                        if spins % 64 == 0 { sched_yield() } else { cplatform_cpu_relax() }
                    }
                }
            }
        } catch {
            ring.stop.store(true, ordering: .relaxed)
            producerFailure.value = "producer: \(error)"
        }
        producerBox.value = notifier
    }
    producer.join()
    consumer.join()
    var result = outcome.value!
    if let failure = producerFailure.value ?? nil {
        result.failure = [result.failure, failure].compactMap { $0 }.joined(separator: "; ")
    }
    result.notifier = producerBox.value?.counters ?? DoorbellCounters()
    return result
}

extension DoorbellSuites {
    @Suite
    struct LostWakeupStressTests {
        /// 10^5 per transport keeps the suite short on two shared cores in a debug build;
        /// DOORBELL_STRESS_ITEMS=1000000 runs the full target.
        static let items: UInt64 = {
            if let text = getenv("DOORBELL_STRESS_ITEMS"), let n = UInt64(String(cString: text)), n > 0 { return n }
            return 100_000
        }()

        static let transports: [DoorbellTransport] = [
            .eventfd, .ioUringEventfd, .ioUringMsgRing, .futex, .ioUringFutex,
            .hybrid(.eventfd), .hybrid(.futex), .ioUringMsgRingBusyPoll, .busyPoll,
        ]

        @Test(arguments: transports)
        func noItemIsLostAndNoSleeperIsStranded(_ transport: DoorbellTransport) throws {
            try skipUnlessRunnable(transport)
            let n = Self.items
            let outcome: StressOutcome
            switch transport {
            case .eventfd: outcome = try stress(EventfdDoorbell.self, (), items: n)
            case .ioUringEventfd: outcome = try stress(IoUringEventfdDoorbell.self, (), items: n)
            case .ioUringMsgRing: outcome = try stress(IoUringMsgRingDoorbell.self, (), items: n)
            case .ioUringMsgRingBusyPoll: outcome = try stress(IoUringMsgRingBusyPollDoorbell.self, (), items: n)
            case .futex: outcome = try stress(FutexDoorbell.self, FutexConfiguration(), items: n)
            case .ioUringFutex: outcome = try stress(IoUringFutexDoorbell.self, FutexConfiguration(), items: n)
            case .busyPoll: outcome = try stress(BusyPollDoorbell.self, .allocated, items: n)
            case .hybrid(.eventfd):
                // A 1 µs spin: short enough that the sleep path runs often under the pauses.
                outcome = try stress(HybridDoorbell<EventfdDoorbell>.self, .init(spinNanoseconds: 1_000), items: n)
            case .hybrid(.futex):
                outcome = try stress(HybridDoorbell<FutexDoorbell>.self,
                                     .init(spinNanoseconds: 1_000, inner: FutexConfiguration()), items: n)
            default:
                Issue.record("no stress set up for \(transport)")
                return
            }
            let rung = outcome.notifier.notificationsSent, suppressed = outcome.notifier.notificationsSuppressed
            print("\(transport): \(n) items, \(rung) rung, \(suppressed) suppressed, "
                  + "\(outcome.waiter.wakeups) wakeups (\(outcome.waiter.spuriousWakeups) spurious)")
            #expect(outcome.failure == nil, "\(transport): \(outcome.failure ?? "")")
            #expect(outcome.consumed == n, "\(transport): consumed \(outcome.consumed) of \(n)")
            #expect(outcome.firstMismatch == nil,
                    "\(transport): expected item \(outcome.firstMismatch?.expected ?? 0), found \(outcome.firstMismatch?.got ?? 0)")
            // Every item was either rung for or suppressed, never both, never neither.
            #expect(outcome.notifier.notificationsSent + outcome.notifier.notificationsSuppressed == n)
            // A waiter cannot consume more rings than were sent, nor wake more often.
            #expect(outcome.waiter.notificationsReceived <= outcome.notifier.notificationsSent)
            #expect(outcome.waiter.wakeups <= outcome.notifier.notificationsSent)
            #expect(outcome.waiter.timeouts == 0)
        }
    }
}
