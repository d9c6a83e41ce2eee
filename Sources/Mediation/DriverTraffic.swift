// The driver's side of mediated traffic: transmit numbered, checksummed packets, or post
// receive buffers and check every byte the device wrote. The same loop serves tests and
// the benchmark engine; generic over the ring layout, kick path and interrupt waiter.

import Atomics
import CPlatform
import Doorbell
import Virtqueue

/// What a driver loop did.
public struct TrafficOutcome: Sendable {
    public var packets = 0
    public var nanoseconds: UInt64 = 0
    public var driverCPUNanoseconds: UInt64 = 0
    /// Sum of `payloadChecksum` over every transmitted payload (compare with the device's).
    public var checksum: UInt64 = 0
    public var kick = DoorbellCounters()
    public var call = DoorbellCounters()
    /// Round trips in nanoseconds, one per batch (latency mode).
    public var roundTrips: [UInt64] = []
    public var errors: [String] = []
    public var packetsPerSecond: Double { Double(packets) * 1e9 / Double(max(nanoseconds, 1)) }
    public init() {}
}

/// How long the driver waits for an interrupt before declaring it lost.
public let lostInterruptTimeoutNanoseconds: UInt64 = 5_000_000_000

/// The transmitter around the driver loop: stamps each buffer with its sequence number (and
/// sums the payloads' checksums) before it is posted, and keeps each round trip.
@usableFromInline
struct TransmitService: DriverLoopService {
    @usableFromInline let hosts: [UnsafeMutableRawPointer]
    @usableFromInline let length: Int
    @usableFromInline var sequence: UInt64
    /// Stamping writes the payload on the driver's CPU, so the device then pulls a line the
    /// driver dirtied: real, but not a cost the bare ring pays; the engine turns it off to
    /// compare like with like.
    @usableFromInline let stamps: Bool
    @usableFromInline var checksum: UInt64 = 0
    @usableFromInline var roundTrips: [UInt64] = []

    @inlinable init(hosts: [UnsafeMutableRawPointer], length: Int, sequence: UInt64, stamps: Bool) {
        self.hosts = hosts
        self.length = length
        self.sequence = sequence
        self.stamps = stamps
    }

    @inlinable mutating func willPost(queue: Int, slot: Int, count: Int) {
        guard stamps else { return }
        var slot = slot
        for _ in 0..<count {
            let host = hosts[slot]
            host.storeBytes(of: sequence, as: UInt64.self)
            checksum &+= payloadChecksum(host, length)
            sequence &+= 1
            slot = slot &+ 1 == hosts.count ? 0 : slot &+ 1
        }
    }

    @inlinable mutating func roundTrip(queue: Int, nanoseconds: UInt64) { roundTrips.append(nanoseconds) }
}

extension DriverQueue {
    /// Waits for used buffers on the queue's interrupt, with the sleep protocol.
    @inlinable
    mutating func awaitUsed() -> String? {
        do {
            let ok = try waitUntil({ driver.hasUsed() }, on: &call, timeoutNanoseconds: lostInterruptTimeoutNanoseconds,
                                   enableNotifications: { _ = driver.enableInterrupts() },
                                   disableNotifications: { driver.disableInterrupts() })
            return ok ? nil : "queue \(index): no interrupt within 5 s: a notification was lost"
        } catch {
            return "queue \(index): call: \(error)"
        }
    }

    /// Kicks when event suppression says the device needs it. kickNeeded() owns the full
    /// fence between publishing avail and reading the device's suppression field.
    @inlinable
    mutating func kickIfNeeded() -> String? {
        do { try kick.notify(if: driver.kickNeeded()) } catch { return "queue \(index): kick: \(error)" }
        return nil
    }

