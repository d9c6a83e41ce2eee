// Paired ratios from interleaved rounds: every scenario of a run is measured once per
// round, and a comparison a ÷ b takes, round by round, a's rate over b's — only from rounds
// in which both measurements fell in one placement class (each bracketed by cache-line
// round trips). Which pairs are formed follows from the ids: packed vs split, a doorbell vs
// polling, vhost vs virtio binding, a feature on vs off (in-order; a shadowed parent's dirty
// log), and a mediated device vs its bare reference. The last
// is paired finer: inside each round, in short back-to-back pairs whose order alternates,
// each half bracketed by its own round trips, so a placement change that lasts less than a
// round spoils one short pair instead of the round.

import Mediation

/// One short pair inside a mediated scenario's round: the scenario and its bare reference
/// back to back (either may run first), with the cache-line round trip before, between and
/// after the two.
public struct ReferencePair: Sendable, Equatable {
    /// The scenario's descriptors per second in this pair.
    public var rate: Double
    /// The scenario's rate ÷ the reference's.
    public var ratio: Double
    /// Before the first half, between the halves, after the second.
    public var roundTripsNs: [Double]
    public init(rate: Double, ratio: Double, roundTripsNs: [Double]) {
        self.rate = rate
        self.ratio = ratio
        self.roundTripsNs = roundTripsNs
    }

    /// The class all three round trips fall in, or nil when the placement changed during the pair.
    public func placement(in classes: [PlacementClass]) -> PlacementClass? {
        guard let first = roundTripsNs.first, let c = PlacementClasses.classify(first, in: classes) else { return nil }
        return roundTripsNs.allSatisfy({ PlacementClasses.classify($0, in: classes) == c }) ? c : nil
    }
}

/// One timed round of one scenario, as the pairing sees it.
public struct RoundSample: Sendable, Equatable {
    public var round: Int
    /// Descriptors per second.
    public var rate: Double
    /// rate ÷ the bare calibration ring measured right after it.
    public var toCalibration: Double
    /// A mediated scenario's short pairs with its bare reference (empty for a bare scenario).
    public var referencePairs: [ReferencePair]
    public var roundTripBeforeNs: Double
    public var roundTripAfterNs: Double

    public init(round: Int, rate: Double, toCalibration: Double, referencePairs: [ReferencePair] = [],
                roundTripBeforeNs: Double, roundTripAfterNs: Double) {
        self.round = round
        self.rate = rate
        self.toCalibration = toCalibration
        self.referencePairs = referencePairs
        self.roundTripBeforeNs = roundTripBeforeNs
        self.roundTripAfterNs = roundTripAfterNs
    }

    /// Every round trip this round measured.
    public var roundTripsNs: [Double] { [roundTripBeforeNs, roundTripAfterNs] + referencePairs.flatMap(\.roundTripsNs) }

    /// The ratios to the bare reference of the pairs that stayed in one placement class.
    public func referenceRatios(in classes: [PlacementClass]) -> [(PlacementClass, Double)] {
        referencePairs.compactMap { p in p.placement(in: classes).map { ($0, p.ratio) } }
    }

    public var meanRoundTripNs: Double { (roundTripBeforeNs + roundTripAfterNs) / 2 }

    public func placement(in classes: [PlacementClass]) -> PlacementClass? {
        PlacementClasses.classify(before: roundTripBeforeNs, after: roundTripAfterNs, in: classes)
    }
}

public enum PairedComparisons {
    /// What a mediated scenario's reference is, said in its comparison.
    public static let referenceNote =
        "b: the same virtio-net device model and driver loop on bare rings with the same doorbell, in short back-to-back "
        + "pairs with a (which runs first alternates) in every round; ratios only from pairs that stayed in one placement"

    /// The pairs (a, b, kind) this set of scenarios allows.
    public static func pairs(_ ids: [ScenarioID]) -> [(a: ScenarioID, b: ScenarioID, kind: ResultsDocument.Comparison.Kind)] {
        let present = Set(ids)
        var out: [(ScenarioID, ScenarioID, ResultsDocument.Comparison.Kind)] = []
        for id in ids {
            if id.ringLayout == "packed" {
                var split = id
                split.layout = "split" + id.layout.dropFirst("packed".count)
                if present.contains(split) { out.append((id, split, .layout)) }
            }
            if id.inOrder {
                let without = id.with(inOrder: false)
                if present.contains(without) { out.append((id, without, .feature)) }
            }
            let polled = id.mediator == "none" ? "poll" : "busy-poll"
            if id.doorbell != polled {
                var poll = id
                poll.doorbell = polled
                if present.contains(poll) { out.append((id, poll, .doorbell)) }
            }
            if let off = ParentRegistry.unlogged(id.mediator) {
                var unlogged = id
                unlogged.mediator = off
                if present.contains(unlogged) { out.append((id, unlogged, .feature)) }
            }
            if id.binding != "virtio" {
                var virtio = id
                virtio.binding = "virtio"
                if present.contains(virtio) { out.append((id, virtio, .binding)) }
            }
        }
        return out
    }

