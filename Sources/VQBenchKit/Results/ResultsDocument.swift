// The results document every run writes (shared RESULTS-SCHEMA.md, docs/results-schema.json):
// tables, plots, `compare` and the CI gate are all derived from it, so names may be added
// but never renamed or removed without bumping `schemaVersion`.

import Foundation

public struct ResultsDocument: Codable, Sendable, Equatable {
    public static let currentSchemaVersion = 1

    public var schemaVersion: Int
    public var tool: Tool
    public var startedAt: String
    public var durationSeconds: Double
    public var suite: String
    public var filter: String?
    public var machine: Machine
    public var calibration: Calibration
    public var scenarios: [ScenarioResult]
    /// Each parent's lifecycle operations, timed over repetitions (`vqbench lifecycle`).
    public var controlPath: [ControlPathOperation]?
    /// Live migrations under traffic, per parent pair and layout (`vqbench migrate --matrix`).
    public var migrations: [Migration]?
    /// Paired ratios: a and b measured in the same interleaved rounds and placement class.
    public var comparisons: [Comparison]?
    /// Spread of each paired ratio across the runs of `vqbench run --repeat N`.
    public var repeatSpread: Repeat?
    public var gate: [GateCheck]?
    /// Only in a gate baseline: gate C's paired ratios, one entry per machine key.
    public var ratioBaselines: [RatioBaseline]?

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", tool, startedAt = "started_at", durationSeconds = "duration_s"
        case suite, filter, machine, calibration, scenarios, controlPath = "control_path", migrations, comparisons
        case repeatSpread = "repeat", gate, ratioBaselines = "ratio_baselines"
    }

    /// One control-path operation of one parent, over its repetitions.
    public struct ControlPathOperation: Sendable, Codable, Equatable {
        public var parent: String
        public var operation: String
        public var count: Int
        public var medianNs: Double
        public var p99Ns: Double
        public var minNs: Double
        public var maxNs: Double
        enum CodingKeys: String, CodingKey {
            case parent, operation, count, medianNs = "median_ns", p99Ns = "p99_ns", minNs = "min_ns", maxNs = "max_ns"
        }
        public init(parent: String, operation: String, count: Int, medianNs: Double, p99Ns: Double, minNs: Double, maxNs: Double) {
            self.parent = parent
            self.operation = operation
            self.count = count
            self.medianNs = medianNs
            self.p99Ns = p99Ns
            self.minNs = minNs
            self.maxNs = maxNs
        }
    }

    /// One source → destination parent pair on one layout, over its repetitions: each a
    /// migration with a queue's worth of buffers in flight at the guest's stop.
    public struct Migration: Sendable, Codable, Equatable {
        public var from: String
        public var to: String
        public var layout: String
        public var repetitions: Int
        public var queueSize: Int
        public var inFlight: Int
        /// The guest's stop → the destination's first completion back at the guest.
        public var downtimeMedianNs: Double
        public var downtimeMaxNs: Double
        /// Median measured time of each step (suspend, save, check_destination,
        /// release_source, negotiate, map, restore, resume).
        public var stepsNs: [String: Double]
        /// Median modelled time of each step that has one (firmware, register flights): † in reports.
        public var modelledNs: [String: Double]
        /// Buffers in flight at the stop that the destination completed (transmit and
        /// receive), over all repetitions.
        public var carriedOver: Int
        /// Packets the guest sent and buffers it posted for receiving, over all repetitions;
        /// lost and duplicated count both directions.
        public var packets: Int
        public var lost: Int
        public var duplicated: Int
        /// Every repetition moved the device, with its config, nothing lost, checksums equal.
        public var ok: Bool
        public var errors: [String]?
        enum CodingKeys: String, CodingKey {
            case from, to, layout, repetitions, queueSize = "queue_size", inFlight = "in_flight"
            case downtimeMedianNs = "downtime_median_ns", downtimeMaxNs = "downtime_max_ns", stepsNs = "steps_ns"
            case modelledNs = "modelled_ns", carriedOver = "carried_over", packets, lost, duplicated, ok, errors
        }
        public init(from: String, to: String, layout: String, repetitions: Int, queueSize: Int, inFlight: Int,
                    downtimeMedianNs: Double, downtimeMaxNs: Double, stepsNs: [String: Double], modelledNs: [String: Double],
                    carriedOver: Int, packets: Int, lost: Int, duplicated: Int, ok: Bool, errors: [String]? = nil) {
            self.from = from
            self.to = to
            self.layout = layout
            self.repetitions = repetitions
            self.queueSize = queueSize
            self.inFlight = inFlight
            self.downtimeMedianNs = downtimeMedianNs
            self.downtimeMaxNs = downtimeMaxNs
            self.stepsNs = stepsNs
            self.modelledNs = modelledNs
            self.carriedOver = carriedOver
            self.packets = packets
            self.lost = lost
            self.duplicated = duplicated
            self.ok = ok
            self.errors = errors
        }
    }

    public init(schemaVersion: Int = ResultsDocument.currentSchemaVersion, tool: Tool, startedAt: String,
                durationSeconds: Double, suite: String, filter: String?, machine: Machine,
                calibration: Calibration, scenarios: [ScenarioResult], controlPath: [ControlPathOperation]? = nil,
                comparisons: [Comparison]? = nil, gate: [GateCheck]? = nil) {
        self.schemaVersion = schemaVersion
        self.tool = tool
        self.startedAt = startedAt
        self.durationSeconds = durationSeconds
        self.suite = suite
        self.filter = filter
        self.machine = machine
        self.calibration = calibration
        self.scenarios = scenarios
        self.controlPath = controlPath
        self.comparisons = comparisons
        self.gate = gate
    }

    public struct Tool: Codable, Sendable, Equatable {
        public var name: String
        public var version: String
        public var gitCommit: String?
        public var dirty: Bool?
        public var toolchain: String
        public var buildConfig: String
        enum CodingKeys: String, CodingKey {
            case name, version, gitCommit = "git_commit", dirty, toolchain, buildConfig = "build_config"
        }
        public init(name: String, version: String, gitCommit: String?, dirty: Bool?, toolchain: String, buildConfig: String) {
            self.name = name
            self.version = version
            self.gitCommit = gitCommit
            self.dirty = dirty
            self.toolchain = toolchain
            self.buildConfig = buildConfig
        }
    }

    public struct Machine: Codable, Sendable, Equatable {
        /// /proc/cpuinfo's vendor_id (GenuineIntel, AuthenticAMD, …).
        public var cpuVendor: String?
        public var cpuModel: String
        public var logicalCPUs: Int
        public var kernel: String
        public var virtualization: String
        public var tscHz: Double
        public var hugepages: Hugepages
        public var ioUring: IOUring
        public var valgrind: String?
        enum CodingKeys: String, CodingKey {
            case cpuVendor = "cpu_vendor", cpuModel = "cpu_model", logicalCPUs = "logical_cpus", kernel, virtualization
            case tscHz = "tsc_hz", hugepages, ioUring = "io_uring", valgrind
        }
        public init(cpuModel: String, logicalCPUs: Int, kernel: String, virtualization: String, tscHz: Double,
                    hugepages: Hugepages, ioUring: IOUring, valgrind: String?, cpuVendor: String? = nil) {
            self.cpuVendor = cpuVendor
            self.cpuModel = cpuModel
            self.logicalCPUs = logicalCPUs
            self.kernel = kernel
            self.virtualization = virtualization
            self.tscHz = tscHz
            self.hugepages = hugepages
            self.ioUring = ioUring
            self.valgrind = valgrind
        }
    }

    public struct Hugepages: Codable, Sendable, Equatable {
        public var total2M: Int
        public var free2M: Int
        public var total1G: Int
        public var thp: String
        enum CodingKeys: String, CodingKey {
            case total2M = "2M_total", free2M = "2M_free", total1G = "1G_total", thp
        }
        public init(total2M: Int, free2M: Int, total1G: Int, thp: String) {
            self.total2M = total2M
            self.free2M = free2M
            self.total1G = total1G
            self.thp = thp
        }
    }

    public struct IOUring: Codable, Sendable, Equatable {
        public var available: Bool
        public var ops: [String]
        public var reason: String?
        public init(available: Bool, ops: [String], reason: String? = nil) {
            self.available = available
            self.ops = ops
            self.reason = reason
        }
    }

    public struct Calibration: Codable, Sendable, Equatable {
        public var cachelineRoundTripNs: Percentiles
        public var bareRingEntriesPerSecond: Interval
        public var wakeNs: [String: Percentiles]
        /// Rounds kept in each vCPU placement class during the run.
        public var placements: [String: Int]?
        /// The placement classes found by clustering the run's own round trips.
        public var placementClasses: [PlacementClass]?
        enum CodingKeys: String, CodingKey {
            case cachelineRoundTripNs = "cacheline_rtt_ns", bareRingEntriesPerSecond = "bare_ring_entries_per_s"
            case wakeNs = "wake_ns", placements, placementClasses = "placement_classes"
        }
        public init(cachelineRoundTripNs: Percentiles, bareRingEntriesPerSecond: Interval,
                    wakeNs: [String: Percentiles], placements: [String: Int]? = nil) {
            self.cachelineRoundTripNs = cachelineRoundTripNs
            self.bareRingEntriesPerSecond = bareRingEntriesPerSecond
            self.wakeNs = wakeNs
            self.placements = placements
        }
    }

    public struct Percentiles: Codable, Sendable, Equatable {
        public var p50: Double
        public var p99: Double
        public init(p50: Double, p99: Double) {
            self.p50 = p50
            self.p99 = p99
        }
    }

    /// A median with its bootstrap 95 % interval (absent when there was one sample).
    public struct Interval: Codable, Sendable, Equatable {
        public var median: Double
        public var ci95: [Double]?
        public init(median: Double, ci95: [Double]? = nil) {
            self.median = median
            self.ci95 = ci95
        }
    }

    public struct GateCheck: Codable, Sendable, Equatable {
        public var check: String
        public var metric: String
        public var baseline: Double?
        public var observed: Double?
        public var tolerance: String
        public var verdict: String
        public init(check: String, metric: String, baseline: Double?, observed: Double?, tolerance: String, verdict: String) {
            self.check = check
            self.metric = metric
            self.baseline = baseline
            self.observed = observed
            self.tolerance = tolerance
            self.verdict = verdict
        }
    }
}

