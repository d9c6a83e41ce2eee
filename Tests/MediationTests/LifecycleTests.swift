// mdev (GUID) and management-device (vdpa tool, devlink port function) lifecycles:
// create, bind, traffic, unbind, remove; every misuse a typed error; no fd left behind.

import Doorbell
import Glibc
import Testing
import Virtqueue
@testable import Mediation

/// Open file descriptors of this process.
func openDescriptorCount() -> Int {
    guard let dir = opendir("/proc/self/fd") else { return -1 }
    defer { closedir(dir) }
    var n = 0
    while readdir(dir) != nil { n += 1 }
    return n
}

/// Whether no more descriptors are open than `before`. Tests of other suites run in
/// parallel in this process and open and close their own, so a leak is "more than before"
/// (not "different"), and a transient excess is given up to a second to go away.
func noDescriptorsLeaked(since before: Int) -> Bool {
    for _ in 0..<100 {
        if openDescriptorCount() <= before { return true }
        usleep(10_000)
    }
    return false
}

let simFactory: DeviceFactory = { (name, config, features) throws(MediationError) in
    try VDPASim(name: name, config: config, features: features.map { VirtioFeatures(rawValue: $0) }, deviceCPU: 1)
}

extension MediationSuites {
@Suite struct LifecycleTests {
    @Test func mdevCreateBindTrafficUnbindRemoveLeavesNoDescriptors() throws {
        let fdsBefore = openDescriptorCount()
        do {
            let bus = VDPABus()
            let parent = MdevParent(name: "vdpa_sim", bus: bus)
            parent.register(MdevType(name: "vdpa_sim-net", classID: .net, maxInstances: 2), factory: simFactory)
            #expect(try parent.availableInstances("vdpa_sim-net") == 2)
            let guid = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001"
            let device = try #require(try parent.create(type: "vdpa_sim-net", guid: guid) as? VDPASim)
            #expect(try parent.availableInstances("vdpa_sim-net") == 1)
            #expect(bus.deviceNames == [guid])
            #expect(try bus.match(.net, device: guid).name == "virtio")

            let binding = try VirtioBinding<EventfdDoorbell>(device: device, bus: bus, layout: .split, queues: [0, 1], queueSize: 64, callBell: ())
            var tx = try #require(binding.takeSplitQueue(1))
            let sent = tx.transmit(packets: 10_000, payloadBytes: 64, batch: 16)
            #expect(sent.errors == [] && sent.packets == 10_000)
            #expect(device.counters.transmitChecksum.load(ordering: .relaxed) == sent.checksum)
            #expect(throws: MediationError.deviceBusy(device: guid, binding: "virtio")) { try parent.remove(guid: guid) }
            binding.unbind()
            try parent.remove(guid: guid)
            #expect(parent.timings.map(\.operation) == ["mdev_create", "mdev_remove"])
            #expect(bus.deviceNames.isEmpty)
        }
        #expect(noDescriptorsLeaked(since: fdsBefore), "every eventfd of the device and binding was closed")
    }

