// A scenario is one point of the matrix (DESIGN.md "Scenario identity"), written as a
// stable id: layout/doorbell/mediator/q<size>/b<batch>/<payload>B/<memory>/qp<pairs>, and
// `/vhost` after it when a mediated device is bound to the vhost bus driver instead of
// virtio (the default, never written, so every earlier id stays valid). Ids are what
// filters, baselines and dashboards key on, so parsing and printing round-trip.

import Mediation
import Virtqueue

/// One point of the scenario matrix.
public struct ScenarioID: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    public var layout: String
    public var doorbell: String
    public var mediator: String
    public var queueSize: Int
    public var batch: Int
    public var payloadBytes: Int
    public var memory: String
    public var queuePairs: Int
    /// The bus driver a mediated device is bound to: "virtio" or "vhost".
    public var binding: String

    /// Bus drivers a mediated scenario can bind its device to.
    public static let bindings = ["virtio", "vhost"]
    /// Feature options a layout part may carry after '+' ("packed+in_order").
    public static let layoutOptions = ["in_order"]

    /// The ring layout without options: "split" or "packed".
    public var ringLayout: String { String(layout.split(separator: "+", omittingEmptySubsequences: false).first ?? "") }
    /// VIRTIO_F_IN_ORDER negotiated ("+in_order" after the layout).
    public var inOrder: Bool { layout.split(separator: "+").dropFirst().contains("in_order") }

    /// The same point with VIRTIO_F_IN_ORDER on or off.
    public func with(inOrder on: Bool) -> ScenarioID {
        var copy = self
        copy.layout = ringLayout + (on ? "+in_order" : "")
        return copy
    }

    public init(layout: String, doorbell: String, mediator: String = "none", queueSize: Int = 256,
                batch: Int = 32, payloadBytes: Int = 64, memory: String, queuePairs: Int = 1, binding: String = "virtio") {
        self.layout = layout
        self.doorbell = doorbell
        self.mediator = mediator
        self.queueSize = queueSize
        self.batch = batch
        self.payloadBytes = payloadBytes
        self.memory = memory
        self.queuePairs = queuePairs
        self.binding = binding
    }

    public var description: String {
        let base = "\(layout)/\(doorbell)/\(mediator)/q\(queueSize)/b\(batch)/\(payloadBytes)B/\(memory)/qp\(queuePairs)"
        return binding == "virtio" ? base : base + "/" + binding
    }

    /// Parses an id; the error says which part is wrong.
    public init(parsing text: String) throws(ScenarioError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 8 || parts.count == 9 else {
            throw .malformedID(text, reason: "expected 8 parts separated by '/' (9 with a binding), got \(parts.count)")
        }
        let binding = parts.count == 9 ? parts[8] : "virtio"
        guard Self.bindings.contains(binding) else {
            throw .malformedID(text, reason: "binding '\(binding)' is not one of \(Self.bindings.joined(separator: ", "))")
        }
        func number(_ part: String, prefix: String, suffix: String = "", name: String) throws(ScenarioError) -> Int {
            guard part.hasPrefix(prefix), part.hasSuffix(suffix),
                  let n = Int(part.dropFirst(prefix.count).dropLast(suffix.count)), n > 0 else {
                throw .malformedID(text, reason: "\(name) '\(part)' is not \(prefix)<n>\(suffix)")
            }
            return n
        }
        for (i, name) in [(0, "layout"), (1, "doorbell"), (2, "mediator"), (6, "memory")] where parts[i].isEmpty {
            throw .malformedID(text, reason: "\(name) is empty")
        }
        let layoutName = String(parts[0].split(separator: "+", omittingEmptySubsequences: false)[0])
        guard RingLayoutKind(rawValue: layoutName) != nil else {
            throw .malformedID(text, reason: "layout '\(layoutName)' is not one of \(RingLayoutKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard parts[2] == "none" || ParentRegistry.mediatorNames.contains(parts[2]) else {
            throw .malformedID(text, reason: "mediator '\(parts[2])' is not none or a parent: \(ParentRegistry.mediatorNames.joined(separator: ", "))")
        }
        for option in parts[0].split(separator: "+", omittingEmptySubsequences: false).dropFirst()
        where !Self.layoutOptions.contains(String(option)) {
            throw .malformedID(text, reason: "layout option '\(option)' is not one of \(Self.layoutOptions.joined(separator: ", "))")
        }
        self.init(layout: parts[0], doorbell: parts[1], mediator: parts[2],
                  queueSize: try number(parts[3], prefix: "q", name: "queue size"),
                  batch: try number(parts[4], prefix: "b", name: "batch"),
                  payloadBytes: try number(parts[5], prefix: "", suffix: "B", name: "payload"),
                  memory: parts[6],
                  queuePairs: try number(parts[7], prefix: "qp", name: "queue pairs"), binding: binding)
    }

    public static func < (a: ScenarioID, b: ScenarioID) -> Bool { a.description < b.description }

    /// The same point with another mediator (the bare reference is mediator "none").
    public func with(mediator: String) -> ScenarioID {
        var copy = self
        copy.mediator = mediator
        if mediator == "none" { copy.binding = "virtio" }
        return copy
    }
}

/// Errors from choosing scenarios.
public enum ScenarioError: Error, Equatable, Sendable, CustomStringConvertible {
    case malformedID(String, reason: String)
    case unknownSuite(String, known: [String])
    case filterMatchesNothing(String, suite: String)
    case unknownValue(part: String, value: String, known: [String])

    public var description: String {
        switch self {
        case let .malformedID(id, reason): return "malformed scenario id '\(id)': \(reason)"
        case let .unknownSuite(s, known): return "unknown suite '\(s)'; one of: \(known.joined(separator: ", "))"
        case let .filterMatchesNothing(f, suite): return "filter '\(f)' matches no scenario of the \(suite) suite (try `vqbench list --suite \(suite)`)"
        case let .unknownValue(part, value, known): return "unknown \(part) '\(value)'; one of: \(known.joined(separator: ", "))"
        }
    }
}

/// Shell-style glob over scenario ids: `*` matches any run of characters (including '/'),
/// `?` one character. Several globs separated by ',' match if any does.
public struct ScenarioFilter: Sendable {
    public let pattern: String
    private let globs: [[Character]]

    public init(_ pattern: String) {
        self.pattern = pattern
        globs = pattern.split(separator: ",").map { Array($0.trimmingWhitespace()) }
    }

    public func matches(_ id: ScenarioID) -> Bool {
        let text = Array(id.description)
        return globs.contains { Self.match($0[...], text[...]) }
    }

    private static func match(_ p: ArraySlice<Character>, _ t: ArraySlice<Character>) -> Bool {
        var pi = p.startIndex, ti = t.startIndex
        var star: Int? = nil, mark = t.startIndex
        while ti < t.endIndex {
            if pi < p.endIndex && (p[pi] == "?" || p[pi] == t[ti]) { pi += 1; ti += 1 }
            else if pi < p.endIndex && p[pi] == "*" { star = pi; mark = ti; pi += 1 }
            else if let s = star { pi = s + 1; mark += 1; ti = mark }
            else { return false }
        }
        while pi < p.endIndex && p[pi] == "*" { pi += 1 }
        return pi == p.endIndex
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\n" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\n" { s.removeLast() }
        return String(s)
    }
}
