// The sleep protocol with event suppression (virtio 1.2 §2.7.10, §2.8.10): the waiter
// publishes "I am about to sleep", fences, re-checks, and only then sleeps, so a producer
// that suppresses its notification can never strand a sleeping consumer.

import Atomics

/// Waits until `condition()` holds, sleeping on `waiter` only after publishing that it is
/// about to sleep and re-checking:
///
/// 1. `condition()` — work already there? return.
/// 2. `enableNotifications()` — publish "about to sleep" (clear VRING_USED_F_NO_NOTIFY,
///    write `used_event` / `avail_event`, set a flag the producer reads).
/// 3. a sequentially consistent fence — store→load ordering: the producer, which
///    publishes its work, fences, then reads the suppression state, and this side cannot
///    both miss each other's write.
/// 4. `condition()` again — work published before step 2 was visible? return.
/// 5. sleep on the doorbell; on waking, `disableNotifications()` and go to 1. A wakeup
///    that finds the condition still false is counted as spurious.
///
/// The producer's side is `publish work; atomicMemoryFence(.sequentiallyConsistent);
/// notifier.notify(if: needsNotification(...))`.
///
/// Returns `false` only when `timeoutNanoseconds` passed with the condition still false.
@inlinable
public func waitUntil<Waiter: DoorbellWaiter>(
    _ condition: () -> Bool,
    on waiter: inout Waiter,
    timeoutNanoseconds: UInt64? = nil,
    enableNotifications: () -> Void,
    disableNotifications: () -> Void
) throws(DoorbellError) -> Bool {
    if condition() { return true }
    let deadline = timeoutNanoseconds.map { Deadline(after: $0) }
    while true {
        enableNotifications()
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if condition() {
            disableNotifications()
            return true
        }
        let rang: Bool
        if let deadline {
            rang = try waiter.wait(timeoutNanoseconds: deadline.remaining)
        } else {
            try waiter.wait()
            rang = true
        }
        disableNotifications()
        if condition() { return true }
        if !rang { return false }
        waiter.recordSpuriousWakeup()
    }
}

extension DoorbellNotifier {
    /// Rings when the caller's suppression check says the waiter needs it, else counts
    /// the suppression. `needed` comes from a pure "should I notify?" function of ring
    /// indices and suppression fields, evaluated after the producer's full fence.
    @inlinable
    public mutating func notify(if needed: Bool) throws(DoorbellError) {
        if needed {
            try notify()
        } else {
            recordSuppressed()
        }
    }
}
