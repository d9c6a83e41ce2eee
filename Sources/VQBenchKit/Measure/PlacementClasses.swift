// vCPU placement classes, found from a run's own cache-line round trips. This kind of VM
// moves its two vCPUs between placements every few seconds to minutes (round trips of
// ~70, ~100, ~150, ~335 and ~490 ns have been seen), and every throughput figure follows.
// A fixed threshold lumps neighbouring modes together, so the classes are clusters of the
// round trips measured in the run itself; ratios are only formed within one class.

import Foundation

/// One cluster of round-trip times: a placement the vCPUs held during the run.
public struct PlacementClass: Sendable, Codable, Equatable, Hashable {
    /// "rtt-140ns": the cluster's median round trip to two significant digits.
    public var name: String
    /// Median of the round trips in the cluster, nanoseconds.
    public var roundTripNs: Double
    /// Lowest and highest round trip in the cluster.
    public var minNs: Double
    public var maxNs: Double
    /// How many round-trip measurements fell in it.
    public var samples: Int

    enum CodingKeys: String, CodingKey {
        case name, roundTripNs = "rtt_ns", minNs = "min_ns", maxNs = "max_ns", samples
    }

    public init(name: String, roundTripNs: Double, minNs: Double, maxNs: Double, samples: Int) {
        self.name = name
        self.roundTripNs = roundTripNs
        self.minNs = minNs
        self.maxNs = maxNs
        self.samples = samples
    }

    public static func name(roundTripNs: Double) -> String {
        guard roundTripNs.isFinite, roundTripNs >= 1 else { return "rtt-0ns" }
        var scale = 1.0
        while roundTripNs / scale >= 100 { scale *= 10 }
        return "rtt-\(Int((roundTripNs / scale).rounded() * scale))ns"
    }

    /// Whether two classes (of this run or another) are the same placement: their round
    /// trips are within `tolerance` of each other (relative to the smaller).
    public func matches(_ other: PlacementClass, tolerance: Double = PlacementClasses.sameClassTolerance) -> Bool {
        PlacementClasses.samePlacement(roundTripNs, other.roundTripNs, tolerance: tolerance)
    }
}

public enum PlacementClasses {
    /// Neighbouring placement modes seen here differ by ≥ 1.4× (70 → 100 → 150 → 335 → 490
    /// ns); repeated measurements within one placement vary by well under 1.25×. A gap wider
    /// than this between sorted round trips starts a new class.
    public static let gapRatio = 1.25
    /// Two round trips (or classes) are one placement within this relative difference.
    public static let sameClassTolerance = 0.25

    public static func samePlacement(_ a: Double, _ b: Double, tolerance: Double = sameClassTolerance) -> Bool {
        guard a > 0, b > 0 else { return false }
        return max(a, b) / min(a, b) <= 1 + tolerance
    }

    /// Clusters round-trip times (ns) in one dimension: sorted, a new class wherever the
    /// next value is more than `gapRatio` × the previous one. Classes come out fastest first.
    public static func cluster(_ roundTrips: [Double], gapRatio: Double = gapRatio) -> [PlacementClass] {
        let xs = roundTrips.filter { $0.isFinite && $0 > 0 }.sorted()
        guard !xs.isEmpty else { return [] }
        var groups: [[Double]] = [[xs[0]]]
        for x in xs.dropFirst() {
            if x > groups[groups.count - 1].last! * gapRatio { groups.append([x]) } else { groups[groups.count - 1].append(x) }
        }
        var classes = groups.map { g in
            let m = median(g)
            return PlacementClass(name: PlacementClass.name(roundTripNs: m), roundTripNs: m, minNs: g.first!, maxNs: g.last!,
                                  samples: g.count)
        }
        // Two classes whose rounded names collide (possible only for tiny round trips) get
        // their rank appended, so a name always means one class.
        let names = classes.map(\.name)
        for i in classes.indices where names.filter({ $0 == names[i] }).count > 1 {
            classes[i].name += "-\(i + 1)"
        }
        return classes
    }

    /// The class a round trip belongs to: the one whose range holds it, else the nearest
    /// (in ratio) within `sameClassTolerance`; nil when none is near.
    public static func classify(_ roundTripNs: Double, in classes: [PlacementClass]) -> PlacementClass? {
        if let c = classes.first(where: { roundTripNs >= $0.minNs && roundTripNs <= $0.maxNs }) { return c }
        let nearest = classes.min { abs(log($0.roundTripNs / roundTripNs)) < abs(log($1.roundTripNs / roundTripNs)) }
        guard let nearest, samePlacement(nearest.roundTripNs, roundTripNs) else { return nil }
        return nearest
    }

    /// The class of a measurement bracketed by two round trips, or nil when the two fall in
    /// different classes (the placement changed while it ran).
    public static func classify(before: Double, after: Double, in classes: [PlacementClass]) -> PlacementClass? {
        guard let a = classify(before, in: classes), let b = classify(after, in: classes), a == b else { return nil }
        return a
    }
}
