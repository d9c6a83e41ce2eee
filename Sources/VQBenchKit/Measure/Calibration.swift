// Calibration, measured first in every run in the same process (DESIGN.md "Calibration"):
// the cross-core cache-line round trip, the bare ring ceiling, and each doorbell's wake
// latency. Every scenario is then also reported as a ratio to these.

import Doorbell

public struct CalibrationResult: Sendable {
    public var cacheline: CachelineRoundTrip
    public var bareRingSamples: [Double]
    public var wakeNanoseconds: [String: ResultsDocument.Percentiles]

    public var document: ResultsDocument.Calibration {
        ResultsDocument.Calibration(
            cachelineRoundTripNs: .init(p50: cacheline.medianNanoseconds, p99: cacheline.p99Nanoseconds),
            bareRingEntriesPerSecond: bootstrapInterval(bareRingSamples),
            wakeNs: wakeNanoseconds)
    }
}

public enum Calibrate {
    /// Cache-line round trip and the bare ring (median of `rounds` runs).
    public static func rings(rounds: Int = 5, entriesPerRound: Int = 10_000_000,
                             placement: ThreadPlacement = .current()) throws(DoorbellError) -> (CachelineRoundTrip, [Double]) {
        let rtt = try CachelineRoundTrip.measure(placement: placement)
        _ = try BareRing.measure(entries: entriesPerRound / 4, placement: placement)  // warm-up
        var samples: [Double] = []
        for _ in 0..<rounds { samples.append(try BareRing.measure(entries: entriesPerRound, placement: placement)) }
        return (rtt, samples)
    }
}
