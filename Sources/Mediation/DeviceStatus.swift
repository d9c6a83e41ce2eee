// The device status field and feature negotiation as a state machine (virtio 1.2 §2.1,
// §2.2, §3.1.1). Every parent's set_status / set_driver_features goes through it, so no
// parent can accept an order of writes the spec forbids.

import Virtqueue

/// The virtio device status byte (§2.1).
public struct DeviceStatus: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let acknowledge = DeviceStatus(rawValue: 1)
    public static let driver = DeviceStatus(rawValue: 2)
    public static let driverOK = DeviceStatus(rawValue: 4)
    public static let featuresOK = DeviceStatus(rawValue: 8)
    public static let needsReset = DeviceStatus(rawValue: 64)
    public static let failed = DeviceStatus(rawValue: 128)

    /// The order the driver sets bits in (§3.1.1 steps 2, 3, 5, 8).
    public static let initialisationOrder: [DeviceStatus] = [.acknowledge, .driver, .featuresOK, .driverOK]

    public var description: String {
        if isEmpty { return "RESET" }
        let names: [(DeviceStatus, String)] = [(.acknowledge, "ACKNOWLEDGE"), (.driver, "DRIVER"), (.featuresOK, "FEATURES_OK"),
                                               (.driverOK, "DRIVER_OK"), (.needsReset, "DEVICE_NEEDS_RESET"), (.failed, "FAILED")]
        return names.filter { contains($0.0) }.map(\.1).joined(separator: "|")
    }
}

/// Status and features of one device, as the device sees the driver's writes.
public struct StatusMachine: Sendable, Equatable {
    public private(set) var status: DeviceStatus = []
    public let deviceFeatures: VirtioFeatures
    /// Features without which the device refuses FEATURES_OK (a modern device needs VERSION_1).
    public let requiredFeatures: VirtioFeatures
    public private(set) var driverFeatures: VirtioFeatures = []

    public init(deviceFeatures: VirtioFeatures, requiredFeatures: VirtioFeatures = .version1) {
        self.deviceFeatures = deviceFeatures
        self.requiredFeatures = requiredFeatures
    }

    /// The driver writes its accepted features (§3.1.1 step 4).
    public mutating func setDriverFeatures(_ features: VirtioFeatures) throws(MediationError) {
        if status.contains(.failed) { throw .deviceFailed(written: status) }
        guard status.contains(.driver) else { throw .featuresBeforeDriver(current: status) }
        guard !status.contains(.featuresOK) else { throw .featuresAfterFeaturesOK }
        let unoffered = features.subtracting(deviceFeatures)
        guard unoffered.isEmpty else { throw .featureNotOffered(unoffered: unoffered.rawValue) }
        driverFeatures = features
    }

    /// The driver writes the status byte. Returns the status the device now reports: a
    /// device that cannot accept the features leaves FEATURES_OK clear, and the driver must
    /// re-read to find out (§3.1.1 step 6), so a refusal is an answer, not an error.
    @discardableResult
    public mutating func setStatus(_ written: DeviceStatus) throws(MediationError) -> DeviceStatus {
        if written.isEmpty {
            reset()
            return status
        }
        if written.contains(.needsReset) && !status.contains(.needsReset) { throw .driverSetNeedsReset }
        if status.contains(.failed) { throw .deviceFailed(written: written) }
        // FAILED may be set at any point short of the terminal states (§3.1.1: "give up").
        if written.subtracting(status) == .failed {
            status.insert(.failed)
            return status
        }
        if status.contains(.needsReset) { throw .deviceNeedsReset(written: written) }
        guard written.isSuperset(of: status) else { throw .statusBitCleared(current: status, written: written) }
        // Bits are accepted one step at a time in the spec's order, even when several come
        // in one write, so a write that skips a step is refused whole.
        var next = status
        for (i, bit) in DeviceStatus.initialisationOrder.enumerated() where written.contains(bit) && !next.contains(bit) {
            let before = i == 0 ? DeviceStatus() : DeviceStatus.initialisationOrder[i - 1]
            guard next.contains(before) else {
                throw .statusOutOfOrder(setting: bit, current: status, requires: before)
            }
            if bit == .featuresOK && !driverFeatures.isSuperset(of: requiredFeatures) {
                // Refused: FEATURES_OK stays clear; a following DRIVER_OK in the same write
                // would be out of order.
                if written.contains(.driverOK) { throw .statusOutOfOrder(setting: .driverOK, current: next, requires: .featuresOK) }
                status = next
                return status
            }
            next.insert(bit)
        }
        status = next
        return status
    }

    /// The device reports it can no longer run (§2.1.2).
    public mutating func deviceNeedsReset() { status.insert(.needsReset) }

    public mutating func reset() {
        status = []
        driverFeatures = []
    }

    /// Queue setup is allowed between FEATURES_OK and DRIVER_OK (§3.1.1 step 7).
    public func checkQueueSetup(queue: UInt16, op: ConfigOp) throws(MediationError) {
        if status.contains(.driverOK) { throw .queueSetupAfterDriverOK(queue: queue, op: op) }
        guard status.contains(.featuresOK) else { throw .queueSetupBeforeFeaturesOK(queue: queue, op: op) }
    }

    public var isLive: Bool { status.contains(.driverOK) && !status.contains(.needsReset) && !status.contains(.failed) }
}