/// One scenario's outcome.
public struct ScenarioResult: Codable, Sendable, Equatable {
    public var id: String
    public var params: Params
    public var status: Status
    public var reason: String?
    public var modelled: [ModelledParameter]
    public var repetitions: Int
    public var durationNs: UInt64
    public var placement: String?
    public var throughput: Throughput?
    public var latencyNs: Latency?
    public var counters: Counters?
    public var cpuNsPerDesc: Double?
    public var ratioToCalibration: Double?
    /// Bootstrap 95 % interval of the per-round ratios (what the CI gate compares).
    public var ratioToCalibrationCI95: [Double]?
    /// Throughput over the bare reference (the same device model and driver loop on bare
    /// rings with the same doorbell), median of the per-round ratios, and their interval.
    public var ratioToBare: Double?
    public var ratioToBareCI95: [Double]?
    public var controlPathNs: [String: Double]?
    public var instructionsPerDesc: Double?
    /// Gate B: generic loop bodies and hot-protocol witnesses that ran (empty: the whole
    /// datapath ran specialised), from callgrind.
    public var genericDatapathFunctions: [String]?
    /// `cpu_ns_per_desc` by thread: the driver's, the device's, and a shadow virtqueue relay's.
    public var cpuNsPerDescByThread: CPUByThread?
    /// What a shadow virtqueue's relay did per descriptor (nil: no relay).
    public var shadowRelay: ShadowRelay?

