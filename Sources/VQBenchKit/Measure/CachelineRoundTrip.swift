// The cross-core cache-line round trip: two threads bounce one word. This kind of VM moves
// its vCPUs between placements (round trips of ~70 to ~490 ns seen); every throughput
// figure follows, so each measured round records it before and after (PlacementClasses).

import Atomics
import CPlatform
import Doorbell

/// Round trips of one cache line between two pinned threads.
public struct CachelineRoundTrip: Sendable {
    public var medianNanoseconds: Double
    public var p99Nanoseconds: Double

    /// Measures `samples` batches of `perSample` round trips each.
    public static func measure(samples: Int = 21, perSample: Int = 2_000,
                               placement: ThreadPlacement = .current()) throws(DoorbellError) -> CachelineRoundTrip {
        let word = ManagedAtomic<Int>(0)
        let times = Slot([Double]())
        let total = samples * perSample
        let pong = try PinnedThread(cpu: placement.deviceCPU) {
            var expect = 1
            while expect <= total {
                while word.load(ordering: .acquiring) != expect { cplatform_cpu_relax() }
                word.store(-expect, ordering: .releasing)
                expect += 1
            }
        }
        let ping = try PinnedThread(cpu: placement.driverCPU) {
            var out: [Double] = []
            out.reserveCapacity(samples)
            var i = 1
            for _ in 0..<samples {
                let t0 = cplatform_monotonic_ns()
                for _ in 0..<perSample {
                    word.store(i, ordering: .releasing)
                    while word.load(ordering: .acquiring) != -i { cplatform_cpu_relax() }
                    i += 1
                }
                out.append(Double(cplatform_monotonic_ns() - t0) / Double(perSample))
            }
            times.value = out
        }
        ping.join()
        pong.join()
        let sorted = times.value.sorted()
        return CachelineRoundTrip(medianNanoseconds: sorted[sorted.count / 2],
                                  p99Nanoseconds: sorted[min(sorted.count - 1, sorted.count * 99 / 100)])
    }
}
