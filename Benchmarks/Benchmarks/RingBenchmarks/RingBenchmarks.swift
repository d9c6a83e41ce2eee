// Ring hot loops under package-benchmark: the single-thread post → pop → push used →
// reclaim loop and the two-thread polled loop, split and packed, q256, 64 B payloads,
// batches 1/8/32. Mallocs in the loop must be zero (a threshold, so a regression fails).

import Benchmark
import VQBenchKit
import Virtqueue
import VirtioMemory

let descriptorsPerIteration = 4096

nonisolated(unsafe) let benchmarks: @Sendable () -> Void = {
    let common = Benchmark.Configuration(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .cpuTotal],
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        thresholds: [.mallocCountTotal: .init(absolute: [.p90: 0])]
    )

    for batch in [1, 8, 32] {
        Benchmark("split single-thread b\(batch)", configuration: common) { benchmark in
            var s = try RingSetups.split()
            var counters = LoopCounters()
            try s.addresses.withUnsafeBufferPointer { a in
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    try SingleThreadWorkload.split(&s.driver, &s.device, a, 64, batch, 1, &counters)
                }
                benchmark.stopMeasurement()
            }
            blackHole(counters.checksum)
        }
        Benchmark("packed single-thread b\(batch)", configuration: common) { benchmark in
            var s = try RingSetups.packed()
            var counters = LoopCounters()
            try s.addresses.withUnsafeBufferPointer { a in
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    try SingleThreadWorkload.packed(&s.driver, &s.device, a, 64, batch, 1, &counters)
                }
                benchmark.stopMeasurement()
            }
            blackHole(counters.checksum)
        }
    }

    let twoThread = Benchmark.Configuration(
        metrics: [.wallClock, .throughput, .cpuTotal],
        scalingFactor: .one, maxDuration: .seconds(3), maxIterations: 10)
    for batch in [1, 8, 32] {
        Benchmark("split two-thread polled b\(batch) (\(descriptorsPerIteration * 64) desc/iteration)", configuration: twoThread) { benchmark in
            for _ in benchmark.scaledIterations {
                let s = try RingSetups.split()
                benchmark.startMeasurement()
                let r = try twoThreadPolledRun(driver: s.driver, device: s.device, addresses: s.addresses, payloadBytes: 64,
                                           batch: batch, descriptors: descriptorsPerIteration * 64)
                benchmark.stopMeasurement()
                blackHole(r.descriptors)
            }
        }
        Benchmark("packed two-thread polled b\(batch) (\(descriptorsPerIteration * 64) desc/iteration)", configuration: twoThread) { benchmark in
            for _ in benchmark.scaledIterations {
                let s = try RingSetups.packed()
                benchmark.startMeasurement()
                let r = try twoThreadPolledRun(driver: s.driver, device: s.device, addresses: s.addresses, payloadBytes: 64,
                                           batch: batch, descriptors: descriptorsPerIteration * 64)
                benchmark.stopMeasurement()
                blackHole(r.descriptors)
            }
        }
    }
}