    public struct CPUByThread: Codable, Sendable, Equatable {
        public var driver: Double
        public var device: Double
        public var relay: Double?
        public init(driver: Double, device: Double, relay: Double?) {
            self.driver = driver
            self.device = device
            self.relay = relay
        }
    }

    public struct ShadowRelay: Codable, Sendable, Equatable {
        /// Buffer addresses translated through the IOVA tree, per descriptor.
        public var translationsPerDesc: Double
        /// Kicks the relay sent the device and interrupts it sent the driver, per 1000 descriptors.
        public var deviceKicksPer1k: Double
        public var driverInterruptsPer1k: Double
        /// Passes that found nothing to do (a yield or a sleep each), and the relay's system calls, per 1000.
        public var idlePassesPer1k: Double
        public var syscallsPer1k: Double
        enum CodingKeys: String, CodingKey {
            case translationsPerDesc = "translations_per_desc", deviceKicksPer1k = "device_kicks_per_1k"
            case driverInterruptsPer1k = "driver_interrupts_per_1k", idlePassesPer1k = "idle_passes_per_1k"
            case syscallsPer1k = "syscalls_per_1k"
        }
        public init(translationsPerDesc: Double, deviceKicksPer1k: Double, driverInterruptsPer1k: Double,
                    idlePassesPer1k: Double, syscallsPer1k: Double) {
            self.translationsPerDesc = translationsPerDesc
            self.deviceKicksPer1k = deviceKicksPer1k
            self.driverInterruptsPer1k = driverInterruptsPer1k
            self.idlePassesPer1k = idlePassesPer1k
            self.syscallsPer1k = syscallsPer1k
        }
    }

    enum CodingKeys: String, CodingKey {
        case id, params, status, reason, modelled, repetitions, durationNs = "duration_ns", placement
        case throughput, latencyNs = "latency_ns", counters, cpuNsPerDesc = "cpu_ns_per_desc"
        case ratioToCalibration = "ratio_to_calibration", ratioToCalibrationCI95 = "ratio_to_calibration_ci95"
        case ratioToBare = "ratio_to_bare", ratioToBareCI95 = "ratio_to_bare_ci95"
        case controlPathNs = "control_path_ns", instructionsPerDesc = "instructions_per_desc"
        case genericDatapathFunctions = "generic_datapath_functions"
        case cpuNsPerDescByThread = "cpu_ns_per_desc_by_thread", shadowRelay = "shadow_relay"
    }

