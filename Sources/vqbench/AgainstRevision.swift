// `vqbench gate --against REV`, the running half (RevisionGate.swift in VQBenchKit judges):
// resolves REV with git, exports that tree to .build-against/<sha>/src and builds its vqbench
// there (reused when already built for that sha), runs the base's `gate --skip-ratios` and
// this build's Gate.measure for A and B, then C's rounds of `measure-round`, base and this
// build back to back in alternating order (ABBA). Child processes go through swift-subprocess;
// their output goes to log files under .build-against/<sha>/, named when something fails.

import ArgumentParser
import Foundation
import Subprocess
import SystemPackage
import VQBenchKit

enum AgainstError: Error, CustomStringConvertible {
    case notAGitCheckout(directory: String, git: String)
    case unknownRevision(String, git: String)
    case exportFailed(commit: String, status: String, log: String)
    case baseBuildFailed(commit: String, status: String, log: String)
    case baseBinaryMissing(path: String)
    case baseGateWroteNothing(commit: String, status: String, directory: String, log: String)
    case unreadableBaseDocument(path: String, reason: String)
    case roundFailed(binary: String, scenario: String, status: String, log: String, isBase: Bool)

    var description: String {
        switch self {
        case let .notAGitCheckout(directory, git):
            return "\(directory) is not inside a git checkout, so there is no revision to build (git: \(git.trimmed))"
        case let .unknownRevision(rev, git):
            return "'\(rev)' does not name a commit in this repository (git: \(git.trimmed))"
        case let .exportFailed(commit, status, log):
            return "exporting the tree of \(commit) failed (\(status)); log: \(log)"
        case let .baseBuildFailed(commit, status, log):
            return "building vqbench at \(commit) failed (swift build \(status)); log: \(log)"
        case let .baseBinaryMissing(path):
            return "--against-build \(path) is not an executable file"
        case let .baseGateWroteNothing(commit, status, directory, log):
            return "the base build (\(commit)) ran `gate --skip-ratios` (\(status)) but wrote no gate-*.json to \(directory); log: \(log)"
        case let .unreadableBaseDocument(path, reason):
            return "the base build's gate document \(path) could not be read: \(reason)"
        case let .roundFailed(binary, scenario, status, log, isBase):
            return "\(isBase ? "the base build" : "this build") (\(binary)) failed `measure-round \(scenario)` (\(status)); log: \(log)"
        }
    }

    /// 3 when the base could not be built or measured (as documented for `gate --against`), else 1.
    var exitCode: Int32 {
        switch self {
        case .exportFailed, .baseBuildFailed, .baseGateWroteNothing, .unreadableBaseDocument: return 3
        case let .roundFailed(_, _, _, _, isBase): return isBase ? 3 : 1
        case .notAGitCheckout, .unknownRevision, .baseBinaryMissing: return 1
        }
    }
}

extension GateCommand {
    /// `--against REV` (AgainstRevision.swift): parent vs patch, measured here, no baseline file.
    func runAgainst(_ revision: String) throws {
        guard !update else { throw CLIError("--update writes results/baseline.json; it has no meaning with --against") }
        guard againstRounds >= 1 else { throw CLIError("--against-rounds must be at least 1 (got \(againstRounds))") }
        guard againstTolerance > 0 && againstTolerance < 1 else {
            throw CLIError("--against-tolerance is a fraction between 0 and 1 (got \(againstTolerance))")
        }
        var options = RevisionGateOptions()
        if skipSpecialisation { options.gate.specialisationScenarios = [] }
        options.ratioTolerance = againstTolerance
        options.rounds = againstRounds
        let code: Int32
        do {
            let against = AgainstRevision(revision: revision, options: options, prebuiltBase: againstBuild, output: output,
                                          json: json, skipRatios: skipRatios)
            code = try waitFor { try await against.run() }
        } catch let error as AgainstError {
            print("gate --against: \(error)")
            throw ExitCode(error.exitCode)
        }
        if code != 0 { throw ExitCode(code) }
    }
}