    /// Every comparison of a run. `samples[i]` are the rounds of `ids[i]`.
    public static func build(ids: [ScenarioID], samples: [[RoundSample]],
                             classes: [PlacementClass]) -> [ResultsDocument.Comparison] {
        let index = Dictionary(ids.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        var out: [ResultsDocument.Comparison] = []
        for (i, id) in ids.enumerated() where id.mediator != "none" {
            if let c = comparison(a: id.description, b: "bare reference", kind: .mediator,
                                  samples[i].flatMap { $0.referenceRatios(in: classes) },
                                  note: referenceNote) {
                out.append(c)
            }
        }
        for (a, b, kind) in pairs(ids) {
            guard let ia = index[a], let ib = index[b] else { continue }
            let bByRound = Dictionary(samples[ib].map { ($0.round, $0) }, uniquingKeysWith: { x, _ in x })
            var rounds: [(PlacementClass, Double)] = []
            for sa in samples[ia] {
                // One class, and round trips close to each other (a class found by chaining can
                // span more than one tolerance from end to end).
                guard let sb = bByRound[sa.round], sb.rate > 0,
                      let ca = sa.placement(in: classes), let cb = sb.placement(in: classes), ca == cb,
                      PlacementClasses.samePlacement(sa.meanRoundTripNs, sb.meanRoundTripNs) else { continue }
                rounds.append((ca, sa.rate / sb.rate))
            }
            if let c = comparison(a: a.description, b: b.description, kind: kind, rounds) { out.append(c) }
        }
        return out
    }

    /// The ratio from the placement class most rounds were in (the faster one on a tie).
    static func comparison(a: String, b: String, kind: ResultsDocument.Comparison.Kind,
                           _ rounds: [(PlacementClass, Double)], note: String? = nil) -> ResultsDocument.Comparison? {
        guard !rounds.isEmpty else { return nil }
        var byClass: [PlacementClass: [Double]] = [:]
        for (c, r) in rounds { byClass[c, default: []].append(r) }
        let (cls, ratios) = byClass.max { x, y in
            (x.value.count, -x.key.roundTripNs) < (y.value.count, -y.key.roundTripNs)
        }!
        let interval = bootstrapInterval(ratios)
        return .init(a: a, b: b, kind: kind, ratio: interval.median, ci95: interval.ci95, rounds: ratios.count,
                     placement: cls.name, placementRoundTripNs: cls.roundTripNs, note: note)
    }

    /// Spread of each comparison over several runs: median, IQR ÷ median, range.
    public static func spread(_ runs: [[ResultsDocument.Comparison]]) -> [ResultsDocument.Repeat.Spread] {
        var byKey: [String: [ResultsDocument.Comparison]] = [:]
        var order: [String] = []
        for run in runs {
            for c in run {
                if byKey[c.key] == nil { order.append(c.key) }
                byKey[c.key, default: []].append(c)
            }
        }
        return order.map { key in
            let cs = byKey[key]!
            let xs = cs.map(\.ratio).sorted()
            let m = median(xs)
            let iqr = quantileInterpolated(sorted: xs, 0.75) - quantileInterpolated(sorted: xs, 0.25)
            return .init(comparison: key, kind: cs[0].kind, runs: xs.count, median: m, iqrOverMedian: m > 0 ? iqr / m : .nan,
                         min: xs.first!, max: xs.last!, placements: cs.map(\.placement))
        }
    }
}

/// Linear-interpolated quantile (type 7, as numpy and R default) of sorted `xs`.
public func quantileInterpolated(sorted xs: [Double], _ q: Double) -> Double {
    guard !xs.isEmpty else { return .nan }
    let h = Double(xs.count - 1) * q
    let lo = Int(h.rounded(.down))
    let hi = min(lo + 1, xs.count - 1)
    return xs[lo] + (h - Double(lo)) * (xs[hi] - xs[lo])
}