    public init(id: String, params: Params, status: Status, reason: String? = nil, modelled: [ModelledParameter] = [],
                repetitions: Int = 0, durationNs: UInt64 = 0, placement: String? = nil, throughput: Throughput? = nil,
                latencyNs: Latency? = nil, counters: Counters? = nil, cpuNsPerDesc: Double? = nil,
                ratioToCalibration: Double? = nil, ratioToBare: Double? = nil,
                controlPathNs: [String: Double]? = nil, instructionsPerDesc: Double? = nil) {
        self.id = id
        self.params = params
        self.status = status
        self.reason = reason
        self.modelled = modelled
        self.repetitions = repetitions
        self.durationNs = durationNs
        self.placement = placement
        self.throughput = throughput
        self.latencyNs = latencyNs
        self.counters = counters
        self.cpuNsPerDesc = cpuNsPerDesc
        self.ratioToCalibration = ratioToCalibration
        self.ratioToBare = ratioToBare
        self.controlPathNs = controlPathNs
        self.instructionsPerDesc = instructionsPerDesc
    }

    public enum Status: String, Codable, Sendable {
        case ok, skipped, unavailable, failed
    }

    public struct Params: Codable, Sendable, Equatable {
        public var layout: String
        public var doorbell: String
        public var mediator: String
        public var binding: String
        public var queueSize: Int
        public var batch: Int
        public var payloadBytes: Int
        public var memory: String
        public var queuePairs: Int
        enum CodingKeys: String, CodingKey {
            case layout, doorbell, mediator, binding, queueSize = "queue_size", batch
            case payloadBytes = "payload_bytes", memory, queuePairs = "queue_pairs"
        }
        public init(layout: String, doorbell: String, mediator: String, binding: String, queueSize: Int,
                    batch: Int, payloadBytes: Int, memory: String, queuePairs: Int) {
            self.layout = layout
            self.doorbell = doorbell
            self.mediator = mediator
            self.binding = binding
            self.queueSize = queueSize
            self.batch = batch
            self.payloadBytes = payloadBytes
            self.memory = memory
            self.queuePairs = queuePairs
        }
    }

    public struct ModelledParameter: Codable, Sendable, Equatable {
        public var parameter: String
        public var value: Double
        public var source: String
        public init(parameter: String, value: Double, source: String) {
            self.parameter = parameter
            self.value = value
            self.source = source
        }
    }

    public struct Throughput: Codable, Sendable, Equatable {
        public var descPerSecond: ResultsDocument.Interval
        public var packetsPerSecond: ResultsDocument.Interval
        public var gbitPerSecond: ResultsDocument.Interval
        enum CodingKeys: String, CodingKey {
            case descPerSecond = "desc_per_s", packetsPerSecond = "packets_per_s", gbitPerSecond = "gbit_per_s"
        }
        public init(descPerSecond: ResultsDocument.Interval, packetsPerSecond: ResultsDocument.Interval,
                    gbitPerSecond: ResultsDocument.Interval) {
            self.descPerSecond = descPerSecond
            self.packetsPerSecond = packetsPerSecond
            self.gbitPerSecond = gbitPerSecond
        }
    }

    public struct Latency: Codable, Sendable, Equatable {
        public var count: Int
        public var min: Double
        public var mean: Double
        public var p50: Double
        public var p90: Double
        public var p99: Double
        public var p999: Double
        public var max: Double
        public init(count: Int, min: Double, mean: Double, p50: Double, p90: Double, p99: Double, p999: Double, max: Double) {
            self.count = count
            self.min = min
            self.mean = mean
            self.p50 = p50
            self.p90 = p90
            self.p99 = p99
            self.p999 = p999
            self.max = max
        }
    }

    public struct Counters: Codable, Sendable, Equatable {
        public var kicksPer1k: Double
        public var interruptsPer1k: Double
        public var descPerKick: Double?
        public var syscallsPer1k: Double
        public var mallocsInLoop: Int?
        /// swift_retain/release calls per 1000 descriptors in the hot loop (the gate's callgrind count).
        public var retainsPer1k: Double?
        enum CodingKeys: String, CodingKey {
            case kicksPer1k = "kicks_per_1k", interruptsPer1k = "interrupts_per_1k", descPerKick = "desc_per_kick"
            case syscallsPer1k = "syscalls_per_1k", mallocsInLoop = "mallocs_in_loop", retainsPer1k = "retains_per_1k"
        }
        public init(kicksPer1k: Double, interruptsPer1k: Double, descPerKick: Double?, syscallsPer1k: Double, mallocsInLoop: Int?) {
            self.kicksPer1k = kicksPer1k
            self.interruptsPer1k = interruptsPer1k
            self.descPerKick = descPerKick
            self.syscallsPer1k = syscallsPer1k
            self.mallocsInLoop = mallocsInLoop
        }
    }
}
