// A queue's device-side position as a plain value (vDPA get/set_vq_state): what suspend,
// resume and migration carry. Restoring goes through validating initialisers.

/// Split ring state: where the device stopped reading the available ring and writing the used ring.
public struct SplitQueueState: Equatable, Sendable, Codable {
    public var lastAvailableIndex: UInt16
    public var usedIndex: UInt16

    public init(lastAvailableIndex: UInt16 = 0, usedIndex: UInt16 = 0) {
        self.lastAvailableIndex = lastAvailableIndex
        self.usedIndex = usedIndex
    }

    /// Checks the state can belong to a queue of `queueSize`: the device cannot hold more
    /// chains than the queue has descriptors.
    public func validate(queue: UInt16, queueSize: Int) throws(VirtqueueError) {
        let held = Int(lastAvailableIndex &- usedIndex)
        guard held <= queueSize else {
            throw .invalidQueueState(queue: queue, reason: "last available index \(lastAvailableIndex) is \(held) ahead of used index \(usedIndex), more than the queue size \(queueSize)")
        }
    }
}

/// Packed ring state (§2.8, vDPA `vdpa_vq_state_packed`): positions and wrap counters.
public struct PackedQueueState: Equatable, Sendable, Codable {
    public var lastAvailableIndex: UInt16
    public var availableWrapCounter: Bool
    public var usedIndex: UInt16
    public var usedWrapCounter: Bool

    public init(lastAvailableIndex: UInt16 = 0, availableWrapCounter: Bool = true,
                usedIndex: UInt16 = 0, usedWrapCounter: Bool = true) {
        self.lastAvailableIndex = lastAvailableIndex
        self.availableWrapCounter = availableWrapCounter
        self.usedIndex = usedIndex
        self.usedWrapCounter = usedWrapCounter
    }

    /// Checks positions are inside the ring and the used position does not run ahead of
    /// the available one.
    public func validate(queue: UInt16, queueSize: Int) throws(VirtqueueError) {
        guard Int(lastAvailableIndex) < queueSize, Int(usedIndex) < queueSize else {
            throw .invalidQueueState(queue: queue, reason: "positions \(lastAvailableIndex)/\(usedIndex) outside a ring of \(queueSize)")
        }
        // Count both positions in "laps": the used position may trail by at most one lap.
        let avail = Int(lastAvailableIndex) + (availableWrapCounter ? 0 : queueSize)
        let used = Int(usedIndex) + (usedWrapCounter ? 0 : queueSize)
        let held = (avail - used + 2 * queueSize) % (2 * queueSize)
        guard held <= queueSize else {
            throw .invalidQueueState(queue: queue, reason: "used position \(usedIndex) (wrap \(usedWrapCounter ? 1 : 0)) is not behind available position \(lastAvailableIndex) (wrap \(availableWrapCounter ? 1 : 0))")
        }
    }
}
