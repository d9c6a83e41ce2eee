// Every parent this package has, in one table: suites, scenario parsing, the management
// devices, lifecycle runs and reports read it, so a new parent is its own file under
// Parents/ plus one line here.

import Virtqueue

/// One parent as everything outside it sees it: what it is, what it implements, and how to
/// make an instance.
public struct ParentDescriptor: Sendable {
    public private(set) var name: String
    public private(set) var strategy: String
    public let supportedOps: Set<ConfigOp>
    public let dmaModel: DMAModel
    public let offeredFeatures: VirtioFeatures
    public let modelParameters: [ModelParameter]
    public let layouts: [RingLayoutKind]
    /// Whether set_vq_state takes any valid position (a migration's destination needs it).
    public let restoresQueueState: Bool
    private var factory: @Sendable (ParentConfiguration) throws(MediationError) -> any VDPAConfigOps

    /// `parent` behind a shadow virtqueue that logs dirty pages from DRIVER_OK on
    /// ("vp_vdpa+svq+log"): what a migration's logging costs, measured against "+svq".
    public init<P: VDPAConfigOps>(dirtyLogging type: ShadowVirtqueue<P>.Type) {
        self.init(type)
        name = ParentRegistry.loggedName(name)
        strategy += ", logging every page written into the driver's memory (VHOST_F_LOG_ALL)"
        factory = { c throws(MediationError) in
            let svq = try ShadowVirtqueue<P>(c)
            try svq.setDirtyLogging(true)
            return svq
        }
    }

    public init<P: VDPAConfigOps>(_ type: P.Type) {
        name = P.parentName
        strategy = P.strategy
        supportedOps = P.supportedOps
        dmaModel = P.dmaModel
        offeredFeatures = P.offeredFeatures
        modelParameters = P.modelParameters
        layouts = P.supportedLayouts
        restoresQueueState = P.restoresQueueState
        factory = { c throws(MediationError) in try P(c) }
    }

    /// A new instance of this parent.
    public func make(_ configuration: ParentConfiguration) throws(MediationError) -> any VDPAConfigOps {
        try factory(configuration)
    }
}

public enum ParentRegistry {
    /// A parent as the registry lists it: itself, behind a shadow virtqueue ("+svq"), and
    /// that with dirty logging on ("+svq+log"). A new parent is one line here.
    static func family<P: VDPAConfigOps>(_ type: P.Type) -> [ParentDescriptor] {
        [ParentDescriptor(type), ParentDescriptor(ShadowVirtqueue<P>.self), ParentDescriptor(dirtyLogging: ShadowVirtqueue<P>.self)]
    }

    static let families: [[ParentDescriptor]] = [
        family(VPVDPA.self),
        family(VDPASim.self),
        family(IFCVF.self),
        family(ENIVDPA.self),
        family(MLX5VNet.self),
        family(OcteonEP.self),
        family(PDSVDPA.self),
        family(SNET.self),
    ]

    /// Every parent, in the order suites and `mgmtdev show` list them.
    public static let all: [ParentDescriptor] = families.map { $0[0] }

    public static var names: [String] { all.map(\.name) }

    /// Each parent behind a shadow virtqueue ("vp_vdpa+svq"), in the same order.
    public static let shadowed: [ParentDescriptor] = families.map { $0[1] }

    /// Each shadowed parent with dirty-page logging on ("vp_vdpa+svq+log"), in the same order.
    public static let logged: [ParentDescriptor] = families.map { $0[2] }

    /// The name of `parent` behind a shadow virtqueue.
    public static func shadowedName(_ parent: String) -> String { parent + "+svq" }
    /// The name of a shadowed parent with dirty logging on.
    public static func loggedName(_ shadowed: String) -> String { shadowed + "+log" }
    /// The mediator `name` is with dirty logging off ("vp_vdpa+svq+log" → "vp_vdpa+svq"), or nil.
    public static func unlogged(_ name: String) -> String? {
        name.hasSuffix("+svq+log") ? String(name.dropLast("+log".count)) : nil
    }

    /// Every mediator a scenario can name: the parents, then each behind a shadow virtqueue,
    /// then each of those with dirty logging on.
    public static var mediatorNames: [String] { names + shadowed.map(\.name) + logged.map(\.name) }

    /// The parent (or shadowed parent) named `name`; an unknown name is an error listing the known ones.
    public static func named(_ name: String) throws(MediationError) -> ParentDescriptor {
        guard let p = all.first(where: { $0.name == name }) ?? shadowed.first(where: { $0.name == name })
                ?? logged.first(where: { $0.name == name }) else {
            throw .unknownParent(name, known: mediatorNames)
        }
        return p
    }
}
