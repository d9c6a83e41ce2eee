// The vDPA bus (the seed's core): devices carry a class id, bus drivers declare the
// classes they drive, and binding is matching the two. `virtio` hands the device to an
// in-process virtio driver, `vhost` to a consumer on another thread through vhost messages.

import CPlatform

/// A bus driver: its name and the device classes it matches.
public struct BusDriver: Sendable, Hashable {
    public var name: String
    public var classes: Set<ClassID>
    public init(name: String, classes: Set<ClassID>) {
        self.name = name
        self.classes = classes
    }
    public static let virtio = BusDriver(name: "virtio", classes: [.net, .block])
    public static let vhost = BusDriver(name: "vhost", classes: [.net, .block])
}

/// One timed lifecycle or control operation.
public struct LifecycleTiming: Sendable, Equatable {
    public var operation: String
    public var nanoseconds: UInt64
}

/// Times `body` and appends the result to `timings`.
@discardableResult
func timed<T, E: Error>(_ operation: String, into timings: inout [LifecycleTiming], _ body: () throws(E) -> T) throws(E) -> T {
    let t0 = cplatform_monotonic_ns()
    let value = try body()
    timings.append(LifecycleTiming(operation: operation, nanoseconds: cplatform_monotonic_ns() &- t0))
    return value
}

/// The bus: registered devices and drivers, and which device is bound to which driver.
public final class VDPABus: @unchecked Sendable {
    private let lock = ControlLock()
    private var devices: [String: any VDPAConfigOps] = [:]
    private var drivers: [BusDriver] = []

    public init(drivers: [BusDriver] = [.virtio, .vhost]) { self.drivers = drivers }

    public func register(_ device: any VDPAConfigOps) throws(MediationError) {
        try lock.withLock { () throws(MediationError) in
            let name = device.identity.name
            guard devices[name] == nil else { throw .duplicateDeviceName(name) }
            devices[name] = device
        }
    }

    /// Removes a device; a bound device is busy.
    public func unregister(_ name: String) throws(MediationError) -> any VDPAConfigOps {
        try lock.withLock { () throws(MediationError) -> any VDPAConfigOps in
            guard let d = devices[name] else { throw .unknownDevice(name) }
            if let b = bindingName(d) { throw .deviceBusy(device: name, binding: b) }
            devices[name] = nil
            return d
        }
    }

    public func device(_ name: String) throws(MediationError) -> any VDPAConfigOps {
        try lock.withLock { () throws(MediationError) -> any VDPAConfigOps in
            guard let d = devices[name] else { throw .unknownDevice(name) }
            return d
        }
    }

    public var deviceNames: [String] { lock.withLock { devices.keys.sorted() } }

    /// The first registered driver matching the device's class, `preferring` one by name
    /// when it also matches (the choice the seed makes: bare metal virtio vs vhost).
    public func match(_ classID: ClassID, device: String, preferring: String? = nil) throws(MediationError) -> BusDriver {
        let candidates = lock.withLock { drivers.filter { $0.classes.contains(classID) } }
        if let p = preferring, let d = candidates.first(where: { $0.name == p }) { return d }
        if preferring != nil || candidates.isEmpty { throw .noDriverForClass(classID, device: device) }
        return candidates[0]
    }

    /// Marks `device` bound to `driver` after matching its class id.
    func claim(_ device: any VDPAConfigOps, driver: String) throws(MediationError) {
        let name = device.identity.name
        _ = try match(device.identity.classID, device: name, preferring: driver)
        try lock.withLock { () throws(MediationError) in
            if devices[name] == nil { devices[name] = device }
            try device.core.withState { (s) throws(MediationError) in
                if let b = s.binding { throw .alreadyBound(device: name, binding: b) }
                s.binding = driver
            }
        }
    }

    func release(_ device: any VDPAConfigOps) {
        device.core.withState { $0.binding = nil }
    }

    private func bindingName(_ d: any VDPAConfigOps) -> String? { d.boundTo }
}

extension VDPAConfigOps {
    /// The bus driver this device is bound to, if any.
    public var boundTo: String? { core.withState { $0.binding } }
}
