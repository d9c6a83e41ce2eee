// Several queues at once (scenario ids qp2, qp4), both sides polling: one driver thread and
// one device thread per thread pair, each pair owning every T-th queue. With a core per
// thread available each queue gets its own pair; on fewer cores the queues share threads,
// and the result says so. A thread serving several queues visits them in turn, a batch at
// a time, as a multi-queue PMD's lcore does.

import Atomics
import CPlatform
import Doorbell
import Histogram
import Mediation
import Virtqueue

/// How the queues of a multi-queue scenario are spread over threads.
public struct QueueThreading: Sendable, Equatable {
    public var queues: Int
    public var threadPairs: Int

    /// One thread pair per queue when there are two cores per queue, else as many pairs as
    /// the cores allow (at least one).
    public static func plan(queues: Int, cpus: Int) -> QueueThreading {
        QueueThreading(queues: queues, threadPairs: max(1, min(queues, cpus / 2)))
    }

    /// What a reader needs to know when queues share threads.
    public var note: String? {
        threadPairs >= queues ? nil
            : "\(queues) queues share \(threadPairs) driver/device thread pair(s) (\(2 * threadPairs) of \(2 * queues) cores needed for one pair per queue)"
    }

    /// The queues thread pair `t` owns.
    public func queues(of t: Int) -> [Int] { Array(stride(from: t, to: queues, by: threadPairs)) }
}

/// Runs `descriptorsPerQueue` single-descriptor chains through each queue, all polling.
public func runMultiQueuePolled<Driver: VirtqueueDriverHalf, Device: VirtqueueDeviceHalf>(
    queues: [(driver: Driver, device: Device, addresses: [UInt64])], payloadBytes: UInt32, batch: Int,
    descriptorsPerQueue: Int, mode: DatapathMode, threading: QueueThreading, placement: ThreadPlacement
) throws(DoorbellError) -> DatapathOutcome {
    let gate = StartGate()
    let ready = ManagedAtomic<Int>(0)
    let threadCount = 2 * threading.threadPairs
    let driverResults = Slot([DatapathOutcome](repeating: DatapathOutcome(), count: threading.threadPairs))
    let deviceResults = Slot([DatapathOutcome](repeating: DatapathOutcome(), count: threading.threadPairs))
    let ends = Slot([UInt64](repeating: 0, count: threading.threadPairs))
    let lock = ControlLock()
    func cpu(_ t: Int, device: Bool) -> Int32? {
        guard threading.threadPairs > 1 else { return device ? placement.deviceCPU : placement.driverCPU }
        return Int32(2 * t + (device ? 1 : 0))
    }
    var threads: [PinnedThread] = []
    for t in 0..<threading.threadPairs {
        let owned = threading.queues(of: t)
        let drivers = Slot(owned.map { (queues[$0].driver, queues[$0].addresses) })
        let devices = Slot(owned.map { queues[$0].device })
        threads.append(try PinnedThread(cpu: cpu(t, device: false)) {
            let owned = drivers.value
            var out = DatapathOutcome()
            // Each queue's buffer ring, alive for the loop (the loop holds pointers into it).
            let rings = owned.map { queue -> UnsafeMutableBufferPointer<UInt64> in
                let ring = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: queue.1.count)
                _ = ring.initialize(from: queue.1)
                return ring
            }
            defer { for ring in rings { ring.deallocate() } }
            var service = RoundTripHistogram(histogram: Histogram<UInt64>(highestTrackableValue: 60_000_000_000,
                                                                           numberOfSignificantValueDigits: .three))
            ready.wrappingIncrement(ordering: .relaxed)
            gate.wait()
            let cpu0 = cplatform_thread_cpu_time_ns()
            // The one driver loop over this thread's queues, polling (no doorbells used).
            do {
                let pair = try BusyPollDoorbell.makePair()
                let neverRung = pair.0
                var neverWaited = pair.1
                var mine = zip(owned, rings).map { queue, ring in
                    DriverLoopQueue(driver: queue.0, kick: neverRung, addresses: UnsafeBufferPointer(ring), target: descriptorsPerQueue)
                }
                let options = DriverLoopOptions(batch: batch, length: payloadBytes, latency: mode == .latency, sleeps: false)
                if let error = runDriverLoop(&mine, call: &neverWaited, options: options, service: &service) {
                    out.errors.append(error)
                }
            } catch {
                out.errors.append("driver: \(error)")
            }
            let histogram = service.histogram
            out.driverCPUNanoseconds = cplatform_thread_cpu_time_ns() - cpu0
            let end = cplatform_monotonic_ns()
            if mode == .latency { out.roundTrips = histogram }
            lock.withLock {
                ends.value[t] = end
                driverResults.value[t] = out
            }
        })
        threads.append(try PinnedThread(cpu: cpu(t, device: true)) {
            // The one device loop over this thread's queues, polling (no doorbells used).
            var mine = devices.value.map { DeviceQueue(index: 0, device: $0, call: BusyPollDoorbell.Notifier?.none) }
            var out = DatapathOutcome()
            var service = BareRingService(descriptors: descriptorsPerQueue * mine.count)
            ready.wrappingIncrement(ordering: .relaxed)
            gate.wait()
            let cpu0 = cplatform_thread_cpu_time_ns()
            do {
                var (_, neverWaited) = try BusyPollDoorbell.makePair()
                let options = DeviceLoopOptions(batch: batch, sleeps: false, sleepNanoseconds: 0, timeoutIsLostKick: false)
                if let error = runDeviceLoop(&mine, kick: &neverWaited, options: options, service: &service) {
                    out.errors.append(error)
                }
            } catch {
                out.errors.append("device: \(error)")
            }
            out.deviceCPUNanoseconds = cplatform_thread_cpu_time_ns() - cpu0 + (service.sink == .max ? 1 : 0)
            lock.withLock { deviceResults.value[t] = out }
        })
    }
    while ready.load(ordering: .relaxed) < threadCount { cplatform_cpu_relax() }
    let start = cplatform_monotonic_ns()
    gate.open()
    for thread in threads { thread.join() }

    var outcome = DatapathOutcome()
    outcome.descriptors = descriptorsPerQueue * queues.count
    outcome.nanoseconds = (ends.value.max() ?? start) &- start
    var histogram: Histogram<UInt64>? = nil
    for (a, b) in zip(driverResults.value, deviceResults.value) {
        outcome.driverCPUNanoseconds += a.driverCPUNanoseconds
        outcome.deviceCPUNanoseconds += b.deviceCPUNanoseconds
        outcome.errors += a.errors + b.errors
        if let h = a.roundTrips {
            if histogram == nil { histogram = h } else { histogram!.add(h) }
        }
    }
    outcome.roundTrips = histogram
    return outcome
}
