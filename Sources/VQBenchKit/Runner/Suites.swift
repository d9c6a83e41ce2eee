// The scenario matrix (DESIGN.md): which points each suite measures. `quick` is the
// default (≤ 90 s on 2 cores with calibration), comparing every doorbell — and, as their
// parents land, every mediator — at one setting; `standard` and `full` widen the matrix.

import Doorbell
import Virtqueue
import VirtioMemory

public enum Suite: String, CaseIterable, Sendable {
    case quick, standard, full

    /// Doorbell ids a suite measures. "poll" is no notification at all: both sides poll the ring.
    static let quickDoorbells = ["poll", "busy-poll", "eventfd", "io_uring-msgring", "io_uring-msgring-busy", "futex", "hybrid-eventfd"]
    static let allDoorbells = ["poll"] + DoorbellTransport.all.map(\.id)
    static let mediators = ["vp_vdpa", "vdpa_sim"]

    /// The scenarios of this suite on a machine whose best ring memory is `memory`.
    public func scenarios(memory: String) -> [ScenarioID] {
        var ids: [ScenarioID] = []
        switch self {
        case .quick:
            for layout in RingLayoutKind.allCases {
                for doorbell in Self.quickDoorbells {
                    ids.append(ScenarioID(layout: layout.rawValue, doorbell: doorbell, memory: memory))
                }
            }
        case .standard:
            for layout in RingLayoutKind.allCases {
                // Each parent at one setting, on its fastest doorbell (a polled device
                // doorbell: a passthrough notify store for vp_vdpa, the worker's wake for
                // vdpa_sim), next to the bare ring with the same doorbell for ratio_to_bare.
                // They join the quick suite once the bare reference runs through the same
                // device model (issue 5): today the parents' net-device loop and the engine's
                // bare loop differ, so ratio_to_bare is not yet like for like.
                for mediator in Self.mediators {
                    ids.append(ScenarioID(layout: layout.rawValue, doorbell: "busy-poll", mediator: mediator, memory: memory))
                }
                for doorbell in Self.quickDoorbells {
                    for batch in [1, 8, 32] {
                        ids.append(ScenarioID(layout: layout.rawValue, doorbell: doorbell, batch: batch, memory: memory))
                    }
                }
                for payload in [1500, 4096] {
                    ids.append(ScenarioID(layout: layout.rawValue, doorbell: "poll", payloadBytes: payload, memory: memory))
                }
                ids.append(ScenarioID(layout: layout.rawValue, doorbell: "poll", queueSize: 1024, memory: memory))
                if memory != MemoryBacking.smallPages.rawValue {
                    ids.append(ScenarioID(layout: layout.rawValue, doorbell: "poll", memory: MemoryBacking.smallPages.rawValue))
                }
            }
        case .full:
            for layout in RingLayoutKind.allCases {
                for doorbell in Self.allDoorbells {
                    for batch in [1, 4, 8, 16, 32, 64] {
                        for queueSize in [64, 256, 1024] where batch <= queueSize {
                            ids.append(ScenarioID(layout: layout.rawValue, doorbell: doorbell, queueSize: queueSize,
                                                  batch: batch, memory: memory))
                        }
                    }
                }
                for payload in [64, 512, 1500, 4096, 9000] {
                    for backing in Set([memory, MemoryBacking.transparentHuge.rawValue, MemoryBacking.smallPages.rawValue]).sorted() {
                        ids.append(ScenarioID(layout: layout.rawValue, doorbell: "poll", payloadBytes: payload, memory: backing))
                    }
                }
            }
        }
        var seen = Set<ScenarioID>()
        return ids.filter { seen.insert($0).inserted }
    }

    /// The best ring memory this machine can give a queue arena now, by name.
    public static func bestMemory() -> String {
        let inventory = HugepageInventory.current()
        if let pool = inventory.pool(pageSize: 2 << 20), pool.free >= 16 { return MemoryBacking.hugetlb2M.rawValue }
        if inventory.thpMode != "never" && inventory.thpMode != "unavailable" { return MemoryBacking.transparentHuge.rawValue }
        return MemoryBacking.smallPages.rawValue
    }
}
