// io_uring MSG_RING doorbells: the notifier owns a ring of its own and posts
// IORING_OP_MSG_RING into the waiter's ring, where it lands as a completion. The waiter
// either sleeps in io_uring_enter or busy-polls its CQ with no system call at all.

import CPlatform
import CUring
import Glibc

/// The two rings of a MSG_RING doorbell. The waiter's CQ is sized for bursts (every ring
/// is one CQE; they do not coalesce until the waiter reaps them).
@usableFromInline
final class MessageRingChannel: @unchecked Sendable {
    @usableFromInline let waiterRing: OwnedRing
    @usableFromInline let notifierRing: OwnedRing

    init(transport: DoorbellTransport) throws(DoorbellError) {
        waiterRing = try OwnedRing(entries: 4, completionEntries: 4096, transport: transport)
        notifierRing = try OwnedRing(entries: 4, transport: transport)
    }

    deinit {
        notifierRing.exit()
        waiterRing.exit()
    }
}

/// Posts one MSG_RING per `notify` from its own ring: one io_uring_enter, completed inline
/// by the kernel, which writes the CQE into the waiter's ring and wakes it if it sleeps.
public struct IoUringMessageNotifier: DoorbellNotifier {
    @usableFromInline let channel: MessageRingChannel
    @usableFromInline let ring: UnsafeMutablePointer<io_uring>
    @usableFromInline let target: Int32
    @usableFromInline let transport: DoorbellTransport
    @usableFromInline var tally = DoorbellCounters()
    public var counters: DoorbellCounters { tally }

    init(channel: MessageRingChannel, transport: DoorbellTransport) {
        self.channel = channel
        ring = channel.notifierRing.ring
        target = channel.waiterRing.fd
        self.transport = transport
    }

    @inlinable
    public mutating func notify() throws(DoorbellError) {
        let sqe = try nextSubmission(ring, transport)
        io_uring_prep_msg_ring(sqe, target, 0, UserData.message, 0)
        io_uring_sqe_set_data64(sqe, UserData.messageSend)
        sqe.pointee.flags |= SubmissionFlag.skipSuccessCompletion
        try submitNotification(ring, operation: "IORING_OP_MSG_RING", transport: transport,
                               syscalls: &tally.syscalls)
        tally.notificationsSent &+= 1
    }

    public mutating func recordSuppressed() { tally.notificationsSuppressed &+= 1 }
}

/// Reaps every message already in the waiter's CQ; returns how many (no syscall).
@inlinable
func reapMessages(_ ring: UnsafeMutablePointer<io_uring>, transport: DoorbellTransport) throws(DoorbellError) -> UInt64 {
    var count: UInt64 = 0
    while let cqe = peekCompletion(ring) {
        let userData = cqe.pointee.user_data
        let res = cqe.pointee.res
        io_uring_cqe_seen(ring, cqe)
        guard userData == UserData.message else {
            throw .unexpectedCompletion(transport: transport, userData: userData, result: res)
        }
        count &+= 1
    }
    return count
}

/// The waiter sleeps in io_uring_enter until a message completion arrives.
public enum IoUringMsgRingDoorbell: Doorbell {
    public static func transport(_ configuration: Void) -> DoorbellTransport { .ioUringMsgRing }

    public static func makePair(_ configuration: Void = (),
                                probe: DoorbellProbe = .current) throws(DoorbellError) -> (Notifier, Waiter) {
        try probe.check(.ioUringMsgRing)
        let channel = try MessageRingChannel(transport: .ioUringMsgRing)
        return (Notifier(channel: channel, transport: .ioUringMsgRing), Waiter(channel: channel))
    }

    public typealias Notifier = IoUringMessageNotifier

    public struct Waiter: DoorbellWaiter {
        @usableFromInline let channel: MessageRingChannel
        @usableFromInline let ring: UnsafeMutablePointer<io_uring>
        @usableFromInline var tally = DoorbellCounters()
        public var counters: DoorbellCounters { tally }

        init(channel: MessageRingChannel) {
            self.channel = channel
            ring = channel.waiterRing.ring
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
            while true {
                let arrived = try reapMessages(ring, transport: .ioUringMsgRing)
                if arrived != 0 {
                    tally.wakeups &+= 1
                    tally.notificationsReceived &+= arrived
                    return true
                }
                // Nothing is queued to submit: this io_uring_enter only waits.
                guard try submitAndWait(ring, deadline: deadline, syscalls: &tally.syscalls) else {
                    tally.timeouts &+= 1
                    return false
                }
            }
        }

        public mutating func recordSpuriousWakeup() { tally.spuriousWakeups &+= 1 }
    }
}

/// The waiter spins on its CQ tail (`io_uring_peek_cqe`'s read), never entering the
/// kernel: the notifier's one io_uring_enter is the round trip's only system call.
public enum IoUringMsgRingBusyPollDoorbell: Doorbell {
    public static func transport(_ configuration: Void) -> DoorbellTransport { .ioUringMsgRingBusyPoll }

    public static func makePair(_ configuration: Void = (),
                                probe: DoorbellProbe = .current) throws(DoorbellError) -> (Notifier, Waiter) {
        try probe.check(.ioUringMsgRingBusyPoll)
        let channel = try MessageRingChannel(transport: .ioUringMsgRingBusyPoll)
        return (Notifier(channel: channel, transport: .ioUringMsgRingBusyPoll), Waiter(channel: channel))
    }

    public typealias Notifier = IoUringMessageNotifier

    public struct Waiter: DoorbellWaiter {
        @usableFromInline let channel: MessageRingChannel
        @usableFromInline let ring: UnsafeMutablePointer<io_uring>
        @usableFromInline var tally = DoorbellCounters()
        public var counters: DoorbellCounters { tally }

        init(channel: MessageRingChannel) {
            self.channel = channel
            ring = channel.waiterRing.ring
        }

        @inlinable
        public mutating func wait() throws(DoorbellError) {
            _ = try poll(deadline: nil)
        }

        @inlinable
        public mutating func wait(timeoutNanoseconds: UInt64) throws(DoorbellError) -> Bool {
            try poll(deadline: Deadline(after: timeoutNanoseconds))
        }

        @inlinable
        mutating func poll(deadline: Deadline?) throws(DoorbellError) -> Bool {
            var spins: UInt32 = 0
            while true {
                let arrived = try reapMessages(ring, transport: .ioUringMsgRingBusyPoll)
                if arrived != 0 {
                    tally.wakeups &+= 1
                    tally.notificationsReceived &+= arrived
                    return true
                }
                if completionsOverflowed(ring) {
                    // Flush the kernel's overflow list into the CQ: the one case this end enters.
                    tally.syscalls &+= 1
                    _ = io_uring_get_events(ring)
                    continue
                }
                cplatform_cpu_relax()
                spins &+= 1
                if spins & 255 == 0, let deadline, deadline.hasPassed {
                    tally.timeouts &+= 1
                    return false
                }
            }
        }

        public mutating func recordSpuriousWakeup() { tally.spuriousWakeups &+= 1 }
    }
}