/// Runs async `body` to its end from synchronous code. The CLI stays a synchronous
/// ParsableCommand: an async root runs dispatch_main(), under which valgrind 3.19 crashes in
/// gate A's workload runs (SIGSEGV in callgrind). The main thread is not one of the
/// concurrency pool's, so blocking it while the task runs there cannot deadlock.
func waitFor<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let outcome = WaitOutcome<T>()
    let done = DispatchSemaphore(value: 0)
    Task {
        do { outcome.result = .success(try await body()) } catch { outcome.result = .failure(error) }
        done.signal()
    }
    done.wait()
    return try outcome.result!.get()
}

private final class WaitOutcome<T>: @unchecked Sendable {
    // Written by the task before it signals, read after the wait: the semaphore orders them.
    var result: Result<T, any Error>?
}

struct AgainstRevision {
    var revision: String
    var options: RevisionGateOptions
    /// REV's vqbench built elsewhere from REV's tree (skips the build; scripts/gate passes a
    /// clean checkout's own build for HEAD).
    var prebuiltBase: String?
    var output: String
    var json: Bool
    var skipRatios: Bool

    func say(_ line: String) { if !json { print(line) } }

    /// Runs the whole comparison and returns the gate's exit code (0, 2 or 4).
    func run() async throws -> Int32 {
        let started = Date()
        var timings: [(step: String, seconds: Double)] = []
        func lap(_ step: String, since t: Date) { timings.append((step, Date().timeIntervalSince(t))) }

        let repo = try await Git.toplevel()
        let commit = try await Git.commit(naming: revision, in: repo)
        let short = String(commit.prefix(12))
        let dir = repo + "/.build-against/" + short
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        say("gate --against \(revision): base \(short), scratch \(dir)")

        var t = Date()
        let base: String
        if let prebuiltBase {
            guard FileManager.default.isExecutableFile(atPath: prebuiltBase) else { throw AgainstError.baseBinaryMissing(path: prebuiltBase) }
            base = URL(fileURLWithPath: prebuiltBase).standardizedFileURL.path
            say("base: using \(base) as the build of \(short) (--against-build)")
            lap("base build (given)", since: t)
        } else {
            let (binary, reused) = try await buildBase(commit: commit, short: short, repo: repo, dir: dir)
            base = binary
            lap(reused ? "base build (reused)" : "base build", since: t)
        }

        t = Date()
        let baseDoc = try await baseExactCounts(base, short: short, dir: dir)
        lap("base A+B", since: t)

        t = Date()
        say("this build: A and B")
        let newDoc = try Gate.measure(options.gate, ratios: false) { say("  " + $0) }
        lap("new A+B", since: t)

        var ratios: [(id: ScenarioID, evidence: RevisionRatioEvidence)] = []
        if !skipRatios {
            t = Date()
            ratios = try await interleavedRatios(base: base, dir: dir)
            lap("C", since: t)
        }

        let outcome = RevisionGate.judge(RevisionEvidence(baseCommit: short, base: baseDoc, new: newDoc, ratios: ratios),
                                         options: options)
        var doc = outcome.observed
        doc.durationSeconds = Date().timeIntervalSince(started)
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        let path = output + "/gate-against-" + doc.runID + ".json"
        try ResultsWriter.encode(doc).write(to: URL(fileURLWithPath: path))
        let roundsPath = output + "/gate-against-" + doc.runID + "-rounds.json"
        try Self.encodeRounds(ratios).write(to: URL(fileURLWithPath: roundsPath))

        print(try Gate.render(outcome.checks, json: json))
        if !json {
            print("wrote \(path) (rounds: \(roundsPath))")
            print("took " + timings.map { "\($0.step) \(fixed($0.seconds, 0)) s" }.joined(separator: ", ")
                  + "; total \(fixed(Date().timeIntervalSince(started), 0)) s")
        }
        let verdict = [0: "pass", 2: "regression", 4: "improvement beyond tolerance"][outcome.exitCode] ?? "exit \(outcome.exitCode)"
        print("gate --against \(short): \(verdict)")
        return outcome.exitCode
    }

    // MARK: building the base

