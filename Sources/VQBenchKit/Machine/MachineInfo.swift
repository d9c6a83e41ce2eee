// What machine a run happened on, read from the kernel and the CPU: the `machine` block
// of the results document. Figures from different machines are never compared directly.

import CPlatform
import Foundation
import VirtioMemory

public enum MachineInfo {
    /// Collects everything but io_uring (the Doorbell probe fills that).
    public static func collect(ioUring: ResultsDocument.IOUring) -> ResultsDocument.Machine {
        let inventory = HugepageInventory.current()
        return ResultsDocument.Machine(
            cpuModel: cpuModel(), logicalCPUs: Int(cplatform_allowed_cpu_count()), kernel: kernelRelease(),
            virtualization: virtualization(), tscHz: cplatform_measure_tsc_hz(20_000_000),
            hugepages: .init(total2M: inventory.pool(pageSize: 2 << 20)?.total ?? 0,
                             free2M: inventory.pool(pageSize: 2 << 20)?.free ?? 0,
                             total1G: inventory.pool(pageSize: 1 << 30)?.total ?? 0,
                             thp: inventory.thpMode),
            ioUring: ioUring, valgrind: valgrindVersion(), cpuVendor: cpuinfo("vendor_id"))
    }

    public static func cpuModel() -> String { cpuinfo("model name") }

    /// The first value of `field` in /proc/cpuinfo, or "unknown".
    static func cpuinfo(_ field: String) -> String {
        guard let text = SysFS.read("/proc/cpuinfo") else { return "unknown" }
        for line in text.split(separator: "\n") where line.hasPrefix(field) {
            if let colon = line.firstIndex(of: ":") { return line[line.index(after: colon)...].trimmingWhitespace() }
        }
        return "unknown"
    }

    public static func kernelRelease() -> String {
        var u = utsname()
        uname(&u)
        return withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// The hypervisor by its CPUID vendor, refined by what the guest sees (Firecracker has
    /// no DMI tables and a KVM vendor string).
    public static func virtualization() -> String {
        var buffer = [CChar](repeating: 0, count: 16)
        guard cplatform_hypervisor_vendor(&buffer) == 0 else { return "none" }
        let vendor = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        switch vendor {
        case "KVMKVMKVM":
            let hasDMI = FileManager.default.fileExists(atPath: "/sys/class/dmi/id/product_name")
            return hasDMI ? "kvm" : "firecracker"
        case "Microsoft Hv": return "hyperv"
        case "VMwareVMware": return "vmware"
        case "XenVMMXenVMM": return "xen"
        case "TCGTCGTCGTCG": return "qemu-tcg"
        default: return vendor.isEmpty ? "unknown" : vendor
        }
    }

    /// `valgrind --version`, or nil when valgrind is not installed.
    public static func valgrindVersion() -> String? {
        guard let out = run("/usr/bin/env", ["valgrind", "--version"]) else { return nil }
        let v = out.trimmingWhitespace()
        return v.hasPrefix("valgrind-") ? String(v.dropFirst("valgrind-".count)) : (v.isEmpty ? nil : v)
    }

    /// The git commit and dirty flag of the working tree the binary runs from, if any.
    public static func gitState() -> (commit: String?, dirty: Bool?) {
        guard let commit = run("/usr/bin/env", ["git", "rev-parse", "--short=12", "HEAD"])?.trimmingWhitespace(),
              !commit.isEmpty else { return (nil, nil) }
        let status = run("/usr/bin/env", ["git", "status", "--porcelain", "--untracked-files=no"]) ?? ""
        return (commit, !status.trimmingWhitespace().isEmpty)
    }

    public static func toolchain() -> String {
        #if compiler(>=6.3)
        return "Swift 6.3"
        #elseif compiler(>=6.2)
        return "Swift 6.2"
        #else
        return "Swift 6"
        #endif
    }

    static func run(_ path: String, _ args: [String]) -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self)
    }
}
