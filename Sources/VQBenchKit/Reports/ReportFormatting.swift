// Shared pieces of the reports (Markdown, SVG, exports, compare): number formats that never
// consult a locale, text escaping, the run id, and the modelled-parameter marks.

extension ResultsDocument {
    /// The run's name in results/: UTC start time without separators, then the short commit
    /// ("20261126T000000Z-abc1234"), so files sort by time and name the code that ran.
    public var runID: String {
        let time = String(startedAt.filter { $0 != "-" && $0 != ":" })
        guard let commit = tool.gitCommit, !commit.isEmpty else { return time }
        return time + "-" + String(commit.prefix(7))
    }
}

extension ScenarioResult {
    /// Whether the scenario's figures rest on a modelled value rather than only on measurement.
    public var dependsOnModel: Bool { !modelled.isEmpty }
}

enum ReportFormat {
    /// `fixed` keeps whole digits in an Int, so beyond about 1e15 it would trap; such values
    /// (and the denormal ones below) are written in scientific form instead.
    static func decimal(_ x: Double, _ digits: Int) -> String {
        guard x.isFinite else { return fixed(x, digits) }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        if abs(x) * scale >= 1e15 { return scientific(x, 3) }
        return fixed(x, digits)
    }

    /// `m.mmme±X` with `digits` decimals in the mantissa.
    static func scientific(_ x: Double, _ digits: Int) -> String {
        guard x.isFinite, x != 0 else { return fixed(x, digits) }
        var exponent = exponent10(abs(x))
        var mantissa = x / power10(exponent)
        // Rounding can carry the mantissa to 10.000; renormalise so it reads 1.000e(n+1).
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        if (abs(mantissa) * scale).rounded() >= 10 * scale {
            exponent += 1
            mantissa = x / power10(exponent)
        }
        return fixed(mantissa, digits) + "e" + (exponent < 0 ? "-" : "+") + String(abs(exponent))
    }

    /// A value whose magnitude is not known in advance (modelled parameters): integers as
    /// integers, others with up to six decimals and no trailing zeros.
    static func compact(_ x: Double) -> String {
        guard x.isFinite else { return fixed(x, 0) }
        if x == x.rounded(), abs(x) < 1e15 { return String(Int(x)) }
        if abs(x) < 1e-4 || abs(x) >= 1e15 { return scientific(x, 3) }
        var s = fixed(x, 6)
        while s.hasSuffix("0") { s.removeLast() }
        if s.hasSuffix(".") { s.removeLast() }
        return s
    }

    /// Nanoseconds as microseconds, with precision that suits the magnitude (0.180, 12.50, 250.0).
    static func micros(_ ns: Double) -> String {
        let us = ns / 1000
        let a = abs(us)
        return decimal(us, a < 10 ? 3 : a < 100 ? 2 : a < 1000 ? 1 : 0)
    }

    /// Per-second counts as millions per second.
    static func mega(_ perSecond: Double) -> String { decimal(perSecond / 1e6, 2) }

    /// floor(log10(x)) for positive finite x, by scaling rather than `log10` so exact powers
    /// of ten land on their own exponent.
    static func exponent10(_ x: Double) -> Int {
        var exponent = 0
        var v = x
        while v >= 10 { v /= 10; exponent += 1 }
        while v < 1 { v *= 10; exponent -= 1 }
        return exponent
    }

    static func power10(_ exponent: Int) -> Double {
        var p = 1.0
        for _ in 0..<abs(exponent) { p *= 10 }
        return exponent < 0 ? 1 / p : p
    }

    /// Escapes the five XML special characters for SVG text and attribute values.
    static func xml(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(c)
            }
        }
        return out
    }

    /// Text made safe for a Markdown table cell: a `|` would end the cell, a newline the row.
    static func cell(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "|": out += "\\|"
            case "\n", "\r", "\r\n": out += " "
            default: out.append(c)
            }
        }
        return out
    }
}
