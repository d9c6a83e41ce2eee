// Busy-poll doorbell: no notification reaches the kernel; the waiter spins on a word in
// shared (ring) memory with a CPU relax hint. The latency floor the others are held to.

import CPlatform

/// The waiter spins on a 32-bit sequence word; `notify` is one release store. Neither end
/// makes a system call. The waiter burns its CPU: pair it with a thread on another CPU.
public enum BusyPollDoorbell: Doorbell {
    public static func transport(_ configuration: WordPlacement) -> DoorbellTransport { .busyPoll }

    public static func makePair(_ configuration: WordPlacement = .allocated,
                                probe: DoorbellProbe = .current) throws(DoorbellError) -> (Notifier, Waiter) {
        try probe.check(.busyPoll)
        let storage = try WordStorage(configuration)
        return (Notifier(storage: storage), Waiter(storage: storage))
    }

    public struct Notifier: DoorbellNotifier {
        @usableFromInline let storage: WordStorage
        @usableFromInline var publisher: SequencePublisher
        @usableFromInline var tally = DoorbellCounters()
        public var counters: DoorbellCounters { tally }

        init(storage: WordStorage) {
            self.storage = storage
            publisher = SequencePublisher(storage)
        }

        @inlinable
        public mutating func notify() throws(DoorbellError) {
            publisher.publish()
            tally.notificationsSent &+= 1
        }

        public mutating func recordSuppressed() { tally.notificationsSuppressed &+= 1 }
    }

    public struct Waiter: DoorbellWaiter {
        @usableFromInline let storage: WordStorage
        @usableFromInline var observer: SequenceObserver
        @usableFromInline var tally = DoorbellCounters()
        public var counters: DoorbellCounters { tally }

        init(storage: WordStorage) {
            self.storage = storage
            observer = SequenceObserver(storage)
        }

        @inlinable
        public mutating func wait() throws(DoorbellError) {
            while !observer.pending() { cplatform_cpu_relax() }
            received(observer.consume())
        }

        @inlinable
        public mutating func wait(timeoutNanoseconds: UInt64) throws(DoorbellError) -> Bool {
            let deadline = Deadline(after: timeoutNanoseconds)
            var spins: UInt32 = 0
            while !observer.pending() {
                cplatform_cpu_relax()
                spins &+= 1
                // The clock is read every 256 spins only: a vDSO clock_gettime costs about
                // as much as the cross-core line transfer being waited for.
                if spins & 255 == 0, deadline.hasPassed {
                    tally.timeouts &+= 1
                    return false
                }
            }
            received(observer.consume())
            return true
        }

        public mutating func recordSpuriousWakeup() { tally.spuriousWakeups &+= 1 }

        @inlinable
        mutating func received(_ count: UInt32) {
            tally.wakeups &+= 1
            tally.notificationsReceived &+= UInt64(count)
        }
    }
}

/// A point on CLOCK_MONOTONIC, for timed waits.
@usableFromInline
struct Deadline {
    @usableFromInline let nanoseconds: UInt64

    @inlinable
    init(after timeout: UInt64) {
        let now = cplatform_monotonic_ns()
        nanoseconds = timeout > UInt64.max - now ? UInt64.max : now + timeout
    }

    @inlinable
    var hasPassed: Bool { cplatform_monotonic_ns() >= nanoseconds }

    /// Nanoseconds left, 0 once passed.
    @inlinable
    var remaining: UInt64 {
        let now = cplatform_monotonic_ns()
        return now >= nanoseconds ? 0 : nanoseconds - now
    }
}
