// vdpa_sim's way to reach memory: every descriptor, indirect table and payload address is
// an IOVA looked up in a software IOTLB (vhost_iotlb in Linux), then the physical address
// translated into host memory. A DeviceMemory, so the device half specialises over it.

import Virtqueue
import VirtioMemory

/// IOVA → physical (IOTLB) → host (GuestMemory), on every access.
public struct SoftwareIOTLBMemory: DeviceMemory, Sendable {
    public var iotlb: IOTLB
    public let physical: GuestMemory

    public init(iotlb: IOTLB, physical: GuestMemory) {
        self.iotlb = iotlb
        self.physical = physical
    }

    @inlinable
    public mutating func translate(_ address: UInt64, length: UInt32, deviceWrites: Bool) throws(MemoryError) -> UnsafeMutableRawPointer {
        let pa = try iotlb.translate(iova: address, length: UInt64(length), access: deviceWrites ? .write : .read)
        return try physical.translate(pa, length: UInt64(length))
    }
}
