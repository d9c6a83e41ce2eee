// The one device loop: every parent's device thread, the bare reference a mediator is
// divided by, and the engine's bare-ring scenarios run this same code, generic over the
// ring layout, the device's memory and both doorbells, specialised where it is called. Per
// queue: pop a burst, let the service handle each chain, push the burst used, publish once,
// decide on the interrupt; with no work anywhere, sleep on the kick doorbell with the
// enable-then-recheck protocol (or spin, when polling).

import CPlatform
import Doorbell
import Virtqueue

/// What a device model does with each chain, and when the loop stops: the only thing the
/// loops of different devices differ in.
public protocol DeviceLoopService {
    /// Serves one chain of queue `queue` (an index into the loop's queues); returns the
    /// bytes written into its device-writable segments.
    mutating func serve(queue: Int, chain: Chain, segments: UnsafeBufferPointer<Segment>) -> UInt32
    /// A burst of `count` chains of queue `queue` was pushed used and published.
    mutating func completed(queue: Int, count: Int)
    /// An interrupt was sent for queue `queue`.
    mutating func interrupted(queue: Int)
    /// The loop woke from (or timed out of) a sleep on its kick doorbell.
    mutating func woke()
    /// Asked before every pass over the queues, and while asleep.
    mutating func shouldStop() -> Bool
}

/// One queue on a device loop: its device half and its interrupt (nil: nobody is told).
public struct DeviceQueue<Device: VirtqueueDeviceHalf, Call: DoorbellNotifier> {
    /// The virtio queue index (virtio-net: even queues receive, odd ones transmit, §5.1.2).
    public let index: UInt16
    public var device: Device
    public var call: Call?
    public init(index: UInt16, device: Device, call: Call?) {
        self.index = index
        self.device = device
        self.call = call
    }
    public var transmits: Bool { index & 1 == 1 }
}

/// How a device loop waits and how much it takes at a time.
public struct DeviceLoopOptions: Sendable {
    /// Chains popped per queue per pass.
    public var batch: Int
    /// Whether the loop uses its doorbells at all: false is pure polling (no interrupt
    /// decisions, no kick waits; it spins when idle).
    public var sleeps: Bool
    /// How long one sleep on the kick doorbell lasts before the loop looks again.
    public var sleepNanoseconds: UInt64
    /// Whether a sleep that ends without a kick is a lost notification (an error) rather
    /// than a chance to re-check `shouldStop()`.
    public var timeoutIsLostKick: Bool
    public init(batch: Int, sleeps: Bool, sleepNanoseconds: UInt64, timeoutIsLostKick: Bool) {
        self.batch = batch
        self.sleeps = sleeps
        self.sleepNanoseconds = sleepNanoseconds
        self.timeoutIsLostKick = timeoutIsLostKick
    }
}

/// Runs the device loop until `service.shouldStop()`. Returns why it stopped early, or nil.
@inlinable
public func runDeviceLoop<Device: VirtqueueDeviceHalf, Call: DoorbellNotifier, Kick: DoorbellWaiter, Service: DeviceLoopService>(
    _ queues: inout [DeviceQueue<Device, Call>], kick: inout Kick, options: DeviceLoopOptions, service: inout Service
) -> String? {
    let bursts = DeviceBurstBuffers(capacity: options.batch)
    defer { bursts.deallocate() }
    if options.sleeps { for i in queues.indices { queues[i].device.disableKicks() } }
    do throws(VirtqueueError) {
        while !service.shouldStop() {
            var progressed = false
            for i in queues.indices {
                let n = try queues[i].device.serveBurst(bursts, maximum: options.batch) { chain, segments in
                    service.serve(queue: i, chain: chain, segments: segments)
                }
                guard n > 0 else { continue }
                progressed = true
                queues[i].device.publishUsed()
                service.completed(queue: i, count: n)
                // interruptNeeded() owns the store → load fence suppression needs (§2.7.10).
                if options.sleeps, queues[i].call != nil {
                    let needed = queues[i].device.interruptNeeded()
                    do { try queues[i].call!.notify(if: needed) } catch { return "call: \(error)" }
                    if needed { service.interrupted(queue: i) }
                }
            }
            if progressed { continue }
            guard options.sleeps else {
                cplatform_cpu_relax()
                continue
            }
            do {
                let rang = try waitUntil({
                    if service.shouldStop() { return true }
                    for i in queues.indices where queues[i].device.hasAvailable() { return true }
                    return false
                }, on: &kick, timeoutNanoseconds: options.sleepNanoseconds,
                enableNotifications: { for i in queues.indices { _ = queues[i].device.enableKicks() } },
                disableNotifications: { for i in queues.indices { queues[i].device.disableKicks() } })
                service.woke()
                if !rang && options.timeoutIsLostKick {
                    return "no kick within \(options.sleepNanoseconds / 1_000_000_000) s: a notification was lost"
                }
            } catch {
                return "kick: \(error)"
            }
        }
    } catch {
        return "device: \(error)"
    }
    return nil
}
