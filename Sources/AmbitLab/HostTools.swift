import AmbitModel
import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// Absolute paths of the host programs the lab drives, found once before any change is made.
struct HostTools: Sendable {
    var nsenter: String
    var ip: String
    var python3: String?
    var curl: String?

    /// Where to look besides `$PATH` (sbin directories are often missing from a user's PATH).
    static let extraDirectories = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]

    static func find(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":").map(String.init) ?? []
        for directory in path + extraDirectories {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    static func require(_ name: String, package: String) throws -> String {
        guard let path = find(name) else {
            throw LabError("\(name) not found; install it with `apt-get install \(package)`")
        }
        return path
    }

    /// Fails unless running as root: creating namespaces and running CNI plugins needs CAP_SYS_ADMIN/NET_ADMIN.
    static func requireRoot(_ action: String) throws {
        guard geteuid() == 0 else {
            throw LabError("`ambitctl lab \(action)` creates network namespaces and must run as root (try sudo)")
        }
    }

    /// Checks every tool `lab up` will use, so a missing one fails before the first namespace exists.
    static func locate(python: Bool, curl: Bool, cniBinDir: String) throws -> HostTools {
        let tools = HostTools(
            nsenter: try require("nsenter", package: "util-linux"),
            ip: try require("ip", package: "iproute2"),
            python3: python ? try realPython(try require("python3", package: "python3")) : nil,
            curl: curl ? try require("curl", package: "curl") : nil
        )
        for plugin in ["bridge", "host-local"] {
            let path = "\(cniBinDir)/\(plugin)"
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw LabError(
                    "CNI plugin \(path) not found; install it with `apt-get install containernetworking-plugins` "
                        + "or pass --cni-bin-dir"
                )
            }
        }
        return tools
    }

    /// The interpreter behind `python3` (a pyenv shim or wrapper script would otherwise be the recorded process).
    static func realPython(_ python: String) throws -> String {
        let result = try ProcessCommandRunner().run(python, ["-c", "import sys; print(sys.executable)"])
        let path = result.standardOutput.trimmingWhitespace()
        guard result.succeeded, FileManager.default.isExecutableFile(atPath: path) else {
            throw LabError("\(python) does not run: \(result.combinedOutput)")
        }
        return path
    }

    /// Tools for commands that only enter namespaces (exec, status, down).
    static func locateBasic() throws -> HostTools {
        HostTools(
            nsenter: try require("nsenter", package: "util-linux"),
            ip: try require("ip", package: "iproute2"),
            python3: find("python3"),
            curl: find("curl")
        )
    }
}
