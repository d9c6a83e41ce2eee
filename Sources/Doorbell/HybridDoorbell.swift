// Hybrid doorbell: the waiter spins for a bounded, configurable time on a shared sequence
// word, then sleeps on any blocking transport; the notifier rings the inner transport only
// when the waiter said it is asleep. What a latency-tuned device does.

import Atomics
import CPlatform

public struct HybridConfiguration<Inner: Doorbell> {
    /// How long the waiter spins before it sleeps. Near the cost of a wakeup here
    /// (12–45 µs) a spin wins whenever the peer answers within it.
    public var spinNanoseconds: UInt64
    public var inner: Inner.Configuration

    public init(spinNanoseconds: UInt64, inner: Inner.Configuration) {
        self.spinNanoseconds = spinNanoseconds
        self.inner = inner
    }
}

extension HybridConfiguration where Inner.Configuration == Void {
    public init(spinNanoseconds: UInt64) {
        self.init(spinNanoseconds: spinNanoseconds, inner: ())
    }
}

/// The words the two ends share, each on a line of its own: the notifier writes
/// `sequence`, the waiter writes `sleeping`.
@usableFromInline
final class HybridState: @unchecked Sendable {
    let memory: UnsafeMutableRawPointer
    let sequenceWord: WordStorage

    init() throws(DoorbellError) {
        memory = .allocate(byteCount: 256, alignment: 128)
        memory.initializeMemory(as: UInt8.self, repeating: 0, count: 256)
        sequenceWord = try WordStorage(.callerProvided(memory))
    }

    @usableFromInline var sleeping: UnsafeAtomic<UInt32> {
        UnsafeAtomic(at: (memory + 128).assumingMemoryBound(to: UInt32.AtomicRepresentation.self))
    }

    deinit { memory.deallocate() }
}

public enum HybridDoorbell<Inner: Doorbell>: Doorbell {
    public static func transport(_ configuration: HybridConfiguration<Inner>) -> DoorbellTransport {
        .hybrid(Inner.transport(configuration.inner))
    }

    public static func makePair(_ configuration: HybridConfiguration<Inner>,
                                probe: DoorbellProbe = .current) throws(DoorbellError) -> (Notifier, Waiter) {
        let inner = Inner.transport(configuration.inner)
        guard inner.blocks else { throw .hybridNeedsBlockingInner(inner: inner) }
        try probe.check(transport(configuration))
        let (innerNotifier, innerWaiter) = try Inner.makePair(configuration.inner, probe: probe)
        let state = try HybridState()
        return (Notifier(state: state, inner: innerNotifier),
                Waiter(state: state, inner: innerWaiter, spinNanoseconds: configuration.spinNanoseconds))
    }

    public struct Notifier: DoorbellNotifier {
        @usableFromInline let state: HybridState
        @usableFromInline var publisher: SequencePublisher
        @usableFromInline let sleeping: UnsafeAtomic<UInt32>
        /// The inner transport's notifier; its counters say how often the hybrid really rang.
        @usableFromInline var innerEnd: Inner.Notifier
        public var inner: Inner.Notifier { innerEnd }
        @usableFromInline var tally = DoorbellCounters()

        /// Sent and suppressed as the caller sees them; syscalls are the inner transport's.
        public var counters: DoorbellCounters {
            var counters = tally
            counters.syscalls = innerEnd.counters.syscalls
            return counters
        }

        init(state: HybridState, inner: Inner.Notifier) {
            self.state = state
            publisher = SequencePublisher(state.sequenceWord)
            sleeping = state.sleeping
            self.innerEnd = inner
        }

        @inlinable
        public mutating func notify() throws(DoorbellError) {
            publisher.publish()
            // Sequentially consistent fence: orders the store above before the load below
            // (store→load, which release/acquire does not). Pairs with the waiter's fence
            // between its `sleeping` store and its re-check of the word: at least one side
            // sees the other's write, so a sleeping waiter is always rung.
            atomicMemoryFence(ordering: .sequentiallyConsistent)
            if sleeping.load(ordering: .relaxed) != 0 {
                try innerEnd.notify()
            }
            tally.notificationsSent &+= 1
        }

        public mutating func recordSuppressed() { tally.notificationsSuppressed &+= 1 }
    }

    public struct Waiter: DoorbellWaiter {
        @usableFromInline let state: HybridState
        @usableFromInline var observer: SequenceObserver
        @usableFromInline let sleeping: UnsafeAtomic<UInt32>
        @usableFromInline let spinNanoseconds: UInt64
        @usableFromInline var innerEnd: Inner.Waiter
        public var inner: Inner.Waiter { innerEnd }
        @usableFromInline var tally = DoorbellCounters()

        public var counters: DoorbellCounters {
            var counters = tally
            counters.syscalls = innerEnd.counters.syscalls
            return counters
        }

        init(state: HybridState, inner: Inner.Waiter, spinNanoseconds: UInt64) {
            self.state = state
            observer = SequenceObserver(state.sequenceWord)
            sleeping = state.sleeping
            self.innerEnd = inner
            self.spinNanoseconds = spinNanoseconds
        }

        @inlinable
        public mutating func wait() throws(DoorbellError) {
            _ = try sleep(deadline: nil)
        }

        @inlinable
        public mutating func wait(timeoutNanoseconds: UInt64) throws(DoorbellError) -> Bool {
            try sleep(deadline: Deadline(after: timeoutNanoseconds))
        }

        @inlinable
        mutating func received() -> Bool {
            let arrived = observer.consume()
            guard arrived != 0 else { return false }
            tally.wakeups &+= 1
            tally.notificationsReceived &+= UInt64(arrived)
            return true
        }

        @inlinable
        mutating func sleep(deadline: Deadline?) throws(DoorbellError) -> Bool {
            while true {
                // Spin phase: the clock is read every 64 relax hints only.
                let spinBudget = deadline.map { Swift.min(spinNanoseconds, $0.remaining) } ?? spinNanoseconds
                if spinBudget > 0 {
                    let spinEnd = Deadline(after: spinBudget)
                    var spins: UInt32 = 0
                    while !observer.pending() {
                        cplatform_cpu_relax()
                        spins &+= 1
                        if spins & 63 == 0, spinEnd.hasPassed { break }
                    }
                }
                if received() { return true }

                // Sleep phase: publish "about to sleep", full fence, re-check, then sleep.
                sleeping.store(1, ordering: .relaxed)
                atomicMemoryFence(ordering: .sequentiallyConsistent)
                if received() {
                    sleeping.store(0, ordering: .relaxed)
                    return true
                }
                let rang: Bool
                do throws(DoorbellError) {
                    if let deadline {
                        rang = try innerEnd.wait(timeoutNanoseconds: deadline.remaining)
                    } else {
                        try innerEnd.wait()
                        rang = true
                    }
                } catch {
                    sleeping.store(0, ordering: .relaxed)
                    throw error
                }
                // relaxed: only the notifier's decision to ring depends on it, and a stale
                // 1 costs one needless inner ring, never a lost one.
                sleeping.store(0, ordering: .relaxed)
                if received() { return true }
                if !rang {
                    tally.timeouts &+= 1
                    return false
                }
                // A ring meant for an earlier sleep that the re-check already covered.
                tally.spuriousWakeups &+= 1
            }
        }

        public mutating func recordSpuriousWakeup() { tally.spuriousWakeups &+= 1 }
    }
}
