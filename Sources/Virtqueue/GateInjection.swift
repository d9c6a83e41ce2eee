// Regressions injected on purpose, compiled in only with -DVQB_GATE_INJECT, so the CI gate
// can be shown to fail (scripts/gate-selftest). A normal build contains none of this.

#if VQB_GATE_INJECT || VQB_GATE_INJECT_INSTRUCTIONS || VQB_GATE_INJECT_KICK || VQB_GATE_INJECT_MALLOC
/// A few extra instructions per descriptor the optimiser cannot remove: an out-of-line
/// bounds check against a value it cannot see through (~+3 % instructions per descriptor).
@inline(never) @_optimize(none)
public func gateInjectedBoundsCheck(_ value: UInt32, _ limit: Int) -> Bool {
    Int(value) <= limit &* 4096
}

/// One heap allocation, in the loop.
final class GateInjectedBox { var value = 0 }

@inline(never) @_optimize(none)
public func gateInjectedAllocation() {
    let box = GateInjectedBox()
    box.value = 1
    withExtendedLifetime(box) {}
}
#endif
