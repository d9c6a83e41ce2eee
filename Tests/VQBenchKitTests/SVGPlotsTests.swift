// The SVG plots: well-formed XML (read back with Foundation's XMLParser), one line per
// series, escaped text, the same bytes for the same run, and a "no data" plot when empty.

import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import VQBenchKit

/// What XMLParser saw in a plot: every element with its attributes, and the text of each
/// `<text>` element.
final class SVGOutline: NSObject, XMLParserDelegate {
    var elements: [(name: String, attributes: [String: String])] = []
    var texts: [String] = []
    private var current: String?
    var text: String { texts.joined(separator: "\n") }

    static func parse(_ svg: String) throws -> SVGOutline {
        let outline = SVGOutline()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = outline
        guard parser.parse() else {
            throw ParseFailure(description: String(describing: parser.parserError))
        }
        return outline
    }

    struct ParseFailure: Error, CustomStringConvertible {
        var description: String
    }

    func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]) {
        elements.append((elementName, attributeDict))
        if elementName == "text" { current = "" }
    }

    func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName qName: String?) {
        if elementName == "text", let current { texts.append(current) }
        current = nil
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        current? += string
    }

    func all(_ name: String, class cssClass: String? = nil) -> [[String: String]] {
        elements.filter { $0.name == name && (cssClass == nil || $0.attributes["class"] == cssClass) }.map(\.attributes)
    }
}

struct SVGPlotsTests {
    @Test func rendersTheThreePlotsAsWellFormedSVG() throws {
        let plots = SVGPlots.render(.reportSample())
        #expect(plots.keys.sorted() == ["latency.svg", "ratios.svg", "throughput-vs-batch.svg"])
        for (name, svg) in plots {
            let outline = try SVGOutline.parse(svg)
            #expect(outline.elements.first?.name == "svg", "\(name)")
            #expect(outline.elements.first?.attributes["xmlns"] == "http://www.w3.org/2000/svg", "\(name)")
        }
    }

    @Test func sameDocumentGivesTheSameBytes() throws {
        let data = try JSONEncoder().encode(ResultsDocument.reportSample())
        var backward = try JSONDecoder().decode(ResultsDocument.self, from: data)
        backward.scenarios.reverse()
        let forward = try JSONDecoder().decode(ResultsDocument.self, from: data)
        #expect(SVGPlots.render(forward) == SVGPlots.render(backward))
    }

    @Test func latencyDrawsOneLinePerMediatorAtTheSharedSettings() throws {
        let outline = try SVGOutline.parse(SVGPlots.latency(.reportSample()))
        // mlx5 measured latency only over eventfd; ifcvf and none share poll at batch 32.
        let series = outline.all("polyline", class: "series").compactMap { $0["data-series"] }
        #expect(series == ["ifcvf †", "none"])
        for line in outline.all("polyline", class: "series") {
            #expect(line["points"]?.split(separator: " ").count == 5)
        }
        for label in ["50%", "90%", "99%", "99.9%", "max", "split · poll · q256 · b32", "2 of 3 latency scenarios"] {
            #expect(outline.text.contains(label), "missing \(label)")
        }
    }

    @Test func latencyLinesClimbWithThePercentile() throws {
        let outline = try SVGOutline.parse(SVGPlots.latency(.reportSample()))
        for line in outline.all("polyline", class: "series") {
            let points = try #require(line["points"]).split(separator: " ").map { $0.split(separator: ",").map { Double($0)! } }
            // SVG y grows downwards: a larger latency sits higher, at a smaller y.
            let xs = points.map { $0[0] }, ys = points.map { $0[1] }
            #expect(xs == xs.sorted())
            #expect(ys == ys.sorted(by: >))
        }
    }

    @Test func throughputDrawsOneLinePerSeriesOfTwoOrMoreBatchSizes() throws {
        // mlx5 ran at one batch size only: no line of one point.
        let outline = try SVGOutline.parse(SVGPlots.throughputVsBatch(.reportSample()))
        let series = outline.all("polyline", class: "series")
        #expect(series.compactMap { $0["data-series"] } == ["split/poll/ifcvf †", "split/poll/none"])
        #expect(series.map { $0["points"]!.split(separator: " ").count } == [2, 2])
        #expect(outline.texts.contains("8") && outline.texts.contains("32"))
    }

