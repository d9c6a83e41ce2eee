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
