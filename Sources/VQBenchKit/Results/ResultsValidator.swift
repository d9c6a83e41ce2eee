// Checks a results document against docs/results-schema.json (embedded as `schemaText`), so
// every file the tool writes can be validated in tests and at runtime without outside tools.
// It implements exactly the JSON Schema keywords that schema uses and refuses any other.

import Foundation

public enum ResultsValidator {
    /// Why validation could not run at all (as opposed to the document breaking a rule).
    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case notJSON(String)
        case unsupportedSchema(location: String, problem: String)

        public var description: String {
            switch self {
            case .notJSON(let detail): "not a JSON document: \(detail)"
            case .unsupportedSchema(let location, let problem): "schema at \(location): \(problem)"
            }
        }
    }

    /// The document's violations of the results schema, one line each ("$.machine: missing
    /// required \"cpu_model\""), names visited in sorted order; empty when it conforms.
    /// Throws only when the data is not JSON at all.
    public static func validate(data: Data) throws(Failure) -> [String] {
        try validate(data: data, schema: resultsSchema.get())
    }

    /// A document as the tool writes it (JSONEncoder), checked before it is written.
    public static func validate(_ document: ResultsDocument) throws -> [String] {
        try validate(data: JSONEncoder().encode(document))
    }

    /// The same against any schema that keeps to the supported keywords (tests use small ones).
    public static func validate(data: Data, schema schemaData: Data) throws(Failure) -> [String] {
        let schema = try parse(schemaData)
        try checkSupported(schema, at: "#")
        return try validate(data: data, schema: schema)
    }

    /// The results schema, parsed and checked once: it is larger than most documents.
    static let resultsSchema: Result<Value, Failure> = {
        do throws(Failure) {
            let schema = try parse(Data(schemaText.utf8))
            try checkSupported(schema, at: "#")
            return .success(schema)
        } catch {
            return .failure(error)
        }
    }()

    static func validate(data: Data, schema: Value) throws(Failure) -> [String] {
        let instance = try parse(data)
        var walk = Walk(root: schema)
        try walk.check(instance, against: schema, at: "$")
        return walk.violations
    }

    // MARK: - JSON values

    /// A parsed JSON value. Numbers are Doubles: JSON Schema's "integer" is a number with no
    /// fractional part, so 4e8 and 400000000 are the same integer.
    enum Value: Equatable, Sendable {
        case null
        case bool(Bool)
        case number(Double)
        case string(String)
        case array([Value])
        case object([String: Value])

        /// The JSON Schema type names this value satisfies ("integer" values are also "number").
        func isOfType(_ name: String) -> Bool {
            switch (self, name) {
            case (.null, "null"), (.bool, "boolean"), (.string, "string"), (.array, "array"), (.object, "object"),
                 (.number, "number"):
                true
            case (.number(let d), "integer"):
                d.isFinite && d.rounded(.towardZero) == d
            default:
                false
            }
        }

        var typeName: String {
            switch self {
            case .null: "null"
            case .bool: "boolean"
            case .number(let d): Value.number(d).isOfType("integer") ? "integer" : "number"
            case .string: "string"
            case .array: "array"
            case .object: "object"
            }
        }

        /// A short rendering for messages.
        var excerpt: String {
            switch self {
            case .null: "null"
            case .bool(let b): b ? "true" : "false"
            case .number(let d): d.description
            case .string(let s): "\"" + (s.count > 40 ? String(s.prefix(40)) + "…" : s) + "\""
            case .array(let a): "array of \(a.count)"
            case .object(let o): "object with \(o.count) names"
            }
        }
    }

    static func parse(_ data: Data) throws(Failure) -> Value {
        var reader = JSONReader(bytes: Array(data))
        return try reader.document()
    }

    // MARK: - Keywords

    /// Keywords that only annotate; they never make a document invalid.
    static let annotations: Set<String> = ["$schema", "$id", "$comment", "title", "description", "$defs"]
    static let assertions: Set<String> = [
        "type", "required", "properties", "additionalProperties", "items", "enum", "minimum", "minItems", "maxItems", "$ref",
    ]

    /// Refuses a schema using a keyword this validator does not implement: silently ignoring it
    /// would pass documents the published schema rejects.
    static func checkSupported(_ schema: Value, at location: String) throws(Failure) {
        guard case .object(let keywords) = schema else {
            if case .bool = schema { return }
            throw .unsupportedSchema(location: location, problem: "a schema must be an object or a boolean")
        }
        for (keyword, value) in keywords.sorted(by: { $0.key < $1.key }) {
            guard annotations.contains(keyword) || assertions.contains(keyword) else {
                throw .unsupportedSchema(location: location, problem: "keyword \(keyword) is not supported")
            }
            switch keyword {
            case "properties", "$defs":
                guard case .object(let members) = value else {
                    throw .unsupportedSchema(location: location, problem: "\(keyword) must be an object")
                }
                for (name, sub) in members.sorted(by: { $0.key < $1.key }) {
                    try checkSupported(sub, at: "\(location)/\(keyword)/\(name)")
                }
            case "items", "additionalProperties":
                try checkSupported(value, at: "\(location)/\(keyword)")
            case "$ref":
                guard case .string(let ref) = value, ref.hasPrefix("#/$defs/") else {
                    throw .unsupportedSchema(location: location, problem: "only local #/$defs/ references are supported")
                }
            default:
                break
            }
        }
    }

    /// One pass over a document, collecting violations.
    struct Walk {
        let root: Value
        var violations: [String] = []

        mutating func check(_ value: Value, against schema: Value, at path: String) throws(Failure) {
            guard case .object(let keywords) = schema else {
                if case .bool(false) = schema { violations.append("\(path): not allowed here") }
                return
            }
            if case .string(let ref)? = keywords["$ref"] {
                try check(value, against: try resolve(ref), at: path)
            }
            if let type = keywords["type"] {
                let names: [String]
                switch type {
                case .string(let name): names = [name]
                case .array(let list): names = list.compactMap { if case .string(let s) = $0 { s } else { nil } }
                default: throw .unsupportedSchema(location: path, problem: "type must be a name or a list of names")
                }
                if !names.contains(where: value.isOfType) {
                    violations.append("\(path): expected \(names.joined(separator: " or ")), found \(value.typeName)")
                    // The remaining keywords would only repeat the same complaint in other words.
                    return
                }
            }
            if case .array(let allowed)? = keywords["enum"], !allowed.contains(value) {
                let list = allowed.map(\.excerpt).joined(separator: ", ")
                violations.append("\(path): \(value.excerpt) is not one of \(list)")
            }
            if case .number(let minimum)? = keywords["minimum"], case .number(let d) = value, d < minimum {
                violations.append("\(path): \(d.description) is below the minimum \(minimum.description)")
            }
            switch value {
            case .object(let members):
                try checkObject(members, keywords, at: path)
            case .array(let elements):
                if case .number(let least)? = keywords["minItems"], Double(elements.count) < least {
                    violations.append("\(path): \(elements.count) items, at least \(Int(least)) required")
                }
                if case .number(let most)? = keywords["maxItems"], Double(elements.count) > most {
                    violations.append("\(path): \(elements.count) items, at most \(Int(most)) allowed")
                }
                if let items = keywords["items"] {
                    for (index, element) in elements.enumerated() {
                        try check(element, against: items, at: "\(path)[\(index)]")
                    }
                }
            default:
                break
            }
        }

        private mutating func checkObject(_ members: [String: Value], _ keywords: [String: Value], at path: String) throws(Failure) {
            if case .array(let required)? = keywords["required"] {
                for case .string(let name) in required where members[name] == nil {
                    violations.append("\(path): missing required \"\(name)\"")
                }
            }
            var properties: [String: Value] = [:]
            if case .object(let declared)? = keywords["properties"] { properties = declared }
            // Sorted so the same document always yields the same list in the same order.
            for (name, member) in members.sorted(by: { $0.key < $1.key }) {
                let memberPath = "\(path).\(name)"
                if let sub = properties[name] {
                    try check(member, against: sub, at: memberPath)
                } else if let additional = keywords["additionalProperties"] {
                    try check(member, against: additional, at: memberPath)
                }
            }
        }

        private func resolve(_ ref: String) throws(Failure) -> Value {
            let name = String(ref.dropFirst("#/$defs/".count))
            guard case .object(let top) = root, case .object(let defs)? = top["$defs"], let target = defs[name] else {
                throw .unsupportedSchema(location: ref, problem: "reference to an undefined definition")
            }
            return target
        }
    }
}

