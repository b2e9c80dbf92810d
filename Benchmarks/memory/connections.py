#!/usr/bin/env python3
"""Memory an HBONE listener holds per open connection.

Starts an ambit-waypoint (the same HBONE server and limits as the node agent's pods) on loopback
ports, holds N connections open from distinct 127.x.y.z source addresses, and prints the growth of
its resident memory (VmRSS) per connection, then again once they are closed and once the daemon's
heap trimmer has run. Two kinds:

  tcp  a TCP connection that never starts TLS (what anyone who can reach a pod can open)
  tls  mutual TLS with a mesh certificate and an HTTP/2 preface and SETTINGS, no stream

Usage: Benchmarks/memory/connections.py [--bin .build/release/ambit-waypoint] [--count 2000] tcp|tls
Needs ambitctl next to the binary (for a CA) and openssl (for the client certificate).
"""
import argparse
import os
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request



def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


HBONE, METRICS, READINESS, ADMIN = (free_port() for _ in range(4))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit(f"process {pid} is gone (its log is next to the CA, in the work directory)")


def client_certificate(ca, directory):
    key, csr, pem, ext = (os.path.join(directory, name) for name in ("client.key", "client.csr", "client.pem", "ext"))
    with open(ext, "w") as f:
        f.write("subjectAltName=URI:spiffe://cluster.local/ns/demo/sa/client\n"
                "extendedKeyUsage=clientAuth,serverAuth\nkeyUsage=digitalSignature\n")
    run = lambda *args: subprocess.run(args, check=True, capture_output=True)
    run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
    run("openssl", "req", "-new", "-key", key, "-subj", "/O=cluster.local", "-out", csr)
    run("openssl", "x509", "-req", "-in", csr, "-CA", f"{ca}/ca-cert.pem", "-CAkey", f"{ca}/ca-key.pem",
        "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", pem)
    return pem, key


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=".build/release/ambit-waypoint")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("kind", choices=["tcp", "tls"])
    args = parser.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = tempfile.mkdtemp(prefix="ambit-connections-")
    ca, manifests = os.path.join(work, "ca"), os.path.join(work, "manifests")
    os.mkdir(manifests)
    ambitctl = os.path.join(os.path.dirname(args.bin), "ambitctl")
    subprocess.run([ambitctl, "ca", "init", "--dir", ca], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    context.load_cert_chain(*client_certificate(ca, work))

    agent = subprocess.Popen(
        [args.bin, "--gateway", "demo/waypoint", "--manifests", manifests, "--ca-dir", ca, "--listen", "127.0.0.1",
         "--hbone-port", str(HBONE), "--metrics-port", str(METRICS), "--readiness-port", str(READINESS),
         "--admin-port", str(ADMIN), "--hbone-handshake-timeout-seconds", "600", "--hbone-idle-timeout-seconds",
         "600", "--hbone-max-connections-per-source", str(args.count + 100)],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "waypoint.log"), "w"))
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{READINESS}/healthz/ready").read()
                break
            except OSError:
                time.sleep(0.1)

        def connect(index):
            source = f"127.{index // 62500 % 250 + 1}.{index // 250 % 250 + 1}.{index % 250 + 1}"
            sock = socket.create_connection(("127.0.0.1", HBONE), source_address=(source, 0))
            if args.kind == "tls":
                sock = context.wrap_socket(sock)
                sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            return sock

        warm = [connect(index) for index in range(20)]  # first-use allocations out of the figure
        time.sleep(1)
        before = rss_kib(agent.pid)
        held = [connect(20 + index) for index in range(args.count)]
        time.sleep(2)
        after = rss_kib(agent.pid)
        print(f"{args.kind}: {args.count} connections, RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB, "
              f"{(after - before) / args.count:.1f} KiB each")
        for sock in held + warm:
            sock.close()
        time.sleep(3)
        print(f"{args.kind}: all closed, RSS {rss_kib(agent.pid) / 1024:.1f} MiB")
        time.sleep(32)  # the daemons return free heap to the kernel every 30 s (HeapTrimmer)
        print(f"{args.kind}: 35 s later, RSS {rss_kib(agent.pid) / 1024:.1f} MiB")
    finally:
        agent.terminate()
        agent.wait()


if __name__ == "__main__":
    sys.exit(main())
