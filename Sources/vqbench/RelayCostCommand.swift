// `vqbench svq-cost`: the shadow virtqueue relay's instructions per descriptor, without and
// with dirty logging, on both layouts (callgrind; exact, the same on every CPU).

import ArgumentParser
import Foundation
import VQBenchKit

struct RelayCostCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "svq-cost",
        abstract: "Instructions per descriptor of the shadow virtqueue's relay loop, with dirty logging off and on (callgrind).")

    @Flag(help: "Print the figures as JSON.") var json = false

    func run() throws {
        #if DEBUG
        throw CLIError("instruction counts are a release build's: build with `swift build -c release`")
        #else
        let costs = try RelayCost.measure()
        if json {
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys]
            print(String(decoding: try e.encode(costs), as: UTF8.self))
            return
        }
        print("relay round (driver posts \(RelayCost.batch) receive buffers, relay, device writes 64 B each, relay, driver reclaims), "
              + "instructions per descriptor, slope between \(RelayCost.smallRounds) and \(RelayCost.largeRounds) rounds:")
        for c in costs {
            print("\(c.layout): \(fixed(c.unlogged, 2)) without the dirty log, \(fixed(c.logged, 2)) with it: logging costs "
                  + "\(fixed(c.loggingPerDesc, 2)) instructions/descriptor; allocations \(c.allocations), retain/release \(c.referenceCounting)")
        }
        #endif
    }
}
