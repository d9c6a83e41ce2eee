// eventfd doorbell: the notifier write(2)s 1, the waiter blocks in read(2), which returns
// and clears the count. The reference every blocking transport is compared with.

import CPlatform
import Glibc

/// Closes an fd when the last end holding it is gone.
@usableFromInline
final class FileDescriptor: @unchecked Sendable {
    @usableFromInline let fd: Int32

    /// A fresh eventfd (counter mode, blocking, close-on-exec).
    init() throws(DoorbellError) {
        let fd = cplatform_eventfd(0)
        guard fd >= 0 else { throw .systemCall(name: "eventfd", errno: errno) }
        self.fd = fd
    }

    /// Takes ownership of an eventfd another process handed over (vhost-user's kick and
    /// call descriptors); it is closed when the last doorbell end made from it goes.
    init(adopting fd: Int32) { self.fd = fd }

    deinit { close(fd) }
}

/// Writes 1 to an eventfd (one system call); the waiter's blocking read returns the
/// accumulated count, so rings sent while it was awake coalesce into one wakeup.
@inlinable
func eventfdSignal(_ fd: Int32, syscalls: inout UInt64) throws(DoorbellError) {
    var one: UInt64 = 1
    while true {
        syscalls &+= 1
        let written = write(fd, &one, 8)
        if written == 8 { return }
        if written < 0, errno == EINTR { continue }
        throw .systemCall(name: "write(eventfd)", errno: written < 0 ? errno : EIO)
    }
}

public enum EventfdDoorbell: Doorbell {
    public static func transport(_ configuration: Void) -> DoorbellTransport { .eventfd }

    public static func makePair(_ configuration: Void = (),
                                probe: DoorbellProbe = .current) throws(DoorbellError) -> (Notifier, Waiter) {
        try probe.check(.eventfd)
        let eventfd = try FileDescriptor()
        return (Notifier(eventfd: eventfd), Waiter(eventfd: eventfd))
    }

    public struct Notifier: DoorbellNotifier {
        @usableFromInline let eventfd: FileDescriptor
        @usableFromInline let fd: Int32
        @usableFromInline var tally = DoorbellCounters()
        public var counters: DoorbellCounters { tally }

        init(eventfd: FileDescriptor) {
            self.eventfd = eventfd
            fd = eventfd.fd
        }

        @inlinable
        public mutating func notify() throws(DoorbellError) {
            try eventfdSignal(fd, syscalls: &tally.syscalls)
            tally.notificationsSent &+= 1
        }

        public mutating func recordSuppressed() { tally.notificationsSuppressed &+= 1 }
    }

    public struct Waiter: DoorbellWaiter {
        @usableFromInline let eventfd: FileDescriptor
        @usableFromInline let fd: Int32
        @usableFromInline var tally = DoorbellCounters()
        public var counters: DoorbellCounters { tally }

        init(eventfd: FileDescriptor) {
            self.eventfd = eventfd
            fd = eventfd.fd
        }

        @inlinable
        public mutating func wait() throws(DoorbellError) {
            var count: UInt64 = 0
            while true {
                tally.syscalls &+= 1
                let got = read(fd, &count, 8)
                if got == 8 { break }
                if got < 0, errno == EINTR { continue }
                throw .systemCall(name: "read(eventfd)", errno: got < 0 ? errno : EIO)
            }
            tally.wakeups &+= 1
            tally.notificationsReceived &+= count
        }

        /// A ppoll(2) with the timeout, then the read: two system calls where `wait()`
        /// makes one (the blocking read has no timeout of its own).
        @inlinable
        public mutating func wait(timeoutNanoseconds: UInt64) throws(DoorbellError) -> Bool {
            let deadline = Deadline(after: timeoutNanoseconds)
            while true {
                tally.syscalls &+= 1
                let rc = cplatform_wait_readable(fd, Int64(clamping: deadline.remaining))
                if rc == 1 { break }
                if rc == 0 {
                    tally.timeouts &+= 1
                    return false
                }
                if rc == -EINTR { continue }
                throw .systemCall(name: "ppoll(eventfd)", errno: -rc)
            }
            // Readable and this end is the only reader, so the read cannot block.
            try wait()
            return true
        }

        public mutating func recordSpuriousWakeup() { tally.spuriousWakeups &+= 1 }

        /// Another writer of this eventfd, as anyone holding the descriptor can be (vhost
        /// wakes its own poll on a kick fd this way when it stops polling it).
        public func notifierOnSameEventfd() -> Notifier { Notifier(eventfd: eventfd) }
    }
}
