import AmbitCLI
import AmbitLab
import AmbitTelemetry
import ArgumentParser
import Logging

struct Ambitctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ambitctl",
        abstract: "Operate an Ambit ambient mesh: certificates, manifests, policies, the local lab.",
        discussion: """
            Typical first steps:
              ambitctl ca init --dir ./ca
              ambitctl cert issue --ca ./ca --spiffe spiffe://cluster.local/ns/demo/sa/client --out ./client
              ambitctl config validate examples/foundation
              ambitctl policy check --manifests examples/foundation --from demo/client --to 10.96.0.20:80
              ambitctl lab up && ambitctl lab status && ambitctl lab down
            """,
        subcommands: [
            CACommand.self, CertCommand.self, ConfigCommand.self, PolicyCommand.self, LabCommand.self,
            WaypointCommand.self,
        ]
    )
}

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    @Option(help: "Log format: text or json.")
    var logFormat: LogFormat = .text

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .warning

    func bootstrap() -> Logger {
        logFormat.bootstrap(level: logLevel)
        return Logger(label: "ambitctl")
    }
}

/// A failure the CLI reports as `Error: <message>` with exit status 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}
