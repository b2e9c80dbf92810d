public import AmbitModel
import CLibBPF
import FoundationEssentials
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The eBPF capture backend: the programs of `bpf/ambit_capture.bpf.c` (embedded at build time), loaded and
/// attached through libbpf. See `bpf/README.md` for the programs, maps and why each piece is there.
///
/// Once per agent: the cgroup programs (connect4/6, sockops, getsockopt, getpeername4/6) are attached to the
/// host's cgroup-v2 root. Per pod: the netns cookie and pod addresses go into `enrolled_netns`, the agent's
/// inbound plaintext listener into `inbound_listeners`, and the `sk_lookup` program is attached to the pod's
/// network namespace. Maps and links are pinned under `pinDirectory`, so while the agent is down capture stays
/// in force and fails closed (outbound refused, inbound reset), exactly like nftables rules left in place; a
/// restarted agent reuses the maps and moves the links to its freshly loaded programs.
public final class EBPFCapture: @unchecked Sendable {
    public struct Options: Sendable {
        /// Where maps and links are pinned (on a bpffs); one directory per agent.
        public var pinDirectory: String
        /// The cgroup-v2 directory the cgroup programs attach to; `nil` finds the cgroup2 mount.
        public var cgroupPath: String?
        /// Mount a bpffs at /sys/fs/bpf when none is there.
        public var mountBPFFilesystem: Bool

        public init(pinDirectory: String, cgroupPath: String? = nil, mountBPFFilesystem: Bool = true) {
            self.pinDirectory = pinDirectory
            self.cgroupPath = cgroupPath
            self.mountBPFFilesystem = mountBPFFilesystem
        }
    }

    /// The cgroup programs and where their links are pinned.
    static let cgroupPrograms = [
        "ambit_connect4", "ambit_connect6", "ambit_sockops", "ambit_getsockopt", "ambit_getpeername4",
        "ambit_getpeername6",
    ]

    public let pinDirectory: String
    public let cgroupPath: String
    private let object: OpaquePointer
    private let enrolledMap: Int32
    private let listenerMap: Int32
    /// Pod `sk_lookup` links by netns cookie (`bpf_link *` as bit patterns: pointers are not Sendable).
    private let podLinks = Mutex<[UInt64: UInt]>([:])

    /// Checks the host, loads the programs and attaches the cgroup programs. Throws
    /// ``CaptureError/unsupported(feature:detail:)`` naming what is missing.
    public init(options: Options) throws(CaptureError) {
        try Self.requireCapabilities()
        if let path = options.cgroupPath {
            cgroupPath = path
        } else {
            cgroupPath = try Self.findCgroup2Mount()
        }
        try BPFFilesystem.ensureMounted(below: options.pinDirectory, mount: options.mountBPFFilesystem)
        pinDirectory = options.pinDirectory
        try Self.makeDirectory(pinDirectory)
        try Self.makeDirectory(pinDirectory + "/links")
        try Self.makeDirectory(pinDirectory + "/pods")
        object = try Self.load(pinDirectory: pinDirectory)
        enrolledMap = bpf_object__find_map_fd_by_name(object, "enrolled_netns")
        listenerMap = bpf_object__find_map_fd_by_name(object, "inbound_listeners")
        // Every stored property is set from here on: a throw runs deinit, which closes the object.
        guard enrolledMap >= 0, listenerMap >= 0 else {
            throw .unexpectedReply(
                operation: "load eBPF object",
                detail: "maps enrolled_netns/inbound_listeners missing"
            )
        }
        try attachCgroupPrograms()
    }

    deinit {
        podLinks.withLock { links in links.values.forEach { bpf_link__destroy(OpaquePointer(bitPattern: $0)) } }
        bpf_object__close(object)
    }

    // MARK: Per pod

