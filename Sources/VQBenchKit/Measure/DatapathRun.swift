// One scenario's datapath: a driver thread and a device thread on different CPUs, each
// owning its ring half and its ends of two doorbells (kick: driver → device, call: device
// → driver), with event suppression deciding when a notification is needed and the sleep
// protocol making sure none is lost. Throughput runs keep the ring full; latency runs keep
// one batch in flight and time each round trip.

import Atomics
import CPlatform
import Doorbell
import Histogram
import Mediation
import Virtqueue

/// What a datapath run is for.
public enum DatapathMode: Sendable {
    /// Keep the ring as full as batches allow; measure descriptors per second.
    case throughput
    /// One batch in flight at a time; record each batch's round trip.
    case latency
}

/// The measured outcome of one run.
public struct DatapathOutcome: Sendable {
    public var descriptors = 0
    public var nanoseconds: UInt64 = 0
    public var driverCPUNanoseconds: UInt64 = 0
    public var deviceCPUNanoseconds: UInt64 = 0
    public var kick = DoorbellCounters()
    public var call = DoorbellCounters()
    /// Round trips in nanoseconds (latency mode), one per batch.
    public var roundTrips: Histogram<UInt64>?
    public var errors: [String] = []
    /// What a shadow virtqueue's relay thread did (nil: no relay).
    public var relay: RelayTally?

    /// A shadow virtqueue relay's work over one run.
    public struct RelayTally: Sendable, Equatable {
        public var cpuNanoseconds: UInt64 = 0
        public var translations: UInt64 = 0
        public var deviceKicks: UInt64 = 0
        public var driverInterrupts: UInt64 = 0
        public var idlePasses: UInt64 = 0
        public var syscalls: UInt64 = 0
        public init() {}
        static func + (a: RelayTally, b: RelayTally) -> RelayTally {
            var r = a
            r.cpuNanoseconds += b.cpuNanoseconds
            r.translations += b.translations
            r.deviceKicks += b.deviceKicks
            r.driverInterrupts += b.driverInterrupts
            r.idlePasses += b.idlePasses
            r.syscalls += b.syscalls
            return r
        }
    }

    public var descriptorsPerSecond: Double { Double(descriptors) * 1e9 / Double(max(nanoseconds, 1)) }
    public var syscalls: UInt64 { kick.syscalls + call.syscalls }

    /// Adds another throughput run of the same scenario: one run as long as both.
    mutating func absorb(_ other: DatapathOutcome) {
        descriptors += other.descriptors
        nanoseconds += other.nanoseconds
        driverCPUNanoseconds += other.driverCPUNanoseconds
        deviceCPUNanoseconds += other.deviceCPUNanoseconds
        kick = kick + other.kick
        call = call + other.call
        if let r = other.relay { relay = (relay ?? RelayTally()) + r }
        errors += other.errors
    }
}

/// The bare-ring scenarios' device: reads the first word of each payload it is given (a
/// transmit device has to look at what it sends) and stops when `descriptors` are back.
struct BareRingService: DeviceLoopService {
    let descriptors: Int
    var done = 0
    var sink: UInt64 = 0
    init(descriptors: Int) { self.descriptors = descriptors }
    @inline(__always)
    mutating func serve(queue: Int, chain: Chain, segments: UnsafeBufferPointer<Segment>) -> UInt32 {
        if let host = segments.first?.host { sink &+= UInt64(host.load(as: UInt64.self)) }
        return 0
    }
    @inline(__always) mutating func completed(queue: Int, count: Int) { done &+= count }
    @inline(__always) mutating func interrupted(queue: Int) {}
    @inline(__always) mutating func woke() {}
    @inline(__always) mutating func shouldStop() -> Bool { done >= descriptors }
}

/// The driver loop's latency record: every round trip into one histogram.
struct RoundTripHistogram: DriverLoopService {
    var histogram: Histogram<UInt64>
    @inline(__always) mutating func willPost(queue: Int, slot: Int, count: Int) {}
    @inline(__always) mutating func roundTrip(queue: Int, nanoseconds: UInt64) { _ = histogram.record(nanoseconds) }
}

/// How long a sleeping side waits before it declares a notification lost.
let lostNotificationTimeout: UInt64 = 5_000_000_000

