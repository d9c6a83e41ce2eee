// Live migration under traffic: every pair of the matrix (vdpa_sim, mlx5_vnet, ifcvf and
// vp_vdpa, each behind its shadow virtqueue where it cannot suspend or restore) on both
// layouts moves the device with transmit and receive buffers in flight, and every packet is
// consumed (or written) by exactly one device and comes back once, checked; a migration that cannot be done is refused with the
// reason, before the source is given up, and the guest goes on through the source.

import Mediation
import Testing
import Virtqueue
@testable import VQBenchKit

@Suite(.serialized) struct MigrationTests {
    static let packets = 20_000

    static func options(_ from: String, _ to: String, _ layout: RingLayoutKind, kicks: Bool = true) -> MigrationRun.Options {
        var o = MigrationRun.Options(from: from, to: to, layout: layout)
        o.packetsBefore = packets
        o.packetsAfter = packets
        o.inFlight = o.queueSize
        o.kicksLastBurst = kicks
        return o
    }

    static func expectIntact(_ out: MigrationRun.Outcome, _ what: String) {
        #expect(out.errors == [], "\(what)")
        #expect(out.sent >= 2 * packets + out.options.inFlight, "\(what)")
        #expect(out.reclaimed == out.sent, "\(what): every buffer came back to the guest once")
        #expect(Int(out.bySource + out.byDestination) == out.sent, "\(what): each packet consumed by exactly one device")
        #expect(out.lost == 0 && out.duplicated == 0, "\(what)")
        #expect(out.checksumsAgree, "\(what): the devices saw every payload byte the guest wrote")
        // Receive: every buffer filled by exactly one device and back at the guest, each
        // packet's number and bytes checked by the guest (an error above otherwise).
        #expect(out.receivePosted >= 2 * packets + out.options.inFlight, "\(what)")
        #expect(out.receiveReclaimed == out.receivePosted, "\(what)")
        #expect(Int(out.receivedBySource + out.receivedByDestination) == out.receivePosted, "\(what)")
    }

    static var pairs: [(String, String)] {
        MigrationRun.matrixParents.flatMap { a in MigrationRun.matrixParents.map { b in (a, b) } }
    }

    @Test(arguments: RingLayoutKind.allCases)
    func everyPairMigratesWithBuffersInFlightAndLosesNothing(_ layout: RingLayoutKind) throws {
        var carried = 0
        for (a, b) in Self.pairs {
            let from = try MigrationRun.sourceParent(a)
            let to = try MigrationRun.destinationParent(b)
            let out = try MigrationRun.run(Self.options(from, to, layout))
            let what = "\(from) → \(to) \(layout)"
            #expect(out.refusal == nil, "\(what): \(out.refusal ?? "")")
            Self.expectIntact(out, what)
            #expect(out.configCarried, "\(what): the destination has the source's config space")
            #expect(out.byDestination >= UInt64(Self.packets), "\(what): the destination carried the traffic after")
            #expect(out.record.steps.map(\.name) == ["suspend", "save", "check_destination", "release_source", "negotiate", "map", "restore", "resume"])
            #expect(out.downtimeNanoseconds > 0, "\(what)")
            #expect(out.carriedOver >= 0 && out.carriedOver <= out.options.inFlight, "\(what)")
            #expect(out.receiveCarriedOver >= 0 && out.receiveCarriedOver <= out.options.inFlight, "\(what)")
            carried += out.carriedOver + out.receiveCarriedOver
        }
        // Not every source finishes its last burst before the suspend: buffers in flight
        // really moved between devices somewhere in the matrix.
        #expect(carried > 0)
    }

    @Test(arguments: RingLayoutKind.allCases)
    func buffersPublishedWithoutAKickAreNotLost(_ layout: RingLayoutKind) throws {
        // The guest stopped between its index write and its kick: whichever device finds
        // those buffers (the source on a re-check before it slept, or the destination when
        // it starts or takes its first kick), each is consumed once and comes back.
        for (from, to) in [("vdpa_sim", "mlx5_vnet"), ("mlx5_vnet", "vp_vdpa+svq"), ("vp_vdpa+svq", "ifcvf")] {
            let out = try MigrationRun.run(Self.options(from, to, layout, kicks: false))
            let what = "\(from) → \(to) \(layout), last burst not kicked"
            Self.expectIntact(out, what)
            #expect(out.refusal == nil, "\(what): \(out.refusal ?? "")")
            #expect(out.configCarried, "\(what)")
        }
    }

    @Test func aSourceThatCannotSuspendIsRefusedAndTheGuestGoesOnThroughIt() throws {
        let out = try MigrationRun.run(Self.options("vp_vdpa", "vdpa_sim", .split))
        #expect(out.refusal?.contains("vp_vdpa cannot suspend") == true, "\(out.refusal ?? "no refusal")")
        #expect(out.refusal?.contains("vp_vdpa+svq") == true)
        Self.expectIntact(out, "refused")
        #expect(out.byDestination == 0)
        #expect(!out.ok)
    }

    @Test func aDestinationThatTakesOnlyTheInitialStateIsRefusedBeforeTheSourceIsReleased() throws {
        let out = try MigrationRun.run(Self.options("vdpa_sim", "vp_vdpa", .packed))
        #expect(out.refusal?.contains("accepts only a queue's initial state") == true, "\(out.refusal ?? "no refusal")")
        Self.expectIntact(out, "refused")
        #expect(out.byDestination == 0, "the destination never ran")
        #expect(out.record.step("release_source") == nil, "the source was never released")
    }

    @Test func aDestinationWithoutPackedRingsIsRefusedForAPackedGuest() throws {
        let out = try MigrationRun.run(Self.options("vdpa_sim", "eni_vdpa", .packed))
        #expect(out.refusal?.contains("does not offer features") == true, "\(out.refusal ?? "no refusal")")
        Self.expectIntact(out, "refused")
    }

    @Test(arguments: RingLayoutKind.allCases)
    func preCopyHarvestsTheDirtyLogWhileTheGuestReceivesAndTheStopCopiesTheRest(_ layout: RingLayoutKind) throws {
        var o = Self.options("vp_vdpa+svq", "mlx5_vnet", layout)
        o.precopyRounds = 4
        let out = try MigrationRun.run(o)
        Self.expectIntact(out, "pre-copy \(layout)")
        #expect(out.refusal == nil && out.precopyRefusal == nil)
        #expect(out.precopy.count == 4)
        #expect(out.precopy.reduce(0) { $0 + $1.pages } > 0, "the device wrote received packets into guest pages during the rounds")
        #expect(out.record.steps.map(\.name).contains("stop_and_copy"))
        #expect(out.receivePosted > 2 * Self.packets + o.inFlight, "the guest kept receiving during the pre-copy")
    }

    @Test func preCopyFromASourceWithoutADirtyLogIsRefusedByNameAndTheMigrationGoesOn() throws {
        var o = Self.options("vdpa_sim", "ifcvf", .split)
        o.precopyRounds = 2
        let out = try MigrationRun.run(o)
        #expect(out.precopyRefusal?.contains("vdpa_sim keeps no dirty log") == true, "\(out.precopyRefusal ?? "none")")
        #expect(out.precopy.isEmpty)
        Self.expectIntact(out, "no pre-copy")
        #expect(out.ok)
    }
}