    /// Captures the pod whose namespace is `netns`: `cookie` is its netns cookie, `inboundListener` the agent's
    /// 0.0.0.0:15006 listener in it (still open). Idempotent: a pod already captured is updated in place.
    public func enroll(
        netns: NetworkNamespace,
        cookie: UInt64,
        addresses: [IPAddress],
        inboundListener: Int32
    ) throws(CaptureError) {
        var value = EBPFMapLayout.netnsConfig(addresses: addresses)
        var key = cookie
        try Self.check(bpf_map_update_elem(enrolledMap, &key, &value, UInt64(BPF_ANY)), "update enrolled_netns")
        try setInboundListener(addresses: addresses, inboundListener: inboundListener)
        try attachLookup(netns: netns, cookie: cookie)
    }

    /// Points `inbound_listeners` for `addresses` at `inboundListener` (a 15006 listener, still open). The
    /// kernel removes the entries when that socket closes.
    public func setInboundListener(addresses: [IPAddress], inboundListener: Int32) throws(CaptureError) {
        for address in addresses {
            try Self.check(
                insertListener(inboundListener, for: address, flags: BPF_ANY),
                "insert the 15006 listener for \(address) into inbound_listeners"
            )
        }
    }

    /// Inserts `inboundListener` for each of `addresses` that has no entry (`BPF_NOEXIST`: an entry another
    /// socket holds stays). True when one was missing.
    public func restoreMissingInboundListener(addresses: [IPAddress], inboundListener: Int32) -> Bool {
        addresses.map { insertListener(inboundListener, for: $0, flags: BPF_NOEXIST) == 0 }.contains(true)
    }

    /// `inbound_listeners[address] = listener` with the map update `flags`; the `bpf_map_update_elem` status.
    private func insertListener(_ listener: Int32, for address: IPAddress, flags: Int) -> Int32 {
        var fd = UInt64(listener)
        var key = EBPFMapLayout.listenerKey(address)
        return bpf_map_update_elem(listenerMap, &key, &fd, UInt64(flags))
    }

    /// Ends the capture of the pod with netns `cookie`: no more outbound redirection, the `sk_lookup` link is
    /// unpinned and detached. Its listener entries go when the agent closes the listener. Idempotent.
    public func release(cookie: UInt64) {
        var key = cookie
        _ = bpf_map_delete_elem(enrolledMap, &key)
        let path = lookupLinkPath(cookie)
        let link =
            podLinks.withLock { $0.removeValue(forKey: cookie) }.flatMap(OpaquePointer.init(bitPattern:))
            ?? bpf_link__open(path)
        if let link {
            _ = bpf_link__unpin(link)
            bpf_link__destroy(link)
        }
        unlink(path)
    }

    /// Whether the pod with netns `cookie` is captured (in `enrolled_netns` and its lookup link pinned).
    public func isEnrolled(cookie: UInt64) -> Bool {
        var key = cookie
        var value = [UInt8](repeating: 0, count: EBPFMapLayout.netnsConfigSize)
        return bpf_map_lookup_elem(enrolledMap, &key, &value) == 0 && access(lookupLinkPath(cookie), F_OK) == 0
    }

    /// The cookies in `enrolled_netns` (pods this node's programs capture, including ones restored from pins).
    public func enrolledCookies() -> [UInt64] {
        var cookies: [UInt64] = []
        var previous: UInt64 = 0
        var next: UInt64 = 0
        var hasPrevious = false
        while true {
            let status =
                hasPrevious
                ? bpf_map_get_next_key(enrolledMap, &previous, &next) : bpf_map_get_next_key(enrolledMap, nil, &next)
            guard status == 0 else { break }
            cookies.append(next)
            previous = next
            hasPrevious = true
        }
        return cookies
    }

