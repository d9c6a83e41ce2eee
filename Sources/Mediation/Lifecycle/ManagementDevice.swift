// The lifecycle upstream Linux chose: management devices (`vdpa mgmtdev show`) create
// and delete vDPA devices by name (`vdpa dev add name N mgmtdev M mac … mtu … max_vqp …
// device_features …`, `vdpa dev del`, `vdpa dev config show`), and on some hardware a
// devlink port function first creates the function the management device exposes
// (mlx5 sub-functions, pds). Every operation is timed.

import CPlatform
import Virtqueue

/// What `vdpa mgmtdev show` prints for one management device.
public struct ManagementDeviceAttributes: Sendable, Equatable {
    public var name: String
    public var supportedClasses: Set<ClassID>
    public var maxSupportedQueuePairs: Int
    public var supportedFeatures: UInt64
    public init(name: String, supportedClasses: Set<ClassID>, maxSupportedQueuePairs: Int, supportedFeatures: UInt64) {
        self.name = name
        self.supportedClasses = supportedClasses
        self.maxSupportedQueuePairs = maxSupportedQueuePairs
        self.supportedFeatures = supportedFeatures
    }
}

/// What `vdpa dev config show` prints.
public struct DeviceConfigView: Sendable, Equatable {
    public var name: String
    public var mac: [UInt8]
    public var linkUp: Bool
    public var maxQueuePairs: Int
    public var mtu: Int
    public var negotiatedFeatures: UInt64
    public var status: DeviceStatus
}

/// A management device: creates devices of one parent.
public struct ManagementDevice: Sendable {
    public var attributes: ManagementDeviceAttributes
    public var factory: DeviceFactory
    public init(attributes: ManagementDeviceAttributes, factory: @escaping DeviceFactory) {
        self.attributes = attributes
        self.factory = factory
    }
}

/// The `vdpa` tool's model over one bus.
public final class VDPATool: @unchecked Sendable {
    public let bus: VDPABus
    private let lock = ControlLock()
    private var managementDevices: [String: ManagementDevice] = [:]
    private var createdBy: [String: String] = [:]
    public private(set) var timings: [LifecycleTiming] = []

    public init(bus: VDPABus) { self.bus = bus }

    public func register(_ m: ManagementDevice) { lock.withLock { managementDevices[m.attributes.name] = m } }
    func unregister(_ name: String) { lock.withLock { managementDevices[name] = nil } }

    /// `vdpa mgmtdev show`
    public func mgmtdevShow() -> [ManagementDeviceAttributes] {
        lock.withLock { managementDevices.values.map(\.attributes).sorted { $0.name < $1.name } }
    }

    /// `vdpa dev add name <name> mgmtdev <mgmtdev> [mac] [mtu] [max_vqp] [device_features]`
    @discardableResult
    public func devAdd(name: String, mgmtdev: String, classID: ClassID = .net, mac: [UInt8]? = nil, mtu: Int? = nil,
                       maxVQP: Int? = nil, deviceFeatures: UInt64? = nil) throws(MediationError) -> any VDPAConfigOps {
        let t0 = cplatform_monotonic_ns()
        let device = try lock.withLock { () throws(MediationError) -> any VDPAConfigOps in
            guard let m = managementDevices[mgmtdev] else { throw .unknownManagementDevice(mgmtdev) }
            guard m.attributes.supportedClasses.contains(classID) else { throw .unsupportedClass(classID, managementDevice: mgmtdev) }
            let pairs = maxVQP ?? 1
            guard pairs >= 1, pairs <= m.attributes.maxSupportedQueuePairs else {
                throw .tooManyQueuePairs(requested: pairs, max: m.attributes.maxSupportedQueuePairs)
            }
            if let f = deviceFeatures, f & ~m.attributes.supportedFeatures != 0 {
                throw .deviceFeaturesNotSupported(unsupported: f & ~m.attributes.supportedFeatures)
            }
            var config = NetConfig(maxQueuePairs: UInt16(pairs))
            if let mac { config.mac = mac }
            if let mtu { config.mtu = UInt16(clamping: mtu) }
            let d = try m.factory(name, config, deviceFeatures)
            try bus.register(d)
            createdBy[name] = mgmtdev
            return d
        }
        lock.withLock { timings.append(LifecycleTiming(operation: "dev_add", nanoseconds: cplatform_monotonic_ns() &- t0)) }
        return device
    }

    /// `vdpa dev del <name>`: refused while a bus driver holds the device.
    public func devDel(name: String) throws(MediationError) {
        let t0 = cplatform_monotonic_ns()
        try lock.withLock { () throws(MediationError) in
            guard createdBy[name] != nil else { throw .unknownDevice(name) }
            let d = try bus.unregister(name)
            d.reset()
            createdBy[name] = nil
            timings.append(LifecycleTiming(operation: "dev_del", nanoseconds: cplatform_monotonic_ns() &- t0))
        }
    }

