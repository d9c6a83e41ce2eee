// Advisory ratio checks (scripts/gate in CI, where gate --against judges C): a C row against
// the committed ratio baselines reports what it saw and fails nothing; A and B still fail.

import Testing
@testable import VQBenchKit

struct GateAdvisoryTests {
    static let doc = ResultsDocument.reportSample()

    @Test func aRatioRegressionIsReportedNotFailed() {
        let checks: [ResultsDocument.GateCheck] = [
            .init(check: "A split/none/none/q256/b32/64B/4K/qp1", metric: "instructions_per_desc", baseline: 100, observed: 100,
                  tolerance: "±0.5%", verdict: "pass"),
            .init(check: "C layout: packed ÷ split", metric: "ratio", baseline: 1.207, observed: 0.75,
                  tolerance: "±25% (95% CI, 7 rounds, rtt-66ns)", verdict: "regression"),
        ]
        let strict = GateOutcome(observed: Self.doc, checks: [], exitCode: 0).withChecks(checks)
        #expect(strict.exitCode == 2)
        let advisory = GateOutcome(observed: Self.doc, checks: [], exitCode: 0).withChecks(Gate.advisory(checks))
        #expect(advisory.exitCode == 0)
        #expect(advisory.checks[1].verdict == "inconclusive")
        #expect(advisory.checks[1].tolerance.contains("advisory: was regression"))
        #expect(advisory.checks[1].observed == 0.75)
    }

    @Test func exactRowsStillFail() {
        let checks: [ResultsDocument.GateCheck] = [
            .init(check: "A split/none/none/q256/b32/64B/4K/qp1", metric: "instructions_per_desc", baseline: 100, observed: 103,
                  tolerance: "±0.5%", verdict: "regression"),
            .init(check: "B split/suppression-flags/none/q256/b16/64B/4K/qp1", metric: "kicks_per_1k", baseline: 45, observed: 44,
                  tolerance: "exact", verdict: "improvement"),
        ]
        #expect(Gate.advisory(checks) == checks)
        #expect(GateOutcome(observed: Self.doc, checks: [], exitCode: 0).withChecks(Gate.advisory(checks)).exitCode == 2)
    }
}
