// What the io_uring doorbells share: the constants liburing 2.3 lacks or only has as
// macros, a ring owned by one end, and the submit / wait / peek steps counted in syscalls.

import Atomics
import CPlatform
import CUring
import Glibc

/// Opcodes newer than liburing 2.3's headers, from include/uapi/linux/io_uring.h
/// (Linux 6.7+: ... SENDMSG_ZC = 48, READ_MULTISHOT, WAITID, FUTEX_WAIT = 51, FUTEX_WAKE = 52).
@usableFromInline
enum IoUringOpcode {
    @usableFromInline static let futexWait: UInt8 = 51
    @usableFromInline static let futexWake: UInt8 = 52
}

/// `sqe->flags` bits that exist only as macros built from enum values, which Swift does
/// not import. IOSQE_CQE_SKIP_SUCCESS = 1 << IOSQE_CQE_SKIP_SUCCESS_BIT (6): a request that
/// succeeds posts no completion, so a notifier's ring only ever holds its errors.
@usableFromInline
enum SubmissionFlag {
    @usableFromInline static let skipSuccessCompletion: UInt8 = 1 << 6
}

/// futex2 flags, for `sqe->fd` of the io_uring futex opcodes (include/uapi/linux/futex.h).
@usableFromInline
enum Futex2Flag {
    @usableFromInline static let sizeU32: UInt32 = 0x02
    /// FUTEX2_PRIVATE == FUTEX_PRIVATE_FLAG.
    @usableFromInline static let processPrivate: UInt32 = 128
    /// FUTEX_BITSET_MATCH_ANY, for `sqe->addr3` (the mask).
    @usableFromInline static let matchAnyMask: UInt64 = 0xffff_ffff
}

/// `user_data` values; anything else in a doorbell's CQ is a broken ownership rule.
@usableFromInline
enum UserData {
    @usableFromInline static let eventfdRead: UInt64 = 0xD00B_E11_0001
    @usableFromInline static let message: UInt64 = 0xD00B_E11_0002
    @usableFromInline static let messageSend: UInt64 = 0xD00B_E11_0003
    @usableFromInline static let futexWait: UInt64 = 0xD00B_E11_0004
    @usableFromInline static let futexWake: UInt64 = 0xD00B_E11_0005
    static let cancel: UInt64 = 0xD00B_E11_00FF
}

/// One io_uring instance. The end that holds it is its only user: it prepares, submits
/// and reaps from one thread. Made without IORING_SETUP_SINGLE_ISSUER so a pair can be
/// built on one thread and its ends handed to others; every request is submitted lazily
/// by the end's own thread, whose exit would cancel them.
@usableFromInline
final class OwnedRing: @unchecked Sendable {
    @usableFromInline let ring: UnsafeMutablePointer<io_uring>
    let transport: DoorbellTransport
    private var open = true

    /// `completionEntries` sizes the CQ beyond the default 2 × `entries` (IORING_SETUP_CQSIZE)
    /// for a ring others post into (MSG_RING), so a burst of rings does not overflow it.
    init(entries: UInt32, completionEntries: UInt32? = nil, transport: DoorbellTransport) throws(DoorbellError) {
        ring = .allocate(capacity: 1)
        ring.initialize(to: io_uring())
        var params = io_uring_params()
        if let completionEntries {
            params.flags |= UInt32(IORING_SETUP_CQSIZE)
            params.cq_entries = completionEntries
        }
        let rc = io_uring_queue_init_params(entries, ring, &params)
        guard rc == 0 else {
            ring.deallocate()
            throw .systemCall(name: "io_uring_setup", errno: -rc)
        }
        self.transport = transport
    }

    @usableFromInline var fd: Int32 { ring.pointee.ring_fd }

    /// Cancels every request still in flight on this ring and waits (at most a second)
    /// for the cancel to complete, so no armed read can later write into memory the
    /// caller is about to free. Called before the memory the requests point at is freed.
    func cancelInFlight() {
        guard open, let sqe = io_uring_get_sqe(ring) else { return }
        io_uring_prep_cancel64(sqe, 0, Int32(IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL))
        io_uring_sqe_set_data64(sqe, UserData.cancel)
        guard io_uring_submit(ring) >= 1 else { return }
        var timeout = __kernel_timespec(tv_sec: 1, tv_nsec: 0)
        while true {
            var cqe: UnsafeMutablePointer<io_uring_cqe>?
            guard io_uring_wait_cqe_timeout(ring, &cqe, &timeout) == 0, let done = cqe else { return }
            let userData = done.pointee.user_data
            io_uring_cqe_seen(ring, done)
            if userData == UserData.cancel { return }
        }
    }