    /// Forgets pods a previous agent captured that this one has not enrolled again (their namespace died
    /// while the agent was down): their `enrolled_netns` entries and pinned `sk_lookup` links. Call once the
    /// restore is done. Returns the cookies removed.
    @discardableResult
    public func pruneUnknownPods() -> [UInt64] {
        let known = Set(podLinks.withLock { Array($0.keys) })
        var stale = Set(enrolledCookies().filter { !known.contains($0) })
        let pinned = (try? FileManager.default.contentsOfDirectory(atPath: "\(pinDirectory)/pods")) ?? []
        for name in pinned where name.hasPrefix("sk_lookup-") {
            if let cookie = UInt64(name.dropFirst("sk_lookup-".count)), !known.contains(cookie) {
                stale.insert(cookie)
            }
        }
        for cookie in stale { release(cookie: cookie) }
        return stale.sorted()
    }

    /// Whether no pod is captured: `enrolled_netns` is empty and no `sk_lookup` link is pinned. Anything
    /// that cannot be read counts as captured.
    public var capturesNoPod: Bool {
        var next: UInt64 = 0
        guard bpf_map_get_next_key(enrolledMap, nil, &next) != 0, errno == ENOENT else { return false }
        guard let pinned = try? FileManager.default.contentsOfDirectory(atPath: "\(pinDirectory)/pods") else {
            return access("\(pinDirectory)/pods", F_OK) != 0 && errno == ENOENT
        }
        return !pinned.contains { $0.hasPrefix("sk_lookup-") }
    }

    /// Detaches the cgroup programs and removes every pin, for an agent that stops with no pod captured
    /// (``capturesNoPod``): with no pod to keep failing closed, nothing of Ambit stays attached to the host.
    /// The maps go when this object is closed.
    public func detachFromHost() {
        for cookie in podLinks.withLock({ Array($0.keys) }) { release(cookie: cookie) }
        Self.uninstall(pinDirectory: pinDirectory)
    }

