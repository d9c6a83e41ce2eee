// The `vdpa` nouns through the built `vqbench` binary, as a user runs them: each test has its
// own --state file, so devices persist between its invocations and nowhere else. Skipped,
// with the reason, when the binary is not next to the test bundle (`swift build --build-tests`
// builds both into the same directory).

import Foundation
import Mediation
import Testing
@testable import VQBenchKit

/// The `vqbench` executable built beside this test bundle.
enum VQBenchBinary {
    static let path: String? = {
        var candidates = ProcessInfo.processInfo.environment["VQBENCH_BINARY"].map { [$0] } ?? []
        var directories: [String] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            directories.append((exe as NSString).deletingLastPathComponent)
        }
        directories.append(Bundle.main.bundleURL.deletingLastPathComponent().path)
        directories.append(Bundle.main.bundlePath)
        candidates += directories.map { $0 + "/vqbench" }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs the binary with `arguments` and waits; output goes through files, so neither pipe can fill.
    static func run(_ arguments: [String]) throws -> Outcome {
        let binary = try #require(path)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vqbench-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("stdout"), err = dir.appendingPathComponent("stderr")
        try Data().write(to: out)
        try Data().write(to: err)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
        process.waitUntilExit()
        return Outcome(status: process.terminationStatus,
                       stdout: try String(contentsOf: out, encoding: .utf8),
                       stderr: try String(contentsOf: err, encoding: .utf8))
    }
}

/// One test's state file, removed (with its lock file) at the end.
final class StateFile {
    let path: String
    init() {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("vqbench-vdpa-test-\(UUID().uuidString).json").path
    }
    deinit {
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.removeItem(atPath: path + ".lock")
    }

    /// `vqbench <arguments> --state <path>`
    func vqbench(_ arguments: String...) throws -> VQBenchBinary.Outcome {
        try VQBenchBinary.run(arguments + ["--state", path])
    }
}

@Suite(.enabled(if: VQBenchBinary.path != nil,
                "the vqbench binary is not next to the test bundle; run `swift build --build-tests` (or set VQBENCH_BINARY)"))
struct VDPANounBinaryTests {
    @Test func aDeviceIsAddedShownConfiguredAndDeletedAcrossInvocations() throws {
        let state = StateFile()
        let add = try state.vqbench("dev", "add", "name", "vdpa0", "mgmtdev", "vdpa_sim_mgmt", "mac", "02:11:22:33:44:55", "mtu", "9000")
        #expect(add.status == 0, "\(add.stderr)")
        #expect(add.stdout.isEmpty && add.stderr.isEmpty, "dev add prints nothing on success, as vdpa(8)")

        let show = try state.vqbench("dev", "show")
        #expect(show.status == 0)
        #expect(show.stdout == "vdpa0: type network mgmtdev vdpa_sim_mgmt vendor_id 0 max_vqs 2 max_vq_size 1024\n")

        let config = try state.vqbench("dev", "config", "show", "vdpa0")
        #expect(config.status == 0)
        #expect(config.stdout == "vdpa0: mac 02:11:22:33:44:55 link up link_announce false max_vq_pairs 1 mtu 9000\n")

        let del = try state.vqbench("dev", "del", "vdpa0")
        #expect(del.status == 0, "\(del.stderr)")
        let after = try state.vqbench("dev", "show")
        #expect(after.status == 0)
        #expect(!after.stdout.contains("vdpa0"))
        let gone = try state.vqbench("dev", "show", "vdpa0")
        #expect(gone.status != 0)
        #expect(gone.stderr.contains("no vDPA device named \"vdpa0\"; no devices exist"))
    }

