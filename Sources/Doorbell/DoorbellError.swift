// The Doorbell layer's error type: one case per broken rule, each carrying what the
// person fixing the caller (or the machine) needs (STYLE.md "Errors").

import Glibc

/// An error from a doorbell transport: a machine that lacks it, a system call the kernel
/// refused, an io_uring operation that completed with an error, or an ownership rule broken.
public enum DoorbellError: Error, Equatable, Sendable, CustomStringConvertible {
    /// This machine cannot run `transport`: `missing` names what it lacks (an io_uring
    /// opcode, io_uring itself), `reason` says why (from the probe).
    case transportUnavailable(transport: DoorbellTransport, missing: String, reason: String)
    /// A system call failed.
    case systemCall(name: String, errno: Int32)
    /// An io_uring operation this doorbell submitted completed with an error.
    case operationFailed(transport: DoorbellTransport, operation: String, errno: Int32)
    /// A request armed by the waiter completed with ECANCELED: the thread that armed it
    /// exited (the kernel cancels a task's io_uring requests at exit) or the ring is
    /// being torn down. A waiter must stay on one thread for its whole life.
    case armedRequestCancelled(transport: DoorbellTransport, operation: String)
    /// The submission queue had no free entry, which a doorbell that submits one entry
    /// at a time never causes: something else submitted to a ring this doorbell owns.
    case submissionQueueFull(transport: DoorbellTransport)
    /// A completion carried a `user_data` this doorbell never submitted.
    case unexpectedCompletion(transport: DoorbellTransport, userData: UInt64, result: Int32)
    /// A futex word must be 4-byte aligned (futex(2) returns EINVAL otherwise).
    case futexWordMisaligned(address: UInt)
    /// A hybrid doorbell sleeps on its inner transport, so the inner one must block:
    /// spinning, then spinning again, is not a hybrid.
    case hybridNeedsBlockingInner(inner: DoorbellTransport)
    /// A descriptor number that is not open (eventfd_fget's EBADF).
    case descriptorNotOpen(fd: Int32)
    /// An open descriptor that is not an eventfd (eventfd_fget's EINVAL); `kind` is what
    /// the kernel says it is ("/memfd:queue (deleted)", "pipe:[1234]").
    case notAnEventfd(fd: Int32, kind: String)
    /// An eventfd made outside ``WakeupEventfd``: its writers run no wait queue, so nothing
    /// registered on it would ever be woken.
    case eventfdWithoutWaitQueue(fd: Int32)
    /// The eventfd's wait queue already holds an entry (it holds one: one poller per fd).
    case eventfdAlreadyPolled(fd: Int32)
    /// An end of one transport was asked of an endpoint backed by another (a futex waiter
    /// on an eventfd endpoint): the two sides of a doorbell disagree on what it is.
    case endpointTransportMismatch(expected: DoorbellTransport, endpoint: DoorbellTransport)

    public var description: String {
        switch self {
        case let .transportUnavailable(transport, missing, reason):
            return "doorbell \(transport) unavailable: missing \(missing): \(reason)"
        case let .systemCall(name, errno):
            return "\(name) failed: \(errnoName(errno))"
        case let .operationFailed(transport, operation, errno):
            return "doorbell \(transport): \(operation) completed with \(errnoName(errno))"
        case let .armedRequestCancelled(transport, operation):
            return "doorbell \(transport): the armed \(operation) was cancelled; the thread that "
                + "armed it exited or the ring is closing. Keep each waiter on one thread for its whole life"
        case let .submissionQueueFull(transport):
            return "doorbell \(transport): submission queue full; only this doorbell may submit to its ring"
        case let .unexpectedCompletion(transport, userData, result):
            return "doorbell \(transport): completion with user_data 0x\(String(userData, radix: 16)) "
                + "(res \(result)) that this doorbell never submitted"
        case let .futexWordMisaligned(address):
            return "futex word at 0x\(String(address, radix: 16)) is not 4-byte aligned"
        case let .hybridNeedsBlockingInner(inner):
            return "a hybrid doorbell needs a blocking inner transport; \(inner) does not sleep"
        case let .descriptorNotOpen(fd):
            return "fd \(fd) is not open (EBADF)"
        case let .notAnEventfd(fd, kind):
            return "fd \(fd) is not an eventfd (EINVAL): it is \(kind)"
        case let .eventfdWithoutWaitQueue(fd):
            return "fd \(fd) is an eventfd whose writers run no wait queue; make it with WakeupEventfd.make so a poller can be woken"
        case let .eventfdAlreadyPolled(fd):
            return "eventfd \(fd) already has a poller on its wait queue (one per eventfd)"
        case let .endpointTransportMismatch(expected, endpoint):
            return "a \(expected) doorbell end cannot be made from a \(endpoint) endpoint"
        }
    }
}

/// "EAGAIN (errno 11: Resource temporarily unavailable)".
func errnoName(_ code: Int32) -> String {
    let text = strerror(code).map { String(cString: $0) } ?? "unknown error"
    return "errno \(code): \(text)"
}