    /// Exports `commit`'s tree and builds its vqbench in release, unless a build of that very
    /// commit is already there. Returns the binary and whether it was reused.
    func buildBase(commit: String, short: String, repo: String, dir: String) async throws -> (String, Bool) {
        let binary = dir + "/build/release/vqbench"
        let marker = dir + "/built-commit"
        let fm = FileManager.default
        if fm.isExecutableFile(atPath: binary),
           (try? String(contentsOfFile: marker, encoding: .utf8))?.trimmed == commit {
            say("base: reusing the build of \(short) in \(dir)")
            return (binary, true)
        }
        try? fm.removeItem(atPath: marker)
        let src = dir + "/src"
        try? fm.removeItem(atPath: src)
        try fm.createDirectory(atPath: src, withIntermediateDirectories: true)
        let log = dir + "/build.log"
        try Data().write(to: URL(fileURLWithPath: log))

        // `git archive` rather than `git worktree add`: a plain tree, and no worktree
        // registration in the shared repository to clean up afterwards.
        say("base: exporting \(short) to \(src)")
        let tar = dir + "/src.tar"
        var status = try await Child.run(.name("git"), ["archive", "--format=tar", "-o", tar, commit], in: repo, log: log)
        guard status.isSuccess else { throw AgainstError.exportFailed(commit: short, status: "\(status)", log: log) }
        status = try await Child.run(.name("tar"), ["-xf", tar, "-C", src], in: dir, log: log)
        try? fm.removeItem(atPath: tar)
        guard status.isSuccess else { throw AgainstError.exportFailed(commit: short, status: "\(status)", log: log) }
        // The same dependency versions as this checkout (Package.resolved is not committed), so A
        // and B compare this package's code, not a newer dependency.
        if fm.fileExists(atPath: repo + "/Package.resolved") {
            try? fm.copyItem(atPath: repo + "/Package.resolved", toPath: src + "/Package.resolved")
        }

        say("base: swift build -c release --product vqbench (log: \(log); a cold build takes minutes)")
        let t = Date()
        status = try await Child.run(.name("swift"), ["build", "-c", "release", "--product", "vqbench",
                                                      "--scratch-path", dir + "/build"], in: src, log: log)
        guard status.isSuccess, fm.isExecutableFile(atPath: binary) else {
            throw AgainstError.baseBuildFailed(commit: short, status: "\(status)", log: log)
        }
        try (commit + "\n").write(toFile: marker, atomically: true, encoding: .utf8)
        say("base: built in \(fixed(Date().timeIntervalSince(t), 0)) s")
        return (binary, false)
    }

    // MARK: A and B of the base

