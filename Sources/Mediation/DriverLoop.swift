// The one driver loop: the engine's bare-ring scenarios (one queue or several per thread),
// every mediated scenario's driver (DriverQueue.transmit, through any parent and binding) and
// the bare reference a mediator is divided by all run this code, generic over the ring
// layout and both doorbells, specialised where it is called. Per queue: when there is room,
// post a burst of single-descriptor buffers from the queue's buffer ring, publish once,
// decide on the kick; reclaim a burst; with nothing to do anywhere, sleep on the interrupt
// with the enable-then-recheck protocol (or spin, when polling). The mirror of
// runDeviceLoop: what differs between users is only a DriverLoopService.

import CPlatform
import Doorbell
import Virtqueue

/// What a driver does around the loop's bursts: the only thing its users differ in.
public protocol DriverLoopService {
    /// `count` buffers of queue `queue` (an index into the loop's queues), starting at slot
    /// `slot` of its buffer ring and wrapping, are about to be posted (a transmitter stamps
    /// them here).
    mutating func willPost(queue: Int, slot: Int, count: Int)
    /// Latency mode: a whole burst of queue `queue` came back, `nanoseconds` after it was posted.
    mutating func roundTrip(queue: Int, nanoseconds: UInt64)
}

/// A service that does nothing around the bursts: the bare rings' driver.
public struct PlainDriverService: DriverLoopService {
    public init() {}
    @inlinable @inline(__always) public mutating func willPost(queue: Int, slot: Int, count: Int) {}
    @inlinable @inline(__always) public mutating func roundTrip(queue: Int, nanoseconds: UInt64) {}
}

/// One queue on a driver loop: its driver half, its kick, the ring of buffer addresses it
/// posts from (one per buffer, device-visible; the caller keeps them alive while the loop
/// runs), and how far it got.
public struct DriverLoopQueue<Driver: VirtqueueDriverHalf, Kick: DoorbellNotifier> {
    public var driver: Driver
    public var kick: Kick
    public let addresses: UnsafeBufferPointer<UInt64>
    /// Buffers to move through this queue.
    public let target: Int
    public var posted = 0
    public var reclaimed = 0
    /// Next slot of `addresses` to post.
    @usableFromInline var next = 0
    /// When the burst in flight was posted (latency mode).
    @usableFromInline var postedAt: UInt64 = 0

    public init(driver: Driver, kick: Kick, addresses: UnsafeBufferPointer<UInt64>, target: Int) {
        self.driver = driver
        self.kick = kick
        self.addresses = addresses
        self.target = target
    }
}

/// How a driver loop posts, waits and times.
public struct DriverLoopOptions: Sendable {
    /// Buffers posted per burst.
    public var batch: Int
    /// Bytes each buffer carries (device-readable).
    public var length: UInt32
    /// Latency mode: one burst in flight per queue, each timed from post to its last reclaim
    /// (`DriverLoopService.roundTrip`); otherwise a new burst whenever `batch` descriptors are free.
    public var latency: Bool
    /// Whether the loop uses its doorbells: kicks by event suppression and sleeps on the
    /// interrupt when idle. False is pure polling (no kick decisions; it spins when idle).
    public var sleeps: Bool
    /// How long one sleep on the interrupt may last before it is a lost notification.
    public var lostInterruptNanoseconds: UInt64
    public init(batch: Int, length: UInt32, latency: Bool, sleeps: Bool, lostInterruptNanoseconds: UInt64 = 5_000_000_000) {
        self.batch = max(batch, 1)
        self.length = length
        self.latency = latency
        self.sleeps = sleeps
        self.lostInterruptNanoseconds = lostInterruptNanoseconds
    }
}

/// Runs the driver loop until every queue has had its `target` buffers back. Returns why it
/// stopped early, or nil (each queue's `reclaimed` says how far it got).
@inlinable
public func runDriverLoop<Driver: VirtqueueDriverHalf, Kick: DoorbellNotifier, Call: DoorbellWaiter, Service: DriverLoopService>(
    _ queues: inout [DriverLoopQueue<Driver, Kick>], call: inout Call, options: DriverLoopOptions, service: inout Service
) -> String? {
    let batch = options.batch
    if options.sleeps { for q in queues.indices { queues[q].driver.disableInterrupts() } }
    var remaining = queues.reduce(0) { $0 + ($1.reclaimed < $1.target ? 1 : 0) }
    do throws(VirtqueueError) {
        while remaining > 0 {
            var progressed = false
            for q in queues.indices where queues[q].reclaimed < queues[q].target {
                let room = options.latency ? queues[q].posted == queues[q].reclaimed : queues[q].driver.freeDescriptors >= batch
                if queues[q].posted < queues[q].target && room {
                    let n = min(batch, queues[q].target &- queues[q].posted)
                    service.willPost(queue: q, slot: queues[q].next, count: n)
                    if options.latency { queues[q].postedAt = cplatform_monotonic_ns() }
                    let addresses = queues[q].addresses
                    var next = queues[q].next
                    let sent = queues[q].driver.postBurst(from: addresses, next: &next, count: n, length: options.length)
                    queues[q].next = next
                    // The room check left space for the whole burst: fewer is a broken ring.
                    guard sent == n else { return "driver: posted \(sent) of a burst of \(n) with room for it" }
                    queues[q].posted &+= n
                    queues[q].driver.publish()
                    // kickNeeded() owns the store → load fence suppression needs (§2.7.10).
                    if options.sleeps {
                        do { try queues[q].kick.notify(if: queues[q].driver.kickNeeded()) } catch { return "kick: \(error)" }
                    }
                    progressed = true
                }
                let got = try queues[q].driver.reclaimBurst(maximum: batch) { _ in }
                guard got > 0 else { continue }
                progressed = true
                queues[q].reclaimed &+= got
                if options.latency && queues[q].posted == queues[q].reclaimed {
                    service.roundTrip(queue: q, nanoseconds: cplatform_monotonic_ns() &- queues[q].postedAt)
                }
                if queues[q].reclaimed >= queues[q].target { remaining &-= 1 }
            }
            if progressed { continue }
            guard options.sleeps else {
                cplatform_cpu_relax()
                continue
            }
            do {
                let rang = try waitUntil({
                    for q in queues.indices where queues[q].driver.hasUsed() { return true }
                    return false
                }, on: &call, timeoutNanoseconds: options.lostInterruptNanoseconds,
                enableNotifications: { for q in queues.indices { _ = queues[q].driver.enableInterrupts() } },
                disableNotifications: { for q in queues.indices { queues[q].driver.disableInterrupts() } })
                if !rang {
                    return "no interrupt within \(options.lostInterruptNanoseconds / 1_000_000_000) s: a notification was lost"
                }
            } catch {
                return "call: \(error)"
            }
        }
    } catch {
        return "driver: \(error)"
    }
    return nil
}
