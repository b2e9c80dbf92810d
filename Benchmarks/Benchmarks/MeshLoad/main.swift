import Foundation
import NIOCore
import NIOPosix

// mesh-load: the benchmark harness's HTTP server and constant-rate load generator
// (Benchmarks/mesh/run runs both inside the lab's pods).
//
//   MeshLoad serve --port 8080 [--response-bytes 1024]
//   MeshLoad http --target 10.244.2.2:8080 --rate 1000 --connections 4 --duration 10 [--warmup 2]
//   MeshLoad connect --target 10.244.2.2:8080 --duration 10 --concurrency 4
//
// `http` is open-loop: every connection sends on a fixed schedule (rate / connections per second,
// the connections' schedules staggered) and each latency runs from the request's *intended* send
// time, so a stalled response also counts the requests it held up (no coordinated omission, as in
// wrk2). HTTP/1.1 keep-alive, one request in flight per connection, `--request-bytes` of POST body.
// Results are one JSON object on stdout.

let arguments = Array(CommandLine.arguments.dropFirst())
guard let command = arguments.first else {
    FileHandle.standardError.write(Data("usage: MeshLoad serve|http|connect [options] (see main.swift)\n".utf8))
    exit(2)
}
let options = Options(Array(arguments.dropFirst()))
do {
    switch command {
    case "serve":
        try LoadServer.run(
            host: options.string("host", default: "0.0.0.0"),
            port: options.int("port", default: 8080),
            responseBytes: options.int("response-bytes", default: 1024),
            threads: options.int("threads", default: 1)
        )
    case "http":
        let report = try ConstantRateClient.run(
            .init(
                target: try options.endpoint("target"),
                path: options.string("path", default: "/"),
                rate: options.double("rate", default: 1000),
                connections: options.int("connections", default: 1),
                duration: options.double("duration", default: 10),
                warmup: options.double("warmup", default: 1),
                requestBytes: options.int("request-bytes", default: 1024)
            )
        )
        print(report)
    case "connect":
        let report = try ConnectionRateClient.run(
            target: try options.endpoint("target"),
            duration: options.double("duration", default: 10),
            concurrency: options.int("concurrency", default: 4)
        )
        print(report)
    default:
        throw OptionError("unknown command \(command): serve, http or connect")
    }
} catch {
    FileHandle.standardError.write(Data("MeshLoad: \(error)\n".utf8))
    exit(1)
}

struct OptionError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// `--name value` pairs.
struct Options {
    private var values: [String: String] = [:]

    init(_ arguments: [String]) {
        var index = 0
        while index < arguments.count {
            let key = arguments[index]
            if key.hasPrefix("--"), index + 1 < arguments.count {
                values[String(key.dropFirst(2))] = arguments[index + 1]
                index += 2
            } else {
                index += 1
            }
        }
    }

    func string(_ name: String, default value: String) -> String { values[name] ?? value }
    func int(_ name: String, default value: Int) -> Int { values[name].flatMap(Int.init) ?? value }
    func double(_ name: String, default value: Double) -> Double { values[name].flatMap(Double.init) ?? value }

    func endpoint(_ name: String) throws -> (host: String, port: Int) {
        guard let text = values[name], let colon = text.lastIndex(of: ":"),
            let port = Int(text[text.index(after: colon)...])
        else { throw OptionError("--\(name) HOST:PORT is required") }
        return (String(text[..<colon]), port)
    }
}
