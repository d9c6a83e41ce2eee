// The management devices this package's parents expose, one per parent, as `vdpa mgmtdev
// show` lists them: the names, limits and device factories the lifecycle run registers
// (`<parent>_mgmt`, 4 queue pairs, the parent's offered features), in one table so the CLI
// nouns and any other caller see the same devices.

import Doorbell
import Virtqueue

public enum ParentManagementDevices {
    /// Queue pairs a management device lets `vdpa dev add max_vqp` ask for.
    public static let maxQueuePairs = 4

    /// Parent names, in the order `vdpa mgmtdev show` lists their management devices.
    public static let parents = ["vdpa_sim", "vp_vdpa"]

    /// The management device name of `parent` ("vdpa_sim" → "vdpa_sim_mgmt").
    public static func name(of parent: String) -> String { "\(parent)_mgmt" }

    /// Every parent's management device; devices they create run their device thread on `deviceCPU`.
    public static func all(deviceCPU: Int32? = nil) -> [ManagementDevice] {
        [
            make(VDPASim<EventfdDoorbell>.self) { name, config, features throws(MediationError) in
                try VDPASim<EventfdDoorbell>(name: name, config: config, features: features, bell: (), deviceCPU: deviceCPU)
            },
            make(VPVDPA<EventfdDoorbell>.self) { name, config, features throws(MediationError) in
                try VPVDPA<EventfdDoorbell>(name: name, config: config, features: features, bell: (), deviceCPU: deviceCPU)
            },
        ]
    }

    /// A `VDPATool` on `bus` with every parent's management device registered.
    public static func tool(bus: VDPABus = VDPABus(), deviceCPU: Int32? = nil) -> VDPATool {
        let tool = VDPATool(bus: bus)
        for m in all(deviceCPU: deviceCPU) { tool.register(m) }
        return tool
    }

    private static func make<P: VDPAConfigOps>(
        _ type: P.Type,
        _ build: @escaping @Sendable (String, NetConfig, VirtioFeatures?) throws(MediationError) -> P
    ) -> ManagementDevice {
        let attributes = ManagementDeviceAttributes(name: name(of: P.parentName), supportedClasses: [.net],
                                                    maxSupportedQueuePairs: maxQueuePairs,
                                                    supportedFeatures: P.offeredFeatures.rawValue)
        return ManagementDevice(attributes: attributes) { name, config, features throws(MediationError) in
            try build(name, config, features.map { VirtioFeatures(rawValue: $0) })
        }
    }
}
