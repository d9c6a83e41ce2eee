// "Should I notify?" as pure functions of indices and suppression fields (virtio 1.2
// §2.7.10 EVENT_IDX, §2.8.10 packed event suppression), and the value a kick carries with
// VIRTIO_F_NOTIFICATION_DATA (§2.9). Sending a notification is a Doorbell's job, not these.

/// `vring_need_event`: notify iff `new` has passed `event` since `old`, all mod 2^16.
@inlinable @inline(__always)
public func needsEvent(event: UInt16, new: UInt16, old: UInt16) -> Bool {
    (new &- event &- 1) < (new &- old)
}

/// Event suppression as the notifier sees it, read from the other side's fields.
public enum SuppressionMode: String, Sendable, Codable, CaseIterable {
    /// Notify after every publication that the peer has not disabled (flags only).
    case flags
    /// EVENT_IDX (split) / descriptor-specific events (packed): notify when the peer's index is passed.
    case eventIndex = "event-idx"
}

/// The 32-bit notification with VIRTIO_F_NOTIFICATION_DATA (§2.9): queue index in bits 0–15,
/// the next available offset in bits 16–30 and its wrap bit in bit 31.
public struct NotificationData: Equatable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Split ring: the offset and wrap bit together are the 16-bit available index.
    @inlinable
    public init(queue: UInt16, splitAvailableIndex: UInt16) {
        rawValue = UInt32(queue) | UInt32(splitAvailableIndex) << 16
    }

    /// Packed ring: the next available descriptor position and the driver's wrap counter.
    @inlinable
    public init(queue: UInt16, packedNextOffset: UInt16, wrapCounter: Bool) {
        rawValue = UInt32(queue) | UInt32(packedNextOffset & 0x7FFF) << 16 | (wrapCounter ? 1 << 31 : 0)
    }

    public var queue: UInt16 { UInt16(truncatingIfNeeded: rawValue) }
    public var nextOffset: UInt16 { UInt16(truncatingIfNeeded: rawValue >> 16) & 0x7FFF }
    public var nextWrap: Bool { rawValue >> 31 != 0 }

    public var description: String { "vqn \(queue) next_off \(nextOffset) next_wrap \(nextWrap ? 1 : 0)" }
}
