// The engine end to end: scenario ids round-trip, filters choose and refuse, and a real
// short run produces a complete document the schema accepts, with every figure present.

import Foundation
import Testing
@testable import VQBenchKit

struct ScenarioIDTests {
    @Test(arguments: Suite.allCases)
    func everySuiteIdParsesBackToItself(suite: Suite) throws {
        for id in suite.scenarios(memory: "hugepage-2M") {
            #expect(try ScenarioID(parsing: id.description) == id)
        }
    }

    @Test func parsesEveryPart() throws {
        let id = try ScenarioID(parsing: "packed/io_uring-msgring/vdpa_sim/q1024/b8/1500B/thp/qp4")
        #expect(id == ScenarioID(layout: "packed", doorbell: "io_uring-msgring", mediator: "vdpa_sim", queueSize: 1024,
                                 batch: 8, payloadBytes: 1500, memory: "thp", queuePairs: 4))
        #expect(id.binding == "virtio")
        let vhost = try ScenarioID(parsing: "split/busy-poll/vdpa_sim/q256/b32/64B/thp/qp1/vhost")
        #expect(vhost.binding == "vhost" && vhost.mediator == "vdpa_sim")
        #expect(vhost.description == "split/busy-poll/vdpa_sim/q256/b32/64B/thp/qp1/vhost")
        #expect(vhost.with(mediator: "none").description == "split/busy-poll/none/q256/b32/64B/thp/qp1")
    }

    /// An unknown layout, parent or binding is an error naming the part, never a default.
    @Test(arguments: [
        ("splat/poll/none/q256/b32/64B/4K/qp1", "layout 'splat'"),
        ("split/poll/acme/q256/b32/64B/4K/qp1", "mediator 'acme' is not none or a parent: vp_vdpa"),
        ("split/poll/vdpa_sim/q256/b32/64B/4K/qp1/vhost-net", "binding 'vhost-net'"),
    ])
    func unknownNamesAreErrors(_ text: String, _ message: String) {
        #expect(throws: ScenarioError.self) { try ScenarioID(parsing: text) }
        do {
            _ = try ScenarioID(parsing: text)
        } catch {
            #expect(error.description.contains(message), "\(error)")
        }
    }

    @Test func everyMediatorIsInTheQuickSuiteUnderBothBindings() {
        let ids = Suite.quick.scenarios(memory: "thp").filter { $0.mediator != "none" }
        for layout in ["split", "packed"] {
            for mediator in ["vp_vdpa", "vdpa_sim"] {
                #expect(Set(ids.filter { $0.layout == layout && $0.mediator == mediator }.map(\.binding)) == ["virtio", "vhost"])
            }
        }
    }

    @Test(arguments: ["split/poll/none/q256/b32/64B/thp", "split/poll/none/256/b32/64B/thp/qp1",
                      "split/poll/none/q256/b0/64B/thp/qp1", "split//none/q256/b32/64B/thp/qp1",
                      "split/poll/none/q256/b32/64/thp/qp1", "split/poll/vp_vdpa/q256/b32/64B/thp/qp1/vfio",
                      "split/poll/vp_vdpa/q256/b32/64B/thp/qp1/vhost/x", "split+in_ordr/poll/none/q256/b32/64B/thp/qp1",
                      "packed+/poll/none/q256/b32/64B/thp/qp1"])
    func rejectsMalformedIds(text: String) {
        #expect(throws: ScenarioError.self) { try ScenarioID(parsing: text) }
    }

    @Test func aLayoutCarriesInOrderAsAnOption() throws {
        let id = try ScenarioID(parsing: "packed+in_order/poll/none/q256/b32/64B/4K/qp1")
        #expect(id.ringLayout == "packed" && id.inOrder)
        #expect(id.description == "packed+in_order/poll/none/q256/b32/64B/4K/qp1")
        #expect(id.with(inOrder: false).description == "packed/poll/none/q256/b32/64B/4K/qp1")
        let plain = try ScenarioID(parsing: "split/poll/none/q256/b32/64B/4K/qp1")
        #expect(plain.ringLayout == "split" && !plain.inOrder)
        // The standard suite measures IN_ORDER both ways for each layout.
        let ids = Set(Suite.standard.scenarios(memory: "4K"))
        for layout in ["split", "packed"] {
            let on = ScenarioID(layout: layout + "+in_order", doorbell: "poll", memory: "4K")
            #expect(ids.contains(on) && ids.contains(on.with(inOrder: false)))
        }
    }

    @Test func filtersByGlob() throws {
        var options = RunOptions()
        options.filter = "packed/*/none/*"
        let ids = try Engine.scenarios(options, memory: "thp")
        #expect(!ids.isEmpty)
        #expect(ids.allSatisfy { $0.layout == "packed" })
        options.filter = "split/eventfd/*,packed/futex/*"
        #expect(try Engine.scenarios(options, memory: "thp").map(\.doorbell).sorted() == ["eventfd", "futex"])
        options.filter = "nothing/*"
        #expect(throws: ScenarioError.filterMatchesNothing("nothing/*", suite: "quick")) {
            try Engine.scenarios(options, memory: "thp")
        }
    }

    @Test func quickSuiteComparesEveryLayoutAndDoorbellAtOneSetting() {
        let ids = Suite.quick.scenarios(memory: "thp")
        #expect(Set(ids.map(\.layout)) == ["split", "packed"])
        #expect(Set(ids.map(\.doorbell)).isSuperset(of: ["poll", "eventfd", "io_uring-msgring"]))
        #expect(Set(ids.map { "\($0.queueSize)/\($0.payloadBytes)" }) == ["256/64"])
        // Every doorbell at b32; polled rings also at b1 and b8 (the batch curve, packed ÷ split at each).
        #expect(Set(ids.filter { $0.batch != 32 }.map { "\($0.layout)/\($0.doorbell)/\($0.mediator)/b\($0.batch)" })
                == ["split/poll/none/b1", "split/poll/none/b8", "packed/poll/none/b1", "packed/poll/none/b8"])
    }

    @Test func standardSuiteMeasuresEachParentNextToItsBareRing() {
        let ids = Suite.standard.scenarios(memory: "thp")
        for mediator in ["vp_vdpa", "vdpa_sim"] {
            let mediated = ids.filter { $0.mediator == mediator }
            #expect(Set(mediated.map(\.layout)) == ["split", "packed"])
            for id in mediated {
                #expect(ids.contains(id.with(mediator: "none")), "ratio_to_bare needs \(id.with(mediator: "none"))")
                #expect(MediatedRun.unavailability(mediator: mediator, doorbell: id.doorbell) == nil)
            }
        }
        #expect(MediatedRun.unavailability(mediator: "acme", doorbell: "eventfd")?.hasPrefix("no parent named 'acme'") == true)
        #expect(!MediatedRun.modelled("vp_vdpa").isEmpty)
    }
}

