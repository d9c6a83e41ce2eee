// Medians and bootstrap intervals over rounds. The resampling uses a fixed seed so the same
// rounds always give the same interval (reports regenerate byte-identically).

/// A median with a bootstrap 95 % interval over `samples`.
public func bootstrapInterval(_ samples: [Double], resamples: Int = 2000, seed: UInt64 = 0x5EED) -> ResultsDocument.Interval {
    let xs = samples.filter { $0.isFinite }
    guard !xs.isEmpty else { return .init(median: .nan, ci95: nil) }
    guard xs.count > 1 else { return .init(median: xs[0], ci95: nil) }
    var state = seed
    func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    var medians: [Double] = []
    medians.reserveCapacity(resamples)
    var resample = [Double](repeating: 0, count: xs.count)
    for _ in 0..<resamples {
        for i in 0..<xs.count { resample[i] = xs[Int(next() % UInt64(xs.count))] }
        medians.append(median(resample))
    }
    medians.sort()
    let lo = medians[Int(Double(resamples) * 0.025)]
    let hi = medians[min(resamples - 1, Int(Double(resamples) * 0.975))]
    return .init(median: median(xs), ci95: [lo, hi])
}

/// The value at quantile `q` (0...1) of sorted `xs`, nearest-rank.
public func quantile(sorted xs: [Double], _ q: Double) -> Double {
    guard !xs.isEmpty else { return .nan }
    let rank = Int((q * Double(xs.count)).rounded(.up)) - 1
    return xs[max(0, min(xs.count - 1, rank))]
}