/// RFC 8259 JSON to `ResultsValidator.Value`. Written out rather than layered on JSONDecoder,
/// which can only discover a value's type by failing to decode the others (slow), or on
/// JSONSerialization, which hands booleans back as numbers.
struct JSONReader {
    let bytes: [UInt8]
    var at = 0

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    typealias Value = ResultsValidator.Value

    mutating func document() throws(ResultsValidator.Failure) -> Value {
        let value = try self.value(depth: 0)
        skipSpace()
        guard at == bytes.count else { throw fail("trailing characters") }
        return value
    }

    private func fail(_ problem: String) -> ResultsValidator.Failure {
        .notJSON("\(problem) at byte \(at)")
    }

    private mutating func skipSpace() {
        while at < bytes.count {
            switch bytes[at] {
            case 0x20, 0x09, 0x0A, 0x0D: at += 1
            default: return
            }
        }
    }

    private mutating func expect(_ literal: String) throws(ResultsValidator.Failure) {
        for byte in literal.utf8 {
            guard at < bytes.count, bytes[at] == byte else { throw fail("expected \(literal)") }
            at += 1
        }
    }

    private mutating func value(depth: Int) throws(ResultsValidator.Failure) -> Value {
        // A document nested this deep is not a results document; stop before the stack does.
        guard depth < 256 else { throw fail("nesting deeper than 256") }
        skipSpace()
        guard at < bytes.count else { throw fail("unexpected end") }
        switch bytes[at] {
        case UInt8(ascii: "{"):
            at += 1
            var members: [String: Value] = [:]
            skipSpace()
            if at < bytes.count, bytes[at] == UInt8(ascii: "}") { at += 1; return .object(members) }
            while true {
                skipSpace()
                guard at < bytes.count, bytes[at] == UInt8(ascii: "\"") else { throw fail("expected a name") }
                let name = try string()
                skipSpace()
                try expect(":")
                members[name] = try value(depth: depth + 1)
                skipSpace()
                guard at < bytes.count else { throw fail("unterminated object") }
                at += 1
                if bytes[at - 1] == UInt8(ascii: "}") { return .object(members) }
                guard bytes[at - 1] == UInt8(ascii: ",") else { throw fail("expected , or }") }
            }
        case UInt8(ascii: "["):
            at += 1
            var elements: [Value] = []
            skipSpace()
            if at < bytes.count, bytes[at] == UInt8(ascii: "]") { at += 1; return .array(elements) }
            while true {
                elements.append(try value(depth: depth + 1))
                skipSpace()
                guard at < bytes.count else { throw fail("unterminated array") }
                at += 1
                if bytes[at - 1] == UInt8(ascii: "]") { return .array(elements) }
                guard bytes[at - 1] == UInt8(ascii: ",") else { throw fail("expected , or ]") }
            }
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"):
            try expect("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expect("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expect("null")
            return .null
        default:
            return .number(try number())
        }
    }

    private mutating func number() throws(ResultsValidator.Failure) -> Double {
        let start = at
        func digits(_ reader: inout JSONReader) -> Int {
            let first = reader.at
            while reader.at < reader.bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(reader.bytes[reader.at]) {
                reader.at += 1
            }
            return reader.at - first
        }
        if at < bytes.count, bytes[at] == UInt8(ascii: "-") { at += 1 }
        let whole = digits(&self)
        // RFC 8259 §6: no leading zeros, at least one digit on each side of the point.
        guard whole > 0, !(whole > 1 && bytes[at - whole] == UInt8(ascii: "0")) else { throw fail("malformed number") }
        if at < bytes.count, bytes[at] == UInt8(ascii: ".") {
            at += 1
            guard digits(&self) > 0 else { throw fail("malformed number") }
        }
        if at < bytes.count, bytes[at] == UInt8(ascii: "e") || bytes[at] == UInt8(ascii: "E") {
            at += 1
            if at < bytes.count, bytes[at] == UInt8(ascii: "+") || bytes[at] == UInt8(ascii: "-") { at += 1 }
            guard digits(&self) > 0 else { throw fail("malformed number") }
        }
        // Double's own parser reads the C locale's format whatever the process locale is.
        guard let value = Double(String(decoding: bytes[start..<at], as: UTF8.self)) else { throw fail("malformed number") }
        return value
    }

    private mutating func string() throws(ResultsValidator.Failure) -> String {
        let open = at
        at += 1
        var escaped = false
        while true {
            guard at < bytes.count else { throw fail("unterminated string") }
            switch bytes[at] {
            case UInt8(ascii: "\""):
                at += 1
                let inner = bytes[(open + 1)..<(at - 1)]
                guard escaped else {
                    // RFC 8259 §8.1: JSON text is UTF-8; repairing it would hide a broken writer.
                    guard let s = String(validating: inner, as: UTF8.self) else { throw fail("invalid UTF-8 in string") }
                    return s
                }
                // Escapes are rare in results documents; Foundation already reads them,
                // surrogate pairs included, so hand it just this string.
                guard let s = try? JSONDecoder().decode(String.self, from: Data(bytes[open..<at])) else {
                    throw fail("malformed escape in string")
                }
                return s
            case UInt8(ascii: "\\"):
                escaped = true
                at += 2
            case 0..<0x20:
                throw fail("control character in string")
            default:
                at += 1
            }
        }
    }
}
