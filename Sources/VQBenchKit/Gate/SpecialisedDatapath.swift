// Gate B's check that the datapath runs specialised: callgrind records every function a run
// of `vqbench measure-round` executed, and none of them may be the generic body of a
// driver or device loop, or a protocol witness of the ring halves or the doorbells — the
// signs that a loop is being run through witness tables instead of code compiled for its
// concrete layout, memory and doorbell. A missing specialisation once cost a mediated
// scenario a third of its throughput without failing anything; this makes it exact.

import Foundation

public enum SpecialisedDatapath {
    /// Demangled-name prefixes of generic loop bodies (a specialised copy is demangled as
    /// "generic specialization <…> of …" and never matches).
    static let genericLoops = [
        "Mediation.DriverQueue.transmit", "Mediation.DriverQueue.receive", "Mediation.DriverQueue.awaitUsed",
        "Mediation.DriverQueue.kickIfNeeded", "Mediation.runDriverLoop", "Mediation.runDeviceLoop", "Mediation.runNetDevice",
        "VQBenchKit.runDatapath", "VQBenchKit.runMultiQueuePolled",
    ]
    /// Protocol requirements the datapath calls per burst or per notification.
    static let hotProtocols = [
        "Virtqueue.VirtqueueDriverHalf.", "Virtqueue.VirtqueueDeviceHalf.",
        "Doorbell.DoorbellNotifier.", "Doorbell.DoorbellWaiter.",
    ]

    /// Whether the demangled `name` is a generic loop body (or a closure inside one) or a
    /// witness of a hot protocol.
    public static func isGenericDatapath(_ name: String) -> Bool {
        if name.contains("specialization <") { return false }
        if name.hasPrefix("protocol witness for ") {
            let rest = name.dropFirst("protocol witness for ".count)
            return hotProtocols.contains { rest.hasPrefix($0) }
        }
        let body = name.range(of: " in ").map { String(name[$0.upperBound...]) }
        return genericLoops.contains { name.hasPrefix($0) || (body?.hasPrefix($0) ?? false) }
    }

    /// The offending functions among the (mangled) names a run executed, demangled and sorted.
    public static func offenders(_ mangled: Set<String>) -> [String] {
        mangled.compactMap { m in
            let d = demangle(m)
            return isGenericDatapath(d) ? d : nil
        }.sorted()
    }

    /// The Swift runtime's demangler (a plain name comes back as it is).
    public static func demangle(_ mangled: String) -> String {
        guard mangled.hasPrefix("$s") || mangled.hasPrefix("_$s") else { return mangled }
        return mangled.withCString { p in
            guard let out = swiftDemangle(p, strlen(p), nil, nil, 0) else { return mangled }
            defer { free(out) }
            return String(cString: out)
        }
    }
}

@_silgen_name("swift_demangle")
private func swiftDemangle(_ mangledName: UnsafePointer<CChar>?, _ mangledNameLength: Int,
                           _ outputBuffer: UnsafeMutablePointer<CChar>?, _ outputBufferSize: UnsafeMutablePointer<Int>?,
                           _ flags: UInt32) -> UnsafeMutablePointer<CChar>?
