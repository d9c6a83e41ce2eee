// What cannot be real on this machine (a PCIe doorbell write's flight time, an interrupt's
// delivery) as a named parameter with its source, so reports can mark figures as modelled.

/// One modelled parameter of a parent.
public struct ModelParameter: Sendable, Equatable {
    public var name: String
    public var value: Double
    public var unit: String
    public var source: String
    public init(name: String, value: Double, unit: String, source: String) {
        self.name = name
        self.value = value
        self.unit = unit
        self.source = source
    }
}

/// The PCIe figures several parents share, from one source.
extension ModelParameter {
    static let pcieSource = "Neugebauer et al., SIGCOMM 2018 (Understanding PCIe performance for end-host networking)"
    /// A posted MMIO write's flight to the device (a doorbell, a kick register).
    public static let pcieDoorbellWrite = ModelParameter(name: "pcie_doorbell_write_ns", value: 200, unit: "ns",
                                                         source: "posted MMIO write flight time (100–300 ns); " + pcieSource)
    /// An MSI-X message reaching a host vector handler (bypass via posted interrupts avoids a VM exit).
    public static let msixInterruptDelivery = ModelParameter(name: "msix_interrupt_delivery_ns", value: 1000, unit: "ns",
                                                             source: "MSI-X delivery to a host vector handler; " + pcieSource)
    /// One virtio-pci common-config register write (a posted write).
    public static let commonConfigWrite = ModelParameter(name: "common_cfg_write_ns", value: 200, unit: "ns",
                                                         source: "virtio-pci common config register write (a posted PCIe write); " + pcieSource)
}
