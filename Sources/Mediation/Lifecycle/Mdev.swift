// The mdev lifecycle the 2019 proposal used: a parent registers the types it supports
// (name, available instances, class), a device is created by writing a GUID to a type's
// `create` and destroyed by writing 1 to its `remove`. Every operation is timed.

import CPlatform

/// Builds one parent device of a type (the parent's `create` callback).
public typealias DeviceFactory = @Sendable (_ name: String, _ config: NetConfig, _ features: UInt64?) throws(MediationError) -> any VDPAConfigOps

/// An mdev type as sysfs shows it under `mdev_supported_types/`.
public struct MdevType: Sendable, Equatable {
    public var name: String
    public var classID: ClassID
    public var maxInstances: Int
    public init(name: String, classID: ClassID, maxInstances: Int) {
        self.name = name
        self.classID = classID
        self.maxInstances = maxInstances
    }
}

/// A parent that creates devices by GUID.
public final class MdevParent: @unchecked Sendable {
    public let name: String
    public let bus: VDPABus
    private let lock = ControlLock()
    private var types: [String: (MdevType, DeviceFactory)] = [:]
    private var instances: [String: (type: String, device: String)] = [:]
    public private(set) var timings: [LifecycleTiming] = []

    public init(name: String, bus: VDPABus) {
        self.name = name
        self.bus = bus
    }

    public func register(_ type: MdevType, factory: @escaping DeviceFactory) {
        lock.withLock { types[type.name] = (type, factory) }
    }

    /// `available_instances` of a type.
    public func availableInstances(_ type: String) throws(MediationError) -> Int {
        try lock.withLock { () throws(MediationError) -> Int in
            guard let (t, _) = types[type] else { throw .unknownMdevType(type) }
            return t.maxInstances - instances.values.filter { $0.type == type }.count
        }
    }

    /// Writes `guid` to the type's `create`: makes the device and puts it on the bus.
    @discardableResult
    public func create(type: String, guid: String) throws(MediationError) -> any VDPAConfigOps {
        let t0 = cplatform_monotonic_ns()
        let id = try Self.canonical(guid)
        let device = try lock.withLock { () throws(MediationError) -> any VDPAConfigOps in
            guard let (t, factory) = types[type] else { throw .unknownMdevType(type) }
            guard instances[id] == nil else { throw .duplicateGUID(id) }
            guard instances.values.filter({ $0.type == type }).count < t.maxInstances else {
                throw .instancesExhausted(type: type, max: t.maxInstances)
            }
            let d = try factory(id, NetConfig(), nil)
            try bus.register(d)
            instances[id] = (type, id)
            return d
        }
        lock.withLock { timings.append(LifecycleTiming(operation: "mdev_create", nanoseconds: cplatform_monotonic_ns() &- t0)) }
        return device
    }

    /// Writes 1 to the device's `remove`. A device bound to a bus driver is busy.
    public func remove(guid: String) throws(MediationError) {
        let t0 = cplatform_monotonic_ns()
        let id = try Self.canonical(guid)
        try lock.withLock { () throws(MediationError) in
            guard instances[id] != nil else { throw .unknownGUID(id) }
            let device = try bus.unregister(id)
            device.reset()
            instances[id] = nil
            timings.append(LifecycleTiming(operation: "mdev_remove", nanoseconds: cplatform_monotonic_ns() &- t0))
        }
    }

    public var guids: [String] { lock.withLock { instances.keys.sorted() } }

    /// A GUID as mdev accepts it: 8-4-4-4-12 hex digits; returned lower-cased.
    public static func canonical(_ guid: String) throws(MediationError) -> String {
        let groups = guid.split(separator: "-", omittingEmptySubsequences: false)
        guard groups.map(\.count) == [8, 4, 4, 4, 12],
              groups.allSatisfy({ $0.allSatisfy(\.isHexDigit) }) else { throw .malformedGUID(guid) }
        return guid.lowercased()
    }
}
