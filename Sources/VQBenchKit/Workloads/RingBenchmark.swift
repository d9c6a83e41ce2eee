// The ring benchmark behind `vqbench ring`: single-thread ns per descriptor and two-thread
// polled throughput for split and packed, measured in alternating rounds so the packed /
// split ratio comes from neighbouring measurements of the same vCPU placement class (classes
// clustered from the run's own round trips).

import CPlatform
import Doorbell
import Virtqueue
import VirtioMemory

public struct RingBenchmarkConfig: Sendable {
    public var queueSize = 256
    public var payloadBytes = 64
    public var batches = [1, 8, 32]
    public var singleThreadDescriptors = 2_000_000
    public var twoThreadDescriptors = 2_000_000
    public var rounds = 7
    public init() {}
}

public struct RingFigure: Sendable {
    public var layout: RingLayoutKind
    public var batch: Int
    public var singleThreadNsPerDescriptor: Double
    /// Per placement class name.
    public var twoThreadDescriptorsPerSecond: [String: [Double]]
    public var cpuNsPerDescriptor: Double
}

public struct RingRatio: Sendable {
    public var batch: Int
    public var placement: String
    /// packed / split descriptors per second, one per kept round.
    public var packedOverSplit: [Double]
}

public struct RingBenchmarkReport: Sendable {
    public var backing: String
    public var figures: [RingFigure]
    public var ratios: [RingRatio]
    public var discardedRounds: Int
    public var placementNote: String?
    public var placementClasses: [PlacementClass]
}

