// docs/results-schema.json and ResultsValidator: the published file is the embedded text, the
// documents the tool writes conform, broken ones do not, and the schema's notion of required
// and nullable agrees with what the Codable model will decode.

import Foundation
import Testing
@testable import VQBenchKit

struct ResultsSchemaTests {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func object(_ doc: ResultsDocument) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: try JSONEncoder().encode(doc)) as? [String: Any])
    }

    static func data(_ object: [String: Any]) throws -> Data {
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    }

    @Test func publishedSchemaFileIsTheEmbeddedText() throws {
        let file = try String(contentsOf: Self.repositoryRoot.appendingPathComponent("docs/results-schema.json"), encoding: .utf8)
        #expect(file == ResultsValidator.schemaText,
                "docs/results-schema.json and ResultsValidator.schemaText (Results/ResultsSchema.swift) must be edited together")
    }

    @Test func schemaIsDraft202012AndRequiresTheTopLevelNames() throws {
        let schema = try #require(try JSONSerialization.jsonObject(with: Data(ResultsValidator.schemaText.utf8)) as? [String: Any])
        #expect(schema["$schema"] as? String == "https://json-schema.org/draft/2020-12/schema")
        #expect(schema["required"] as? [String] == [
            "schema_version", "tool", "started_at", "duration_s", "suite", "machine", "calibration", "scenarios",
        ])
    }

    @Test(arguments: [("sample", ResultsDocument.sample()), ("reportSample", ResultsDocument.reportSample())])
    func documentsTheToolWritesConform(_ name: String, _ doc: ResultsDocument) throws {
        #expect(try ResultsValidator.validate(doc) == [], "\(name)")
    }

    @Test func explicitNullsAsInTheSchemaNoteConform() throws {
        var object = try Self.object(.sample())
        object["filter"] = NSNull()
        object["gate"] = NSNull()
        var scenarios = object["scenarios"] as! [[String: Any]]
        scenarios[0]["reason"] = NSNull()
        scenarios[0]["instructions_per_desc"] = NSNull()
        object["scenarios"] = scenarios
        #expect(try ResultsValidator.validate(data: try Self.data(object)) == [])
    }

    /// Each way of breaking the sample, and the violation the validator must report.
    static let broken: [(String, @Sendable (inout [String: Any]) -> Void, String)] = [
        ("missing required key", { doc in
            var machine = doc["machine"] as! [String: Any]
            machine.removeValue(forKey: "cpu_model")
            doc["machine"] = machine
        }, "$.machine: missing required \"cpu_model\""),
        ("wrong type", { doc in
            var machine = doc["machine"] as! [String: Any]
            machine["logical_cpus"] = "two"
            doc["machine"] = machine
        }, "$.machine.logical_cpus: expected integer, found string"),
        ("fraction where an integer belongs", { doc in doc["schema_version"] = 1.5 },
         "$.schema_version: expected integer, found number"),
        ("bad status", { doc in
            var scenarios = doc["scenarios"] as! [[String: Any]]
            scenarios[1]["status"] = "great"
            doc["scenarios"] = scenarios
        }, "$.scenarios[1].status: \"great\" is not one of \"ok\", \"skipped\", \"unavailable\", \"failed\""),
        ("below minimum", { doc in
            var scenarios = doc["scenarios"] as! [[String: Any]]
            scenarios[0]["repetitions"] = -1
            doc["scenarios"] = scenarios
        }, "$.scenarios[0].repetitions: -1.0 is below the minimum 0.0"),
        ("interval of three", { doc in
            var calibration = doc["calibration"] as! [String: Any]
            calibration["bare_ring_entries_per_s"] = ["median": 1, "ci95": [1, 2, 3]]
            doc["calibration"] = calibration
        }, "$.calibration.bare_ring_entries_per_s.ci95: 3 items, at most 2 allowed"),
        ("bad dictionary value", { doc in
            var calibration = doc["calibration"] as! [String: Any]
            calibration["wake_ns"] = ["eventfd": ["p50": 1]]
            doc["calibration"] = calibration
        }, "$.calibration.wake_ns.eventfd: missing required \"p99\""),
        ("number for a boolean", { doc in
            var tool = doc["tool"] as! [String: Any]
            tool["dirty"] = 1
            doc["tool"] = tool
        }, "$.tool.dirty: expected boolean or null, found integer"),
    ]

    @Test(arguments: broken.map(\.0))
    func brokenDocumentsFail(_ name: String) throws {
        let (_, breakIt, expected) = try #require(Self.broken.first { $0.0 == name })
        var object = try Self.object(.sample())
        breakIt(&object)
        let violations = try ResultsValidator.validate(data: try Self.data(object))
        #expect(violations == [expected], "\(name)")
    }

    @Test func notJSONIsAnErrorNotAViolation() {
        #expect(throws: ResultsValidator.Failure.self) { try ResultsValidator.validate(data: Data("{\"schema_version\": ".utf8)) }
    }

    @Test func refusesASchemaWithKeywordsItDoesNotImplement() {
        let schema = Data(#"{"type": "object", "properties": {"a": {"type": "string", "pattern": "^x"}}}"#.utf8)
        #expect(throws: ResultsValidator.Failure.unsupportedSchema(location: "#/properties/a", problem: "keyword pattern is not supported")) {
            try ResultsValidator.validate(data: Data("{}".utf8), schema: schema)
        }
    }

    @Test func additionalNamesAreAllowed() throws {
        var object = try Self.object(.sample())
        object["notes"] = "added in a later version"
        var machine = object["machine"] as! [String: Any]
        machine["numa_nodes"] = 1
        object["machine"] = machine
        #expect(try ResultsValidator.validate(data: try Self.data(object)) == [])
    }

    // MARK: - The schema and the Codable model agree

    /// Every name path in a document, e.g. ["scenarios", 0, "latency_ns", "p50"].
    static func namePaths(_ value: Any, prefix: [Any] = []) -> [[Any]] {
        if let object = value as? [String: Any] {
            return object.keys.sorted().flatMap { key in [prefix + [key]] + namePaths(object[key]!, prefix: prefix + [key]) }
        }
        if let array = value as? [Any] {
            return array.indices.flatMap { namePaths(array[$0], prefix: prefix + [$0]) }
        }
        return []
    }

    /// `root` with the value at `path` replaced (nil removes it).
    static func replacing(_ root: Any, at path: ArraySlice<Any>, with value: Any?) -> Any {
        guard let step = path.first else { return value as Any }
        if var object = root as? [String: Any], let key = step as? String {
            if path.count == 1, value == nil {
                object.removeValue(forKey: key)
            } else {
                object[key] = replacing(object[key]!, at: path.dropFirst(), with: value)
            }
            return object
        }
        var array = root as! [Any]
        let index = step as! Int
        array[index] = replacing(array[index], at: path.dropFirst(), with: value)
        return array
    }

    /// A document with every optional field present, so every name gets tried.
    static func everyFieldSample() -> ResultsDocument {
        var doc = ResultsDocument.reportSample()
        doc.filter = "split/*"
        doc.machine.ioUring.reason = "probe note"
        doc.scenarios[0].reason = "none"
        doc.scenarios[0].controlPathNs = ["bring_up": 1]
        doc.scenarios[0].instructionsPerDesc = 40
        doc.scenarios[0].modelled = [.init(parameter: "p", value: 1, source: "s")]
        doc.scenarios[0].counters?.descPerKick = 32
        return doc
    }

    @Test func removingANameFailsTheSchemaExactlyWhenItFailsDecoding() throws {
        let object = try Self.object(Self.everyFieldSample())
        let paths = Self.namePaths(object)
        #expect(paths.count > 150)
        for path in paths {
            let broken = try JSONSerialization.data(withJSONObject: Self.replacing(object, at: path[...], with: nil))
            let decodes = (try? JSONDecoder().decode(ResultsDocument.self, from: broken)) != nil
            let conforms = try ResultsValidator.validate(data: broken).isEmpty
            #expect(decodes == conforms, "removing \(path): decodes \(decodes), conforms \(conforms)")
        }
    }

    @Test func nullingANameFailsTheSchemaExactlyWhenItFailsDecoding() throws {
        let object = try Self.object(Self.everyFieldSample())
        for path in Self.namePaths(object) {
            let broken = try JSONSerialization.data(withJSONObject: Self.replacing(object, at: path[...], with: NSNull()))
            let decodes = (try? JSONDecoder().decode(ResultsDocument.self, from: broken)) != nil
            let conforms = try ResultsValidator.validate(data: broken).isEmpty
            #expect(decodes == conforms, "nulling \(path): decodes \(decodes), conforms \(conforms)")
        }
    }
}