    /// Tears the ring down (io_uring_queue_exit). Idempotent.
    func exit() {
        guard open else { return }
        open = false
        io_uring_queue_exit(ring)
    }

    deinit {
        exit()
        ring.deinitialize(count: 1)
        ring.deallocate()
    }
}

/// A free submission queue entry, or the error that says someone else used this ring.
@inlinable
func nextSubmission(_ ring: UnsafeMutablePointer<io_uring>,
                    _ transport: DoorbellTransport) throws(DoorbellError) -> UnsafeMutablePointer<io_uring_sqe> {
    guard let sqe = io_uring_get_sqe(ring) else { throw .submissionQueueFull(transport: transport) }
    return sqe
}

/// The next completion if one is already posted; reads the CQ tail only (no syscall).
@inlinable
func peekCompletion(_ ring: UnsafeMutablePointer<io_uring>) -> UnsafeMutablePointer<io_uring_cqe>? {
    var cqe: UnsafeMutablePointer<io_uring_cqe>?
    _ = __io_uring_peek_cqe(ring, &cqe, nil)
    return cqe
}

/// Whether the kernel parked completions on its overflow list (the CQ was full): they
/// reach the CQ only when someone enters the kernel, which a busy-polling waiter never does.
@inlinable
func completionsOverflowed(_ ring: UnsafeMutablePointer<io_uring>) -> Bool {
    // relaxed: a hint re-read on every empty poll; the CQ tail's acquire orders the data.
    let flags = UnsafeAtomic<UInt32>(at: UnsafeMutableRawPointer(ring.pointee.sq.kflags)
        .assumingMemoryBound(to: UInt32.AtomicRepresentation.self))
    return flags.load(ordering: .relaxed) & UInt32(IORING_SQ_CQ_OVERFLOW) != 0
}

/// Submits what is queued (if anything) and waits for one completion, in one
/// io_uring_enter. Returns false if `deadline` passed first.
@inlinable
func submitAndWait(_ ring: UnsafeMutablePointer<io_uring>, deadline: Deadline?,
                   syscalls: inout UInt64) throws(DoorbellError) -> Bool {
    while true {
        syscalls &+= 1
        let rc: Int32
        if let deadline {
            let left = deadline.remaining
            if left == 0 { return false }
            var timeout = __kernel_timespec(tv_sec: Int64(left / 1_000_000_000),
                                            tv_nsec: Int64(left % 1_000_000_000))
            var cqe: UnsafeMutablePointer<io_uring_cqe>?
            rc = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &timeout, nil)
            if rc == -ETIME { return false }
            if rc >= 0 { return true }
        } else {
            rc = io_uring_submit_and_wait(ring, 1)
            if rc >= 0 { return true }
        }
        if rc == -EINTR || rc == -EAGAIN { continue }
        throw .systemCall(name: "io_uring_enter", errno: -rc)
    }
}

/// Submits a notifier's one queued request (one io_uring_enter), then reads back any
/// completion: with IOSQE_CQE_SKIP_SUCCESS only a failure posts one.
@inlinable
func submitNotification(_ ring: UnsafeMutablePointer<io_uring>, operation: StaticString,
                        transport: DoorbellTransport, syscalls: inout UInt64) throws(DoorbellError) {
    while true {
        syscalls &+= 1
        let rc = io_uring_submit(ring)
        if rc >= 1 { break }
        if rc == -EINTR || rc == -EAGAIN { continue }
        throw .systemCall(name: "io_uring_enter", errno: rc < 0 ? -rc : EIO)
    }
    if let cqe = peekCompletion(ring) {
        let res = cqe.pointee.res
        io_uring_cqe_seen(ring, cqe)
        throw .operationFailed(transport: transport, operation: "\(operation)", errno: -res)
    }
}
