// Checks a results document against docs/results-schema.json (embedded as `schemaText`), so
// every file the tool writes can be validated in tests and at runtime without outside tools.
// It implements exactly the JSON Schema keywords that schema uses and refuses any other.

import Foundation

public enum ResultsValidator {
    /// Why validation could not run at all (as opposed to the document breaking a rule).
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case notJSON(String)
        case unsupportedSchema(location: String, problem: String)

        public var description: String {
            switch self {
            case .notJSON(let detail): "not a JSON document: \(detail)"
            case .unsupportedSchema(let location, let problem): "schema at \(location): \(problem)"
            }
        }
    }

    /// The document's violations of the results schema, one line each, in document order;
    /// empty when it conforms.
    public static func validate(data: Data) throws(Failure) -> [String] {
        try validate(data: data, schema: Data(schemaText.utf8))
    }

    /// The same against any schema that keeps to the supported keywords (tests use small ones).
    public static func validate(data: Data, schema schemaData: Data) throws(Failure) -> [String] {
        let schema = try parse(schemaData)
        try checkSupported(schema, at: "#")
        let instance = try parse(data)
        var walk = Walk(root: schema)
        try walk.check(instance, against: schema, at: "$")
        return walk.violations
    }

    // MARK: - JSON values

    /// A parsed JSON value. Numbers are Doubles: JSON Schema's "integer" is a number with no
    /// fractional part, so 4e8 and 400000000 are the same integer.
    enum Value: Equatable, Decodable {
        case null
        case bool(Bool)
        case number(Double)
        case string(String)
        case array([Value])
        case object([String: Value])

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            // Bool before Double: the decoder will not read `true` as a number or `1` as a Bool,
            // so the order only saves a failed attempt; null must come first.
            if container.decodeNil() {
                self = .null
            } else if let b = try? container.decode(Bool.self) {
                self = .bool(b)
            } else if let d = try? container.decode(Double.self) {
                self = .number(d)
            } else if let s = try? container.decode(String.self) {
                self = .string(s)
            } else if let a = try? container.decode([Value].self) {
                self = .array(a)
            } else {
                self = .object(try container.decode([String: Value].self))
            }
        }

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
        do {
            return try JSONDecoder().decode(Value.self, from: data)
        } catch {
            throw .notJSON(String(describing: error))
        }
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