    @Test func devicesOfEveryParentListInCreationOrderWithTheirQueuePairs() throws {
        let state = StateFile()
        #expect(try state.vqbench("dev", "add", "name", "b", "mgmtdev", "vp_vdpa_mgmt", "max_vqp", "2").status == 0)
        #expect(try state.vqbench("dev", "add", "mgmtdev", "vdpa_sim_mgmt", "name", "a").status == 0)
        let show = try state.vqbench("dev", "show")
        #expect(show.stdout == """
            b: type network mgmtdev vp_vdpa_mgmt vendor_id 6900 max_vqs 4 max_vq_size 1024
            a: type network mgmtdev vdpa_sim_mgmt vendor_id 0 max_vqs 2 max_vq_size 1024

            """)
        let config = try state.vqbench("dev", "config", "show", "b")
        #expect(config.stdout.contains("max_vq_pairs 2 mtu 1500"))
        // Another state file sees none of them.
        let other = StateFile()
        #expect(try other.vqbench("dev", "show").stdout.isEmpty)
    }

    @Test func jsonOutputHasVdpasShape() throws {
        let state = StateFile()
        #expect(try state.vqbench("dev", "add", "name", "vdpa0", "mgmtdev", "vdpa_sim_mgmt", "mtu", "4000").status == 0)
        let dev = try JSONSerialization.jsonObject(with: Data(try state.vqbench("dev", "show", "--json").stdout.utf8)) as? [String: Any]
        let device = (dev?["dev"] as? [String: Any])?["vdpa0"] as? [String: Any]
        #expect(device?["mgmtdev"] as? String == "vdpa_sim_mgmt")
        #expect(device?["max_vqs"] as? Int == 2)
        let cfg = try JSONSerialization.jsonObject(with: Data(try state.vqbench("dev", "config", "show", "--json").stdout.utf8)) as? [String: Any]
        let config = (cfg?["config"] as? [String: Any])?["vdpa0"] as? [String: Any]
        #expect(config?["mtu"] as? Int == 4000)
        #expect(config?["mac"] as? String == "02:00:00:00:00:01")
        #expect(config?["link"] as? String == "up")
        let m = try JSONSerialization.jsonObject(with: Data(try state.vqbench("mgmtdev", "show", "--json").stdout.utf8)) as? [String: Any]
        let mgmt = (m?["mgmtdev"] as? [String: Any])?["vdpa_sim_mgmt"] as? [String: Any]
        #expect(mgmt?["supported_classes"] as? [String] == ["net"])
        #expect(mgmt?["max_supported_vqs"] as? Int == 8)
        #expect((mgmt?["dev_features"] as? [String])?.contains("VERSION_1") == true)
    }

    @Test func mgmtdevShowListsEveryParentOrTheOneNamed() throws {
        let state = StateFile()
        let all = try state.vqbench("mgmtdev", "show")
        #expect(all.status == 0)
        let heads = all.stdout.split(separator: "\n").filter { !$0.hasPrefix(" ") }
        #expect(heads == ParentRegistry.names.map { $0 + "_mgmt:" }.sorted().map { Substring($0) })
        let one = try state.vqbench("mgmtdev", "show", "vp_vdpa_mgmt")
        #expect(one.stdout.hasPrefix("vp_vdpa_mgmt:\n  supported_classes net\n  max_supported_vqs 8\n  dev_features "))
        #expect(one.stdout.contains("NOTIFICATION_DATA"))
        #expect(!one.stdout.contains("vdpa_sim_mgmt"))
    }

    struct BadCase: CustomTestStringConvertible, Sendable {
        var arguments: [String]
        var message: String
        var testDescription: String { arguments.joined(separator: " ") }
    }

    static let badCases: [BadCase] = [
        .init(arguments: ["dev", "add", "name", "x", "mgmtdev", "nope"],
              message: "unknown management device \"nope\"; known: " + ParentRegistry.names.map { $0 + "_mgmt" }.sorted().joined(separator: ", ")),
        .init(arguments: ["mgmtdev", "show", "nope"], message: "unknown management device \"nope\"; known: " + ParentRegistry.names.map { $0 + "_mgmt" }.sorted().joined(separator: ", ")),
        .init(arguments: ["dev", "add", "name", "vdpa0", "mgmtdev", "vp_vdpa_mgmt"],
              message: "a vDPA device named \"vdpa0\" already exists"),
        .init(arguments: ["dev", "del", "ghost"], message: "no vDPA device named \"ghost\"; devices: vdpa0"),
        .init(arguments: ["dev", "show", "ghost"], message: "no vDPA device named \"ghost\"; devices: vdpa0"),
        .init(arguments: ["dev", "config", "show", "ghost"], message: "no vDPA device named \"ghost\"; devices: vdpa0"),
        .init(arguments: ["dev", "add", "name", "x", "mgmtdev", "vdpa_sim_mgmt", "mac", "02:00:00:00:00"],
              message: "bad mac \"02:00:00:00:00\": expected six hex octets"),
        .init(arguments: ["dev", "add", "name", "x", "mgmtdev", "vdpa_sim_mgmt", "mac", "03:00:00:00:00:01"],
              message: "bad mac \"03:00:00:00:00:01\": a multicast address"),
        .init(arguments: ["dev", "add", "name", "x", "mgmtdev", "vdpa_sim_mgmt", "mtu", "70000"],
              message: "bad mtu \"70000\": expected a whole number of bytes in 68...65535"),
        .init(arguments: ["dev", "add", "name", "x", "mgmtdev", "vdpa_sim_mgmt", "mtu", "9k"], message: "bad mtu \"9k\""),
        .init(arguments: ["dev", "add", "name", "x", "mgmtdev", "vdpa_sim_mgmt", "max_vqp", "0"],
              message: "bad max_vqp \"0\": expected a whole number of queue pairs, at least 1"),
        .init(arguments: ["dev", "add", "name", "x", "mgmtdev", "vdpa_sim_mgmt", "max_vqp", "5"],
              message: "bad max_vqp \"5\": management device vdpa_sim_mgmt allows 1...4 queue pairs"),
        .init(arguments: ["dev", "add", "name", "x", "mgmtdev", "vdpa_sim_mgmt", "colour", "red"],
              message: "unknown keyword \"colour\" for dev add; expected one of: name, mgmtdev, mac, mtu, max_vqp, device_features"),
        .init(arguments: ["dev", "add", "name", "x", "mgmtdev", "vdpa_sim_mgmt", "mtu"], message: "keyword mtu needs a value"),
        .init(arguments: ["dev", "add", "mgmtdev", "vdpa_sim_mgmt"], message: "dev add needs name NAME"),
        .init(arguments: ["dev", "del"], message: "dev del needs a device name"),
    ]

    @Test(arguments: badCases)
    func aBadCommandFailsWithItsOneMessageAndChangesNothing(_ bad: BadCase) throws {
        let state = StateFile()
        #expect(try state.vqbench("dev", "add", "name", "vdpa0", "mgmtdev", "vdpa_sim_mgmt").status == 0)
        let before = try String(contentsOfFile: state.path, encoding: .utf8)

        let outcome = try VQBenchBinary.run(bad.arguments + ["--state", state.path])
        #expect(outcome.status != 0)
        #expect(outcome.stdout.isEmpty)
        #expect(outcome.stderr.contains(bad.message), "\(outcome.stderr)")
        let lines = outcome.stderr.split(separator: "\n")
        #expect(lines.count == 1, "one message, not usage text: \(outcome.stderr)")

        #expect(try String(contentsOfFile: state.path, encoding: .utf8) == before)
        #expect(try state.vqbench("dev", "show").stdout.hasPrefix("vdpa0: "))
    }

    @Test func aCorruptStateFileIsNamedWithWhatToDo() throws {
        let state = StateFile()
        try Data("not json".utf8).write(to: URL(fileURLWithPath: state.path))
        let outcome = try state.vqbench("dev", "show")
        #expect(outcome.status != 0)
        #expect(outcome.stderr.contains("state file \(state.path): is not a vqbench vDPA state document"))
        #expect(outcome.stderr.contains("delete it to start over"))
    }
}

struct VDPAStateFileTests {
    @Test func theDefaultStateFileFollowsXDGRuntimeDirOrTmp() {
        #expect(VDPAStateFile.defaultPath(environment: ["XDG_RUNTIME_DIR": "/run/user/1000"]) == "/run/user/1000/vqbench-vdpa.json")
        #expect(VDPAStateFile.defaultPath(environment: ["XDG_RUNTIME_DIR": ""]) == "/tmp/vqbench-vdpa.json")
        #expect(VDPAStateFile.defaultPath(environment: [:]) == "/tmp/vqbench-vdpa.json")
    }

    @Test func aRecordReplaysTheRequestItWasMadeFrom() throws {
        let request = VDPADevAddRequest(name: "vdpa0", mgmtdev: "vdpa_sim_mgmt", mac: [2, 0, 0, 0, 0, 0x0a], mtu: 9000, maxVQP: 2,
                                        deviceFeatures: 0x1_0000_0020)
        let record = VDPADeviceRecord(request)
        #expect(record.mac == "02:00:00:00:00:0a")
        #expect(record.deviceFeatures == "0x100000020")
        let decoded = try JSONDecoder().decode(VDPADeviceRecord.self, from: JSONEncoder().encode(record))
        #expect(try decoded.request() == request)
    }
}