/// Runs `descriptors` single-descriptor chains through the queue. `sleeps == false` means
/// pure polling: the doorbells are never touched and neither side sleeps.
public func runDatapath<Driver: VirtqueueDriverHalf, Device: VirtqueueDeviceHalf,
                        KickNotifier: DoorbellNotifier, KickWaiter: DoorbellWaiter,
                        CallNotifier: DoorbellNotifier, CallWaiter: DoorbellWaiter>(
    driver: Driver, device: Device,
    kick: (KickNotifier, KickWaiter), call: (CallNotifier, CallWaiter), sleeps: Bool,
    addresses: [UInt64], payloadBytes: UInt32, batch: Int, descriptors: Int,
    mode: DatapathMode, placement: ThreadPlacement
) throws(DoorbellError) -> DatapathOutcome {
    let driverSide = Slot((driver, kick.0, call.1))
    let deviceSide = Slot((device, kick.1, call.0))
    let gate = StartGate()
    let ready = ManagedAtomic<Int>(0)
    let driverResult = Slot(DatapathOutcome())
    let deviceResult = Slot(DatapathOutcome())
    let clock = Slot((start: UInt64(0), end: UInt64(0)))

    let driverThread = try PinnedThread(cpu: placement.driverCPU) {
        var (d, kickN, callW) = driverSide.value
        var out = DatapathOutcome()
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        ready.wrappingIncrement(ordering: .relaxed)
        gate.wait()
        let cpu0 = cplatform_thread_cpu_time_ns()
        // The one driver loop (the mediated scenarios' and their bare references').
        var service = RoundTripHistogram(histogram: histogram)
        let options = DriverLoopOptions(batch: batch, length: payloadBytes, latency: mode == .latency, sleeps: sleeps,
                                        lostInterruptNanoseconds: lostNotificationTimeout)
        addresses.withUnsafeBufferPointer { addrs in
            var queues = [DriverLoopQueue(driver: d, kick: kickN, addresses: addrs, target: descriptors)]
            if let error = runDriverLoop(&queues, call: &callW, options: options, service: &service) {
                out.errors.append(error)
            }
            d = queues[0].driver
            kickN = queues[0].kick
        }
        histogram = service.histogram
        out.driverCPUNanoseconds = cplatform_thread_cpu_time_ns() - cpu0
        clock.value.end = cplatform_monotonic_ns()
        out.kick = kickN.counters
        out.call = callW.counters
        if mode == .latency { out.roundTrips = histogram }
        driverResult.value = out
    }

    let deviceThread = try PinnedThread(cpu: placement.deviceCPU) {
        var (v, kickW, callN) = deviceSide.value
        var out = DatapathOutcome()
        ready.wrappingIncrement(ordering: .relaxed)
        gate.wait()
        let cpu0 = cplatform_thread_cpu_time_ns()
        // The one device loop (the parents' and the bare reference's) with a device that
        // reads the first word of each payload, until every descriptor is back.
        var queues = [DeviceQueue(index: 0, device: v, call: sleeps ? callN : nil)]
        var service = BareRingService(descriptors: descriptors)
        let options = DeviceLoopOptions(batch: batch, sleeps: sleeps, sleepNanoseconds: lostNotificationTimeout,
                                        timeoutIsLostKick: true)
        if let error = runDeviceLoop(&queues, kick: &kickW, options: options, service: &service) {
            out.errors.append(error)
        }
        v = queues[0].device
        if let c = queues[0].call { callN = c }
        out.deviceCPUNanoseconds = cplatform_thread_cpu_time_ns() - cpu0 + (service.sink == .max ? 1 : 0)
        out.kick = kickW.counters
        out.call = callN.counters
        deviceResult.value = out
    }

    while ready.load(ordering: .relaxed) < 2 { cplatform_cpu_relax() }
    clock.value.start = cplatform_monotonic_ns()
    gate.open()
    driverThread.join()
    deviceThread.join()

    let a = driverResult.value
    let b = deviceResult.value
    var outcome = DatapathOutcome()
    outcome.descriptors = descriptors
    outcome.nanoseconds = clock.value.end &- clock.value.start
    outcome.driverCPUNanoseconds = a.driverCPUNanoseconds
    outcome.deviceCPUNanoseconds = b.deviceCPUNanoseconds
    outcome.kick = a.kick + b.kick
    outcome.call = a.call + b.call
    outcome.roundTrips = a.roundTrips
    outcome.errors = a.errors + b.errors
    return outcome
}
