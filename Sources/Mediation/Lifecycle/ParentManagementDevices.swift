// The management devices this package's parents expose, one per parent, as `vdpa mgmtdev
// show` lists them: the names, limits and device factories the lifecycle run registers
// (`<parent>_mgmt`, 4 queue pairs, the parent's offered features), in one table so the CLI
// nouns and any other caller see the same devices.

import Doorbell
import Virtqueue

public enum ParentManagementDevices {
    /// Queue pairs a management device lets `vdpa dev add max_vqp` ask for.
    public static let maxQueuePairs = 4

    /// Parent names, in the order `vdpa mgmtdev show` lists their management devices (the registry's).
    public static var parents: [String] { ParentRegistry.names }

    /// The management device name of `parent` ("vdpa_sim" → "vdpa_sim_mgmt").
    public static func name(of parent: String) -> String { "\(parent)_mgmt" }

    /// Every parent's management device; devices they create run their device thread on `deviceCPU`.
    public static func all(deviceCPU: Int32? = nil) -> [ManagementDevice] {
        ParentRegistry.all.map { make($0, deviceCPU: deviceCPU) }
    }

    /// A `VDPATool` on `bus` with every parent's management device registered.
    public static func tool(bus: VDPABus = VDPABus(), deviceCPU: Int32? = nil) -> VDPATool {
        let tool = VDPATool(bus: bus)
        for m in all(deviceCPU: deviceCPU) { tool.register(m) }
        return tool
    }

    /// `parent`'s management device: `dev add` makes an instance through the registry.
    public static func make(_ parent: ParentDescriptor, deviceCPU: Int32?) -> ManagementDevice {
        let attributes = ManagementDeviceAttributes(name: name(of: parent.name), supportedClasses: [.net],
                                                    maxSupportedQueuePairs: maxQueuePairs,
                                                    supportedFeatures: parent.offeredFeatures.rawValue)
        return ManagementDevice(attributes: attributes) { name, config, features throws(MediationError) in
            try parent.make(ParentConfiguration(name: name, config: config, features: features.map { VirtioFeatures(rawValue: $0) },
                                                deviceCPU: deviceCPU))
        }
    }
}
