// The scenario matrix (DESIGN.md): which points each suite measures. `quick` is the
// default (≤ 90 s on 2 cores with calibration), comparing every doorbell and every
// mediator under both bindings at one setting; `standard` and `full` widen the matrix.

import Doorbell
import Mediation
import Virtqueue
import VirtioMemory

public enum Suite: String, CaseIterable, Sendable {
    case quick, standard, full

    /// Doorbell ids a suite measures. "poll" is no notification at all: both sides poll the ring.
    static let quickDoorbells = ["poll", "busy-poll", "eventfd", "io_uring-msgring", "io_uring-msgring-busy", "futex", "hybrid-eventfd"]
    static let allDoorbells = ["poll"] + DoorbellTransport.all.map(\.id)
    /// Seconds the quick suite's scenarios share (calibration, warm-ups and lifecycles take
    /// the rest of its 90 s).
    public static let quickScenarioSeconds: Double = 50

    /// The parents (the registry's, in its order) whose devices run `layout`.
    static func mediators(for layout: RingLayoutKind) -> [String] {
        ParentRegistry.all.filter { $0.layouts.contains(layout) }.map(\.name)
    }

    /// The parents measured behind a shadow virtqueue too: the software reference and the
    /// passthrough device, the two ends of what the relay adds to.
    static let shadowedParents = ["vp_vdpa", "vdpa_sim"]

    /// The shadowed parents (as mediator names) whose devices run `layout`.
    static func shadowedMediators(for layout: RingLayoutKind) -> [String] {
        ParentRegistry.shadowed.filter { d in d.layouts.contains(layout)
            && shadowedParents.contains { ParentRegistry.shadowedName($0) == d.name } }.map(\.name)
    }

    /// The shadowed parents with dirty logging on ("vp_vdpa+svq+log"), as `shadowedMediators`.
    static func loggedMediators(for layout: RingLayoutKind) -> [String] {
        shadowedMediators(for: layout).map(ParentRegistry.loggedName)
    }

    /// The scenarios of this suite on a machine whose best ring memory is `memory`.
    public func scenarios(memory: String) -> [ScenarioID] {
        var ids: [ScenarioID] = []
        switch self {
        case .quick:
            for layout in RingLayoutKind.allCases {
                for doorbell in Self.quickDoorbells {
                    ids.append(ScenarioID(layout: layout.rawValue, doorbell: doorbell, memory: memory))
                }
                // Polled rings at b1 and b8 too: the batch curve, and packed ÷ split at each.
                for batch in [1, 8] {
                    ids.append(ScenarioID(layout: layout.rawValue, doorbell: "poll", batch: batch, memory: memory))
                }
                // Each parent under each binding on a polled device doorbell (a passthrough
                // notify store for vp_vdpa; the worker's flag for vdpa_sim), each with its
                // ratio to the same device model on bare rings, measured round by round.
                // The shadow virtqueue over two of them, the same way.
                for mediator in Self.mediators(for: layout) + Self.shadowedMediators(for: layout) {
                    for binding in ScenarioID.bindings {
                        ids.append(ScenarioID(layout: layout.rawValue, doorbell: "busy-poll", mediator: mediator, memory: memory,
                                              binding: binding))
                    }
                }
                // Dirty logging's cost: the shadowed parents with the log on, ÷ the same with it off.
                for mediator in Self.loggedMediators(for: layout) {
                    ids.append(ScenarioID(layout: layout.rawValue, doorbell: "busy-poll", mediator: mediator, memory: memory))
                }
            }
        case .standard:
            for layout in RingLayoutKind.allCases {
                // Each parent under each binding, polled and with sleeping doorbells.
                for mediator in Self.mediators(for: layout) {
                    for binding in ScenarioID.bindings {
                        for doorbell in ["busy-poll", "eventfd", "hybrid-eventfd"] {
                            ids.append(ScenarioID(layout: layout.rawValue, doorbell: doorbell, mediator: mediator, memory: memory,
                                                  binding: binding))
                        }
                    }
                }
                // The shadowed parents: the relay polls (busy-poll) or sleeps on one eventfd;
                // with dirty logging off and on.
                for mediator in Self.shadowedMediators(for: layout) + Self.loggedMediators(for: layout) {
                    for binding in ScenarioID.bindings {
                        for doorbell in ["busy-poll", "eventfd"] {
                            ids.append(ScenarioID(layout: layout.rawValue, doorbell: doorbell, mediator: mediator, memory: memory,
                                                  binding: binding))
                        }
                    }
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
                // VIRTIO_F_IN_ORDER on (compared with off, the b32 poll point above): the
                // device reports a burst with one used entry; for packed, one descriptor's
                // line written back per burst instead of one per chain.
                for batch in [8, 32] {
                    ids.append(ScenarioID(layout: layout.rawValue + "+in_order", doorbell: "poll", batch: batch, memory: memory))
                }
                // Several queues, polled: one thread pair per queue where the cores allow,
                // else the queues share the threads (the result says so).
                for pairs in [2, 4] {
                    ids.append(ScenarioID(layout: layout.rawValue, doorbell: "poll", memory: memory, queuePairs: pairs))
                }
                if memory != MemoryBacking.smallPages.rawValue {
                    ids.append(ScenarioID(layout: layout.rawValue, doorbell: "poll", memory: MemoryBacking.smallPages.rawValue))
                }
            }
        case .full:
            for layout in RingLayoutKind.allCases {
                // Every parent under each binding with every device doorbell it takes.
                for mediator in Self.mediators(for: layout) {
                    for binding in ScenarioID.bindings {
                        for doorbell in MediatedRun.doorbells {
                            ids.append(ScenarioID(layout: layout.rawValue, doorbell: doorbell, mediator: mediator, memory: memory,
                                                  binding: binding))
                        }
                    }
                }
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
