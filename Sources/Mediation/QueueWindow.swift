// A queue arena as a driver sees it through its own window of device-visible addresses
// (each queue gets a window of its own, so a missed translation cannot land in another
// queue): the ring addresses there, and the driver's end of the queue built over it. Shared
// by both bindings and the bare reference, so the three build their driver ends alike.

import Doorbell
import Virtqueue
import VirtioMemory

struct QueueWindow {
    let arena: QueueArena
    /// Where the arena's ring starts in the driver's (device-visible) address space.
    let base: UInt64
    let addresses: RingAddresses

    init(arena: QueueArena, base: UInt64) throws(VirtqueueError) {
        self.arena = arena
        self.base = base
        switch arena.kind {
        case .split: addresses = try SplitLayout(queueSize: arena.queueSize, usedAlignment: arena.usedAlignment).addresses(at: base)
        case .packed: addresses = try PackedLayout(queueSize: arena.queueSize).addresses(at: base)
        }
    }

    /// The queue's position before it ever ran.
    var initialState: VDPAQueueState {
        arena.kind == .split ? .split(SplitQueueState()) : .packed(PackedQueueState())
    }

    private var shift: UInt64 { base &- arena.ringGPA }

    /// The driver's memory: the arena at the window's base.
    private func memory() throws(MemoryError) -> GuestMemory {
        try GuestMemory(regions: [GuestRegion(gpa: base, size: UInt64(arena.region.size), host: arena.region.base)])
    }

    private var pool: IndirectPool { IndirectPool(gpa: arena.indirectGPA &+ shift, entriesPerTable: arena.indirectEntries) }

    private func queue<D: VirtqueueDriverHalf, K: DoorbellNotifier, C: DoorbellWaiter>(
        _ index: UInt16, _ driver: D, _ kick: K, _ call: C, _ interruptBypass: Bool
    ) -> DriverQueue<D, K, C> {
        DriverQueue(index: index, driver: driver, kick: kick, call: call,
                    bufferAddresses: (0..<arena.bufferCount).map { arena.bufferAddress($0) &+ shift },
                    bufferHosts: (0..<arena.bufferCount).map { arena.bufferHost($0) },
                    bufferSize: arena.bufferSize, interruptBypass: interruptBypass)
    }

    func splitQueue<K: DoorbellNotifier, C: DoorbellWaiter>(index: UInt16, features: VirtioFeatures, kick: K, call: C,
                                                            interruptBypass: Bool) throws -> DriverQueue<SplitDriver, K, C> {
        let driver = try SplitDriver(queue: index, layout: SplitLayout(queueSize: arena.queueSize, usedAlignment: arena.usedAlignment), addresses: addresses,
                                     memory: memory(), features: features, indirectPool: pool)
        return queue(index, driver, kick, call, interruptBypass)
    }

    func packedQueue<K: DoorbellNotifier, C: DoorbellWaiter>(index: UInt16, features: VirtioFeatures, kick: K, call: C,
                                                             interruptBypass: Bool) throws -> DriverQueue<PackedDriver, K, C> {
        let driver = try PackedDriver(queue: index, layout: PackedLayout(queueSize: arena.queueSize), addresses: addresses,
                                      memory: memory(), features: features, indirectPool: pool)
        return queue(index, driver, kick, call, interruptBypass)
    }
}
