// Little-endian loads and stores into ring memory, and the atomics at the spec's ordering
// points. The only place Virtqueue turns raw pointers into typed accesses.

import Atomics

@inlinable @inline(__always)
func atomicU16(_ p: UnsafeMutableRawPointer) -> UnsafeAtomic<UInt16> {
    UnsafeAtomic<UInt16>(at: p.assumingMemoryBound(to: UInt16.AtomicRepresentation.self))
}

extension UnsafeMutableRawPointer {
    @inlinable @inline(__always)
    func loadLE16(_ offset: Int) -> UInt16 { UInt16(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self)) }
    @inlinable @inline(__always)
    func loadLE32(_ offset: Int) -> UInt32 { UInt32(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    @inlinable @inline(__always)
    func loadLE64(_ offset: Int) -> UInt64 { UInt64(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
    @inlinable @inline(__always)
    func storeLE16(_ v: UInt16, _ offset: Int) { storeBytes(of: v.littleEndian, toByteOffset: offset, as: UInt16.self) }
    @inlinable @inline(__always)
    func storeLE32(_ v: UInt32, _ offset: Int) { storeBytes(of: v.littleEndian, toByteOffset: offset, as: UInt32.self) }
    @inlinable @inline(__always)
    func storeLE64(_ v: UInt64, _ offset: Int) { storeBytes(of: v.littleEndian, toByteOffset: offset, as: UInt64.self) }

    /// Acquire load of a 16-bit ring field.
    @inlinable @inline(__always)
    func loadAcquireLE16(_ offset: Int) -> UInt16 {
        UInt16(littleEndian: atomicU16(self + offset).load(ordering: .acquiring))
    }
    /// Release store of a 16-bit ring field.
    @inlinable @inline(__always)
    func storeReleaseLE16(_ v: UInt16, _ offset: Int) {
        atomicU16(self + offset).store(v.littleEndian, ordering: .releasing)
    }
    /// Relaxed (single-copy atomic) load of a 16-bit field the peer may write concurrently.
    @inlinable @inline(__always)
    func loadRelaxedLE16(_ offset: Int) -> UInt16 {
        UInt16(littleEndian: atomicU16(self + offset).load(ordering: .relaxed))
    }
    /// Relaxed store of a 16-bit field the peer may read concurrently.
    @inlinable @inline(__always)
    func storeRelaxedLE16(_ v: UInt16, _ offset: Int) {
        atomicU16(self + offset).store(v.littleEndian, ordering: .relaxed)
    }
}

/// The store-load fence event suppression needs: publish an index, then read the peer's
/// suppression field (or publish "notify me", then re-check the ring). Acquire/release
/// cannot order a store before a later load; only a full fence can (`mb()` in virtio_ring.c).
@inlinable @inline(__always)
func fullFence() {
    atomicMemoryFence(ordering: .sequentiallyConsistent)
}

/// Private per-half arrays, allocated once when the half is made and freed with it.
@usableFromInline
final class HalfStorage: @unchecked Sendable {
    @usableFromInline let base: UnsafeMutableRawPointer
    init(bytes: Int) {
        base = .allocate(byteCount: max(bytes, 16), alignment: 64)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: max(bytes, 16))
    }
    deinit { base.deallocate() }
}
