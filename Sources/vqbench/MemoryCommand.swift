// `vqbench memory`: what pages back ring memory on this machine, read back from the kernel.

import ArgumentParser
import VirtioMemory

struct MemoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory",
        abstract: "Report the huge page state and the backing a region really gets.")

    @Option(help: "Region size in MiB.")
    var mib: Int = 64

    @Flag(help: "Back the region with a memfd (shareable with a vhost-user peer).")
    var shareable = false

    @Option(help: "Require this backing (hugepage-1G, hugepage-2M, thp, 4K) instead of the best available.")
    var require: String?

    func run() throws {
        let inventory = HugepageInventory.current()
        print("huge page pools:")
        for pool in inventory.pools {
            let mount = pool.mount.map { " (hugetlbfs mount \($0))" } ?? ""
            print("  \(pool.pageSize >> 20) MiB: \(pool.total) reserved, \(pool.free) free\(mount)")
        }
        print("  transparent huge pages: enabled=\(inventory.thpMode) shmem_enabled=\(inventory.thpShmemMode)")

        let policies: [(String, BackingPolicy)]
        if let require {
            guard let backing = MemoryBacking(rawValue: require) else {
                throw ValidationError("unknown backing '\(require)'; one of \(MemoryBacking.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            policies = [("required", .require(backing))]
        } else {
            policies = [("best available", .best), ("without hugetlb", .atMost(.transparentHuge))]
        }
        for (label, policy) in policies {
            do {
                let region = try HugepageRegion(bytes: mib << 20, policy: policy, shareable: shareable)
                print("\(label): \(region.report.summary)")
                let o = region.report.observed
                print("  smaps: KernelPageSize \(o.kernelPageSize >> 10) kB, huge \(o.transparentHugeBytes >> 20) MiB, Rss \(o.residentBytes >> 20) MiB")
            } catch {
                print("\(label): \(error)")
                throw ExitCode(3)
            }
        }
    }
}