    /// Removes the pins: with no process holding the links (the agent is stopped), that detaches every program
    /// and frees the maps, so capture is off for every pod of this agent. `ambit-node` does not do this when it
    /// stops with pods captured, on purpose (they fail closed until it is back); `ambit-node uninstall` and
    /// `lab down` do.
    public static func uninstall(pinDirectory: String) {
        for directory in ["links", "pods"] {
            let path = "\(pinDirectory)/\(directory)"
            for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] {
                unlink("\(path)/\(name)")
            }
            rmdir(path)
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: pinDirectory)) ?? [] {
            unlink("\(pinDirectory)/\(name)")
        }
        rmdir(pinDirectory)
    }

    // MARK: Loading and attaching

    private func lookupLinkPath(_ cookie: UInt64) -> String { Self.lookupLinkPath(pinDirectory, cookie) }

    private static func lookupLinkPath(_ pinDirectory: String, _ cookie: UInt64) -> String {
        "\(pinDirectory)/pods/sk_lookup-\(cookie)"
    }

    /// Whether the pins under `pinDirectory` hold a `sk_lookup` link for the pod with netns `cookie`.
    public static func hasPinnedPod(pinDirectory: String, cookie: UInt64) -> Bool {
        access(lookupLinkPath(pinDirectory, cookie), F_OK) == 0
    }

    private func attachLookup(netns: NetworkNamespace, cookie: UInt64) throws(CaptureError) {
        guard let program = bpf_object__find_program_by_name(object, "ambit_sk_lookup") else {
            throw .unexpectedReply(operation: "load eBPF object", detail: "program ambit_sk_lookup missing")
        }
        let path = lookupLinkPath(cookie)
        if podLinks.withLock({ $0[cookie] }) != nil { return }
        let link = try Self.attachOrUpdate(path: path, program: program, what: "sk_lookup in \(netns.path)") {
            bpf_program__attach_netns(program, netns.fd)
        }
        podLinks.withLock { $0[cookie] = UInt(bitPattern: link) }
    }

    private func attachCgroupPrograms() throws(CaptureError) {
        let cgroup = open(cgroupPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard cgroup >= 0 else { throw CaptureError.lastSystemError("open cgroup", cgroupPath) }
        defer { close(cgroup) }
        for name in Self.cgroupPrograms {
            guard let program = bpf_object__find_program_by_name(object, name) else {
                throw .unexpectedReply(operation: "load eBPF object", detail: "program \(name) missing")
            }
            let link = try Self.attachOrUpdate(
                path: "\(pinDirectory)/links/\(name)",
                program: program,
                what: "\(name) to cgroup \(cgroupPath)"
            ) { bpf_program__attach_cgroup(program, cgroup) }
            bpf_link__destroy(link)  // pinned: stays attached
        }
    }

    /// Moves a pinned link (left by a previous agent) to `program`, or attaches anew and pins.
    private static func attachOrUpdate(
        path: String,
        program: OpaquePointer,
        what: String,
        attach: () -> OpaquePointer?
    ) throws(CaptureError) -> OpaquePointer {
        if access(path, F_OK) == 0, let pinned = bpf_link__open(path) {
            if bpf_link__update_program(pinned, program) == 0 { return pinned }
            // A link that can no longer be updated (say, its netns is gone): replace it.
            _ = bpf_link__unpin(pinned)
            bpf_link__destroy(pinned)
        }
        unlink(path)
        guard let link = attach() else {
            throw CaptureError.system(operation: "attach \(what)", object: path, errno: Glibc.errno)
        }
        let pinned = bpf_link__pin(link, path)
        guard pinned == 0 else {
            bpf_link__destroy(link)
            throw CaptureError.system(operation: "pin link", object: path, errno: -pinned)
        }
        return link
    }

    private static func load(pinDirectory: String) throws(CaptureError) -> OpaquePointer {
        guard let bytes = Data(base64Encoded: EmbeddedBPFObject.captureBase64) else {
            throw .invalidArgument("the embedded eBPF object is not valid base64")
        }
        let messages = LibBPFLog.capture()
        defer { LibBPFLog.release() }
        let opened: OpaquePointer? = pinDirectory.withCString { pinRoot in
            "ambit_capture".withCString { name in
                var options = bpf_object_open_opts()
                options.sz = MemoryLayout<bpf_object_open_opts>.size
                options.object_name = name
                options.pin_root_path = pinRoot
                return bytes.withUnsafeBytes { buffer in
                    bpf_object__open_mem(buffer.baseAddress, buffer.count, &options)
                }
            }
        }
        guard let object = opened else {
            throw .system(operation: "open the eBPF object", object: "ambit_capture.bpf.o", errno: Glibc.errno)
        }
        let status = bpf_object__load(object)
        guard status == 0 else {
            bpf_object__close(object)
            let log = messages().suffix(12).joined(separator: "\n")
            throw .unsupported(
                feature: "eBPF capture",
                detail: "the kernel refused the programs: \(CaptureError.describe(errno: -status))"
                    + (log.isEmpty ? "" : "; libbpf/verifier says:\n\(log)")
            )
        }
        return object
    }

    /// `mkdir -p` with mode 0700.
    private static func makeDirectory(_ path: String) throws(CaptureError) {
        var current = ""
        for component in path.split(separator: "/") {
            current += "/\(component)"
            guard mkdir(current, 0o700) == 0 || Glibc.errno == EEXIST else {
                throw CaptureError.lastSystemError("mkdir", current)
            }
        }
    }

    private static func check(_ status: Int32, _ operation: String) throws(CaptureError) {
        guard status == 0 else {
            throw .system(operation: operation, object: "eBPF map", errno: status < 0 ? -status : Glibc.errno)
        }
    }
}