    @Test func mdevRejectsBadGUIDsDuplicatesAndExhaustion() throws {
        let parent = MdevParent(name: "vdpa_sim", bus: VDPABus())
        parent.register(MdevType(name: "net", classID: .net, maxInstances: 1), factory: simFactory)
        for bad in ["", "not-a-guid", "83b8f4f2-509f-382f-3c1e-e6bfe0fa100", "83b8f4f2509f382f3c1ee6bfe0fa1001",
                    "g3b8f4f2-509f-382f-3c1e-e6bfe0fa1001"] {
            #expect(throws: MediationError.malformedGUID(bad)) { try parent.create(type: "net", guid: bad) }
        }
        try parent.create(type: "net", guid: "00000000-0000-0000-0000-000000000001")
        #expect(throws: MediationError.duplicateGUID("00000000-0000-0000-0000-000000000001")) {
            try parent.create(type: "net", guid: "00000000-0000-0000-0000-000000000001")
        }
        #expect(throws: MediationError.instancesExhausted(type: "net", max: 1)) {
            try parent.create(type: "net", guid: "00000000-0000-0000-0000-000000000002")
        }
        #expect(throws: MediationError.unknownMdevType("blk")) { try parent.create(type: "blk", guid: "00000000-0000-0000-0000-000000000003") }
        #expect(throws: MediationError.unknownGUID("00000000-0000-0000-0000-000000000009")) {
            try parent.remove(guid: "00000000-0000-0000-0000-000000000009")
        }
        try parent.remove(guid: "00000000-0000-0000-0000-000000000001")
    }

    static func simManagementDevice(_ name: String) -> ManagementDevice {
        ManagementDevice(attributes: ManagementDeviceAttributes(name: name, supportedClasses: [.net], maxSupportedQueuePairs: 4,
                                                                supportedFeatures: VDPASim.offeredFeatures.rawValue),
                         factory: simFactory)
    }

    @Test func managementDeviceAddShowConfigDelAndErrors() throws {
        let fdsBefore = openDescriptorCount()
        do {
            let bus = VDPABus()
            let tool = VDPATool(bus: bus)
            tool.register(Self.simManagementDevice("vdpasim_net"))
            #expect(tool.mgmtdevShow().map(\.name) == ["vdpasim_net"])
            let device = try #require(try tool.devAdd(name: "vdpa0", mgmtdev: "vdpasim_net", mac: [0x00, 0xe8, 0xca, 0x11, 0xbe, 0x05],
                                                      mtu: 9000, maxVQP: 2) as? VDPASim)
            let config = try tool.devConfigShow(name: "vdpa0")
            #expect(config.mac == [0x00, 0xe8, 0xca, 0x11, 0xbe, 0x05] && config.mtu == 9000 && config.maxQueuePairs == 2 && config.linkUp)
            #expect(device.identity.queueCount == 4)

            #expect(throws: MediationError.unknownManagementDevice("nope")) { try tool.devAdd(name: "x", mgmtdev: "nope") }
            #expect(throws: MediationError.duplicateDeviceName("vdpa0")) { try tool.devAdd(name: "vdpa0", mgmtdev: "vdpasim_net") }
            #expect(throws: MediationError.unsupportedClass(.block, managementDevice: "vdpasim_net")) {
                try tool.devAdd(name: "b", mgmtdev: "vdpasim_net", classID: .block)
            }
            #expect(throws: MediationError.tooManyQueuePairs(requested: 8, max: 4)) { try tool.devAdd(name: "q", mgmtdev: "vdpasim_net", maxVQP: 8) }
            #expect(throws: MediationError.deviceFeaturesNotSupported(unsupported: VirtioFeatures.inOrder.rawValue)) {
                try tool.devAdd(name: "f", mgmtdev: "vdpasim_net", deviceFeatures: VirtioFeatures([.version1, .inOrder]).rawValue)
            }

            let binding = try VirtioBinding<EventfdDoorbell>(device: device, bus: bus, layout: .packed, queues: [0, 1], queueSize: 64, callBell: ())
            var rx = try #require(binding.takePackedQueue(0))
            let got = rx.receive(packets: 10_000, batch: 16, expectedBytes: 64)
            #expect(got.errors == [] && got.packets == 10_000)
            #expect(try tool.devConfigShow(name: "vdpa0").status.contains(.driverOK))
            #expect(throws: MediationError.deviceBusy(device: "vdpa0", binding: "virtio")) { try tool.devDel(name: "vdpa0") }
            binding.unbind()
            try tool.devDel(name: "vdpa0")
            #expect(throws: MediationError.unknownDevice("vdpa0")) { try tool.devDel(name: "vdpa0") }
            #expect(Set(tool.timings.map(\.operation)) == ["dev_add", "dev_config_show", "dev_del"])
        }
        #expect(noDescriptorsLeaked(since: fdsBefore))
    }

    @Test func devlinkPortFunctionCreatesTheManagementDevice() throws {
        let tool = VDPATool(bus: VDPABus())
        let devlink = DevlinkInstance(handle: "pci/0000:08:00.0", tool: tool, template: Self.simManagementDevice("template"))
        let port = devlink.portAdd(sfNumber: 88)
        #expect(tool.mgmtdevShow().isEmpty, "an inactive function exposes nothing")
        try devlink.portFunctionSet(port.index, state: .active)
        let name = devlink.managementDeviceName(port)
        #expect(tool.mgmtdevShow().map(\.name) == [name])
        try tool.devAdd(name: "sf88", mgmtdev: name)
        #expect(throws: MediationError.portFunctionState(port: port.index, state: "active with vDPA devices", operation: "deactivate")) {
            try devlink.portFunctionSet(port.index, state: .inactive)
        }
        #expect(throws: MediationError.portFunctionState(port: port.index, state: "active", operation: "delete")) { try devlink.portDel(port.index) }
        try tool.devDel(name: "sf88")
        try devlink.portFunctionSet(port.index, state: .inactive)
        try devlink.portDel(port.index)
        #expect(throws: MediationError.unknownPort(port.index)) { try devlink.portDel(port.index) }
        #expect(devlink.timings.map(\.operation) == ["port_add", "port_function_active", "port_function_inactive", "port_del"])
    }
}
}
