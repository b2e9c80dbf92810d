# Shared by scripts/demo, scripts/walkthrough and scripts/test: installs what Ambit needs on Debian 12, idempotently.
# Sourced, not run. Needs root for apt-get (as the README says).

AMBIT_APT_PACKAGES=(
    # Build: C libraries the capture library links, and pkg-config to find them.
    pkg-config libbpf-dev libnftnl-dev libmnl-dev
    # Kernel tooling the capture backends and the lab use.
    nftables iproute2 containernetworking-plugins util-linux
    # The lab and its end-to-end tests: clients, packet capture.
    curl tcpdump tshark
    # eBPF: bpftool for `bpf/build.sh check` and the tests (the agent itself loads through libbpf).
    bpftool
    # Benchmarks (Benchmarks/node/run).
    iperf3
    # Independent peers for interoperability tests.
    python3 python3-h2 openssl
)

ambit_log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

ambit_install_packages() {
    local missing=()
    for package in "${AMBIT_APT_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$package")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        ambit_log "system packages: all present"
        return
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: missing packages (${missing[*]}); run as root so they can be installed" >&2
        exit 1
    fi
    ambit_log "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ambit_check_swift() {
    if ! command -v swift >/dev/null 2>&1; then
        echo "error: swift is not on PATH; install Swift 6.3 (https://www.swift.org/install/linux/)" >&2
        exit 1
    fi
}
