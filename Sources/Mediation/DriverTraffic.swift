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
    /// batches; `latency` keeps one batch in flight and times each round trip.
    @inlinable
    public mutating func transmit(packets: Int, payloadBytes: Int, batch: Int, latency: Bool = false,
                                  firstSequence: UInt64 = 0, stampsPayload: Bool = true) -> TrafficOutcome {
        var out = TrafficOutcome()
        if latency { out.roundTrips.reserveCapacity(packets / max(batch, 1) + 1) }
        let length = UInt32(min(payloadBytes, bufferSize))
        let buffers = bufferAddresses.count
        let cpu0 = cplatform_thread_cpu_time_ns()
        let t0 = cplatform_monotonic_ns()
        driver.disableInterrupts()
        var posted = 0
        var reclaimed = 0
        var next = 0
        var sequence = firstSequence
        do throws(VirtqueueError) {
            while reclaimed < packets {
                let room = latency ? posted == reclaimed : driver.freeDescriptors >= batch
                if posted < packets && room {
                    let n = min(batch, packets - posted)
                    let started = cplatform_monotonic_ns()
                    if stampsPayload {
                        // Stamping writes the payload on the driver's CPU, so the device then
                        // pulls a line the driver dirtied: real, but not a cost the bare ring
                        // pays; the engine turns it off to compare like with like.
                        var slot = next
                        for _ in 0..<n {
                            let host = bufferHosts[slot]
                            host.storeBytes(of: sequence, as: UInt64.self)
                            out.checksum &+= payloadChecksum(host, Int(length))
                            sequence &+= 1
                            slot = slot &+ 1 == buffers ? 0 : slot &+ 1
                        }
                    }
                    let sent = bufferAddresses.withUnsafeBufferPointer { addrs in
                        driver.postBurst(from: addrs, next: &next, count: n, length: length)
                    }
                    guard sent == n else { throw .queueFull(queue: index, needed: n, free: sent) }
                    posted &+= n
                    driver.publish()
                    if let e = kickIfNeeded() { out.errors.append(e); break }
                    if latency {
                        var back = 0
                        while back < n {
                            let got = try driver.reclaimBurst(maximum: n &- back) { _ in }
                            if got > 0 { back &+= got; continue }
                            if let e = awaitUsed() { out.errors.append(e); break }
                        }
                        reclaimed &+= back
                        out.roundTrips.append(cplatform_monotonic_ns() &- started)
                        if !out.errors.isEmpty { break }
                        continue
                    }
                    continue
                }
                let got = try driver.reclaimBurst(maximum: max(batch, 1)) { _ in }
                reclaimed &+= got
                if got == 0, let e = awaitUsed() { out.errors.append(e); break }
            }
        } catch {
            out.errors.append("queue \(index): driver: \(error)")
        }
        out.nanoseconds = cplatform_monotonic_ns() &- t0
        out.driverCPUNanoseconds = cplatform_thread_cpu_time_ns() &- cpu0
        out.packets = reclaimed
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
