// Small helpers shared by the ring tests.

/// Evaluates a mutating call outside `#expect`'s closure (which captures its operand immutably).
@inline(never)
func value<T>(_ v: T) -> T { v }