@Suite(.serialized)
struct EngineRunTests {
    @Test func aShortRealRunWritesACompleteSchemaValidDocument() throws {
        var options = RunOptions()
        options.filter = "split/poll/*/b32/*,packed/poll/*/b32/*,packed/eventfd/*"
        options.plan.secondsPerScenario = 0.3
        options.plan.rounds = 3
        options.plan.latencyBatches = 50
        var lines: [String] = []
        let doc = try Engine.run(options) { lines.append($0) }
        #expect(doc.scenarios.count == 3)
        #expect(lines.contains { $0.hasPrefix("[3/3]") })
        #expect(lines.contains { $0.hasPrefix("round 3/3") })
        // Paired in the same rounds: packed ÷ split, and eventfd ÷ poll.
        let kinds = (doc.comparisons ?? []).map { "\($0.kind.rawValue) \($0.a.prefix(while: { $0 != "/" })) \($0.b.prefix(while: { $0 != "/" }))" }
        // Which pairs the run forms is fixed by its ids; whether each gets a ratio depends on
        // the vCPUs' placement (a pair needs at least one round with both halves in one
        // class), so a pair may be left out on a VM that moved every round, never added.
        let expected: Set<String> = ["layout packed split", "doorbell packed packed"]
        let formed = PairedComparisons.pairs(doc.scenarios.map { try! ScenarioID(parsing: $0.id) })
        #expect(Set(formed.map { "\($0.kind.rawValue) \($0.a.description.prefix(while: { $0 != "/" })) \($0.b.description.prefix(while: { $0 != "/" }))" }) == expected)
        #expect(Set(kinds).isSubset(of: expected))
        for c in doc.comparisons ?? [] {
            // 3 rounds, and up to as many extra ones for scenarios whose every round saw the
            // vCPUs move (Engine's retry), which a pair can share.
            #expect(c.rounds >= 1 && c.rounds <= 2 * options.plan.rounds && c.ratio > 0, "\(c.a) ÷ \(c.b): \(c.rounds) rounds")
            #expect(doc.calibration.placementClasses?.contains { $0.name == c.placement } == true)
        }
        for s in doc.scenarios {
            #expect(s.status == .ok, "\(s.id): \(s.reason ?? "")")
            let t = try #require(s.throughput)
            #expect(t.descPerSecond.median > 0)
            #expect(t.gbitPerSecond.median > 0)
            let l = try #require(s.latencyNs)
            #expect(l.count == 50)
            #expect(l.p50 > 0 && l.p99 >= l.p50 && l.max >= l.p99)
            #expect((s.cpuNsPerDesc ?? 0) > 0)
            #expect((s.ratioToCalibration ?? 0) > 0)
            #expect(s.repetitions >= 1)
            #expect(s.counters != nil)
        }
        // A notified scenario really notified; a polled one never did.
        let eventfd = try #require(doc.scenarios.first { $0.params.doorbell == "eventfd" })
        #expect((eventfd.counters?.kicksPer1k ?? 0) > 0)
        #expect((eventfd.counters?.syscallsPer1k ?? 0) > 0)
        let poll = try #require(doc.scenarios.first { $0.params.doorbell == "poll" })
        #expect(poll.counters?.syscallsPer1k == 0)
        #expect(doc.calibration.bareRingEntriesPerSecond.median > 0)
        #expect(doc.calibration.cachelineRoundTripNs.p50 > 0)
        #expect((doc.calibration.wakeNs["eventfd"]?.p50 ?? 0) > 1000)
        #expect(doc.machine.logicalCPUs >= 1)

        let data = try ResultsWriter.encode(doc)
        #expect(try ResultsValidator.validate(data: data) == [])
        let back = try ResultsWriter.decode(data)
        #expect(back == doc)
        // Reports regenerate byte-identically from the same JSON.
        #expect(ReportSet.render(back).map(\.1) == ReportSet.render(doc).map(\.1))
    }

