// How the `vdpa` nouns print, in iproute2 vdpa(8)'s shapes: `NAME: key value …` lines (an
// indented line per array for management devices and negotiated features), and with --json
// one object under the section name (`{"mgmtdev": {NAME: {…}}}`, `"dev"`, `"config"`).
// Feature bits print by vdpa(8)'s names: virtio-net's without VIRTIO_NET_F_, the
// transport's without VIRTIO_F_ (VIRTIO_F_INDIRECT_DESC as RING_INDIRECT_DESC), others as bit_N.

import Foundation
import Mediation

public enum VDPAOutput {
    // MARK: Text

    public static func text(_ managementDevices: [ManagementDeviceAttributes]) -> [String] {
        managementDevices.flatMap { m -> [String] in
            ["\(m.name):",
             "  supported_classes " + classes(m.supportedClasses).joined(separator: " "),
             "  max_supported_vqs \(maxVQs(m))",
             "  dev_features " + featureNames(m.supportedFeatures, net: m.supportedClasses.contains(.net)).joined(separator: " ")]
        }
    }

    public static func text(_ devices: [VDPADeviceView]) -> [String] {
        devices.map { d in
            "\(d.name): type \(d.type) mgmtdev \(d.mgmtdev) vendor_id \(d.vendorID) max_vqs \(d.maxVQs) max_vq_size \(d.maxVQSize)"
        }
    }

    public static func text(_ configs: [VDPAConfigView]) -> [String] {
        configs.flatMap { c -> [String] in
            var lines = ["\(c.name): mac \(VDPAArguments.format(mac: c.mac)) link \(c.linkUp ? "up" : "down") "
                         + "link_announce \(c.linkAnnounce) max_vq_pairs \(c.maxVQPairs) mtu \(c.mtu)"]
            if c.negotiatedFeatures != 0 {
                lines.append("  negotiated_features " + featureNames(c.negotiatedFeatures, net: c.classID == .net).joined(separator: " "))
            }
            return lines
        }
    }

    // MARK: JSON

    public static func json(_ managementDevices: [ManagementDeviceAttributes]) -> String {
        struct Entry: Encodable {
            var supportedClasses: [String]
            var maxSupportedVQs: Int
            var devFeatures: [String]
            enum CodingKeys: String, CodingKey {
                case supportedClasses = "supported_classes", maxSupportedVQs = "max_supported_vqs", devFeatures = "dev_features"
            }
        }
        let entries = Dictionary(uniqueKeysWithValues: managementDevices.map { m in
            (m.name, Entry(supportedClasses: classes(m.supportedClasses), maxSupportedVQs: maxVQs(m),
                           devFeatures: featureNames(m.supportedFeatures, net: m.supportedClasses.contains(.net))))
        })
        return encode(["mgmtdev": entries])
    }

    public static func json(_ devices: [VDPADeviceView]) -> String {
        struct Entry: Encodable {
            var type: String
            var mgmtdev: String
            var vendorID: UInt32
            var maxVQs: Int
            var maxVQSize: Int
            enum CodingKeys: String, CodingKey {
                case type, mgmtdev, vendorID = "vendor_id", maxVQs = "max_vqs", maxVQSize = "max_vq_size"
            }
        }
        let entries = Dictionary(uniqueKeysWithValues: devices.map { d in
            (d.name, Entry(type: d.type, mgmtdev: d.mgmtdev, vendorID: d.vendorID, maxVQs: d.maxVQs, maxVQSize: d.maxVQSize))
        })
        return encode(["dev": entries])
    }

    public static func json(_ configs: [VDPAConfigView]) -> String {
        struct Entry: Encodable {
            var mac: String
            var link: String
            var linkAnnounce: Bool
            var maxVQPairs: Int
            var mtu: Int
            var negotiatedFeatures: [String]?
            enum CodingKeys: String, CodingKey {
                case mac, link, mtu, linkAnnounce = "link_announce", maxVQPairs = "max_vq_pairs", negotiatedFeatures = "negotiated_features"
            }
        }
        let entries = Dictionary(uniqueKeysWithValues: configs.map { c in
            (c.name, Entry(mac: VDPAArguments.format(mac: c.mac), link: c.linkUp ? "up" : "down", linkAnnounce: c.linkAnnounce,
                           maxVQPairs: c.maxVQPairs, mtu: c.mtu,
                           negotiatedFeatures: c.negotiatedFeatures == 0 ? nil : featureNames(c.negotiatedFeatures, net: c.classID == .net)))
        })
        return encode(["config": entries])
    }

    // MARK: Names

    /// Virtqueues, as the kernel reports max_supported_vqs: a receive and a transmit queue per pair.
    static func maxVQs(_ m: ManagementDeviceAttributes) -> Int { 2 * m.maxSupportedQueuePairs }

    static func classes(_ set: Set<ClassID>) -> [String] { set.sorted { $0.rawValue < $1.rawValue }.map(\.description) }

    /// virtio-net feature bits (virtio 1.2 §5.1.3), as vdpa(8) names them.
    static let netFeatureNames: [Int: String] = [
        0: "CSUM", 1: "GUEST_CSUM", 2: "CTRL_GUEST_OFFLOADS", 3: "MTU", 5: "MAC", 7: "GUEST_TSO4", 8: "GUEST_TSO6",
        9: "GUEST_ECN", 10: "GUEST_UFO", 11: "HOST_TSO4", 12: "HOST_TSO6", 13: "HOST_ECN", 14: "HOST_UFO",
        15: "MRG_RXBUF", 16: "STATUS", 17: "CTRL_VQ", 18: "CTRL_RX", 19: "CTRL_VLAN", 20: "CTRL_RX_EXTRA",
        21: "GUEST_ANNOUNCE", 22: "MQ", 23: "CTRL_MAC_ADDR", 24: "NOTIFY_ON_EMPTY", 27: "ANY_LAYOUT",
        57: "HASH_REPORT", 60: "RSS", 61: "RSC_EXT", 62: "STANDBY", 63: "SPEED_DUPLEX",
    ]

    /// Device-independent bits 28–41 (virtio 1.2 §6).
    static let transportFeatureNames: [Int: String] = [
        28: "RING_INDIRECT_DESC", 29: "RING_EVENT_IDX", 32: "VERSION_1", 33: "ACCESS_PLATFORM", 34: "RING_PACKED",
        35: "IN_ORDER", 36: "ORDER_PLATFORM", 37: "SR_IOV", 38: "NOTIFICATION_DATA", 39: "NOTIF_CONFIG_DATA",
        40: "RING_RESET",
    ]

    public static func featureNames(_ mask: UInt64, net: Bool) -> [String] {
        (0..<64).filter { mask & (1 << UInt64($0)) != 0 }.map { bit in
            let name = (28...41).contains(bit) ? transportFeatureNames[bit] : (net ? netFeatureNames[bit] : nil)
            return name ?? "bit_\(bit)"
        }
    }

    static func encode<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        // Dictionaries of strings, numbers and booleans always encode.
        return String(decoding: (try? encoder.encode(value)) ?? Data("{}".utf8), as: UTF8.self)
    }
}