    /// `vdpa dev config show <name>`
    public func devConfigShow(name: String) throws(MediationError) -> DeviceConfigView {
        let t0 = cplatform_monotonic_ns()
        let d = try bus.device(name)
        let bytes = try d.getConfig(offset: 0, length: 12)
        func u16(_ o: Int) -> Int { Int(bytes[o]) | Int(bytes[o + 1]) << 8 }
        let view = DeviceConfigView(name: name, mac: Array(bytes[0..<6]), linkUp: u16(6) & 1 == 1, maxQueuePairs: u16(8),
                                    mtu: u16(10), negotiatedFeatures: d.getDriverFeatures().rawValue, status: d.getStatus())
        lock.withLock { timings.append(LifecycleTiming(operation: "dev_config_show", nanoseconds: cplatform_monotonic_ns() &- t0)) }
        return view
    }

    public var deviceNames: [String] { lock.withLock { createdBy.keys.sorted() } }
}

/// A devlink instance whose port functions create the functions management devices expose
/// (`devlink port add pci/… flavour pcisf sfnum N`, `devlink port function set … state active`).
public final class DevlinkInstance: @unchecked Sendable {
    public enum FunctionState: String, Sendable { case inactive, active }
    public struct Port: Sendable, Equatable {
        public var index: Int
        public var sfNumber: Int
        public var state: FunctionState
    }

    public let handle: String
    private let tool: VDPATool
    private let template: ManagementDevice
    private let lock = ControlLock()
    private var ports: [Int: Port] = [:]
    private var nextIndex = 1
    public private(set) var timings: [LifecycleTiming] = []

    /// `template` is the management device each activated function exposes.
    public init(handle: String, tool: VDPATool, template: ManagementDevice) {
        self.handle = handle
        self.tool = tool
        self.template = template
    }

    /// `devlink port add <handle> flavour pcisf sfnum <n>`
    public func portAdd(sfNumber: Int) -> Port {
        let t0 = cplatform_monotonic_ns()
        return lock.withLock {
            let p = Port(index: nextIndex, sfNumber: sfNumber, state: .inactive)
            ports[p.index] = p
            nextIndex += 1
            timings.append(LifecycleTiming(operation: "port_add", nanoseconds: cplatform_monotonic_ns() &- t0))
            return p
        }
    }

    public func managementDeviceName(_ p: Port) -> String { "auxiliary/\(handle).sf.\(p.sfNumber)" }

    /// `devlink port function set <port> state active|inactive`: activation creates the
    /// function and its management device; deactivation is refused while it has devices.
    public func portFunctionSet(_ index: Int, state: FunctionState) throws(MediationError) {
        let t0 = cplatform_monotonic_ns()
        try lock.withLock { () throws(MediationError) in
            guard var p = ports[index] else { throw .unknownPort(index) }
            guard p.state != state else { throw .portFunctionState(port: index, state: p.state.rawValue, operation: "set \(state.rawValue)") }
            let name = managementDeviceName(p)
            if state == .active {
                var m = template
                m.attributes.name = name
                tool.register(m)
            } else {
                if tool.mgmtdevShow().contains(where: { $0.name == name }) && !devicesOf(name).isEmpty {
                    throw .portFunctionState(port: index, state: "active with vDPA devices", operation: "deactivate")
                }
                tool.unregister(name)
            }
            p.state = state
            ports[index] = p
            timings.append(LifecycleTiming(operation: "port_function_\(state.rawValue)", nanoseconds: cplatform_monotonic_ns() &- t0))
        }
    }

    /// `devlink port del <port>`: only an inactive function can go.
    public func portDel(_ index: Int) throws(MediationError) {
        let t0 = cplatform_monotonic_ns()
        try lock.withLock { () throws(MediationError) in
            guard let p = ports[index] else { throw .unknownPort(index) }
            guard p.state == .inactive else { throw .portFunctionState(port: index, state: p.state.rawValue, operation: "delete") }
            ports[index] = nil
            timings.append(LifecycleTiming(operation: "port_del", nanoseconds: cplatform_monotonic_ns() &- t0))
        }
    }

    private func devicesOf(_ mgmtdev: String) -> [String] { tool.devicesCreated(by: mgmtdev) }
}

extension VDPATool {
    func devicesCreated(by mgmtdev: String) -> [String] { lock.withLock { createdBy.filter { $0.value == mgmtdev }.map(\.key) } }
}