    @Test func unavailableScenariosSayWhy() throws {
        var runner = ScenarioRunner(plan: MeasurementPlan(), probe: .current, placement: .current(), bareRingRate: 1e8)
        let missingMemory = runner.measure(try ScenarioID(parsing: "split/poll/none/q256/b32/64B/hugepage-1G/qp1"))
        #expect(missingMemory.status == .unavailable)
        #expect(missingMemory.reason?.contains("hugepage-1G") == true)
        let unknownDoorbell = runner.measure(try ScenarioID(parsing: "split/carrier-pigeon/none/q256/b32/64B/4K/qp1"))
        #expect(unknownDoorbell.status == .unavailable)
        #expect(unknownDoorbell.reason?.contains("carrier-pigeon") == true)
        let bareOnVhost = runner.measure(try ScenarioID(parsing: "split/busy-poll/none/q256/b32/64B/4K/qp1/vhost"))
        #expect(bareOnVhost.status == .unavailable)
        #expect(bareOnVhost.reason?.contains("needs a mediated device") == true)
        let mediatedInOrder = runner.measure(try ScenarioID(parsing: "split+in_order/busy-poll/vp_vdpa/q256/b32/64B/4K/qp1"))
        #expect(mediatedInOrder.status == .unavailable)
        #expect(mediatedInOrder.reason?.contains("in_order is measured on bare rings") == true)
    }
}

/// The CLI's bad-input paths: one message, a non-zero exit, no stack trace.
struct CLIErrorTests {
    static let binary: String? = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for config in ["debug", "release"] {
            let path = root.appendingPathComponent(".build/\(config)/vqbench").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }()

    func run(_ args: [String]) throws -> (status: Int32, output: String) {
        guard let binary = Self.binary else { try Test.cancel("vqbench is not built (swift build --build-tests builds it)") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["SWIFT_BACKTRACE"] = "enable=no"
        p.environment = env
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test(arguments: [
        (["run", "--suite", "enormous"], "unknown suite 'enormous'"),
        (["run", "--filter", "zzz/*"], "matches no scenario"),
        (["list", "--filter", "zzz/*"], "matches no scenario"),
        (["report", "/nonexistent.json"], "cannot read /nonexistent.json"),
        (["compare", "/nonexistent-a.json", "/nonexistent-b.json"], "cannot read"),
        (["memory", "--require", "hugepage-3M"], "unknown backing"),
    ])
    func badInputGivesOneMessageAndANonZeroExit(args: [String], message: String) throws {
        let (status, output) = try run(args)
        #expect(status != 0)
        #expect(output.contains(message), "\(output)")
        #expect(!output.contains("Stack dump") && !output.contains("Fatal error"))
    }

    @Test func aFileThatIsNotAResultsDocumentIsRefused() throws {
        let path = NSTemporaryDirectory() + "not-results-\(getpid()).json"
        try Data("{\"schema_version\": 1}".utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (status, output) = try run(["report", path])
        #expect(status != 0)
        #expect(output.contains("does not match the results schema"), "\(output)")
    }

    @Test func listPrintsTheQuickSuite() throws {
        let (status, output) = try run(["list", "--json"])
        #expect(status == 0)
        let ids = try JSONDecoder().decode([String].self, from: Data(output.utf8))
        #expect(ids.contains { $0.hasPrefix("split/poll/none/q256/b32/64B/") })
    }
}
