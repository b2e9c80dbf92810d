import AmbitModel
import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// The lab's kubelet, one per node, run in the node's network namespace as a real kubelet runs on the
/// node: it probes the node's pods with their `readinessProbe` and `livenessProbe` (the Pod spec's
/// semantics: `initialDelaySeconds`, `periodSeconds`, `timeoutSeconds`, success and failure
/// thresholds) and writes what it found to `run/<node>/kubelet.json`, which `ambitctl lab status` shows.
/// Its probes leave the node's namespace like the kubelet's do, so the agent's node rule (``HostRules``
/// in the agent) gives them Istio's probe address and the pods' capture lets them through.
///
/// What it does not do: restart a container whose liveness probe fails (it reports `live: false`), or
/// change the Pod's `Ready` condition in the manifests (endpoint health there is the manifest's).
struct LabKubelet {
    /// What the kubelet reports for one pod.
    struct PodStatus: Codable, Sendable, Equatable {
        /// Ready per its readiness probe; without one, as soon as its app runs (as Kubernetes does).
        var ready: Bool
        /// Alive per its liveness probe (`nil`: no liveness probe).
        var live: Bool?
        /// The last probe's outcome, for `lab status`.
        var message: String
    }

    /// `run/<node>/kubelet.json`.
    struct Report: Codable, Sendable, Equatable {
        var node: String
        var pods: [String: PodStatus]
    }

    /// The consecutive results of one probe, and the verdict they add up to.
    struct ProbeState: Sendable, Equatable {
        let probe: LabSpec.Probe
        let started: Date
        var successes = 0
        var failures = 0
        var passing: Bool
        var lastRun: Date?
        var message = "not probed yet"

        init(probe: LabSpec.Probe, started: Date, initiallyPassing: Bool) {
            self.probe = probe
            self.started = started
            self.passing = initiallyPassing
        }

        /// Whether the probe is due at `now`.
        func isDue(_ now: Date) -> Bool {
            guard now >= started.addingTimeInterval(TimeInterval(probe.initialDelaySeconds)) else { return false }
            guard let lastRun else { return true }
            return now >= lastRun.addingTimeInterval(TimeInterval(probe.periodSeconds))
        }

        /// Counts one result: `successThreshold` successes in a row pass, `failureThreshold` failures fail.
        mutating func record(_ result: Result<String, ProbeFailure>, at now: Date) {
            lastRun = now
            switch result {
            case .success(let text):
                successes += 1
                failures = 0
                message = text
                if successes >= probe.successThreshold { passing = true }
            case .failure(let failure):
                failures += 1
                successes = 0
                message = failure.description
                if failures >= probe.failureThreshold { passing = false }
            }
        }
    }

    struct ProbeFailure: Error, Equatable, CustomStringConvertible {
        let description: String
    }

    let layout: LabLayout
    let node: String

    /// Probes until the process is told to stop; rereads the lab record each round (pods come and go).
    func run(stop: () -> Bool) {
        var readiness: [String: ProbeState] = [:]
        var liveness: [String: ProbeState] = [:]
        var written: Report?
        while !stop() {
            guard let record = try? LabRecordStore(layout: layout).load() else {
                usleep(1_000_000)
                continue
            }
            let now = Date()
            var report = Report(node: node, pods: [:])
            for pod in record.pods where pod.node == node {
                guard let spec = record.spec.pods.first(where: { $0.name == pod.name }) else { continue }
                let appRunning = pod.app?.isAlive ?? true
                if let probe = spec.readinessProbe {
                    var state =
                        readiness[pod.name] ?? ProbeState(probe: probe, started: now, initiallyPassing: false)
                    if let ip = pod.ip, state.isDue(now) { state.record(Self.run(probe, at: ip), at: now) }
                    readiness[pod.name] = state
                }
                if let probe = spec.livenessProbe {
                    var state = liveness[pod.name] ?? ProbeState(probe: probe, started: now, initiallyPassing: true)
                    if let ip = pod.ip, state.isDue(now) { state.record(Self.run(probe, at: ip), at: now) }
                    liveness[pod.name] = state
                }
                let ready = appRunning && (readiness[pod.name]?.passing ?? true)
                report.pods[pod.name] = PodStatus(
                    ready: ready,
                    live: liveness[pod.name]?.passing,
                    message: readiness[pod.name]?.message
                        ?? (appRunning ? "running (no readiness probe)" : "app exited")
                )
            }
            if report != written {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                if let data = try? encoder.encode(report),
                    (try? AtomicFile.write(data, to: layout.kubeletStatus(node: node))) != nil
                {
                    written = report
                }
            }
            usleep(200_000)
        }
    }

    /// The last report of `node`'s kubelet, if it wrote one.
    static func report(layout: LabLayout, node: String) -> Report? {
        guard let data = FileManager.default.contents(atPath: layout.kubeletStatus(node: node)) else { return nil }
        return try? JSONDecoder().decode(Report.self, from: data)
    }

