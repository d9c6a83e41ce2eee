// Paired comparisons: two figures measured in the same interleaved rounds, in the same vCPU
// placement class, so their ratio means something on any machine (RESULTS-SCHEMA.md
// "comparisons"). Also the repeatability block (`vqbench run --repeat N`) and the gate's
// per-machine ratio baselines.

extension ResultsDocument {
    /// a ÷ b, from the rounds in which both were measured in one placement class.
    public struct Comparison: Codable, Sendable, Equatable {
        public enum Kind: String, Codable, Sendable, CaseIterable {
            /// packed ÷ split at the same settings.
            case layout
            /// a doorbell ÷ polling (no notifications; a mediated device's busy-poll doorbell).
            case doorbell
            /// a mediated device ÷ the same device model on bare rings (`ratio_to_bare`).
            case mediator
            /// vhost binding ÷ virtio binding of the same parent.
            case binding
            /// this build ÷ a base revision (`vqbench gate --against`).
            case revision
            /// a negotiated feature on ÷ off at the same settings (VIRTIO_F_IN_ORDER; VHOST_F_LOG_ALL:
            /// a shadowed parent with dirty logging on ÷ off).
            case feature
        }
        public var a: String
        public var b: String
        public var kind: Kind
        public var ratio: Double
        public var ci95: [Double]?
        /// Rounds that formed the ratio (both in the same placement class).
        public var rounds: Int
        /// The placement class those rounds were in, and its round trip.
        public var placement: String
        public var placementRoundTripNs: Double?
        /// What b is when it is not a scenario of this run (a mediated scenario's reference).
        public var note: String?

        enum CodingKeys: String, CodingKey {
            case a, b, kind, ratio, ci95, rounds, placement, placementRoundTripNs = "placement_rtt_ns", note
        }

        public init(a: String, b: String, kind: Kind, ratio: Double, ci95: [Double]?, rounds: Int, placement: String,
                    placementRoundTripNs: Double?, note: String? = nil) {
            self.a = a
            self.b = b
            self.kind = kind
            self.ratio = ratio
            self.ci95 = ci95
            self.rounds = rounds
            self.placement = placement
            self.placementRoundTripNs = placementRoundTripNs
            self.note = note
        }

        /// "packed/… ÷ split/…": the comparison's identity across runs.
        public var key: String { "\(kind.rawValue): \(a) ÷ \(b)" }
    }

    /// How much each paired ratio moved across N runs of the same suite.
    public struct Repeat: Codable, Sendable, Equatable {
        public struct Spread: Codable, Sendable, Equatable {
            public var comparison: String
            public var kind: Comparison.Kind
            public var runs: Int
            public var median: Double
            public var iqrOverMedian: Double
            public var min: Double
            public var max: Double
            /// The placement classes the runs' ratios came from.
            public var placements: [String]
            enum CodingKeys: String, CodingKey {
                case comparison, kind, runs, median, iqrOverMedian = "iqr_over_median", min, max, placements
            }
            public init(comparison: String, kind: Comparison.Kind, runs: Int, median: Double, iqrOverMedian: Double,
                        min: Double, max: Double, placements: [String]) {
                self.comparison = comparison
                self.kind = kind
                self.runs = runs
                self.median = median
                self.iqrOverMedian = iqrOverMedian
                self.min = min
                self.max = max
                self.placements = placements
            }
        }
        public var runs: Int
        /// The run ids whose comparisons were pooled.
        public var runIDs: [String]
        public var spread: [Spread]
        enum CodingKeys: String, CodingKey { case runs, runIDs = "run_ids", spread }
        public init(runs: Int, runIDs: [String], spread: [Spread]) {
            self.runs = runs
            self.runIDs = runIDs
            self.spread = spread
        }
    }

    /// The machine a ratio baseline belongs to. Paired ratios hold within one CPU model,
    /// CPU count and placement class; they are never judged against another machine's.
    public struct MachineKey: Codable, Sendable, Equatable {
        public var cpuVendor: String
        public var cpuModel: String
        public var logicalCPUs: Int
        public var placement: String
        public var placementRoundTripNs: Double
        enum CodingKeys: String, CodingKey {
            case cpuVendor = "cpu_vendor", cpuModel = "cpu_model", logicalCPUs = "logical_cpus", placement
            case placementRoundTripNs = "placement_rtt_ns"
        }
        public init(cpuVendor: String, cpuModel: String, logicalCPUs: Int, placement: String, placementRoundTripNs: Double) {
            self.cpuVendor = cpuVendor
            self.cpuModel = cpuModel
            self.logicalCPUs = logicalCPUs
            self.placement = placement
            self.placementRoundTripNs = placementRoundTripNs
        }

        /// Same CPU and count, and a placement class whose round trip is within the
        /// same-class tolerance.
        public func matches(_ other: MachineKey) -> Bool {
            cpuVendor == other.cpuVendor && cpuModel == other.cpuModel && logicalCPUs == other.logicalCPUs
                && PlacementClasses.samePlacement(placementRoundTripNs, other.placementRoundTripNs)
        }

        public var description: String {
            "\(cpuModel), \(logicalCPUs) CPUs, placement \(placement)"
        }
    }

    /// Gate C's reference for one machine key: the paired ratios recorded there.
    public struct RatioBaseline: Codable, Sendable, Equatable {
        public var machine: MachineKey
        public var recordedAt: String
        public var gitCommit: String?
        public var comparisons: [Comparison]
        enum CodingKeys: String, CodingKey { case machine, recordedAt = "recorded_at", gitCommit = "git_commit", comparisons }
        public init(machine: MachineKey, recordedAt: String, gitCommit: String?, comparisons: [Comparison]) {
            self.machine = machine
            self.recordedAt = recordedAt
            self.gitCommit = gitCommit
            self.comparisons = comparisons
        }
    }

    /// This machine's key for a comparison measured in `placement` (round trip `rtt`).
    public func machineKey(placement: String, roundTripNs: Double) -> MachineKey {
        MachineKey(cpuVendor: machine.cpuVendor ?? "unknown", cpuModel: machine.cpuModel, logicalCPUs: machine.logicalCPUs,
                   placement: placement, placementRoundTripNs: roundTripNs)
    }
}
