// `vqbench mgmtdev …` and `vqbench dev …`: the `vdpa` tool's nouns (iproute2 vdpa(8)) over this
// package's management devices, in its keyword-value style and output shapes. Created devices
// persist in a state file between invocations (VQBenchKit/Management).

import ArgumentParser
import VQBenchKit

struct VDPAToolOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The state file created devices persist in.", discussion: "Default: ${XDG_RUNTIME_DIR:-/tmp}/vqbench-vdpa.json"),
            completion: .file())
    var state: String?

    @Flag(help: "Print as JSON ({\"mgmtdev\"|\"dev\"|\"config\": {NAME: {…}}}, vdpa -jp's shape).")
    var json = false

    var stateFile: VDPAStateFile { VDPAStateFile(path: state ?? VDPAStateFile.defaultPath()) }

    /// The state replayed into a fresh tool.
    func nouns() throws(VDPAToolError) -> VDPANouns {
        let file = stateFile
        return try VDPANouns(replaying: file.load(), statePath: file.path)
    }

    /// Replays the state, applies `change`, saves the result; one invocation at a time.
    func change(_ change: (VDPANouns) throws(VDPAToolError) -> Void) throws(VDPAToolError) {
        let file = stateFile
        try file.withLock { () throws(VDPAToolError) in
            let nouns = try VDPANouns(replaying: file.load(), statePath: file.path)
            try change(nouns)
            try file.save(nouns.document)
        }
    }

    func emit(text: [String], json: @autoclosure () -> String) {
        if self.json {
            print(json())
        } else {
            for line in text { print(line) }
        }
    }
}

// MARK: - mgmtdev

struct MgmtdevCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mgmtdev",
        abstract: "The management devices that create vDPA devices (vdpa mgmtdev), one per parent.",
        subcommands: [MgmtdevShowCommand.self],
        defaultSubcommand: MgmtdevShowCommand.self)
}

struct MgmtdevShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show every management device, or the one named: supported classes, max virtqueues, device features.")

    @OptionGroup var options: VDPAToolOptions
    @Argument(parsing: .allUnrecognized, help: "[MGMTDEV]") var words: [String] = []

    func run() throws {
        let name = try VDPAArguments.optionalName(words, command: "mgmtdev show")
        let shown = try options.nouns().mgmtdevShow(name)
        options.emit(text: VDPAOutput.text(shown), json: VDPAOutput.json(shown))
    }
}

// MARK: - dev

struct DevCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "vDPA devices (vdpa dev): add, del, show, config show. Devices persist in --state between invocations.",
        subcommands: [DevShowCommand.self, DevAddCommand.self, DevDelCommand.self, DevConfigCommand.self],
        defaultSubcommand: DevShowCommand.self)
}

struct DevShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Show every device, or the one named: type, mgmtdev, vendor_id, max_vqs, max_vq_size.")

    @OptionGroup var options: VDPAToolOptions
    @Argument(parsing: .allUnrecognized, help: "[DEV]") var words: [String] = []

    func run() throws {
        let name = try VDPAArguments.optionalName(words, command: "dev show")
        let devices = try options.nouns().devShow(name)
        options.emit(text: VDPAOutput.text(devices), json: VDPAOutput.json(devices))
    }
}

struct DevAddCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Add a device: name NAME mgmtdev MGMTDEV [mac MACADDR] [mtu MTU] [max_vqp MAX_VQ_PAIRS] [device_features HEX].",
        discussion: """
            Keyword-value pairs in any order, as vdpa(8) takes them. The MTU is 68…65535; max_vqp \
            at least 1 and at most the management device's limit (vqbench mgmtdev show: \
            max_supported_vqs / 2); device_features a hex mask of features the management device supports.
            """)

    @OptionGroup var options: VDPAToolOptions
    @Argument(parsing: .allUnrecognized, help: "name NAME mgmtdev MGMTDEV [mac MACADDR] [mtu MTU] [max_vqp N] [device_features HEX]")
    var words: [String] = []

    func run() throws {
        let request = try VDPAArguments.devAdd(words)
        try options.change { nouns throws(VDPAToolError) in try nouns.devAdd(request) }
    }
}

struct DevDelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "del", abstract: "Delete the device named.")

    @OptionGroup var options: VDPAToolOptions
    @Argument(parsing: .allUnrecognized, help: "DEV") var words: [String] = []

    func run() throws {
        let name = try VDPAArguments.requiredName(words, command: "dev del")
        try options.change { nouns throws(VDPAToolError) in try nouns.devDel(name) }
    }
}

struct DevConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "A device's configuration space (vdpa dev config).",
        subcommands: [DevConfigShowCommand.self],
        defaultSubcommand: DevConfigShowCommand.self)
}

struct DevConfigShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show every device's configuration, or the named one's: mac, link, max_vq_pairs, mtu, negotiated features.")

    @OptionGroup var options: VDPAToolOptions
    @Argument(parsing: .allUnrecognized, help: "[DEV]") var words: [String] = []

    func run() throws {
        let name = try VDPAArguments.optionalName(words, command: "dev config show")
        let configs = try options.nouns().devConfigShow(name)
        options.emit(text: VDPAOutput.text(configs), json: VDPAOutput.json(configs))
    }
}
