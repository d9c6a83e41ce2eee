// What this machine's kernel lets the doorbells use: io_uring set-up (or why it is
// refused: sysctl, seccomp), the io_uring opcodes the transports need, the kernel release.
// Probed once per process; results documents record it as machine.io_uring.

import CUring
import Glibc

/// The doorbell capabilities of this machine. Codable, so a results document carries it
/// as `{"kernel": "6.18.44", "io_uring": {"available": true, "ops": [...]}, ...}`.
public struct DoorbellProbe: Codable, Sendable, Equatable, CustomStringConvertible {
    /// io_uring as this process sees it.
    public struct IoUring: Codable, Sendable, Equatable {
        /// Whether `io_uring_setup` succeeded.
        public var available: Bool
        /// The opcodes the doorbells care about that the kernel supports, by their
        /// `IORING_OP_` names without the prefix (`"MSG_RING"`).
        public var ops: [String]
        /// Why io_uring is unavailable, when it is.
        public var reason: String?

        public init(available: Bool, ops: [String], reason: String? = nil) {
            self.available = available
            self.ops = ops
            self.reason = reason
        }
    }

    /// `uname -r`.
    public var kernel: String
    public var ioUring: IoUring
    /// The process's seccomp mode from /proc/self/status ("disabled", "strict", "filter").
    public var seccomp: String?

    enum CodingKeys: String, CodingKey {
        case kernel
        case ioUring = "io_uring"
        case seccomp
    }

    public init(kernel: String, ioUring: IoUring, seccomp: String? = nil) {
        self.kernel = kernel
        self.ioUring = ioUring
        self.seccomp = seccomp
    }

    /// This process's probe, taken once on first use.
    public static let current: DoorbellProbe = probe()

    /// The opcodes probed: name, value and the release that added it (for reasons).
    /// FUTEX_WAIT/WAKE are written out because liburing 2.3 and Debian's 6.1 UAPI
    /// headers predate them (values from include/uapi/linux/io_uring.h, Linux 6.7).
    static let probedOps: [(name: String, opcode: Int32, since: String)] = [
        ("NOP", Int32(IORING_OP_NOP.rawValue), "5.1"),
        ("READ", Int32(IORING_OP_READ.rawValue), "5.6"),
        ("WRITE", Int32(IORING_OP_WRITE.rawValue), "5.6"),
        ("ASYNC_CANCEL", Int32(IORING_OP_ASYNC_CANCEL.rawValue), "5.5"),
        ("MSG_RING", Int32(IORING_OP_MSG_RING.rawValue), "5.18"),
        ("FUTEX_WAIT", Int32(IoUringOpcode.futexWait), "6.7"),
        ("FUTEX_WAKE", Int32(IoUringOpcode.futexWake), "6.7"),
    ]

    /// Takes the probe: sets up a two-entry ring and asks the kernel which opcodes it has.
    public static func probe() -> DoorbellProbe {
        let kernel = kernelRelease()
        let seccomp = seccompMode()
        var ring = io_uring()
        let rc = io_uring_queue_init(2, &ring, 0)
        guard rc == 0 else {
            return DoorbellProbe(kernel: kernel,
                                 ioUring: IoUring(available: false, ops: [],
                                                  reason: setupRefusal(errno: -rc, seccomp: seccomp)),
                                 seccomp: seccomp)
        }
        defer { io_uring_queue_exit(&ring) }
        guard let probe = io_uring_get_probe_ring(&ring) else {
            return DoorbellProbe(kernel: kernel,
                                 ioUring: IoUring(available: true, ops: [],
                                                  reason: "IORING_REGISTER_PROBE failed; no opcode can be confirmed"),
                                 seccomp: seccomp)
        }
        defer { io_uring_free_probe(probe) }
        let ops = probedOps.filter { io_uring_opcode_supported(probe, $0.opcode) != 0 }.map(\.name)
        return DoorbellProbe(kernel: kernel, ioUring: IoUring(available: true, ops: ops), seccomp: seccomp)
    }

    /// Whether this machine can run `transport`; the error names the missing piece.
    public func check(_ transport: DoorbellTransport) throws(DoorbellError) {
        let needed: [String]
        switch transport {
        case .busyPoll, .eventfd, .futex:
            return
        case let .hybrid(inner):
            do throws(DoorbellError) {
                try check(inner)
            } catch {
                guard case let .transportUnavailable(_, missing, reason) = error else { throw error }
                throw .transportUnavailable(transport: transport, missing: missing, reason: reason)
            }
            return
        case .ioUringEventfd:
            needed = ["READ", "ASYNC_CANCEL"]
        case .ioUringMsgRing, .ioUringMsgRingBusyPoll:
            needed = ["MSG_RING"]
        case .ioUringFutex:
            needed = ["FUTEX_WAIT", "FUTEX_WAKE", "ASYNC_CANCEL"]
        }
        guard ioUring.available else {
            throw .transportUnavailable(transport: transport, missing: "io_uring",
                                        reason: ioUring.reason ?? "io_uring_setup failed")
        }
        for op in needed where !ioUring.ops.contains(op) {
            let since = Self.probedOps.first { $0.name == op }?.since ?? "?"
            throw .transportUnavailable(
                transport: transport, missing: "IORING_OP_\(op)",
                reason: "kernel \(kernel) does not offer IORING_OP_\(op) (added in Linux \(since))")
        }
    }

    /// `nil` when `transport` is available, else the reason a report prints.
    public func unavailability(of transport: DoorbellTransport) -> String? {
        do throws(DoorbellError) {
            try check(transport)
            return nil
        } catch {
            return error.description
        }
    }

    public var description: String {
        var text = "kernel \(kernel); io_uring "
        if ioUring.available {
            text += "available, ops: " + (ioUring.ops.isEmpty ? "none confirmed" : ioUring.ops.joined(separator: ", "))
        } else {
            text += "unavailable: " + (ioUring.reason ?? "unknown reason")
        }
        if let seccomp { text += "; seccomp \(seccomp)" }
        return text
    }

    // MARK: - Reading the machine

    static func kernelRelease() -> String {
        var names = utsname()
        guard uname(&names) == 0 else { return "unknown" }
        return withUnsafeBytes(of: &names.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// "Seccomp:\t2" in /proc/self/status, as a word.
    static func seccompMode() -> String? {
        guard let line = readFirstLine(of: "/proc/self/status", startingWith: "Seccomp:") else { return nil }
        switch line.split(whereSeparator: { $0 == " " || $0 == "\t" }).last {
        case "0": return "disabled"
        case "1": return "strict"
        case "2": return "filter"
        default: return nil
        }
    }

    static func setupRefusal(errno code: Int32, seccomp: String?) -> String {
        let sysctl = readFirstLine(of: "/proc/sys/kernel/io_uring_disabled", startingWith: "")
        var reason = "io_uring_setup failed with \(errnoName(code))"
        switch code {
        case EPERM:
            reason += "; refused by kernel.io_uring_disabled=\(sysctl ?? "?"), a seccomp filter, or an LSM"
        case ENOSYS:
            reason += "; the kernel lacks CONFIG_IO_URING or a seccomp filter hides the system call"
        default:
            break
        }
        if let seccomp, seccomp != "disabled" { reason += " (seccomp mode: \(seccomp))" }
        return reason
    }

    static func readFirstLine(of path: String, startingWith prefix: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 512)
        while fgets(&buffer, Int32(buffer.count), file) != nil {
            let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if line.hasPrefix(prefix) {
                return line.hasSuffix("\n") ? String(line.dropLast()) : line
            }
        }
        return nil
    }
}
