// The `vdpa` tool's nouns over this package's management devices: `mgmtdev show`, `dev add`,
// `dev del`, `dev show`, `dev config show`. Each invocation replays the state file's devices
// into a fresh VDPATool (ParentManagementDevices), so devices persist between invocations as
// the kernel's do; the CLI (Sources/vqbench/VDPANounCommands.swift) saves the document back.

import Mediation

/// What `dev show` prints for one device (iproute2: type, mgmtdev, vendor_id, max_vqs, max_vq_size).
public struct VDPADeviceView: Sendable, Equatable {
    public var name: String
    public var type: String
    public var mgmtdev: String
    public var vendorID: UInt32
    public var maxVQs: Int
    public var maxVQSize: Int
}

/// What `dev config show` prints for one net device.
public struct VDPAConfigView: Sendable, Equatable {
    public var name: String
    public var classID: ClassID
    public var mac: [UInt8]
    public var linkUp: Bool
    public var linkAnnounce: Bool
    public var maxVQPairs: Int
    public var mtu: Int
    /// Zero until a driver has negotiated (FEATURES_OK); iproute2 then omits the field.
    public var negotiatedFeatures: UInt64
}

public final class VDPANouns {
    public let tool: VDPATool
    /// The devices, in creation order, as the state file records them.
    public private(set) var document: VDPAStateDocument

    /// A fresh tool with every parent's management device and `document`'s devices recreated in order.
    public init(replaying document: VDPAStateDocument, statePath: String) throws(VDPAToolError) {
        tool = ParentManagementDevices.tool()
        self.document = VDPAStateDocument()
        for record in document.devices {
            do throws(VDPAToolError) {
                try create(record.request())
            } catch {
                if case let .mediation(e) = error { throw .stateReplay(path: statePath, device: record.name, error: e) }
                throw .stateFile(path: statePath, problem: "device \"\(record.name)\": \(error)")
            }
            self.document.devices.append(record)
        }
    }

    public var managementDeviceNames: [String] { tool.mgmtdevShow().map(\.name) }
    public var deviceNames: [String] { document.devices.map(\.name) }

    /// `mgmtdev show [NAME]`
    public func mgmtdevShow(_ name: String? = nil) throws(VDPAToolError) -> [ManagementDeviceAttributes] {
        let all = tool.mgmtdevShow()
        guard let name else { return all }
        guard let m = all.first(where: { $0.name == name }) else { throw .unknownManagementDevice(name, known: all.map(\.name)) }
        return [m]
    }

    /// `dev add …`: creates the device and records it in `document`.
    public func devAdd(_ request: VDPADevAddRequest) throws(VDPAToolError) {
        try create(request)
        document.devices.append(VDPADeviceRecord(request))
    }

    /// `dev del NAME`
    public func devDel(_ name: String) throws(VDPAToolError) {
        guard document.devices.contains(where: { $0.name == name }) else { throw .unknownDevice(name, known: deviceNames) }
        do { try tool.devDel(name: name) } catch { throw .mediation(error) }
        document.devices.removeAll { $0.name == name }
    }

    /// `dev show [NAME]`
    public func devShow(_ name: String? = nil) throws(VDPAToolError) -> [VDPADeviceView] {
        var views: [VDPADeviceView] = []
        for record in try selected(name) {
            do {
                let d = try tool.bus.device(record.name)
                views.append(VDPADeviceView(name: record.name, type: d.identity.classID == .net ? "network" : "block",
                                            mgmtdev: record.mgmtdev, vendorID: d.getVendorID(),
                                            maxVQs: d.identity.queueCount, maxVQSize: d.getVQNumMax()))
            } catch {
                throw .mediation(error)
            }
        }
        return views
    }

    /// `dev config show [NAME]`
    public func devConfigShow(_ name: String? = nil) throws(VDPAToolError) -> [VDPAConfigView] {
        var views: [VDPAConfigView] = []
        for record in try selected(name) {
            do {
                let c = try tool.devConfigShow(name: record.name)
                let d = try tool.bus.device(record.name)
                // virtio-net config `status` (§5.1.4): VIRTIO_NET_S_ANNOUNCE is bit 1; the view carries only LINK_UP.
                let status = try d.getConfig(offset: 6, length: 2)
                views.append(VDPAConfigView(name: record.name, classID: d.identity.classID, mac: c.mac, linkUp: c.linkUp,
                                            linkAnnounce: status[0] & 2 != 0, maxVQPairs: c.maxQueuePairs, mtu: c.mtu,
                                            negotiatedFeatures: c.status.contains(.featuresOK) ? c.negotiatedFeatures : 0))
            } catch {
                throw .mediation(error)
            }
        }
        return views
    }

    private func selected(_ name: String?) throws(VDPAToolError) -> [VDPADeviceRecord] {
        guard let name else { return document.devices }
        guard let record = document.devices.first(where: { $0.name == name }) else { throw .unknownDevice(name, known: deviceNames) }
        return [record]
    }

    /// The checks vdpa(8) leaves to the kernel, each with its own message, then the tool's dev add.
    private func create(_ r: VDPADevAddRequest) throws(VDPAToolError) {
        let managementDevices = tool.mgmtdevShow()
        guard let m = managementDevices.first(where: { $0.name == r.mgmtdev }) else {
            throw .unknownManagementDevice(r.mgmtdev, known: managementDevices.map(\.name))
        }
        guard !tool.deviceNames.contains(r.name) else { throw .duplicateDevice(r.name) }
        if let pairs = r.maxVQP, pairs > m.maxSupportedQueuePairs {
            throw .badValue(keyword: "max_vqp", value: String(pairs),
                            rule: "management device \(m.name) allows 1...\(m.maxSupportedQueuePairs) queue pairs")
        }
        do {
            try tool.devAdd(name: r.name, mgmtdev: r.mgmtdev, mac: r.mac, mtu: r.mtu, maxVQP: r.maxVQP, deviceFeatures: r.deviceFeatures)
        } catch {
            throw .mediation(error)
        }
    }
}
