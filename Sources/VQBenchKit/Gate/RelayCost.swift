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

    /// Measures both layouts: gate A's relay loops, callgrind runs as many at a time as there are CPUs.
    public static func measure() throws -> [RelayCost] {
        let counter = try InstructionCounter()
        let loops = Gate.countedLoops(GateOptions()).filter { $0.id.mediator.hasPrefix("svq-relay") }
        let results = try CallgrindJobResult.runAll(loops.flatMap { $0.jobs(counter) },
                                                    width: max(1, ProcessInfo.processInfo.activeProcessorCount))
        func counts(_ i: Int) -> (CallgrindCount, CallgrindCount)? {
            guard case let .count(small) = results[2 * i], case let .count(large) = results[2 * i + 1] else { return nil }
            return (small, large)
        }
        var out: [RelayCost] = []
        for layout in RingLayoutKind.allCases {
            guard let off = loops.firstIndex(where: { $0.id.layout == layout.rawValue && $0.id.mediator == "svq-relay" }),
                  let on = loops.firstIndex(where: { $0.id.layout == layout.rawValue && $0.id.mediator == "svq-relay+log" }),
                  let a = counts(off), let b = counts(on) else { continue }
            out.append(RelayCost(layout: layout.rawValue, unlogged: loops[off].perDescriptor(small: a.0, large: a.1),
                                 logged: loops[on].perDescriptor(small: b.0, large: b.1),
                                 allocations: a.1.allocations + b.1.allocations,
                                 referenceCounting: a.1.referenceCounting + b.1.referenceCounting))
        }
        return out
    }
}
