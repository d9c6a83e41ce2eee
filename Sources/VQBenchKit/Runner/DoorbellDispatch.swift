// The one place a scenario's doorbell name becomes concrete types: each case builds two
// pairs (kick and call) and hands them to a visitor whose generic method is specialised
// for that transport, so the measured loop never goes through an existential.

import Doorbell

/// Something to do with a kick pair and a call pair of one transport.
public protocol DoorbellPairVisitor {
    associatedtype Result
    func visit<KN: DoorbellNotifier, KW: DoorbellWaiter, CN: DoorbellNotifier, CW: DoorbellWaiter>(
        kick: (KN, KW), call: (CN, CW), sleeps: Bool) throws -> Result
}

public enum DoorbellDispatch {
    /// The spin budget of hybrid doorbells in scenarios (about one wakeup's cost here).
    public static let hybridSpinNanoseconds: UInt64 = 20_000

    /// Why `id` cannot run here, or nil when it can.
    public static func unavailability(of id: String, probe: DoorbellProbe) -> String? {
        if id == "poll" { return nil }
        guard let transport = DoorbellTransport(id: id) else { return "unknown doorbell '\(id)'" }
        return probe.unavailability(of: transport)
    }

    public static func dispatch<V: DoorbellPairVisitor>(_ id: String, probe: DoorbellProbe, _ visitor: V) throws -> V.Result {
        func pairs<D: Doorbell>(_ type: D.Type, _ configuration: D.Configuration, sleeps: Bool = true) throws -> V.Result {
            let kick = try D.makePair(configuration, probe: probe)
            let call = try D.makePair(configuration, probe: probe)
            return try visitor.visit(kick: kick, call: call, sleeps: sleeps)
        }
        let spin = hybridSpinNanoseconds
        switch id {
        // Pure polling: the pairs exist only to satisfy the types; they are never rung.
        case "poll": return try pairs(BusyPollDoorbell.self, .allocated, sleeps: false)
        default: break
        }
        guard let transport = DoorbellTransport(id: id) else {
            throw ScenarioError.unknownValue(part: "doorbell", value: id, known: Suite.allDoorbells)
        }
        switch transport {
        case .busyPoll: return try pairs(BusyPollDoorbell.self, .allocated)
        case .eventfd: return try pairs(EventfdDoorbell.self, ())
        case .ioUringEventfd: return try pairs(IoUringEventfdDoorbell.self, ())
        case .ioUringMsgRing: return try pairs(IoUringMsgRingDoorbell.self, ())
        case .ioUringMsgRingBusyPoll: return try pairs(IoUringMsgRingBusyPollDoorbell.self, ())
        case .futex: return try pairs(FutexDoorbell.self, FutexConfiguration())
        case .ioUringFutex: return try pairs(IoUringFutexDoorbell.self, FutexConfiguration())
        case .hybrid(.eventfd): return try pairs(HybridDoorbell<EventfdDoorbell>.self, .init(spinNanoseconds: spin))
        case .hybrid(.ioUringEventfd): return try pairs(HybridDoorbell<IoUringEventfdDoorbell>.self, .init(spinNanoseconds: spin))
        case .hybrid(.ioUringMsgRing): return try pairs(HybridDoorbell<IoUringMsgRingDoorbell>.self, .init(spinNanoseconds: spin))
        case .hybrid(.futex):
            return try pairs(HybridDoorbell<FutexDoorbell>.self, .init(spinNanoseconds: spin, inner: FutexConfiguration()))
        case .hybrid(.ioUringFutex):
            return try pairs(HybridDoorbell<IoUringFutexDoorbell>.self, .init(spinNanoseconds: spin, inner: FutexConfiguration()))
        case let .hybrid(inner): throw DoorbellError.hybridNeedsBlockingInner(inner: inner)
        }
    }
}
