// What the shadow virtqueue's relay costs per descriptor, and what dirty logging adds to it,
// in instructions (callgrind, exact on every CPU): the slope of the relay's single-thread
// loop between two round counts, unlogged and logged, on both layouts. The loop includes a
// driver posting and reclaiming and a device writing each packet, the same in both; the
// difference between the logged and the unlogged loop is the log's cost alone.

import Foundation
import Mediation
import Virtqueue

public struct RelayCost: Sendable, Equatable, Codable {
    public var layout: String
    /// Instructions per descriptor of the whole round (driver, relay, device) without and with the log.
    public var unlogged: Double
    public var logged: Double
    public var loggingPerDesc: Double { logged - unlogged }
    /// Allocations and retain/release calls inside both loops, over the larger run (must be 0 and 0).
    public var allocations: UInt64
    public var referenceCounting: UInt64

    public static let smallRounds = 100
    public static let largeRounds = 300
    public static let batch = 32

    /// Measures both layouts, callgrind runs two at a time.
    public static func measure() throws -> [RelayCost] {
        let counter = try InstructionCounter()
        var jobs: [@Sendable () throws -> CallgrindJobResult] = []
        for layout in RingLayoutKind.allCases {
            for logged in [false, true] {
                for rounds in [smallRounds, largeRounds] {
                    let args = ["workload", "--relay", "--layout", layout.rawValue, "--rounds", String(rounds), "--batch", String(batch)]
                        + (logged ? ["--logged"] : [])
                    let function = ShadowRelayWorkload.functionName(layout, logged: logged)
                    jobs.append { .count(try counter.count(function: function, arguments: args)) }
                }
            }
        }
        let results = try CallgrindJobResult.runAll(jobs, width: max(1, ProcessInfo.processInfo.activeProcessorCount))
        func count(_ i: Int) -> CallgrindCount {
            guard case let .count(c) = results[i] else { return CallgrindCount(instructions: 0, allocations: 0, referenceCounting: 0) }
            return c
        }
        let extra = Double((largeRounds - smallRounds) * batch)
        return RingLayoutKind.allCases.enumerated().map { l, layout in
            let base = 4 * l
            let off = Double(count(base + 1).instructions - count(base).instructions) / extra
            let on = Double(count(base + 3).instructions - count(base + 2).instructions) / extra
            return RelayCost(layout: layout.rawValue, unlogged: off, logged: on,
                             allocations: count(base + 1).allocations + count(base + 3).allocations,
                             referenceCounting: count(base + 1).referenceCounting + count(base + 3).referenceCounting)
        }
    }
}
