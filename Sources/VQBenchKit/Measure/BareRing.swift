// The calibration ceiling: a bare single-producer / single-consumer ring of 16-byte
// entries between two pinned threads — no descriptors, no validation, just the cache-line
// traffic any ring must pay. Every ring scenario is also reported as a ratio to this.

import Atomics
import CPlatform
import Doorbell

/// A bare SPSC ring measured in entries per second.
public enum BareRing {
    /// Moves `entries` 16-byte entries through a ring of `capacity` (a power of two) and
    /// returns entries per second. Each side caches the other's index and re-reads it only
    /// when the ring looks full (producer) or empty (consumer), and publishes its own index
    /// once per `batch` entries (or when it must wait): per-entry publication would measure
    /// the cache-line round trip, not the ring.
    public static func measure(entries: Int = 20_000_000, capacity: Int = 4096, batch: Int = 32,
                               placement: ThreadPlacement = .current()) throws(DoorbellError) -> Double {
        precondition(capacity > 0 && capacity & (capacity - 1) == 0)
        let slots = UnsafeMutablePointer<(UInt64, UInt64)>.allocate(capacity: capacity)
        slots.initialize(repeating: (0, 0), count: capacity)
        // head and tail on their own 128-byte blocks (adjacent-line prefetch pairs lines).
        let indices = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 128)
        indices.initializeMemory(as: UInt8.self, repeating: 0, count: 256)
        defer {
            slots.deallocate()
            indices.deallocate()
        }
        let head = UnsafeAtomic<Int>(at: indices.assumingMemoryBound(to: Int.AtomicRepresentation.self))
        let tail = UnsafeAtomic<Int>(at: (indices + 128).assumingMemoryBound(to: Int.AtomicRepresentation.self))
        let mask = capacity - 1
        let gate = StartGate()
        let ready = ManagedAtomic<Int>(0)
        let times = Slot((start: UInt64(0), end: UInt64(0)))
        let sink = Slot(UInt64(0))
        let ringBox = Slot(slots)

        let producer = try PinnedThread(cpu: placement.driverCPU) {
            let ring = ringBox.value
            ready.wrappingIncrement(ordering: .relaxed)
            gate.wait()
            var h = 0
            var cachedTail = 0
            while h < entries {
                if h - cachedTail == capacity {
                    // acquire: pairs with the consumer's release of tail; its slot reads are done.
                    cachedTail = tail.load(ordering: .acquiring)
                    if h - cachedTail == capacity {
                        head.store(h, ordering: .releasing)
                        cplatform_cpu_relax()
                        continue
                    }
                }
                ring[h & mask] = (UInt64(h), UInt64(h) &* 3)
                h &+= 1
                // release: the entries are visible before the index that covers them.
                if h % batch == 0 || h == entries { head.store(h, ordering: .releasing) }
            }
        }
        let consumer = try PinnedThread(cpu: placement.deviceCPU) {
            let ring = ringBox.value
            ready.wrappingIncrement(ordering: .relaxed)
            gate.wait()
            var t = 0
            var cachedHead = 0
            var sum: UInt64 = 0
            while t < entries {
                if t == cachedHead {
                    // acquire: pairs with the producer's release of head.
                    cachedHead = head.load(ordering: .acquiring)
                    if t == cachedHead {
                        tail.store(t, ordering: .releasing)
                        cplatform_cpu_relax()
                        continue
                    }
                }
                let e = ring[t & mask]
                sum &+= e.0 ^ e.1
                t &+= 1
                // release: we are done reading the slots before the producer may reuse them.
                if t % batch == 0 { tail.store(t, ordering: .releasing) }
            }
            times.value.end = cplatform_monotonic_ns()
            sink.value = sum
        }
        while ready.load(ordering: .relaxed) < 2 { cplatform_cpu_relax() }
        times.value.start = cplatform_monotonic_ns()
        gate.open()
        producer.join()
        consumer.join()
        return Double(entries) * 1e9 / Double(max(times.value.end - times.value.start, 1))
    }
}
