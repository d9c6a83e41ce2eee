// Gate A's instrument: valgrind's callgrind counting the instructions of one fixed
// single-threaded loop (--toggle-collect on its unmangled name), on a `strip --strip-debug`
// copy of this very binary (valgrind 3.19 cannot read Swift's DWARF), with address space
// randomisation off and a fixed environment. The same binary and inputs give the same
// count to the instruction. The same run also counts calls to the allocator and to
// swift_retain/release inside the loop.

import Foundation

public struct CallgrindCount: Sendable, Equatable {
    /// Instructions executed inside the toggled function (inclusive of its callees).
    public var instructions: UInt64
    /// Calls to malloc/calloc/realloc/posix_memalign/swift_allocObject/swift_slowAlloc inside it.
    public var allocations: UInt64
    /// Calls to swift_retain/swift_release (and their unknown-object variants) inside it.
    public var referenceCounting: UInt64
}

public enum GateError: Error, CustomStringConvertible {
    case toolMissing(String, remedy: String)
    case toolFailed(String, output: String)
    case unreadableBaseline(String)

    public var description: String {
        switch self {
        case let .toolMissing(tool, remedy): return "\(tool) is not available: \(remedy)"
        case let .toolFailed(what, output): return "\(what) failed: \(output.suffix(600))"
        case let .unreadableBaseline(why): return "baseline unreadable: \(why)"
        }
    }
}

public final class InstructionCounter: Sendable {
    /// The stripped copy valgrind runs.
    public let binary: String
    private let directory: String

    /// Makes a stripped copy of `executable` (default: this process's own binary).
    public init(executable: String = "/proc/self/exe") throws {
        guard Self.which("valgrind") != nil else {
            throw GateError.toolMissing("valgrind", remedy: "apt-get install -y valgrind (scripts/bench and scripts/test install it)")
        }
        guard Self.which("strip") != nil else { throw GateError.toolMissing("strip", remedy: "apt-get install -y binutils") }
        directory = NSTemporaryDirectory() + "vqbench-gate-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        binary = directory + "/vqbench-stripped"
        let source = (try? FileManager.default.destinationOfSymbolicLink(atPath: executable)) ?? executable
        try? FileManager.default.removeItem(atPath: binary)
        try FileManager.default.copyItem(atPath: source, toPath: binary)
        let (status, output) = Self.run("/usr/bin/env", ["strip", "--strip-debug", binary])
        guard status == 0 else { throw GateError.toolFailed("strip --strip-debug", output: output) }
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    /// Counts `function` while the stripped binary runs `arguments`.
    public func count(function: String, arguments: [String]) throws -> CallgrindCount {
        let out = directory + "/callgrind-\(UUID().uuidString).out"
        defer { try? FileManager.default.removeItem(atPath: out) }
        var args = ["-i", "PATH=/usr/bin:/bin", "LC_ALL=C", "SWIFT_BACKTRACE=enable=no"]
        if Self.which("setarch") != nil { args += ["setarch", "-R"] }
        args += ["valgrind", "--tool=callgrind", "--toggle-collect=\(function)", "--callgrind-out-file=\(out)",
                 binary] + arguments
        let (status, output) = Self.run("/usr/bin/env", args)
        guard status == 0, let text = try? String(contentsOfFile: out, encoding: .utf8) else {
            throw GateError.toolFailed("valgrind --tool=callgrind on \(arguments.joined(separator: " "))", output: output)
        }
        return try Self.parse(text)
    }

    /// The (mangled) names of every function that ran while the stripped binary ran
    /// `arguments`, collected over the whole run.
    public func functionsRun(arguments: [String]) throws -> Set<String> {
        let out = directory + "/callgrind-functions-\(UUID().uuidString).out"
        defer { try? FileManager.default.removeItem(atPath: out) }
        var args = ["-i", "PATH=/usr/bin:/bin", "LC_ALL=C", "SWIFT_BACKTRACE=enable=no"]
        if Self.which("setarch") != nil { args += ["setarch", "-R"] }
        args += ["valgrind", "--tool=callgrind", "--callgrind-out-file=\(out)", binary] + arguments
        let (status, output) = Self.run("/usr/bin/env", args)
        guard status == 0, let text = try? String(contentsOfFile: out, encoding: .utf8) else {
            throw GateError.toolFailed("valgrind --tool=callgrind on \(arguments.joined(separator: " "))", output: output)
        }
        return Self.functionNames(text)
    }

    /// Every function named in a callgrind profile (`fn=` ran, `cfn=` was called), with
    /// callgrind's name compression undone.
    static func functionNames(_ text: String) -> Set<String> {
        var names: Set<String> = []
        for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
            guard raw.hasPrefix("fn=") || raw.hasPrefix("cfn=") else { continue }
            var body = raw[raw.index(after: raw.firstIndex(of: "=")!)...]
            if body.hasPrefix("("), let close = body.firstIndex(of: ")") {
                body = body[body.index(after: close)...]
            }
            let name = body.trimmingWhitespace()
            if !name.isEmpty { names.insert(name) }
        }
        return names
    }

    /// Reads the totals line and the calls to allocation and reference-counting functions.
    static func parse(_ text: String) throws -> CallgrindCount {
        var names: [String: String] = [:]
        var instructions: UInt64?
        var allocations: UInt64 = 0
        var rc: UInt64 = 0
        var pendingCallee: String?
        for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = String(raw)
            if line.hasPrefix("summary:") || line.hasPrefix("totals:") {
                instructions = UInt64(line.split(separator: " ").last ?? "")
            } else if line.hasPrefix("fn=") || line.hasPrefix("cfn=") {
                let body = line[line.index(after: line.firstIndex(of: "=")!)...]
                var name = String(body)
                if body.hasPrefix("("), let close = body.firstIndex(of: ")") {
                    let id = String(body[...close])
                    let rest = body[body.index(after: close)...].trimmingWhitespace()
                    if !rest.isEmpty { names[id] = rest }
                    name = names[id] ?? rest
                }
                pendingCallee = line.hasPrefix("cfn=") ? name : nil
            } else if line.hasPrefix("calls="), let callee = pendingCallee {
                let count = UInt64(line.dropFirst("calls=".count).split(separator: " ").first ?? "") ?? 0
                let base = callee.replacingOccurrences(of: "@plt", with: "")
                if ["malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc", "swift_allocObject", "swift_slowAlloc"].contains(base) {
                    allocations += count
                } else if base.hasPrefix("swift_retain") || base.hasPrefix("swift_release")
                            || base.hasPrefix("swift_unknownObjectRetain") || base.hasPrefix("swift_unknownObjectRelease")
                            || base.hasPrefix("swift_bridgeObjectRetain") || base.hasPrefix("swift_bridgeObjectRelease") {
                    rc += count
                }
                pendingCallee = nil
            }
        }
        guard let instructions else { throw GateError.toolFailed("reading callgrind output", output: "no totals line") }
        return CallgrindCount(instructions: instructions, allocations: allocations, referenceCounting: rc)
    }

    static func which(_ tool: String) -> String? {
        let (status, output) = run("/usr/bin/env", ["which", tool])
        return status == 0 ? output.trimmingWhitespace() : nil
    }

    static func run(_ path: String, _ args: [String]) -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        do { try p.run() } catch { return (-1, "\(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
