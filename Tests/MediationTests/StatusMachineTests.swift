// The status and feature state machine, table-driven as the spec's §3.1.1 sequence is a
// table: every legal path, every illegal write from every reachable state.

import Testing
import Virtqueue
@testable import Mediation

/// One serialized root: the datapath and leak tests count this process's fds and use
/// both CPUs, so the suites must not run side by side.
@Suite(.serialized) enum MediationSuites {}

private let offered: VirtioFeatures = [.version1, .eventIndex, .ringPacked]
private let A: DeviceStatus = .acknowledge
private let D: DeviceStatus = .driver
private let F: DeviceStatus = .featuresOK
private let O: DeviceStatus = .driverOK

/// Walks the machine to `status` through the legal sequence.
private func machine(at status: DeviceStatus, features: VirtioFeatures = [.version1]) throws -> StatusMachine {
    var m = StatusMachine(deviceFeatures: offered)
    var s: DeviceStatus = []
    for bit in DeviceStatus.initialisationOrder where status.contains(bit) {
        if bit == .featuresOK { try m.setDriverFeatures(features) }
        s.insert(bit)
        try m.setStatus(s)
    }
    if status.contains(.failed) { try m.setStatus(m.status.union(.failed)) }
    if status.contains(.needsReset) { m.deviceNeedsReset() }
    return m
}

extension MediationSuites {
@Suite struct StatusMachineTests {
    @Test(arguments: [
        [A], [A, D], [A, D, F], [A, D, F, O],           // one bit per write
        [A.union(D)], [A.union(D), F.union(O)],          // several bits per write, in order
    ] as [[DeviceStatus]])
    func acceptsEveryLegalPath(_ writes: [DeviceStatus]) throws {
        var m = StatusMachine(deviceFeatures: offered)
        var s: DeviceStatus = []
        for w in writes {
            s.formUnion(w)
            if s.contains(.featuresOK) && !m.status.contains(.featuresOK) { try m.setDriverFeatures([.version1, .eventIndex]) }
            #expect(try m.setStatus(s) == s)
        }
        #expect(m.status == s)
        try m.setStatus([])
        #expect(m.status == [] && m.driverFeatures == [])
    }

    struct Illegal: Sendable, CustomStringConvertible {
        var from: DeviceStatus
        var write: DeviceStatus
        var error: MediationError
        var description: String { "\(from) ← \(write)" }
    }

    static let illegal: [Illegal] = [
        Illegal(from: [], write: D, error: .statusOutOfOrder(setting: D, current: [], requires: A)),
        Illegal(from: [], write: F, error: .statusOutOfOrder(setting: F, current: [], requires: D)),
        Illegal(from: [], write: O, error: .statusOutOfOrder(setting: O, current: [], requires: F)),
        Illegal(from: A, write: A.union(F), error: .statusOutOfOrder(setting: F, current: A, requires: D)),
        Illegal(from: A, write: A.union(O), error: .statusOutOfOrder(setting: O, current: A, requires: F)),
        Illegal(from: A.union(D), write: [A, D, O], error: .statusOutOfOrder(setting: O, current: [A, D], requires: F)),
        Illegal(from: [A, D], write: A, error: .statusBitCleared(current: [A, D], written: A)),
        Illegal(from: [A, D, F, O], write: [A, D, O], error: .statusBitCleared(current: [A, D, F, O], written: [A, D, O])),
        Illegal(from: [A, D], write: [A, D, .needsReset], error: .driverSetNeedsReset),
        Illegal(from: [A, D, F, O, .needsReset], write: [A, D, F, O, .needsReset, .acknowledge],
                error: .deviceNeedsReset(written: [A, D, F, O, .needsReset])),
        Illegal(from: [A, .failed], write: [A, D, .failed], error: .deviceFailed(written: [A, D, .failed])),
    ]

    @Test(arguments: illegal)
    func refusesEveryIllegalTransition(_ c: Illegal) throws {
        var m = try machine(at: c.from)
        let before = m.status
        #expect(throws: c.error) { try m.setStatus(c.write) }
        #expect(m.status == before, "a refused write leaves the status unchanged")
        try m.setStatus([])
        #expect(m.status == [], "reset works from every state")
    }

    @Test func failedCanBeSetFromAnyLiveState() throws {
        for s in [A, [A, D], [A, D, F], [A, D, F, O]] as [DeviceStatus] {
            var m = try machine(at: s)
            #expect(try m.setStatus(s.union(.failed)).contains(.failed))
        }
    }

    @Test func featureRules() throws {
        var m = StatusMachine(deviceFeatures: offered)
        #expect(throws: MediationError.featuresBeforeDriver(current: [])) { try m.setDriverFeatures([.version1]) }
        try m.setStatus(A)
        #expect(throws: MediationError.featuresBeforeDriver(current: A)) { try m.setDriverFeatures([.version1]) }
        try m.setStatus([A, D])
        #expect(throws: MediationError.featureNotOffered(unoffered: VirtioFeatures.inOrder.rawValue)) {
            try m.setDriverFeatures([.version1, .inOrder])
        }
        try m.setDriverFeatures([.version1])
        try m.setStatus([A, D, F])
        #expect(throws: MediationError.featuresAfterFeaturesOK) { try m.setDriverFeatures([.version1, .eventIndex]) }
    }

    @Test func deviceRefusesFeaturesOKWithoutVersion1AndDriverMustReRead() throws {
        var m = StatusMachine(deviceFeatures: offered)
        try m.setStatus([A, D])
        try m.setDriverFeatures([.eventIndex])
        let reported = try m.setStatus([A, D, F])
        #expect(!reported.contains(.featuresOK), "the device leaves FEATURES_OK clear")
        #expect(throws: MediationError.statusOutOfOrder(setting: O, current: [A, D], requires: F)) { try m.setStatus([A, D, F, O]) }
    }

    @Test func queueSetupOnlyBetweenFeaturesOKAndDriverOK() throws {
        #expect(throws: MediationError.queueSetupBeforeFeaturesOK(queue: 0, op: .setVQNum)) {
            try machine(at: [A, D]).checkQueueSetup(queue: 0, op: .setVQNum)
        }
        try machine(at: [A, D, F]).checkQueueSetup(queue: 0, op: .setVQNum)
        #expect(throws: MediationError.queueSetupAfterDriverOK(queue: 1, op: .setVQAddress)) {
            try machine(at: [A, D, F, O]).checkQueueSetup(queue: 1, op: .setVQAddress)
        }
    }
}
}
