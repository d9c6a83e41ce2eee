// vdpa_sim's way to reach memory: every descriptor, indirect table and payload address is
// an IOVA looked up in a software IOTLB (vhost_iotlb in Linux), then the physical address
// translated into host memory. A DeviceMemory, so the device half specialises over it.
//
// The map may change while the device runs (set_map / dma_map / dma_unmap from the control
// path, as a vIOMMU does): the parent's master copy lives in a ``SharedIOTLB`` whose
// generation every translation reads first (one plain load on x86); a device-side copy
// re-reads the map under the lock only when the generation moved. A translation that starts
// after an edit returned sees the edit — what Linux's vdpa_sim gives by taking its
// iommu_lock around each lookup.

import Atomics
import Virtqueue
import VirtioMemory

/// The parent's master IOTLB, edited by the control path while device threads read it.
public final class SharedIOTLB: @unchecked Sendable {
    let lock = ControlLock()
    var master = IOTLB()
    /// Bumped (release) after every edit, under the lock. Plain memory, not an object, so
    /// the device's per-lookup check is one load with no reference counting.
    @usableFromInline let generation = UnsafeAtomic<UInt64>.create(0)

    public init() {}

    deinit { generation.destroy() }

    /// Applies `edit` to the master copy; device copies pick it up before their next lookup.
    public func edit<T>(_ edit: (inout IOTLB) throws(MemoryError) -> T) throws(MemoryError) -> T {
        try lock.withLock { () throws(MemoryError) -> T in
            let result = try edit(&master)
            generation.wrappingIncrement(ordering: .releasing)
            return result
        }
    }

    /// The master copy and its generation.
    public func snapshot() -> (iotlb: IOTLB, generation: UInt64) {
        lock.withLock { (master, generation.load(ordering: .relaxed)) }
    }

    /// Edits so far (each bumps the generation once).
    public var edits: UInt64 { generation.load(ordering: .acquiring) }
}

/// IOVA → physical (IOTLB) → host (GuestMemory), on every access.
public struct SoftwareIOTLBMemory: DeviceMemory, @unchecked Sendable {
    public var iotlb: IOTLB
    public let physical: GuestMemory
    /// Keeps the shared map alive; touched only when the generation moved.
    @usableFromInline let shared: SharedIOTLB?
    @usableFromInline let generation: UnsafeAtomic<UInt64>?
    @usableFromInline var seenGeneration: UInt64

    /// A fixed map (no live edits).
    public init(iotlb: IOTLB, physical: GuestMemory) {
        self.iotlb = iotlb
        self.physical = physical
        shared = nil
        generation = nil
        seenGeneration = 0
    }

    /// Follows `shared`: edits made while the device runs apply from the next lookup on.
    public init(following shared: SharedIOTLB, physical: GuestMemory) {
        let (map, generation) = shared.snapshot()
        iotlb = map
        self.physical = physical
        self.shared = shared
        self.generation = shared.generation
        seenGeneration = generation
    }

    @inlinable
    public mutating func translate(_ address: UInt64, length: UInt32, deviceWrites: Bool) throws(MemoryError) -> UnsafeMutableRawPointer {
        if let g = generation, g.load(ordering: .acquiring) != seenGeneration { refresh() }
        let pa = try iotlb.translate(iova: address, length: UInt64(length), access: deviceWrites ? .write : .read)
        return try physical.translate(pa, length: UInt64(length))
    }

    @usableFromInline @inline(never)
    mutating func refresh() {
        guard let s = shared else { return }
        let (map, generation) = s.snapshot()
        iotlb.adoptMappings(of: map)
        seenGeneration = generation
    }
}