    @Test func aRunWithOneBatchSizeGetsNoBatchPlot() {
        var doc = ResultsDocument.reportSample()
        doc.scenarios.removeAll { $0.params.batch != 32 }
        #expect(SVGPlots.render(doc)["throughput-vs-batch.svg"] == nil)
        #expect(SVGPlots.render(.reportSample())["throughput-vs-batch.svg"] != nil)
    }

    @Test func throughputLabelsNameAParameterOnlyWhenItVaries() throws {
        var doc = ResultsDocument.reportSample()
        var wide = ScenarioResult.sweep(mediator: "none", batch: 32, descPerSecond: 1.9e8, ratioToCalibration: 0.475, ratioToBare: 1)
        wide.params.payloadBytes = 1500
        wide.id = "split/poll/none/q256/b32/1500B/hugepage-2M/qp1"
        doc.scenarios.append(wide)
        let outline = try SVGOutline.parse(SVGPlots.throughputVsBatch(doc))
        let series = outline.all("polyline", class: "series").compactMap { $0["data-series"] }
        wide.params.batch = 8
        wide.id = "split/poll/none/q256/b8/1500B/hugepage-2M/qp1"
        doc.scenarios.append(wide)
        let both = try SVGOutline.parse(SVGPlots.throughputVsBatch(doc)).all("polyline", class: "series").compactMap { $0["data-series"] }
        #expect(series == ["split/poll/ifcvf/64B †", "split/poll/none/64B"])
        #expect(both == ["split/poll/ifcvf/64B †", "split/poll/none/1500B", "split/poll/none/64B"])
    }

    @Test func ratiosDrawOneBarPerScenarioGroupedByMediator() throws {
        let outline = try SVGOutline.parse(SVGPlots.ratios(.reportSample()))
        let bars = outline.all("rect", class: "bar")
        #expect(bars.count == 5)
        // mlx5 has no run without a mediator at its settings, so its bar falls back to calibration.
        #expect(outline.text.contains("0.225 × calibration †"))
        #expect(outline.text.contains("0.833 × bare †"))
        #expect(outline.texts.filter { ["ifcvf", "mlx5", "none"].contains($0) } == ["ifcvf", "mlx5", "none"])
    }

    @Test func escapesMarkupInNames() throws {
        var doc = ResultsDocument.sample()
        doc.scenarios[0].params.mediator = "vendor<\"x\"> & 'y'"
        doc.scenarios[0].params.doorbell = "bell<&>"
        doc.tool.gitCommit = "<&>"
        for (name, svg) in SVGPlots.render(doc) {
            let outline = try SVGOutline.parse(svg)
            #expect(outline.text.contains("<&>"), "\(name)")
        }
        let latency = try SVGOutline.parse(SVGPlots.latency(doc))
        // With a single mediator in the run, the latency lines are per layout/doorbell.
        #expect(latency.all("polyline", class: "series").first?["data-series"] == "split/bell<&>")
    }

    @Test func saysNoDataWhenThereIsNothingToPlot() throws {
        var doc = ResultsDocument.sample()
        doc.scenarios = doc.scenarios.filter { $0.status != .ok }
        for (name, svg) in SVGPlots.render(doc) {
            let outline = try SVGOutline.parse(svg)
            #expect(outline.text.contains("no data"), "\(name)")
            #expect(outline.all("polyline").isEmpty && outline.all("rect", class: "bar").isEmpty, "\(name)")
        }
        doc.scenarios = []
        for svg in SVGPlots.render(doc).values {
            #expect(try SVGOutline.parse(svg).text.contains("no data"))
        }
    }

    @Test func leavesZeroLatenciesOffTheLogAxis() throws {
        var doc = ResultsDocument.sample()
        doc.scenarios[0].latencyNs = .init(count: 10, min: 0, mean: 0, p50: 0, p90: 0, p99: 200, p999: 400, max: 800)
        let outline = try SVGOutline.parse(SVGPlots.latency(doc))
        #expect(outline.all("polyline", class: "series").first?["points"]?.split(separator: " ").count == 3)
        doc.scenarios[0].latencyNs = .init(count: 10, min: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0)
        #expect(try SVGOutline.parse(SVGPlots.latency(doc)).text.contains("no data"))
    }
}
