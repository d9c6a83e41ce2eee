// Calibration, measured first in every run in the same process (DESIGN.md "Calibration"):
// the cross-core cache-line round trip, the bare ring ceiling, and each doorbell's wake
// latency. Every scenario is then also reported as a ratio to these.

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
                             placement: ThreadPlacement = .current()) -> (CachelineRoundTrip, [Double]) {
        let rtt = CachelineRoundTrip.measure(placement: placement)
        _ = BareRing.measure(entries: entriesPerRound / 4, placement: placement)  // warm-up
        let samples = (0..<rounds).map { _ in BareRing.measure(entries: entriesPerRound, placement: placement) }
        return (rtt, samples)
    }
}
