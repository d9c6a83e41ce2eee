// Regressions injected on purpose, compiled in only with -DVQB_GATE_INJECT, so the CI gate
// can be shown to fail (the self-test in scripts/gate). A normal build contains none of this.

// The extra instructions (VQB_GATE_INJECT_INSTRUCTIONS) and the extra kick
// (VQB_GATE_INJECT_KICK) sit inline in the device and driver halves; the allocation is here.

#if VQB_GATE_INJECT || VQB_GATE_INJECT_MALLOC
/// One heap allocation, in the loop.
final class GateInjectedBox { var value = 0 }

@inline(never) @_optimize(none)
public func gateInjectedAllocation() {
    let box = GateInjectedBox()
    box.value = 1
    withExtendedLifetime(box) {}
}
#endif
