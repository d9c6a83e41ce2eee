// The drawing surface under SVGPlots: hand-written SVG text with axes, series and a legend.
// Coordinates are printed with one decimal through ReportFormat so the same plot is the same bytes.

import Foundation

struct SVGCanvas {
    static let width = 900.0
    /// The plot area; the legend sits to its right, the title above.
    static let left = 80.0, right = 640.0, top = 70.0

    let height: Double
    var bottom: Double { height - 55 }
    private var body: [String] = []

    /// Okabe–Ito's colour-blind-safe palette (minus its yellow, unreadable on white), then two
    /// darker tones; series beyond ten reuse colours, and the legend still tells them apart.
    static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#882255", "#999999", "#44AA99"]

    static func color(_ index: Int) -> String { palette[index % palette.count] }

    init(title: String, subtitle: String, height: Double = 480) {
        self.height = height
        text(Self.left, 28, title, size: 18, weight: "bold")
        text(Self.left, 50, subtitle, size: 12, fill: "#444444")
    }

    static func n(_ x: Double) -> String { ReportFormat.decimal(x, 1) }

    mutating func text(_ x: Double, _ y: Double, _ s: String, size: Int = 12, anchor: String = "start",
                       weight: String = "normal", fill: String = "#000000") {
        body.append("<text x=\"\(Self.n(x))\" y=\"\(Self.n(y))\" font-size=\"\(size)\" text-anchor=\"\(anchor)\""
            + " font-weight=\"\(weight)\" fill=\"\(fill)\">\(ReportFormat.xml(s))</text>")
    }

    mutating func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, stroke: String = "#000000",
                       width: Double = 1, dash: String? = nil) {
        body.append("<line x1=\"\(Self.n(x1))\" y1=\"\(Self.n(y1))\" x2=\"\(Self.n(x2))\" y2=\"\(Self.n(y2))\""
            + " stroke=\"\(stroke)\" stroke-width=\"\(Self.n(width))\"" + (dash.map { " stroke-dasharray=\"\($0)\"" } ?? "") + "/>")
    }

    mutating func rect(_ x: Double, _ y: Double, _ w: Double, _ h: Double, fill: String, cssClass: String? = nil,
                       title: String? = nil) {
        let open = "<rect" + (cssClass.map { " class=\"\($0)\"" } ?? "")
            + " x=\"\(Self.n(x))\" y=\"\(Self.n(y))\" width=\"\(Self.n(max(0, w)))\" height=\"\(Self.n(max(0, h)))\" fill=\"\(fill)\""
        if let title {
            body.append(open + "><title>\(ReportFormat.xml(title))</title></rect>")
        } else {
            body.append(open + "/>")
        }
    }

    /// One series: a polyline through its points with a marker on each, so a one-point series
    /// still shows. `label` is repeated in a data attribute for tools that read the plot back.
    mutating func series(_ points: [(x: Double, y: Double)], color: String, label: String) {
        let list = points.map { "\(Self.n($0.x)),\(Self.n($0.y))" }.joined(separator: " ")
        body.append("<polyline class=\"series\" data-series=\"\(ReportFormat.xml(label))\" points=\"\(list)\""
            + " fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" stroke-linejoin=\"round\"/>")
        for p in points {
            body.append("<circle cx=\"\(Self.n(p.x))\" cy=\"\(Self.n(p.y))\" r=\"3\" fill=\"\(color)\"/>")
        }
    }

    mutating func frame(xLabel: String, yLabel: String) {
        line(Self.left, bottom, Self.right, bottom)
        line(Self.left, Self.top, Self.left, bottom)
        text((Self.left + Self.right) / 2, height - 15, xLabel, anchor: "middle")
        let cy = (Self.top + bottom) / 2
        body.append("<text x=\"18\" y=\"\(Self.n(cy))\" font-size=\"12\" text-anchor=\"middle\""
            + " transform=\"rotate(-90 18 \(Self.n(cy)))\">\(ReportFormat.xml(yLabel))</text>")
    }

    mutating func xTick(_ x: Double, _ label: String) {
        line(x, Self.top, x, bottom, stroke: "#DDDDDD")
        line(x, bottom, x, bottom + 5)
        text(x, bottom + 19, label, size: 11, anchor: "middle")
    }

    mutating func yTick(_ y: Double, _ label: String) {
        line(Self.left, y, Self.right, y, stroke: "#DDDDDD")
        line(Self.left - 5, y, Self.left, y)
        text(Self.left - 8, y + 4, label, size: 11, anchor: "end")
    }

    /// `footnote` lines go under the entries, one per line: the legend column is narrow.
    mutating func legend(_ entries: [(label: String, color: String)], footnote: [String]) {
        var y = Self.top + 6
        for entry in entries {
            rect(Self.right + 20, y - 9, 12, 12, fill: entry.color)
            text(Self.right + 38, y + 1, entry.label, size: 11)
            y += 18
        }
        y += 12
        for line in footnote {
            text(Self.right + 20, y, line, size: 10, fill: "#444444")
            y += 14
        }
    }

    func svg() -> String {
        let w = Self.n(Self.width), h = Self.n(height)
        return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            + "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(w)\" height=\"\(h)\" viewBox=\"0 0 \(w) \(h)\""
            + " font-family=\"Helvetica, Arial, sans-serif\">\n"
            + "<rect x=\"0\" y=\"0\" width=\"\(w)\" height=\"\(h)\" fill=\"#FFFFFF\"/>\n"
            + body.joined(separator: "\n") + "\n</svg>\n"
    }

    /// A plot with nothing to draw says so, rather than failing or leaving an empty frame.
    static func noData(title: String, reason: String) -> String {
        var canvas = SVGCanvas(title: title, subtitle: "", height: 200)
        canvas.text(width / 2, 110, "no data: " + reason, size: 14, anchor: "middle", fill: "#444444")
        return canvas.svg()
    }
}

/// A logarithmic (base 10) axis over whole decades that cover the data.
struct LogAxis {
    let lowDecade: Int, highDecade: Int
    let from: Double, to: Double

    /// `values` must hold at least one positive finite value.
    init(covering values: [Double], from: Double, to: Double) {
        let positive = values.filter { $0 > 0 && $0.isFinite }
        lowDecade = ReportFormat.exponent10(positive.min()!)
        let top = ReportFormat.exponent10(positive.max()!) + 1
        highDecade = max(top, lowDecade + 1)
        self.from = from
        self.to = to
    }

    func position(_ v: Double) -> Double {
        let t = (log10(v) - Double(lowDecade)) / Double(highDecade - lowDecade)
        return from + t * (to - from)
    }

    var decades: [Double] { (lowDecade...highDecade).map(ReportFormat.power10) }
}

/// A linear axis from zero to a round number at or above the largest value.
struct LinearAxis {
    let maximum: Double, step: Double
    let from: Double, to: Double

    init(upTo largest: Double, from: Double, to: Double) {
        let target = largest > 0 && largest.isFinite ? largest : 1
        // Steps of 1, 2 or 5 × 10^k giving at most six intervals, the way people draw axes by hand.
        let raw = target / 6
        let magnitude = ReportFormat.power10(ReportFormat.exponent10(raw))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        self.step = step
        var maximum = step
        while maximum < target { maximum += step }
        self.maximum = maximum
        self.from = from
        self.to = to
    }

    func position(_ v: Double) -> Double { from + v / maximum * (to - from) }

    var ticks: [Double] {
        // Multiples rather than a running sum, which would drift (0.6000000000000001).
        let count = Int((maximum / step).rounded())
        return (0...count).map { Double($0) * step }
    }
}