    /// Transmits `packets` packets of `payloadBytes`, each stamped with its number, in
    /// batches; `latency` keeps one batch in flight and times each round trip. The one driver
    /// loop (`runDriverLoop`, the engine's bare rings run it too) on this queue.
    @inlinable
    public mutating func transmit(packets: Int, payloadBytes: Int, batch: Int, latency: Bool = false,
                                  firstSequence: UInt64 = 0, stampsPayload: Bool = true) -> TrafficOutcome {
        var out = TrafficOutcome()
        let length = UInt32(min(payloadBytes, bufferSize))
        var service = TransmitService(hosts: bufferHosts, length: Int(length), sequence: firstSequence, stamps: stampsPayload)
        if latency { service.roundTrips.reserveCapacity(packets / max(batch, 1) + 1) }
        let options = DriverLoopOptions(batch: batch, length: length, latency: latency, sleeps: true,
                                        lostInterruptNanoseconds: lostInterruptTimeoutNanoseconds)
        let cpu0 = cplatform_thread_cpu_time_ns()
        let t0 = cplatform_monotonic_ns()
        let error: String? = bufferAddresses.withUnsafeBufferPointer { addrs in
            var queues = [DriverLoopQueue(driver: driver, kick: kick, addresses: addrs, target: packets)]
            let error = runDriverLoop(&queues, call: &call, options: options, service: &service)
            driver = queues[0].driver
            kick = queues[0].kick
            out.packets = queues[0].reclaimed
            return error
        }
        out.nanoseconds = cplatform_monotonic_ns() &- t0
        out.driverCPUNanoseconds = cplatform_thread_cpu_time_ns() &- cpu0
        if let error { out.errors.append("queue \(index): \(error)") }
        out.checksum = service.checksum
        out.roundTrips = service.roundTrips
        out.kick = kick.counters
        out.call = call.counters
        return out
    }

    /// Posts receive buffers until `packets` packets came back, checking each one's number
    /// (in order, from `firstSequence`) and every byte of its pattern.
    public mutating func receive(packets: Int, batch: Int, expectedBytes: Int, firstSequence: UInt64 = 0) -> TrafficOutcome {
        var out = TrafficOutcome()
        let length = UInt32(bufferSize)
        let buffers = bufferAddresses.count
        let t0 = cplatform_monotonic_ns()
        driver.disableInterrupts()
        var posted = 0
        var reclaimed = 0
        var next = 0
        var expected = firstSequence
        do throws(VirtqueueError) {
            while reclaimed < packets {
                if posted < packets && driver.freeDescriptors >= batch {
                    let n = min(batch, packets - posted)
                    for _ in 0..<n {
                        _ = try driver.post(Buffer(address: bufferAddresses[next], length: length, isWritable: true))
                        next &+= 1
                        if next == buffers { next = 0 }
                    }
                    posted &+= n
                    driver.publish()
                    if let e = kickIfNeeded() { out.errors.append(e); break }
                    continue
                }
                var got = 0
                while let used = try driver.reclaim() {
                    // Buffers come back in the order posted (one device, in-order completion).
                    let slot = reclaimed % buffers
                    if let e = Self.check(bufferHosts[slot], used.length, expected, expectedBytes) {
                        out.errors.append("queue \(index): packet \(expected): \(e)")
                        break
                    }
                    out.checksum &+= payloadChecksum(bufferHosts[slot], Int(used.length))
                    expected &+= 1
                    reclaimed &+= 1
                    got &+= 1
                }
                if !out.errors.isEmpty { break }
                if got == 0, let e = awaitUsed() { out.errors.append(e); break }
            }
        } catch {
            out.errors.append("queue \(index): driver: \(error)")
        }
        out.nanoseconds = cplatform_monotonic_ns() &- t0
        out.packets = reclaimed
        out.kick = kick.counters
        out.call = call.counters
        return out
    }

    static func check(_ p: UnsafeMutableRawPointer, _ length: UInt32, _ sequence: UInt64, _ expectedBytes: Int) -> String? {
        guard Int(length) == expectedBytes else { return "length \(length), expected \(expectedBytes)" }
        if length >= 8 {
            let got = p.load(as: UInt64.self)
            guard got == sequence else { return "sequence number \(got)" }
        }
        for i in (length >= 8 ? 8 : 0)..<Int(length) where p.load(fromByteOffset: i, as: UInt8.self) != UInt8(truncatingIfNeeded: sequence &+ UInt64(i)) {
            return "byte \(i) differs"
        }
        return nil
    }
}