extension EBPFCapture {
    /// The in-namespace half of an eBPF pod capture, run on a thread inside the pod's network namespace: the
    /// return path for the agent's transparent dials (policy routing `fwmark 0x111 lookup 100` as with nftables,
    /// plus `net.ipv4.tcp_fwmark_accept=1` so the app's accepted socket takes the dial's mark 0x111 and its
    /// replies are routed back to the agent). Returns the namespace's cookie.
    ///
    /// `fwmark_reflect` gives the kernel's own answers to the dial (a reset from a closed port, ICMP) the dial's
    /// mark too, so they reach the agent instead of leaving towards the real client.
    public static func prepareCurrentNamespace() throws(CaptureError) -> UInt64 {
        try PolicyRouting.install()
        try setReturnPathSysctls("1")
        return try currentNamespaceCookie()
    }

    private static func setReturnPathSysctls(_ value: String) throws(CaptureError) {
        try Sysctl.write("net/ipv4/tcp_fwmark_accept", value)
        try Sysctl.write("net/ipv4/fwmark_reflect", value)
        if access("/proc/sys/net/ipv6/fwmark_reflect", F_OK) == 0 {
            try Sysctl.write("net/ipv6/fwmark_reflect", value)
        }
    }

    /// Undoes ``prepareCurrentNamespace()`` (on a thread inside the pod's namespace); returns its cookie.
    public static func cleanCurrentNamespace() throws(CaptureError) -> UInt64 {
        let cookie = try currentNamespaceCookie()
        try PolicyRouting.uninstall()
        try setReturnPathSysctls("0")
        return cookie
    }

    /// The netns cookie of the calling thread's network namespace.
    public static func currentNamespaceCookie() throws(CaptureError) -> UInt64 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw CaptureError.lastSystemError("socket", "netns cookie") }
        defer { close(fd) }
        return try CaptureSockets.netnsCookie(fd: fd)
    }
}

/// Map keys and values of `bpf/ambit_capture.h`, byte for byte (addresses in network order, IPv4 in the
/// first four bytes of a 16-byte field, host-order integers little-endian as on the machines we run on).
enum EBPFMapLayout {
    static let netnsConfigSize = 24
    static let listenerKeySize = 20
    static let familyIPv4: UInt32 = 2
    static let familyIPv6: UInt32 = 10

    /// `struct ambit_netns_config {u32 flags; be32 pod_ip4; u8 pod_ip6[16]}`.
    static func netnsConfig(addresses: [IPAddress]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: netnsConfigSize)
        if let v4 = addresses.first(where: \.isIPv4) {
            bytes.replaceSubrange(4..<8, with: v4.bytes)
        }
        if let v6 = addresses.first(where: { !$0.isIPv4 }) {
            bytes.replaceSubrange(8..<24, with: v6.bytes)
        }
        return bytes
    }

    /// `struct ambit_listener_key {u32 family; u8 addr[16]}`.
    static func listenerKey(_ address: IPAddress) -> [UInt8] {
        let family = address.isIPv4 ? familyIPv4 : familyIPv6
        var bytes = withUnsafeBytes(of: family.littleEndian) { Array($0) }
        bytes += address.bytes + [UInt8](repeating: 0, count: 16 - address.bytes.count)
        return bytes
    }
}

/// libbpf's messages (including the verifier log on a failed load), collected while loading so a refusal can
/// say why. libbpf's print callback is process-wide.
enum LibBPFLog {
    private static let lines = Mutex<[String]?>(nil)

    static func capture() -> () -> [String] {
        lines.withLock { $0 = [] }
        libbpf_set_print { _, format, arguments in
            guard let format, let arguments else { return 0 }
            var buffer = [CChar](repeating: 0, count: 4096)
            let written = vsnprintf(&buffer, buffer.count, format, arguments)
            let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                .trimmingWhitespace()
            LibBPFLog.append(text)
            return written
        }
        return { lines.withLock { $0 ?? [] } }
    }

    static func append(_ text: String) {
        lines.withLock { $0?.append(contentsOf: text.split(separator: "\n").map(String.init)) }
    }

    static func release() {
        libbpf_set_print(nil)
        lines.withLock { $0 = nil }
    }
}
