// What can go wrong with the `vdpa` tool's nouns (`vqbench mgmtdev …`, `vqbench dev …`):
// arguments in iproute2's keyword-value style, the state file the created devices persist
// in, and the management devices' own refusals. One case per broken rule; each message
// says what was wrong and what is known or allowed.

import Mediation

public enum VDPAToolError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `mgmtdev NAME` (or `mgmtdev show NAME`) that no parent exposes.
    case unknownManagementDevice(String, known: [String])
    /// `dev add name N` with a name a device already has.
    case duplicateDevice(String)
    /// `dev show|del|config show N` of a device that does not exist.
    case unknownDevice(String, known: [String])
    /// A keyword's value that is not allowed (`mac zz`, `mtu 70000`, `max_vqp 0`).
    case badValue(keyword: String, value: String, rule: String)
    /// A word where a keyword was expected.
    case unknownKeyword(String, command: String, expected: [String])
    /// A keyword at the end of the line, without its value.
    case missingValue(keyword: String)
    /// A keyword given twice.
    case repeatedKeyword(String)
    /// A required keyword not given (`dev add` without `name` or `mgmtdev`).
    case missingKeyword(String, command: String)
    /// A command that names one device given none (`dev del`).
    case missingDeviceName(command: String)
    /// Words after a command's last argument.
    case unexpectedArgument(String, command: String)
    /// The state file cannot be read, parsed, locked or written.
    case stateFile(path: String, problem: String)
    /// A device recorded in the state file that the management devices refuse to recreate.
    case stateReplay(path: String, device: String, error: MediationError)
    /// A management device refused the operation.
    case mediation(MediationError)

    public var description: String {
        switch self {
        case let .unknownManagementDevice(name, known):
            return "unknown management device \"\(name)\"; known: \(known.joined(separator: ", "))"
        case let .duplicateDevice(name):
            return "a vDPA device named \"\(name)\" already exists (vqbench dev del \(name) removes it)"
        case let .unknownDevice(name, known):
            return "no vDPA device named \"\(name)\"; " + (known.isEmpty ? "no devices exist" : "devices: \(known.joined(separator: ", "))")
        case let .badValue(keyword, value, rule):
            return "bad \(keyword) \"\(value)\": \(rule)"
        case let .unknownKeyword(word, command, expected):
            return "unknown keyword \"\(word)\" for \(command); expected one of: \(expected.joined(separator: ", "))"
        case let .missingValue(keyword):
            return "keyword \(keyword) needs a value"
        case let .repeatedKeyword(keyword):
            return "keyword \(keyword) given twice"
        case let .missingKeyword(keyword, command):
            return "\(command) needs \(keyword) \(keyword.uppercased())"
        case let .missingDeviceName(command):
            return "\(command) needs a device name"
        case let .unexpectedArgument(word, command):
            return "unexpected argument \"\(word)\" for \(command)"
        case let .stateFile(path, problem):
            return "state file \(path): \(problem)"
        case let .stateReplay(path, device, error):
            return "state file \(path): device \"\(device)\" cannot be recreated: \(error) (delete it from the file, or the file)"
        case let .mediation(error):
            return "\(error)"
        }
    }
}
