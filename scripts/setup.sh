# Shared by scripts/demo, scripts/walkthrough and scripts/test: installs what Ambit needs on Debian 12, idempotently.
# Sourced, not run. Needs root for apt-get (as the README says).

AMBIT_APT_PACKAGES=(
    # Build: C libraries the capture library links, and pkg-config to find them.
    pkg-config libbpf-dev libnftnl-dev libmnl-dev libyaml-dev
    # Kernel tooling the capture backends and the lab use.
    nftables iproute2 containernetworking-plugins util-linux
    # The lab and its end-to-end tests: clients, packet capture.
    curl tcpdump tshark
    # eBPF: bpftool for `bpf/build.sh check` and the tests (the agent itself loads through libbpf).
    bpftool
    # Benchmarks (Benchmarks/node/run, Benchmarks/mesh/run): bulk TCP, the HAProxy reference sidecar, charts;
    # the system's OpenSSL to compare with BoringSSL (HBONEBench tls-backends).
    iperf3 haproxy python3-matplotlib libssl-dev
    # Independent peers for interoperability tests: HTTP/2 (h2), gRPC (grpcio), HTTP/2 load (h2load).
    python3 python3-h2 python3-grpcio nghttp2-client openssl
    # A real Prometheus text-format parser for the telemetry tests.
    python3-prometheus-client
    # pip for Debian's python3: ambit_install_python_packages (the deploy/ manifest validator).
    python3-pip
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

# Python packages of Tests/Deploy/validate_manifests.py (kubernetes-validate and its
# dependencies, every version pinned in Tests/Deploy/requirements.txt), for Debian's
# /usr/bin/python3, which the tests run. They go into <repo>/.build/python-deps (gitignored; the
# validator adds it to its import path) with `pip install --target`: PEP 668 closes Debian's own
# site-packages to pip, and Debian 12's python3-jsonschema (4.10) is older than the >= 4.23
# kubernetes-validate needs (nor does Debian 12 package python3-referencing). Idempotent: when
# the directory holds exactly the pinned set it returns at once; otherwise it installs into a
# fresh directory and swaps it in, so an interrupted install is never taken for a complete one.
AMBIT_PYTHON=/usr/bin/python3

ambit_install_python_packages() {
    local root target requirements
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    target="$root/.build/python-deps"
    requirements="$root/Tests/Deploy/requirements.txt"
    if cmp -s "$requirements" "$target/.requirements.txt" &&
        PYTHONPATH="$target" "$AMBIT_PYTHON" -c 'import kubernetes_validate' 2>/dev/null; then
        ambit_log "python packages: all present"
        return
    fi
    if ! "$AMBIT_PYTHON" -m pip --version >/dev/null 2>&1; then
        echo "error: $AMBIT_PYTHON has no pip; install the Debian package python3-pip (ambit_install_packages does)" >&2
        exit 1
    fi
    ambit_log "installing python packages (Tests/Deploy/requirements.txt) into .build/python-deps"
    mkdir -p "$root/.build"
    rm -rf "$target.new"
    PIP_ROOT_USER_ACTION=ignore "$AMBIT_PYTHON" -m pip install --quiet --disable-pip-version-check --no-input \
        --no-deps --only-binary=:all: --target "$target.new" --requirement "$requirements"
    if ! PYTHONPATH="$target.new" "$AMBIT_PYTHON" -c 'import kubernetes_validate, jsonschema, yaml'; then
        echo "error: the packages of $requirements installed but do not import; is a dependency missing from it?" >&2
        exit 1
    fi
    cp "$requirements" "$target.new/.requirements.txt"
    rm -rf "$target"
    mv "$target.new" "$target"
}

ambit_check_swift() {
    if ! command -v swift >/dev/null 2>&1; then
        echo "error: swift is not on PATH; install Swift 6.3 (https://www.swift.org/install/linux/)" >&2
        exit 1
    fi
}
