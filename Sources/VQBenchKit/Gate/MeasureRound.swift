// One throughput run of one scenario, with the cache-line round trip just before and after:
// what `vqbench measure-round` prints, so `vqbench gate --against` can run a base build and
// this build round by round on the same CPUs (RevisionGate.swift judges the rounds).

import Doorbell
import Foundation

/// One run of one binary in one round, as `vqbench measure-round --json` prints it (one line).
public struct MeasureRoundSample: Codable, Sendable, Equatable {
    public var id: String
    public var descriptors: Int
    public var descPerSecond: Double
    /// Cache-line round trip measured just before the run, nanoseconds (median of 5 × 500).
    public var rttBeforeNs: Double
    /// And just after it.
    public var rttAfterNs: Double

    enum CodingKeys: String, CodingKey {
        case id, descriptors, descPerSecond = "desc_per_s", rttBeforeNs = "rtt_before_ns", rttAfterNs = "rtt_after_ns"
    }

    public init(id: String, descriptors: Int, descPerSecond: Double, rttBeforeNs: Double, rttAfterNs: Double) {
        self.id = id
        self.descriptors = descriptors
        self.descPerSecond = descPerSecond
        self.rttBeforeNs = rttBeforeNs
        self.rttAfterNs = rttAfterNs
    }

    /// The JSON line (keys sorted, no spaces).
    public func jsonLine() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// Reads the last line of `output` that decodes as a sample (a binary may log before it).
    public static func parse(_ output: String) -> MeasureRoundSample? {
        for line in output.split(separator: "\n").reversed() where line.hasPrefix("{") {
            if let sample = try? JSONDecoder().decode(MeasureRoundSample.self, from: Data(line.utf8)) { return sample }
        }
        return nil
    }
}

public enum MeasureRoundError: Error, CustomStringConvertible {
    case unavailable(scenario: String, reason: String)
    case descriptorCount(Int)
    case noReference(scenario: String)

    public var description: String {
        switch self {
        case let .unavailable(scenario, reason): return "\(scenario) cannot run on this machine: \(reason)"
        case let .descriptorCount(n): return "--descriptors must be at least 1 (got \(n))"
        case let .noReference(scenario): return "\(scenario) has no bare reference: only a mediated scenario (a parent) has one"
        }
    }
}

extension ScenarioRunner {
    /// One throughput run of `id` with fresh ring halves (``run(_:descriptors:mode:)``, public
    /// for `vqbench measure-round`).
    public func throughputRun(_ id: ScenarioID, descriptors: Int, reference: Bool = false) throws -> DatapathOutcome {
        guard reference else { return try run(id, descriptors: descriptors, mode: .throughput) }
        guard id.mediator != "none" else { throw MeasureRoundError.noReference(scenario: id.description) }
        return try referenceRun(id, descriptors: descriptors)
    }

    /// Why `id` cannot run on this machine, or nil (``unavailability(_:)``, public for the same).
    public func unavailabilityReason(_ id: ScenarioID) -> String? {
        unavailability(id)
    }
}

public enum MeasureRound {
    /// Round-trip samples before and after the run: short, so a round stays a fraction of a
    /// second, long enough for a median that tells the placements apart.
    public static let roundTripSamples = 5
    public static let roundTripsPerSample = 500

    /// Measures one throughput run of `id` moving `descriptors` descriptors. `roundTrip`
    /// false leaves the round trips out (reported as 0): the specialisation check runs this
    /// under callgrind, where 5,000 cross-thread round trips take ~20 s and say nothing.
    public static func run(_ id: ScenarioID, descriptors: Int, reference: Bool = false, roundTrip: Bool = true,
                           probe: DoorbellProbe = .current, placement: ThreadPlacement = .current()) throws -> MeasureRoundSample {
        guard descriptors >= 1 else { throw MeasureRoundError.descriptorCount(descriptors) }
        // The bare-ring rate only sizes the engine's reference runs, which a single run has none of.
        let runner = ScenarioRunner(plan: MeasurementPlan(), probe: probe, placement: placement, bareRingRate: 0)
        if let why = runner.unavailabilityReason(id) {
            throw MeasureRoundError.unavailable(scenario: id.description, reason: why)
        }
        func rtt() throws -> Double {
            guard roundTrip else { return 0 }
            return try CachelineRoundTrip.measure(samples: roundTripSamples, perSample: roundTripsPerSample, placement: placement)
                .medianNanoseconds
        }
        let before = try rtt()
        let outcome = try runner.throughputRun(id, descriptors: descriptors, reference: reference)
        let after = try rtt()
        return MeasureRoundSample(id: id.description, descriptors: outcome.descriptors, descPerSecond: outcome.descriptorsPerSecond,
                                  rttBeforeNs: before, rttAfterNs: after)
    }
}
