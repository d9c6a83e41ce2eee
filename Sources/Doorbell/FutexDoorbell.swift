// futex doorbell: the notifier bumps a 32-bit sequence word (which may live in ring
// memory) and FUTEX_WAKEs; the waiter FUTEX_WAITs while the word still holds the value it
// last consumed, so a ring between its check and its sleep makes the kernel refuse to sleep.

import CPlatform
import Glibc

/// Where a futex doorbell's word lives and who may share it.
public struct FutexConfiguration {
    public var word: WordPlacement
    /// Use shared (not FUTEX_PRIVATE_FLAG) futex operations: needed when the word sits
    /// in memory mapped by another process (a vhost-user peer).
    public var processShared: Bool

    public init(word: WordPlacement = .allocated, processShared: Bool = false) {
        self.word = word
        self.processShared = processShared
    }
}

public enum FutexDoorbell: Doorbell {
    public static func transport(_ configuration: FutexConfiguration) -> DoorbellTransport { .futex }

    public static func makePair(_ configuration: FutexConfiguration = .init(),
                                probe: DoorbellProbe = .current) throws(DoorbellError) -> (Notifier, Waiter) {
        try probe.check(.futex)
        let storage = try WordStorage(configuration.word)
        let privateFlag: Int32 = configuration.processShared ? 0 : 1
        return (Notifier(storage: storage, privateFlag: privateFlag),
                Waiter(storage: storage, privateFlag: privateFlag))
    }

    public struct Notifier: DoorbellNotifier {
        @usableFromInline let storage: WordStorage
        @usableFromInline var publisher: SequencePublisher
        @usableFromInline let privateFlag: Int32
        @usableFromInline var tally = DoorbellCounters()
        public var counters: DoorbellCounters { tally }

        init(storage: WordStorage, privateFlag: Int32) {
            self.storage = storage
            publisher = SequencePublisher(storage)
            self.privateFlag = privateFlag
        }

        /// Publish, then wake. The order matters: a waiter that checked the word before the
        /// store is either not asleep yet (its FUTEX_WAIT will see the new value and
        /// return EAGAIN) or asleep and on the futex's queue when the wake looks.
        @inlinable
        public mutating func notify() throws(DoorbellError) {
            publisher.publish()
            tally.syscalls &+= 1
            let rc = cplatform_futex_wake(storage.plain, 1, privateFlag)
            guard rc >= 0 else { throw .systemCall(name: "futex(FUTEX_WAKE)", errno: -rc) }
            tally.notificationsSent &+= 1
        }

        public mutating func recordSuppressed() { tally.notificationsSuppressed &+= 1 }
    }

    public struct Waiter: DoorbellWaiter {
        @usableFromInline let storage: WordStorage
        @usableFromInline var observer: SequenceObserver
        @usableFromInline let privateFlag: Int32
        @usableFromInline var tally = DoorbellCounters()
        public var counters: DoorbellCounters { tally }

        init(storage: WordStorage, privateFlag: Int32) {
            self.storage = storage
            observer = SequenceObserver(storage)
            self.privateFlag = privateFlag
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
        mutating func sleep(deadline: Deadline?) throws(DoorbellError) -> Bool {
            var wokenByKernel = false
            while true {
                let arrived = observer.consume()
                if arrived != 0 {
                    tally.wakeups &+= 1
                    tally.notificationsReceived &+= UInt64(arrived)
                    return true
                }
                // The kernel woke this thread yet the word is unchanged: nothing to do.
                if wokenByKernel { tally.spuriousWakeups &+= 1 }
                var timeout: Int64 = -1
                if let deadline {
                    let left = deadline.remaining
                    if left == 0 {
                        tally.timeouts &+= 1
                        return false
                    }
                    timeout = Int64(clamping: left)
                }
                tally.syscalls &+= 1
                let rc = cplatform_futex_wait(storage.plain, observer.seen, timeout, privateFlag)
                switch rc {
                case 0: wokenByKernel = true
                case EAGAIN, EINTR, ETIMEDOUT: wokenByKernel = false
                default: throw .systemCall(name: "futex(FUTEX_WAIT)", errno: rc)
                }
            }
        }

        public mutating func recordSpuriousWakeup() { tally.spuriousWakeups &+= 1 }
    }
}