    // MARK: Probing

    /// One probe against `ip`, as the kubelet runs it.
    static func run(_ probe: LabSpec.Probe, at ip: String) -> Result<String, ProbeFailure> {
        guard let address = IPAddress(ip), case .v4(let value) = address else {
            return .failure(ProbeFailure(description: "pod address \(ip) is not IPv4"))
        }
        let timeout = Double(probe.timeoutSeconds)
        let deadline = Date().addingTimeInterval(timeout)
        let socket: ProbeSocket
        do {
            socket = try ProbeSocket(address: value, port: UInt16(probe.action.port), deadline: deadline)
        } catch {
            return .failure(error)
        }
        defer { socket.close() }
        switch probe.action {
        case .tcpSocket(let port):
            return .success("tcp \(ip):\(port) accepted")
        case .httpGet(let path, let port, let headers):
            var request = "GET \(path) HTTP/1.1\r\nHost: \(ip):\(port)\r\nUser-Agent: kube-probe/1.31\r\n"
            request += "Accept: */*\r\nConnection: close\r\n"
            for (name, value) in headers.sorted(by: { $0.key < $1.key }) { request += "\(name): \(value)\r\n" }
            request += "\r\n"
            do {
                try socket.send(Array(request.utf8), deadline: deadline)
                let head = try socket.receiveLine(deadline: deadline)
                // "HTTP/1.1 200 OK": the kubelet's success is 200 <= status < 400.
                let parts = head.split(separator: " ")
                guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let status = Int(parts[1]) else {
                    return .failure(ProbeFailure(description: "http \(ip):\(port)\(path): not an HTTP response"))
                }
                guard (200..<400).contains(status) else {
                    return .failure(ProbeFailure(description: "http \(ip):\(port)\(path): status \(status)"))
                }
                return .success("http \(ip):\(port)\(path): status \(status)")
            } catch {
                return .failure(error)
            }
        }
    }
}

/// A blocking-with-deadline TCP socket for probes (the lab links no networking library).
private struct ProbeSocket {
    let fd: Int32
    let target: String

    init(address: UInt32, port: UInt16, deadline: Date) throws(LabKubelet.ProbeFailure) {
        target = "\(IPAddress.v4(address)):\(port)"
        let fd = Glibc.socket(
            AF_INET,
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
            0
        )
        guard fd >= 0 else { throw .init(description: "socket: \(String(cString: strerror(errno)))") }
        self.fd = fd
        var destination = sockaddr_in()
        destination.sin_family = sa_family_t(AF_INET)
        destination.sin_port = port.bigEndian
        destination.sin_addr.s_addr = address.bigEndian
        let started = withUnsafePointer(to: &destination) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if started != 0 && errno != EINPROGRESS {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw .init(description: "connect \(target): \(reason)")
        }
        do {
            try wait(for: Int16(POLLOUT), until: deadline, doing: "connect")
        } catch {
            Glibc.close(fd)
            throw error
        }
        var status: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &status, &length)
        if status != 0 {
            Glibc.close(fd)
            throw .init(description: "connect \(target): \(String(cString: strerror(status)))")
        }
    }

    func wait(for events: Int16, until deadline: Date, doing what: String) throws(LabKubelet.ProbeFailure) {
        while true {
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else { throw .init(description: "\(what) \(target): timed out") }
            var descriptor = pollfd(fd: fd, events: events, revents: 0)
            let ready = poll(&descriptor, 1, Int32(max(1, remaining * 1000)))
            if ready > 0 { return }
            if ready < 0 && errno != EINTR { throw .init(description: "\(what) \(target): poll failed") }
        }
    }

    func send(_ bytes: [UInt8], deadline: Date) throws(LabKubelet.ProbeFailure) {
        var offset = 0
        while offset < bytes.count {
            try wait(for: Int16(POLLOUT), until: deadline, doing: "send to")
            let sent = bytes[offset...].withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard sent > 0 else { throw .init(description: "send to \(target): \(String(cString: strerror(errno)))") }
            offset += sent
        }
    }

    /// The first line of the answer (the status line), up to 1 KiB.
    func receiveLine(deadline: Date) throws(LabKubelet.ProbeFailure) -> String {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        while !received.contains(UInt8(ascii: "\n")) && received.count < 1024 {
            try wait(for: Int16(POLLIN), until: deadline, doing: "read from")
            let count = Glibc.read(fd, &buffer, buffer.count)
            guard count > 0 else {
                throw .init(description: "read from \(target): connection closed before a status line")
            }
            received += buffer.prefix(count)
        }
        let line = received.split(separator: UInt8(ascii: "\n")).first ?? []
        return String(decoding: line, as: UTF8.self).trimmingWhitespace()
    }

    func close() { Glibc.close(fd) }
}
