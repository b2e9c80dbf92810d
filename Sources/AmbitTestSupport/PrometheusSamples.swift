/// The samples of a Prometheus text exposition, for tests that ask "how much of this, with these labels"
/// without depending on label order or on the labels they do not care about.
public struct PrometheusSamples: Sendable {
    public struct Sample: Sendable, Equatable {
        public let name: String
        public let labels: [String: String]
        public let value: Double
    }

    public let samples: [Sample]

    public init(_ text: String) {
        samples = text.split(separator: "\n").compactMap(Self.parse)
    }

    /// The sum of the samples of `name` whose labels include every one of `labels`.
    public func sum(_ name: String, _ labels: [String: String] = [:]) -> Double {
        samples.filter { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }
            .reduce(0) { $0 + $1.value }
    }

    /// `name{a="x",b="y"} 12` (label values with `\"`, `\\`, `\n` escapes).
    static func parse(_ line: Substring) -> Sample? {
        guard !line.hasPrefix("#"), let space = line.lastIndex(of: " "),
            let value = Double(line[line.index(after: space)...])
        else { return nil }
        let series = line[..<space]
        guard let brace = series.firstIndex(of: "{") else {
            return Sample(name: String(series), labels: [:], value: value)
        }
        var labels: [String: String] = [:]
        var rest = series[series.index(after: brace)...].dropLast()  // without the closing brace
        while let equals = rest.firstIndex(of: "=") {
            let key = rest[..<equals].trimmingPrefix(",")
            var index = rest.index(after: rest.index(after: equals))  // past `="`
            var text = ""
            while index < rest.endIndex, rest[index] != "\"" {
                if rest[index] == "\\", rest.index(after: index) < rest.endIndex {
                    index = rest.index(after: index)
                    text.append(rest[index] == "n" ? "\n" : rest[index])
                } else {
                    text.append(rest[index])
                }
                index = rest.index(after: index)
            }
            labels[String(key)] = text
            rest = index < rest.endIndex ? rest[rest.index(after: index)...] : ""
        }
        return Sample(name: String(series[..<brace]), labels: labels, value: value)
    }
}
