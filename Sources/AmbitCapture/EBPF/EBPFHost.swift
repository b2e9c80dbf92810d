import AmbitModel
import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// What the eBPF capture needs from the host, checked before anything is loaded (capabilities, a
/// cgroup-v2 mount, bpffs), and the small kernel interfaces it uses (mountinfo, sysctls, libbpf's log).
extension EBPFCapture {
    /// CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN in the effective set.
    static func requireCapabilities() throws(CaptureError) {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
            let effective = UInt64(line.dropFirst("CapEff:".count).trimmingWhitespace(newlines: false), radix: 16)
        else { return }  // cannot tell: let the kernel decide
        let missing = missingCapabilities(effective: effective)
        guard missing.isEmpty else {
            throw .unsupported(
                feature: "eBPF capture",
                detail:
                    "missing \(missing.joined(separator: ", ")) (effective capabilities \(String(effective, radix: 16)))"
            )
        }
    }

    static func missingCapabilities(effective: UInt64) -> [String] {
        func has(_ bit: UInt64) -> Bool { effective & (1 << bit) != 0 }
        var missing: [String] = []
        if !has(39) && !has(21) { missing.append("CAP_BPF (or CAP_SYS_ADMIN)") }
        if !has(12) { missing.append("CAP_NET_ADMIN") }
        return missing
    }

    /// The first cgroup2 mount in /proc/self/mountinfo.
    static func findCgroup2Mount(mountinfo: String? = nil) throws(CaptureError) -> String {
        let text = mountinfo ?? ((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "")
        if let path = cgroup2Mount(in: text) { return path }
        throw .unsupported(
            feature: "cgroup v2",
            detail: "no cgroup2 file system in /proc/self/mountinfo; the eBPF capture attaches its outbound programs "
                + "to the cgroup-v2 root (mount one, or use --capture nftables)"
        )
    }

    static func cgroup2Mount(in mountinfo: String) -> String? {
        Mounts.parse(mountinfo).first { $0.type == "cgroup2" && $0.root == "/" }?.point
    }
}

/// The bpffs the pins live on.
enum BPFFilesystem {
    static let magic: Int = 0xcafe_4a11
    static let mountPoint = "/sys/fs/bpf"

    /// Makes sure `directory` is on a bpffs, mounting one at /sys/fs/bpf when allowed and needed.
    static func ensureMounted(below directory: String, mount allowed: Bool) throws(CaptureError) {
        var parent = directory
        while !parent.isEmpty, access(parent, F_OK) != 0 {
            parent = FilePaths.parent(of: parent)
        }
        if isBPF(parent) { return }
        guard allowed, directory.hasPrefix(mountPoint + "/") || directory == mountPoint else {
            throw .unsupported(
                feature: "bpffs",
                detail: "\(parent) is not on a bpf file system (mount -t bpf bpf \(mountPoint))"
            )
        }
        guard Glibc.mount("bpf", mountPoint, "bpf", 0, "mode=0700") == 0 else {
            throw .unsupported(
                feature: "bpffs",
                detail:
                    "mounting a bpf file system at \(mountPoint) failed: \(CaptureError.describe(errno: Glibc.errno))"
            )
        }
    }

    /// Whether `path` lies on a bpffs: the file system of the longest mount point above it.
    static func isBPF(_ path: String, mountinfo: String? = nil) -> Bool {
        let text = mountinfo ?? ((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "")
        let containing = Mounts.parse(text).filter { mount in
            path == mount.point || mount.point == "/" || path.hasPrefix(mount.point + "/")
        }
        return containing.max { $0.point.count < $1.point.count }?.type == "bpf"
    }
}

/// Lines of /proc/self/mountinfo: "<id> <parent> <maj:min> <root> <mount point> <options> [optional...] -
/// <fstype> <source> <super options>" (spaces in paths escaped as \040).
enum Mounts {
    struct Mount: Equatable {
        var root: String
        var point: String
        var type: String
    }

    static func parse(_ mountinfo: String) -> [Mount] {
        mountinfo.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: " ")
            guard let dash = parts.firstIndex(of: "-"), dash + 1 < parts.count, parts.count > 4 else { return nil }
            func unescape(_ text: Substring) -> String { String(text.replacing("\\040", with: " ")) }
            return Mount(root: unescape(parts[3]), point: unescape(parts[4]), type: String(parts[dash + 1]))
        }
    }
}