    /// The base build's own `gate --skip-ratios` document (its exit code is 5 without a
    /// baseline, which is expected: only the document is read).
    func baseExactCounts(_ base: String, short: String, dir: String) async throws -> ResultsDocument {
        let out = dir + "/base-gate-\(getpid())-\(Int(Date().timeIntervalSince1970))"
        try? FileManager.default.removeItem(atPath: out)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let log = dir + "/base-gate.log"
        try Data().write(to: URL(fileURLWithPath: log))
        // The specialisation check is judged on the new build alone (it is absolute), so the
        // base skips it when it knows how.
        let skip = try await Self.gateHasFlag(base, "--skip-specialisation", in: dir, log: log) ? ["--skip-specialisation"] : []
        say("base: A and B (\(base) gate --skip-ratios \(skip.joined()); log: \(log))")
        let status = try await Child.run(.path(FilePath(base)), ["gate", "--skip-ratios", "--output", out, "--baseline", "/nonexistent"] + skip,
                                         in: dir, log: log)
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: out)) ?? [])
            .filter { $0.hasPrefix("gate-") && $0.hasSuffix(".json") }.sorted()
        guard let name = files.last else {
            throw AgainstError.baseGateWroteNothing(commit: short, status: "\(status)", directory: out, log: log)
        }
        let path = out + "/" + name
        var doc: ResultsDocument
        do {
            doc = try ResultsWriter.decode(try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw AgainstError.unreadableBaseDocument(path: path, reason: "\(error)")
        }
        // The base ran inside this checkout's folder, so git told it this checkout's commit.
        doc.tool.gitCommit = short
        doc.tool.dirty = false
        say("base: read \(path)")
        return doc
    }

    // MARK: C, interleaved

    func interleavedRatios(base: String, dir: String) async throws -> [(id: ScenarioID, evidence: RevisionRatioEvidence)] {
        let this = Self.ownExecutable()
        let log = dir + "/measure-round.log"
        try Data().write(to: URL(fileURLWithPath: log))
        let baseHasIt = try await Self.hasMeasureRound(base, in: dir, log: log)
        let probe = ScenarioRunner(plan: MeasurementPlan(), probe: .current, placement: .current(), bareRingRate: 0)
        var result: [(id: ScenarioID, evidence: RevisionRatioEvidence)] = []
        for id in options.gate.ratioScenarios {
            if let why = probe.unavailabilityReason(id) {
                say("C \(id): not run here: \(why)")
                result.append((id, .unavailable(why)))
                continue
            }
            guard baseHasIt else {
                say("C \(id): the base build has no measure-round: C not compared")
                result.append((id, .baseLacksMeasureRound))
                continue
            }
            // One unmeasured run of this build sizes every run of the scenario alike.
            let sizing = try MeasureRound.run(id, descriptors: max(id.batch * 64, 100_000))
            let n = RevisionGate.descriptorsPerRun(descPerSecond: sizing.descPerSecond, seconds: options.secondsPerRun, batch: id.batch)
            var rounds: [RevisionRound] = []
            for r in 0..<options.rounds {
                let baseFirst = RevisionGate.baseRunsFirst(round: r)
                let first = try await measureRound(baseFirst ? base : this, id, descriptors: n, log: log, isBase: baseFirst, dir: dir)
                let second = try await measureRound(baseFirst ? this : base, id, descriptors: n, log: log, isBase: !baseFirst, dir: dir)
                let round = RevisionRound(base: baseFirst ? first : second, new: baseFirst ? second : first, baseFirst: baseFirst)
                rounds.append(round)
                say("C \(id) round \(r + 1)/\(options.rounds) (\(baseFirst ? "base, new" : "new, base")): "
                    + "base \(fixed(round.base.descPerSecond / 1e6, 2)) Mdesc/s, new \(fixed(round.new.descPerSecond / 1e6, 2)) Mdesc/s, "
                    + "new/base \(fixed(round.ratio, 3)), rtt " + round.roundTrips.map { fixed($0, 0) }.joined(separator: "/")
                    + " ns" + (RevisionGate.keeps(round) ? "" : " — discarded: placement moved"))
            }
            result.append((id, .rounds(rounds)))
        }
        return result
    }

    func measureRound(_ binary: String, _ id: ScenarioID, descriptors: Int, log: String, isBase: Bool, dir: String) async throws
        -> MeasureRoundSample {
        let (status, out) = try await Child.capture(.path(FilePath(binary)),
                                                    ["measure-round", id.description, "--descriptors", String(descriptors), "--json"],
                                                    in: dir, log: log)
        guard status.isSuccess, let sample = MeasureRoundSample.parse(out) else {
            throw AgainstError.roundFailed(binary: binary, scenario: id.description, status: "\(status)", log: log, isBase: isBase)
        }
        return sample
    }

    /// Whether `binary` has the (hidden) measure-round subcommand. `measure-round --help` cannot
    /// tell: a binary without it prints its root help and exits 0. ArgumentParser's dump of the
    /// command tree lists hidden subcommands too; if a binary cannot dump it, one short run decides.
    static func hasMeasureRound(_ binary: String, in dir: String, log: String) async throws -> Bool {
        if let tree = try await commandTree(binary, in: dir, log: log) {
            return (tree.command.subcommands ?? []).contains { $0.commandName == "measure-round" }
        }
        let id = GateOptions().ratioScenarios[0]
        let (trial, out) = try await Child.capture(.path(FilePath(binary)),
                                                   ["measure-round", id.description, "--descriptors", "2048", "--json"], in: dir, log: log)
        return trial.isSuccess && MeasureRoundSample.parse(out) != nil
    }

    /// ArgumentParser's dump of `binary`'s command tree (hidden subcommands included), or nil
    /// when it cannot dump one.
    static func commandTree(_ binary: String, in dir: String, log: String) async throws -> CommandTree? {
        let (status, dump) = try await Child.capture(.path(FilePath(binary)), ["--experimental-dump-help"], in: dir, log: log)
        guard status.isSuccess else { return nil }
        return try? JSONDecoder().decode(CommandTree.self, from: Data(dump.utf8))
    }

    /// Whether `binary`'s gate subcommand takes `flag` (a base older than the flag does not).
    static func gateHasFlag(_ binary: String, _ flag: String, in dir: String, log: String) async throws -> Bool {
        guard let gate = try await commandTree(binary, in: dir, log: log)?.command.subcommands?.first(where: { $0.commandName == "gate" })
        else { return false }
        return (gate.arguments ?? []).contains { ($0.names ?? []).contains { "--" + $0.name == flag } }
    }

    struct CommandTree: Decodable {
        struct Command: Decodable {
            var commandName: String
            var subcommands: [Command]?
            var arguments: [Argument]?
        }
        struct Argument: Decodable {
            struct Name: Decodable { var name: String }
            var names: [Name]?
        }
        var command: Command
    }

    static func ownExecutable() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// Every round of C, kept or not, for a person to check the judge.
    static func encodeRounds(_ ratios: [(id: ScenarioID, evidence: RevisionRatioEvidence)]) throws -> Data {
        struct Entry: Encodable {
            var id: String
            var evidence: String
            var rounds: [RevisionRound]
            var kept: [Bool]
        }
        let entries = ratios.map { id, evidence -> Entry in
            switch evidence {
            case let .rounds(rounds): return Entry(id: id.description, evidence: "rounds", rounds: rounds, kept: rounds.map(RevisionGate.keeps))
            case .baseLacksMeasureRound: return Entry(id: id.description, evidence: "base has no measure-round", rounds: [], kept: [])
            case let .unavailable(why): return Entry(id: id.description, evidence: "unavailable: \(why)", rounds: [], kept: [])
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(entries)
    }
}

/// Child processes: output to a log file (appended), or standard output captured and
/// standard error to the log.
enum Child {
    static func openLog(_ path: String) throws -> FileDescriptor {
        try FileDescriptor.open(FilePath(path), .writeOnly, options: [.create, .append],
                                permissions: [.ownerReadWrite, .groupRead, .otherRead])
    }

    static func run(_ executable: Executable, _ arguments: [String], in directory: String, log: String) async throws -> TerminationStatus {
        let fd = try openLog(log)
        let result = try await Subprocess.run(executable, arguments: Arguments(arguments), workingDirectory: FilePath(directory),
                                              output: .fileDescriptor(fd, closeAfterSpawningProcess: true),
                                              error: .combinedWithOutput)
        return result.terminationStatus
    }

    static func capture(_ executable: Executable, _ arguments: [String], in directory: String, log: String) async throws
        -> (TerminationStatus, String) {
        let fd = try openLog(log)
        let result = try await Subprocess.run(executable, arguments: Arguments(arguments), workingDirectory: FilePath(directory),
                                              output: .string(limit: 1 << 20),
                                              error: .fileDescriptor(fd, closeAfterSpawningProcess: true))
        return (result.terminationStatus, result.standardOutput)
    }
}

/// The two questions asked of git.
enum Git {
    static func toplevel() async throws -> String {
        let cwd = FileManager.default.currentDirectoryPath
        let result = try await Subprocess.run(.name("git"), arguments: ["rev-parse", "--show-toplevel"],
                                              output: .string(limit: 1 << 16), error: .string(limit: 1 << 16))
        let path = result.standardOutput.trimmed
        guard result.terminationStatus.isSuccess, !path.isEmpty else {
            throw AgainstError.notAGitCheckout(directory: cwd, git: result.standardError)
        }
        return path
    }

    /// The full sha of the commit `revision` names.
    static func commit(naming revision: String, in repo: String) async throws -> String {
        let result = try await Subprocess.run(.name("git"), arguments: ["rev-parse", "--verify", "--end-of-options", revision + "^{commit}"],
                                              workingDirectory: FilePath(repo),
                                              output: .string(limit: 1 << 16), error: .string(limit: 1 << 16))
        let sha = result.standardOutput.trimmed
        guard result.terminationStatus.isSuccess, sha.count == 40 || sha.count == 64 else {
            throw AgainstError.unknownRevision(revision, git: result.standardError)
        }
        return sha
    }
}

extension String {
    fileprivate var trimmed: String { trimmingCharacters(in: .whitespacesAndNewlines) }
}
