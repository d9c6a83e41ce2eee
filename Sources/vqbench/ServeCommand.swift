// `vqbench serve --vhost-user PATH`: our vhost-user back end for any front end (QEMU,
// DPDK's virtio-user, a VMM): listens at PATH, serves each front end that connects until it
// closes the connection (one after another), and prints what it was asked and what it
// served in each direction.

import ArgumentParser
import CPlatform
import Mediation
import VhostUser

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the vhost-user back end (a virtio-net device) for any front end.")

    @Option(name: .customLong("vhost-user"), help: "The Unix socket path to listen at.")
    var path: String

    @Option(help: "Front ends to serve, one after another, before exiting.")
    var connections: Int = 1

    @Option(help: "Seconds to wait for a front end to connect.")
    var acceptTimeout: Int = 60

    @Option(help: "Seconds a started message may take to arrive whole (the connection's timeout).")
    var messageTimeout: Int = 30

    @Option(help: "CPU to pin the device thread to.")
    var cpu: Int32?

    @Flag(help: "Print every request as it is handled.")
    var verbose = false

    func run() throws {
        let listener = try VhostUserListener(path: path)
        print("vhost-user back end listening at \(path)")
        for n in 1...max(1, connections) {
            let connection = try listener.accept(milliseconds: acceptTimeout * 1000, timeoutMilliseconds: messageTimeout * 1000)
            let backend = VhostUserNetBackend(options: VhostUserBackendOptions(cpu: cpu))
            let t0 = cplatform_monotonic_ns()
            let error = backend.serve(connection)
            let seconds = Double(cplatform_monotonic_ns() &- t0) / 1e9
            if verbose { for r in backend.handled { print("  \(r)") } }
            let c = backend.counters
            print("front end \(n): \(backend.handled.count) requests in \(String(format: "%.1f", seconds)) s; " +
                  "transmit: \(c.transmitted) chains, \(c.transmitBytes) bytes (\(c.echoedIntact) of our frames sent back intact, \(c.echoedCorrupt) corrupt); " +
                  "receive: \(c.received) buffers filled, \(c.receiveBytes) bytes; \(c.wakeups) kick wake-ups, \(c.interrupts) interrupts")
            if let error { print("front end \(n) closed: \(error)") }
            for e in backend.deviceErrors { print("front end \(n): a ring stopped: \(e)") }
        }
    }
}
