// Feature bits the rings act on (virtio 1.2 §6, "Reserved Feature Bits"), by their spec names.

/// Ring-related feature bits. Device-specific bits (0–23) pass through untouched.
public struct VirtioFeatures: OptionSet, Sendable, Hashable, Codable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// VIRTIO_F_INDIRECT_DESC (28)
    public static let indirectDescriptors = VirtioFeatures(rawValue: 1 << 28)
    /// VIRTIO_F_EVENT_IDX (29)
    public static let eventIndex = VirtioFeatures(rawValue: 1 << 29)
    /// VIRTIO_F_VERSION_1 (32)
    public static let version1 = VirtioFeatures(rawValue: 1 << 32)
    /// VIRTIO_F_ACCESS_PLATFORM (33)
    public static let accessPlatform = VirtioFeatures(rawValue: 1 << 33)
    /// VIRTIO_F_RING_PACKED (34)
    public static let ringPacked = VirtioFeatures(rawValue: 1 << 34)
    /// VIRTIO_F_IN_ORDER (35)
    public static let inOrder = VirtioFeatures(rawValue: 1 << 35)
    /// VIRTIO_F_ORDER_PLATFORM (36)
    public static let orderPlatform = VirtioFeatures(rawValue: 1 << 36)
    /// VIRTIO_F_SR_IOV (37)
    public static let srIOV = VirtioFeatures(rawValue: 1 << 37)
    /// VIRTIO_F_NOTIFICATION_DATA (38)
    public static let notificationData = VirtioFeatures(rawValue: 1 << 38)
    /// VIRTIO_F_NOTIF_CONFIG_DATA (39)
    public static let notifConfigData = VirtioFeatures(rawValue: 1 << 39)
    /// VIRTIO_F_RING_RESET (40)
    public static let ringReset = VirtioFeatures(rawValue: 1 << 40)

    static let names: [(VirtioFeatures, String)] = [
        (.indirectDescriptors, "VIRTIO_F_INDIRECT_DESC"), (.eventIndex, "VIRTIO_F_EVENT_IDX"),
        (.version1, "VIRTIO_F_VERSION_1"), (.accessPlatform, "VIRTIO_F_ACCESS_PLATFORM"),
        (.ringPacked, "VIRTIO_F_RING_PACKED"), (.inOrder, "VIRTIO_F_IN_ORDER"),
        (.orderPlatform, "VIRTIO_F_ORDER_PLATFORM"), (.srIOV, "VIRTIO_F_SR_IOV"),
        (.notificationData, "VIRTIO_F_NOTIFICATION_DATA"), (.notifConfigData, "VIRTIO_F_NOTIF_CONFIG_DATA"),
        (.ringReset, "VIRTIO_F_RING_RESET"),
    ]

    public var description: String {
        var parts = Self.names.filter { contains($0.0) }.map(\.1)
        let known = Self.names.reduce(VirtioFeatures()) { $0.union($1.0) }
        let rest = subtracting(known).rawValue
        if rest != 0 { parts.append("0x" + String(rest, radix: 16)) }
        return parts.isEmpty ? "none" : parts.joined(separator: "|")
    }
}

/// Descriptor flag bits (§2.7.5, §2.8.4).
public enum DescriptorFlags {
    /// VIRTQ_DESC_F_NEXT
    public static let next: UInt16 = 1
    /// VIRTQ_DESC_F_WRITE: device-writable
    public static let write: UInt16 = 2
    /// VIRTQ_DESC_F_INDIRECT
    public static let indirect: UInt16 = 4
    /// VIRTQ_DESC_F_AVAIL (packed)
    public static let available: UInt16 = 1 << 7
    /// VIRTQ_DESC_F_USED (packed)
    public static let used: UInt16 = 1 << 15
}

/// Split-ring suppression flags (§2.7.7, §2.7.10).
public enum SplitRingFlags {
    /// VIRTQ_AVAIL_F_NO_INTERRUPT, in the available ring's flags.
    public static let noInterrupt: UInt16 = 1
    /// VIRTQ_USED_F_NO_NOTIFY, in the used ring's flags.
    public static let noNotify: UInt16 = 1
}

/// Packed-ring event suppression flags (§2.8.10).
public enum PackedEventFlags {
    /// RING_EVENT_FLAGS_ENABLE
    public static let enable: UInt16 = 0
    /// RING_EVENT_FLAGS_DISABLE
    public static let disable: UInt16 = 1
    /// RING_EVENT_FLAGS_DESC: notify at a specific descriptor (needs EVENT_IDX)
    public static let descriptor: UInt16 = 2
}
