// The validator's JSON reader against RFC 8259: what it accepts, what it refuses, and that
// booleans stay booleans (the reason it exists instead of JSONSerialization).

import Foundation
import Testing
@testable import VQBenchKit

struct JSONReaderTests {
    typealias Value = ResultsValidator.Value

    static let accepted: [(String, Value)] = [
        (#" {"a": [true, false, null, 1, -0.5, 4e8, 1E-2]} "#,
         .object(["a": .array([.bool(true), .bool(false), .null, .number(1), .number(-0.5), .number(4e8), .number(0.01)])])),
        (#""tab\tquote\" slash\/ \u00e9 \ud83d\ude80""#, .string("tab\tquote\" slash/ é 🚀")),
        (#""µs · ×""#, .string("µs · ×")),
        ("[]", .array([])),
        ("{}", .object([:])),
        ("-0", .number(0)),
    ]

    @Test(arguments: accepted.indices)
    func readsValidJSON(_ index: Int) throws {
        let (text, expected) = Self.accepted[index]
        #expect(try ResultsValidator.parse(Data(text.utf8)) == expected, "\(text)")
    }

    @Test(arguments: ["", "[1,]", "{\"a\" 1}", "01", "1.", ".5", "1e", "tru", "[1] 2", "\"open", "\"bad \\x escape\"",
                      "\"line\nbreak\"", "{\"a\":1,}", "nul", "+1"])
    func refusesInvalidJSON(_ text: String) {
        #expect(throws: ResultsValidator.Failure.self, "\(text)") { try ResultsValidator.parse(Data(text.utf8)) }
    }

    @Test func refusesInvalidUTF8() {
        #expect(throws: ResultsValidator.Failure.self) { try ResultsValidator.parse(Data([0x22, 0xC3, 0x28, 0x22])) }
    }

    @Test func refusesRunawayNesting() {
        let deep = String(repeating: "[", count: 300) + String(repeating: "]", count: 300)
        #expect(throws: ResultsValidator.Failure.self) { try ResultsValidator.parse(Data(deep.utf8)) }
    }
}
