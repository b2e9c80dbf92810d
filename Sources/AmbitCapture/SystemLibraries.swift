import CLibBPF
import CLibNFTNL

/// The kernel-facing C libraries the capture backends are built on, and proof they link.
public enum SystemLibraries {
    /// libbpf's version, e.g. `1.1`.
    public static var libbpfVersion: String {
        "\(libbpf_major_version()).\(libbpf_minor_version())"
    }

    /// Whether libnftnl can allocate its objects (it is linked and usable).
    public static var libnftnlUsable: Bool {
        guard let table = nftnl_table_alloc() else { return false }
        nftnl_table_free(table)
        return true
    }

    /// Whether libmnl can open a netfilter netlink socket (needs no privilege to open; using it does).
    public static var libmnlUsable: Bool {
        guard let socket = mnl_socket_open(NETLINK_NETFILTER) else { return false }
        mnl_socket_close(socket)
        return true
    }
}
