import AmbitCapture
import AmbitModel
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Root-only tests: they create network namespaces and install netfilter rules.
let isRoot = getuid() == 0

/// Runs a command (for `ip` and `nft`) and returns its standard output; throws on a non-zero exit.
enum Command {
    struct Failure: Error, CustomStringConvertible {
        let command: [String]
        let status: Int32
        let output: String
        var description: String { "`\(command.joined(separator: " "))` exited \(status): \(output)" }
    }

    @discardableResult
    static func run(_ arguments: String...) throws -> String {
        try run(arguments)
    }

    @discardableResult
    static func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let stdout = output.fileHandleForReading.readDataToEndOfFile()
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: stdout, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw Failure(
                command: arguments,
                status: process.terminationStatus,
                output: text + String(decoding: stderr, as: UTF8.self)
            )
        }
        return text
    }
}

/// A throwaway named network namespace (`ip netns add ambit-t-…`) with `lo` up.
final class TestNamespace: Sendable {
    let name: String
    let namespace: NetworkNamespace

    init(_ role: String) throws {
        name = "ambit-t-\(role)-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        try Command.run("ip", "netns", "add", name)
        do {
            try Command.run("ip", "-n", name, "link", "set", "lo", "up")
            namespace = try NetworkNamespace.open(path: "/run/netns/\(name)")
        } catch {
            _ = try? Command.run("ip", "netns", "delete", name)
            throw error
        }
    }

    deinit {
        _ = try? Command.run("ip", "netns", "delete", name)
    }

    /// `ip -n <name> …`
    @discardableResult
    func ip(_ arguments: String...) throws -> String {
        try Command.run(["ip", "-n", name] + arguments)
    }

    /// `ip netns exec <name> nft …`
    @discardableResult
    func nft(_ arguments: String...) throws -> String {
        try Command.run(["ip", "netns", "exec", name, "nft"] + arguments)
    }
}

/// A "pod" namespace wired to a "client" namespace by a veth pair:
///
///     pod: vp 10.77.0.1/24, fd77::1/64 ── client: vc 10.77.0.2/24, fd77::2/64, and 10.9.9.9 / fd99::9 on lo
///
/// The pod routes 10.9.9.0/24 and fd99::/64 through the client, so "the internet" is the client namespace.
struct PodLab {
    let pod: TestNamespace
    let client: TestNamespace
    let executor: NetnsExecutor

    static let podIP = IPAddress.v4(0x0a4d_0001)  // 10.77.0.1
    static let clientIP = IPAddress.v4(0x0a4d_0002)  // 10.77.0.2
    static let remoteIP = IPAddress.v4(0x0a09_0909)  // 10.9.9.9
    static let remoteIPv6 = IPAddress("fd99::9")!

    init() throws {
        pod = try TestNamespace("pod")
        client = try TestNamespace("cli")
        executor = NetnsExecutor(threadCount: 2)
        try pod.ip("link", "add", "vp", "type", "veth", "peer", "name", "vc", "netns", client.name)
        try pod.ip("addr", "add", "10.77.0.1/24", "dev", "vp")
        try pod.ip("-6", "addr", "add", "fd77::1/64", "dev", "vp", "nodad")
        try pod.ip("link", "set", "vp", "up")
        try client.ip("addr", "add", "10.77.0.2/24", "dev", "vc")
        try client.ip("-6", "addr", "add", "fd77::2/64", "dev", "vc", "nodad")
        try client.ip("link", "set", "vc", "up")
        try client.ip("addr", "add", "10.9.9.9/32", "dev", "lo")
        try client.ip("-6", "addr", "add", "fd99::9/128", "dev", "lo")
        try pod.ip("route", "add", "10.9.9.0/24", "via", "10.77.0.2")
        try pod.ip("-6", "route", "add", "fd99::/64", "via", "fd77::2")
    }

    func inPod<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await executor.run(in: pod.namespace, body)
    }

    func inClient<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await executor.run(in: client.namespace, body)
    }

    /// The agent's in-pod listener for captured plaintext inbound (15006), as the node agent opens it.
    func inboundPlaintextListener() async throws -> Int32 {
        try await inPod {
            try CaptureSockets.listener(
                address: IPEndpoint(.v4(0), MeshPorts.inboundPlaintext),
                mark: MeshMarks.agentSocket,
                reusePort: true,
                transparent: true
            )
        }
    }
}

/// Blocking helpers over the non-blocking descriptors `CaptureSockets` returns.
enum SocketIO {
    struct Timeout: Error {}

    static func wait(_ fd: Int32, for events: Int16, timeout: Duration = .seconds(3)) throws {
        var descriptor = pollfd(fd: fd, events: events, revents: 0)
        let milliseconds = Int32(
            timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000
        )
        guard poll(&descriptor, 1, milliseconds) == 1 else { throw Timeout() }
    }

    /// Accepts one connection, or throws `Timeout`.
    static func accept(_ listener: Int32, timeout: Duration = .seconds(3)) throws -> Int32 {
        try wait(listener, for: Int16(POLLIN), timeout: timeout)
        let fd = Glibc.accept(listener, nil, nil)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        return fd
    }

    /// Whether a connection is waiting to be accepted.
    static func hasPendingConnection(_ listener: Int32) -> Bool {
        var descriptor = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) == 1
    }

    static func send(_ fd: Int32, _ text: String) throws {
        try wait(fd, for: Int16(POLLOUT))
        let bytes = Array(text.utf8)
        guard Glibc.write(fd, bytes, bytes.count) == bytes.count else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
    }

    static func receive(_ fd: Int32) throws -> String {
        try wait(fd, for: Int16(POLLIN))
        var buffer = [UInt8](repeating: 0, count: 1024)
        let count = Glibc.read(fd, &buffer, buffer.count)
        guard count >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        return String(decoding: buffer.prefix(count), as: UTF8.self)
    }
}

/// Lines of `nft list ruleset` without handles and trailing blank lines, for exact comparison.
func normalizedRuleset(_ text: String) -> String {
    text.split(separator: "\n", omittingEmptySubsequences: false)
        .map { $0.replacing(#/ # handle \d+/#, with: "") }
        .joined(separator: "\n")
        .trimmingCharacters(in: .whitespacesAndNewlines)
}