public func median(_ xs: [Double]) -> Double {
    guard !xs.isEmpty else { return .nan }
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

public enum RingBenchmark {
    /// Nanoseconds per descriptor of the single-thread loop: median of five timed runs.
    static func singleThread<D: VirtqueueDriverHalf, V: VirtqueueDeviceHalf>(
        _ setup: RingSetup<D, V>, batch: Int, descriptors: Int, payload: UInt32
    ) throws -> Double {
        var s = setup
        var runs: [Double] = []
        let rounds = max(1, descriptors / batch)
        let bursts = DeviceBurstBuffers(capacity: batch)
        defer { bursts.deallocate() }
        try s.addresses.withUnsafeBufferPointer { addrs in
            for run in 0..<6 {
                var counters = LoopCounters()
                let t0 = cplatform_monotonic_ns()
                try singleThreadRounds(driver: &s.driver, device: &s.device, addresses: addrs, bursts: bursts,
                                       payloadBytes: payload, batch: batch, rounds: rounds, counters: &counters)
                let t1 = cplatform_monotonic_ns()
                if run > 0 { runs.append(Double(t1 - t0) / Double(counters.descriptors)) }  // run 0 warms up
            }
        }
        return median(runs)
    }

    public static func run(_ config: RingBenchmarkConfig, log: (String) -> Void = { _ in }) throws -> RingBenchmarkReport {
        let payload = UInt32(config.payloadBytes)
        var figures: [RingFigure] = []
        var ratios: [RingRatio] = []
        var discarded = 0
        let placement = ThreadPlacement.current()
        let probe = try RingSetups.split(queueSize: config.queueSize, payloadBytes: config.payloadBytes)
        let backing = probe.arena.region.backing.rawValue

        struct Round {
            var batch: Int
            var before: Double
            var after: Double
            var split: TwoThreadResult
            var packed: TwoThreadResult
        }
        var rounds: [Round] = []
        var singleThread: [Int: (split: Double, packed: Double)] = [:]
        for batch in config.batches {
            let stSplit = try Self.singleThread(RingSetups.split(queueSize: config.queueSize, payloadBytes: config.payloadBytes),
                                                batch: batch, descriptors: config.singleThreadDescriptors, payload: payload)
            let stPacked = try Self.singleThread(RingSetups.packed(queueSize: config.queueSize, payloadBytes: config.payloadBytes),
                                                 batch: batch, descriptors: config.singleThreadDescriptors, payload: payload)
            singleThread[batch] = (stSplit, stPacked)
            for round in 0...config.rounds {
                let before = try CachelineRoundTrip.measure(samples: 9, perSample: 1000, placement: placement)
                let s = try RingSetups.split(queueSize: config.queueSize, payloadBytes: config.payloadBytes)
                // The halves point into each setup's arena: it stays mapped until its run ends.
                let a = try withExtendedLifetime(s) {
                    try twoThreadPolledRun(driver: s.driver, device: s.device, addresses: s.addresses, payloadBytes: payload,
                                           batch: batch, descriptors: config.twoThreadDescriptors, placement: placement)
                }
                let p = try RingSetups.packed(queueSize: config.queueSize, payloadBytes: config.payloadBytes)
                let b = try withExtendedLifetime(p) {
                    try twoThreadPolledRun(driver: p.driver, device: p.device, addresses: p.addresses, payloadBytes: payload,
                                           batch: batch, descriptors: config.twoThreadDescriptors, placement: placement)
                }
                let after = try CachelineRoundTrip.measure(samples: 9, perSample: 1000, placement: placement)
                guard a.errors.isEmpty, b.errors.isEmpty else { throw RingBenchmarkError.runFailed(a.errors + b.errors) }
                if round == 0 { continue }  // warm-up round
                rounds.append(Round(batch: batch, before: before.medianNanoseconds, after: after.medianNanoseconds, split: a, packed: b))
                log("batch \(batch) round \(round) (rtt \(fixed(before.medianNanoseconds, 0)) → \(fixed(after.medianNanoseconds, 0)) ns): split \(fixed(a.descriptorsPerSecond / 1e6, 1)) M/s, packed \(fixed(b.descriptorsPerSecond / 1e6, 1)) M/s")
            }
        }
        let classes = PlacementClasses.cluster(rounds.flatMap { [$0.before, $0.after] })
        for batch in config.batches {
            var split: [String: [Double]] = [:]
            var packed: [String: [Double]] = [:]
            var ratio: [String: [Double]] = [:]
            var cpuSplit: [Double] = []
            var cpuPacked: [Double] = []
            for r in rounds where r.batch == batch {
                guard let cls = PlacementClasses.classify(before: r.before, after: r.after, in: classes) else {
                    discarded += 1
                    continue
                }
                split[cls.name, default: []].append(r.split.descriptorsPerSecond)
                packed[cls.name, default: []].append(r.packed.descriptorsPerSecond)
                ratio[cls.name, default: []].append(r.packed.descriptorsPerSecond / r.split.descriptorsPerSecond)
                cpuSplit.append(r.split.cpuNanosecondsPerDescriptor)
                cpuPacked.append(r.packed.cpuNanosecondsPerDescriptor)
            }
            figures.append(RingFigure(layout: .split, batch: batch, singleThreadNsPerDescriptor: singleThread[batch]!.split,
                                      twoThreadDescriptorsPerSecond: split, cpuNsPerDescriptor: median(cpuSplit)))
            figures.append(RingFigure(layout: .packed, batch: batch, singleThreadNsPerDescriptor: singleThread[batch]!.packed,
                                      twoThreadDescriptorsPerSecond: packed, cpuNsPerDescriptor: median(cpuPacked)))
            for (where_, r) in ratio { ratios.append(RingRatio(batch: batch, placement: where_, packedOverSplit: r)) }
        }
        return RingBenchmarkReport(backing: backing, figures: figures, ratios: ratios,
                                   discardedRounds: discarded, placementNote: placement.note, placementClasses: classes)
    }
}

public enum RingBenchmarkError: Error, CustomStringConvertible {
    case runFailed([String])
    public var description: String {
        switch self { case let .runFailed(e): return "ring run failed: " + e.joined(separator: "; ") }
    }
}
