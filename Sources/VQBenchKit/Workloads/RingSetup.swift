// Builds a queue of either layout in one arena, with one buffer per ring slot, for the
// ring workloads and benchmarks.

import Virtqueue
import VirtioMemory

/// An arena with a driver and device half attached, and the buffer addresses to post.
public struct RingSetup<Driver: VirtqueueDriverHalf, Device: VirtqueueDeviceHalf> {
    public let arena: QueueArena
    public var driver: Driver
    public var device: Device
    public let addresses: [UInt64]
}

public enum RingSetups {
    public static func features(_ layout: RingLayoutKind, eventIndex: Bool = false) -> VirtioFeatures {
        var f: VirtioFeatures = [.version1, .indirectDescriptors]
        if layout == .packed { f.insert(.ringPacked) }
        if eventIndex { f.insert(.eventIndex) }
        return f
    }

    static func arena(_ layout: RingLayoutKind, queueSize: Int, payloadBytes: Int, policy: BackingPolicy) throws -> QueueArena {
        try QueueArena(kind: layout, queueSize: queueSize, bufferSize: max(64, payloadBytes), bufferCount: queueSize, policy: policy)
    }

    public static func split(queueSize: Int = 256, payloadBytes: Int = 64, policy: BackingPolicy = .best,
                             eventIndex: Bool = false, inOrder: Bool = false) throws -> RingSetup<SplitDriver, SplitDevice<GuestMemory>> {
        let a = try arena(.split, queueSize: queueSize, payloadBytes: payloadBytes, policy: policy)
        var f = features(.split, eventIndex: eventIndex)
        if inOrder { f.insert(.inOrder) }
        return RingSetup(arena: a, driver: try a.splitDriver(features: f), device: try a.splitDevice(features: f),
                         addresses: (0..<queueSize).map { a.bufferAddress($0) })
    }

    public static func packed(queueSize: Int = 256, payloadBytes: Int = 64, policy: BackingPolicy = .best,
                              eventIndex: Bool = false, inOrder: Bool = false) throws -> RingSetup<PackedDriver, PackedDevice<GuestMemory>> {
        let a = try arena(.packed, queueSize: queueSize, payloadBytes: payloadBytes, policy: policy)
        var f = features(.packed, eventIndex: eventIndex)
        if inOrder { f.insert(.inOrder) }
        return RingSetup(arena: a, driver: try a.packedDriver(features: f), device: try a.packedDevice(features: f),
                         addresses: (0..<queueSize).map { a.bufferAddress($0) })
    }
}
