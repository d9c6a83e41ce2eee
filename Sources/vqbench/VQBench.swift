// vqbench: the command-line front of VirtqueueBench (DESIGN.md, top layer).

import ArgumentParser

@main
struct VQBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vqbench",
        abstract: "Measure virtio virtqueues, doorbells and vDPA mediation strategies.",
        subcommands: [RunCommand.self, ListCommand.self, CalibrateCommand.self, ReportCommand.self, CompareCommand.self, GateCommand.self, MemoryCommand.self, RingCommand.self, DoorbellsCommand.self, WorkloadCommand.self, RelayCostCommand.self, MigrateCommand.self, LifecycleCommand.self, DoctorCommand.self, MgmtdevCommand.self, DevCommand.self, MeasureRoundCommand.self, ServeCommand.self])
}
