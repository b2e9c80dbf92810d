import AmbitCNI
import AmbitModel
import ArgumentParser
import FoundationEssentials
import Glibc
import Synchronization

/// `ambit-cni install|uninstall`: puts the plugin on a node and chains it after the primary CNI.
struct CNIInstallCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ambit-cni",
        abstract: "Ambit's chained CNI plugin, and its installer.",
        discussion: """
            Without arguments this is the CNI plugin the container runtime executes (CNI_COMMAND, \
            network configuration on stdin). The subcommands install it on a node, as the ambit-node \
            DaemonSet's install-cni container does (deploy/daemonset.yaml).
            """,
        subcommands: [Install.self, Uninstall.self]
    )

    struct Directories: ParsableArguments {
        @Option(help: "The runtime's CNI plugin directory.")
        var cniBinDir = "/opt/cni/bin"

        @Option(help: "The runtime's CNI network configuration directory.")
        var cniConfDir = "/etc/cni/net.d"
    }

    struct Install: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy ambit-cni into the CNI bin directory and chain it after the primary network plugin.",
            discussion: """
                Adds {"type": "ambit-cni", ...} as the last plugin of the first configuration in the conf \
                directory (a .conf becomes a .conflist). With --watch it keeps checking and chains the plugin \
                again when the primary CNI rewrites its configuration; on SIGTERM it exits and LEAVES the chain \
                in place, so an upgrade never lets an enrolled pod start uncaptured (the plugin refuses enrolled \
                pods while no agent answers). `ambit-cni uninstall` removes it.
                """
        )

        @OptionGroup var directories: Directories

        @Option(help: "The agent's CNI socket, as the plugin on the host will see it.")
        var agentSocket = CNIPlugin.defaultAgentSocket

        @Option(help: "The agent's enrollment state, as the plugin on the host will see it.")
        var enrollmentFile = CNIPlugin.defaultEnrollmentFile

        @Option(help: "Comma-separated namespaces whose pods never wait for the agent (its own, the control plane's).")
        var excludeNamespaces = "kube-system,ambit-system"

        @Option(help: "The plugin binary to install (default: this executable).")
        var pluginBinary: String?

        @Flag(
            help:
                "Chain the plugin only once the agent has published its enrollment state (pods keep starting meanwhile)."
        )
        var waitForAgent = false

        @Flag(help: "Keep running: re-chain when the configuration changes, until SIGTERM.")
        var watch = false

        @Option(help: "With --watch: seconds between checks.")
        var interval: Double = 2

        func validate() throws {
            guard interval > 0 else { throw ValidationError("--interval must be positive") }
        }

        func run() throws {
            var options = CNIInstaller.Options(
                binDirectory: directories.cniBinDir,
                confDirectory: directories.cniConfDir,
                pluginBinary: pluginBinary ?? "/proc/self/exe"
            )
            options.agentSocket = agentSocket
            options.enrollmentFile = enrollmentFile
            options.excludeNamespaces = excludeNamespaces.split(separator: ",").map { $0.trimmingWhitespace() }
                .filter { !$0.isEmpty }
            let installer = CNIInstaller(options: options)
            let stop = TerminationFlag()
            do {
                if try installer.installBinary() { log("installed \(directories.cniBinDir)/ambit-cni") }
                if waitForAgent {
                    log("waiting for the agent's enrollment state at \(enrollmentFile)")
                    while !FileManager.default.fileExists(atPath: enrollmentFile) {
                        if stop.wait(seconds: 0.5) { return }
                    }
                }
                log(try installer.chain().description)
            } catch {
                log("error: \(error)")
                throw ExitCode.failure
            }
            guard watch else { return }
            var lastProblem: String?
            while !stop.wait(seconds: interval) {
                do {
                    if !installer.binaryInstalled, try installer.installBinary() {
                        log("re-installed \(directories.cniBinDir)/ambit-cni")
                    }
                    let outcome = try installer.chain()
                    if case .chained = outcome { log(outcome.description) }
                    lastProblem = nil
                } catch {
                    // Keep trying (the primary CNI may be rewriting its file); say so once.
                    if lastProblem != error.description { log("error: \(error)") }
                    lastProblem = error.description
                }
            }
            log("stopping; the chain stays in place (ambit-cni uninstall removes it)")
        }
    }

    struct Uninstall: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove ambit-cni from every CNI configuration and the bin directory."
        )

        @OptionGroup var directories: Directories

        @Flag(help: "Then block until SIGTERM (as the main container of a clean-up DaemonSet).")
        var thenWait = false

        func run() throws {
            let installer = CNIInstaller(
                options: .init(
                    binDirectory: directories.cniBinDir,
                    confDirectory: directories.cniConfDir,
                    pluginBinary: ""
                )
            )
            do {
                let changed = try installer.uninstall()
                log(changed.isEmpty ? "nothing to remove" : "removed ambit-cni from \(changed.joined(separator: ", "))")
            } catch {
                log("error: \(error)")
                throw ExitCode.failure
            }
            if thenWait {
                let stop = TerminationFlag()
                while !stop.wait(seconds: 3600) {}
            }
        }
    }
}

private func log(_ line: String) {
    CNIPlugin.write("ambit-cni: \(line)\n", to: STDERR_FILENO)
}

/// Set by SIGTERM or SIGINT; `wait` sleeps until it is set or the time is up.
private final class TerminationFlag: Sendable {
    private static let signalled = Atomic<Bool>(false)

    init() {
        signal(SIGTERM) { _ in TerminationFlag.signalled.store(true, ordering: .relaxed) }
        signal(SIGINT) { _ in TerminationFlag.signalled.store(true, ordering: .relaxed) }
        // A parent may have started us with these blocked (the mask is inherited): unblock them.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        sigprocmask(SIG_UNBLOCK, &set, nil)
    }

    /// Returns true once a termination signal arrived.
    func wait(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if Self.signalled.load(ordering: .relaxed) { return true }
            usleep(100_000)
        }
        return Self.signalled.load(ordering: .relaxed)
    }
}
