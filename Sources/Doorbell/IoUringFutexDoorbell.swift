// io_uring futex doorbell: IORING_OP_FUTEX_WAKE / IORING_OP_FUTEX_WAIT (Linux 6.7+) on a
// 32-bit sequence word. liburing 2.3 has no prep helpers for them, so the entries are
// filled by hand as io_uring/futex.c reads them: fd = futex2 flags, addr = word,
// addr2 = value, addr3 = mask, futex_flags (the op flags field) = 0.

import CUring
import Glibc

public enum IoUringFutexDoorbell: Doorbell {
    public static func transport(_ configuration: FutexConfiguration) -> DoorbellTransport { .ioUringFutex }

    public static func makePair(_ configuration: FutexConfiguration = .init(),
                                probe: DoorbellProbe = .current) throws(DoorbellError) -> (Notifier, Waiter) {
        try probe.check(.ioUringFutex)
        let channel = try Channel(configuration)
        return (Notifier(channel: channel), Waiter(channel: channel))
    }

    @usableFromInline
    final class Channel: @unchecked Sendable {
        @usableFromInline let word: WordStorage
        @usableFromInline let waiterRing: OwnedRing
        @usableFromInline let notifierRing: OwnedRing
        @usableFromInline let futexFlags: UInt32

        init(_ configuration: FutexConfiguration) throws(DoorbellError) {
            word = try WordStorage(configuration.word)
            waiterRing = try OwnedRing(entries: 4, transport: .ioUringFutex)
            notifierRing = try OwnedRing(entries: 4, transport: .ioUringFutex)
            futexFlags = Futex2Flag.sizeU32 | (configuration.processShared ? 0 : Futex2Flag.processPrivate)
        }

        deinit {
            // An armed FUTEX_WAIT holds the word's address; cancel it before the word goes.
            waiterRing.cancelInFlight()
            waiterRing.exit()
            notifierRing.exit()
        }
    }

    /// Fills an entry for IORING_OP_FUTEX_WAIT or _WAKE. `value` is the expected word for
    /// a wait, the number of waiters to wake for a wake.
    @inlinable
    static func prepareFutex(_ sqe: UnsafeMutablePointer<io_uring_sqe>, opcode: UInt8,
                             word: UnsafeMutablePointer<UInt32>, value: UInt64, flags: UInt32) {
        // io_uring_prep_rw zeroes every field it does not set, futex_flags and addr3 included.
        io_uring_prep_rw(Int32(opcode), sqe, Int32(bitPattern: flags), UnsafeRawPointer(word), 0, value)
        sqe.pointee.addr3 = Futex2Flag.matchAnyMask
    }

    public struct Notifier: DoorbellNotifier {
        @usableFromInline let channel: Channel
        @usableFromInline let ring: UnsafeMutablePointer<io_uring>
        @usableFromInline var publisher: SequencePublisher
        @usableFromInline var tally = DoorbellCounters()
        public var counters: DoorbellCounters { tally }

        init(channel: Channel) {
            self.channel = channel
            ring = channel.notifierRing.ring
            publisher = SequencePublisher(channel.word)
        }

        /// Publish the new sequence, then submit FUTEX_WAKE(1): the same order, for the
        /// same reason, as `FutexDoorbell.Notifier.notify`.
        @inlinable
        public mutating func notify() throws(DoorbellError) {
            publisher.publish()
            let sqe = try nextSubmission(ring, .ioUringFutex)
            IoUringFutexDoorbell.prepareFutex(sqe, opcode: IoUringOpcode.futexWake, word: channel.word.plain,
                                              value: 1, flags: channel.futexFlags)
            io_uring_sqe_set_data64(sqe, UserData.futexWake)
            sqe.pointee.flags |= SubmissionFlag.skipSuccessCompletion
            try submitNotification(ring, operation: "IORING_OP_FUTEX_WAKE", transport: .ioUringFutex,
                                   syscalls: &tally.syscalls)
            tally.notificationsSent &+= 1
        }

        public mutating func recordSuppressed() { tally.notificationsSuppressed &+= 1 }
    }

    /// Checks the word first (no syscall when a ring already arrived); otherwise arms
    /// FUTEX_WAIT(expected: the last value consumed) and sleeps on the CQ. The kernel
    /// compares the word when it queues the wait, so a ring in between completes it at
    /// once with EAGAIN instead of being lost.
    public struct Waiter: DoorbellWaiter {
        @usableFromInline let channel: Channel
        @usableFromInline let ring: UnsafeMutablePointer<io_uring>
        @usableFromInline var observer: SequenceObserver
        @usableFromInline var armed = false
        /// The word value the armed wait expects: a completion of a wait armed for a value
        /// since consumed (the ring was seen on the word first) is stale, not a wakeup.
        @usableFromInline var armedFor: UInt32 = 0
        @usableFromInline var tally = DoorbellCounters()
        public var counters: DoorbellCounters { tally }

        init(channel: Channel) {
            self.channel = channel
            ring = channel.waiterRing.ring
            observer = SequenceObserver(channel.word)
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
                // Retire the armed wait's completion first, so it is never left in the CQ
                // to be mistaken for the next wait's wakeup.
                if armed, let cqe = peekCompletion(ring) {
                    let userData = cqe.pointee.user_data
                    let res = cqe.pointee.res
                    io_uring_cqe_seen(ring, cqe)
                    guard userData == UserData.futexWait else {
                        throw .unexpectedCompletion(transport: .ioUringFutex, userData: userData, result: res)
                    }
                    armed = false
                    switch res {
                    case 0: wokenByKernel = armedFor == observer.seen
                    case -EAGAIN: break  // the word moved before the kernel queued the wait
                    case -ECANCELED:
                        throw .armedRequestCancelled(transport: .ioUringFutex, operation: "IORING_OP_FUTEX_WAIT")
                    default:
                        throw .operationFailed(transport: .ioUringFutex, operation: "IORING_OP_FUTEX_WAIT", errno: -res)
                    }
                }
                let arrived = observer.consume()
                if arrived != 0 {
                    // A wait still armed (the ring came in before the kernel queued it, or
                    // after a timeout) stays armed: the notifier's next FUTEX_WAKE completes
                    // it and the next `wait` retires its completion above.
                    tally.wakeups &+= 1
                    tally.notificationsReceived &+= UInt64(arrived)
                    return true
                }
                // The kernel completed the wait yet the word is unchanged: nothing to do.
                if wokenByKernel { tally.spuriousWakeups &+= 1 }
                wokenByKernel = false
                if !armed {
                    let sqe = try nextSubmission(ring, .ioUringFutex)
                    IoUringFutexDoorbell.prepareFutex(sqe, opcode: IoUringOpcode.futexWait,
                                                      word: channel.word.plain,
                                                      value: UInt64(observer.seen), flags: channel.futexFlags)
                    io_uring_sqe_set_data64(sqe, UserData.futexWait)
                    armed = true
                    armedFor = observer.seen
                }
                // One io_uring_enter submits the wait and sleeps until a completion; a word
                // that moved meanwhile completes the wait at once with EAGAIN.
                guard try submitAndWait(ring, deadline: deadline, syscalls: &tally.syscalls) else {
                    tally.timeouts &+= 1
                    return false
                }
            }
        }

        public mutating func recordSpuriousWakeup() { tally.spuriousWakeups &+= 1 }
    }
}
