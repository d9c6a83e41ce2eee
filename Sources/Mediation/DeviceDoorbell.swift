// The doorbells a mediated device's kicks and interrupts can use. A parent's control plane
// holds them as endpoints (DoorbellEndpoint); the device thread's start is the one place an
// endpoint's transport becomes a type, so the device loop under it is specialised for it.

import Doorbell
import Virtqueue
import VirtioMemory

/// The transport of a device's kick doorbell (and of the callbacks it rings).
public enum DeviceDoorbell: Sendable, Equatable, CustomStringConvertible {
    case busyPoll
    case eventfd
    case futex
    /// Spin for `spinNanoseconds`, then sleep on an eventfd.
    case hybridEventfd(spinNanoseconds: UInt64)

    /// The ids scenario names use, in this order.
    public static let ids = ["busy-poll", "eventfd", "futex", "hybrid-eventfd"]

    /// `id` as a scenario names it; a hybrid spins `hybridSpinNanoseconds` first.
    public init(id: String, hybridSpinNanoseconds: UInt64) throws(MediationError) {
        switch id {
        case "busy-poll": self = .busyPoll
        case "eventfd": self = .eventfd
        case "futex": self = .futex
        case "hybrid-eventfd": self = .hybridEventfd(spinNanoseconds: hybridSpinNanoseconds)
        default: throw .unsupportedDeviceDoorbell(transport: id, supported: Self.ids)
        }
    }

    public var transport: DoorbellTransport {
        switch self {
        case .busyPoll: .busyPoll
        case .eventfd: .eventfd
        case .futex: .futex
        case .hybridEventfd: .hybrid(.eventfd)
        }
    }

    public var description: String { transport.id }

    /// A new doorbell of this transport, as its endpoint.
    public func makeEndpoint(probe: DoorbellProbe = .current) throws(MediationError) -> DoorbellEndpoint {
        struct Make: DeviceDoorbellConfigurationVisitor {
            typealias Output = DoorbellEndpoint
            let probe: DoorbellProbe
            func visit<B: EndpointDoorbell>(_ bell: B.Type, _ configuration: B.Configuration) throws -> DoorbellEndpoint {
                try B.makeEndpoint(configuration, probe: probe)
            }
        }
        do {
            return try visit(Make(probe: probe))
        } catch {
            throw mediationError(error)
        }
    }

    /// The one place a doorbell of this kind becomes a type with its configuration (the
    /// driver's side of a mediated scenario picks its ends here, the device's endpoint too).
    /// Inlinable, so the caller's module specialises `visitor.visit` for each concrete
    /// doorbell: without it the driver loop below ran generic, through witness tables. (A
    /// gate self-test build, VQB_GATE_INJECT, drops exactly that, so the gate's
    /// specialisation check is shown to fail.)
    #if VQB_GATE_INJECT
    @inline(never) @_semantics("optimize.sil.specialize.generic.never")
    public func visit<V: DeviceDoorbellConfigurationVisitor>(_ visitor: V) throws -> V.Output { try visitConcrete(visitor) }
    #else
    @inlinable
    public func visit<V: DeviceDoorbellConfigurationVisitor>(_ visitor: V) throws -> V.Output { try visitConcrete(visitor) }
    #endif

    @inlinable
    func visitConcrete<V: DeviceDoorbellConfigurationVisitor>(_ visitor: V) throws -> V.Output {
        switch self {
        case .busyPoll: return try visitor.visit(BusyPollDoorbell.self, .allocated)
        case .eventfd: return try visitor.visit(EventfdDoorbell.self, ())
        case .futex: return try visitor.visit(FutexDoorbell.self, FutexConfiguration())
        case let .hybridEventfd(spin): return try visitor.visit(HybridDoorbell<EventfdDoorbell>.self, .init(spinNanoseconds: spin))
        }
    }
}

/// Something to do with a doorbell type and the configuration its pairs are made with.
public protocol DeviceDoorbellConfigurationVisitor {
    associatedtype Output
    func visit<B: EndpointDoorbell>(_ bell: B.Type, _ configuration: B.Configuration) throws -> Output
}

/// Something to do with a device doorbell's transport as a type.
protocol DeviceDoorbellVisitor {
    associatedtype Output
    func visit<B: EndpointDoorbell>(_ bell: B.Type) throws -> Output
}

/// The one place a device doorbell's transport becomes a type: the device loop, the
/// interrupt relays and the control path's rings are all started through it, so what runs
/// under it is specialised for that transport.
func withDeviceDoorbell<V: DeviceDoorbellVisitor>(_ transport: DoorbellTransport, _ visitor: V) throws -> V.Output {
    switch transport {
    case .busyPoll: return try visitor.visit(BusyPollDoorbell.self)
    case .eventfd: return try visitor.visit(EventfdDoorbell.self)
    case .futex: return try visitor.visit(FutexDoorbell.self)
    case .hybrid(.eventfd): return try visitor.visit(HybridDoorbell<EventfdDoorbell>.self)
    default: throw MediationError.unsupportedDeviceDoorbell(transport: transport.id, supported: DeviceDoorbell.ids)
    }
}

/// Maps what a visitor threw onto the mediation layer's error.
func mediationError(_ error: any Error) -> MediationError {
    switch error {
    case let e as MediationError: return e
    case let e as VirtqueueError: return .ring(e)
    case let e as DoorbellError: return .doorbell(e)
    case let e as MemoryError: return .mapping(e)
    default: return .deviceThread(reason: "\(error)")
    }
}
