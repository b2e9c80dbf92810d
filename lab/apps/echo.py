#!/usr/bin/env python3
"""The Ambit lab's pod app: a threaded TCP server on each --port.

If a connection starts with an HTTP method it answers one HTTP/1.1 response whose body names the app and both
ends of the connection as the app sees them:

    hello from <namespace>/<pod> to <local ip:port> from <peer ip:port>

(Connection: close), with headers that let tests see what arrived: `X-Ambit-Lab-App` (the app),
`X-Ambit-Lab-Request` (the request line) and `X-Ambit-Lab-Request-Headers` (the request's `x-*` and
`traceparent` headers as `name=value; ...`). Path segments anywhere in the path drive the answer:
`/status/<code>` answers that status, `/delay/<ms>` waits first, `/fail-once/<key>` answers 503 the first
time a key is seen and 200 after, `/delay-once/<ms>/<key>` waits only the first time a key is seen, and
`/reset-once/<key>` resets the connection (RST, no answer) the first time a key is seen.
Anything else is echoed back until the peer closes its side, then the connection closes.
Standard library only; runs inside the pod's network namespace (`ambitctl lab up` starts it there).
"""

import argparse
import re
import socket
import socketserver
import struct
import sys
import threading
import time

HTTP_METHODS = (b"GET ", b"HEAD ", b"POST ", b"PUT ", b"DELETE ", b"OPTIONS ", b"PATCH ", b"CONNECT ", b"TRACE ")
MAX_HEADER = 64 * 1024


def looks_like_http(prefix: bytes) -> bool:
    """True once the bytes so far start with a method, False once they cannot, None while undecided."""
    for method in HTTP_METHODS:
        if prefix.startswith(method):
            return True
        if method.startswith(prefix):
            return None
    return False


REASONS = {200: "OK", 403: "Forbidden", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"}
SEEN_KEYS = set()
SEEN_LOCK = threading.Lock()


def first_time(kind, key):
    """True the first time this app sees `key` for `kind` (a path's `-once` behaviour)."""
    with SEEN_LOCK:
        if (kind, key) in SEEN_KEYS:
            return False
        SEEN_KEYS.add((kind, key))
        return True


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        conn = self.request
        conn.settimeout(60)
        buffered = b""
        try:
            while True:
                decision = looks_like_http(buffered)
                if decision is not None:
                    break
                chunk = conn.recv(65536)
                if not chunk:
                    decision = False
                    break
                buffered += chunk
            if decision:
                self.answer_http(conn, buffered)
            else:
                self.echo(conn, buffered)
        except (OSError, socket.timeout):
            pass

    def endpoints(self, conn):
        local = conn.getsockname()
        peer = conn.getpeername()
        return f"{local[0]}:{local[1]}", f"{peer[0]}:{peer[1]}"

    def answer_http(self, conn, buffered):
        while b"\r\n\r\n" not in buffered and len(buffered) < MAX_HEADER:
            chunk = conn.recv(65536)
            if not chunk:
                break
            buffered += chunk
        head, _, rest = buffered.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        request_line = lines[0]
        headers = [line.split(":", 1) for line in lines[1:] if ":" in line]
        echoed = "; ".join(
            f"{name.strip().lower()}={value.strip()}"
            for name, value in headers
            if name.strip().lower().startswith("x-") or name.strip().lower() == "traceparent"
        )
        # Read a declared body so the client is not reset for unread bytes.
        length = next((int(v) for n, v in headers if n.strip().lower() == "content-length" and v.strip().isdigit()), 0)
        while len(rest) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            rest += chunk
        path = request_line.split(" ")[1] if request_line.count(" ") >= 2 else "/"
        status = 200
        if match := re.search(r"/status/(\d{3})", path):
            status = int(match.group(1))
        elif match := re.search(r"/delay/(\d+)", path):
            time.sleep(int(match.group(1)) / 1000)
        elif match := re.search(r"/fail-once/([^/?]+)", path):
            if first_time("fail", match.group(1)):
                status = 503
        elif match := re.search(r"/delay-once/(\d+)/([^/?]+)", path):
            if first_time("delay", match.group(2)):
                time.sleep(int(match.group(1)) / 1000)
        elif match := re.search(r"/reset-once/([^/?]+)", path):
            if first_time("reset", match.group(1)):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                return
        local, peer = self.endpoints(conn)
        head_only = buffered.startswith(b"HEAD ")
        body = f"hello from {self.server.app_name} to {local} from {peer}\n".encode()
        response = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n".encode()
            + b"Content-Type: text/plain\r\n"
            + f"Content-Length: {len(body)}\r\n".encode()
            + f"X-Ambit-Lab-App: {self.server.app_name}\r\n".encode()
            + f"X-Ambit-Lab-Request: {request_line}\r\n".encode("latin-1")
            + f"X-Ambit-Lab-Request-Headers: {echoed}\r\n".encode("latin-1")
            + b"Connection: close\r\n\r\n"
            + (b"" if head_only else body)
        )
        conn.sendall(response)
        conn.shutdown(socket.SHUT_WR)

    def echo(self, conn, buffered):
        if buffered:
            conn.sendall(buffered)
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            conn.sendall(chunk)
        conn.shutdown(socket.SHUT_WR)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    # socketserver's default backlog of 5 overflows under a burst of connections (the kernel then drops
    # handshakes and clients see multi-second SYN retries); a real server listens with a large backlog.
    request_queue_size = 1024

    def __init__(self, address, app_name):
        self.app_name = app_name
        super().__init__(address, Handler)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="namespace/pod, shown in HTTP answers")
    parser.add_argument("--port", type=int, action="append", required=True, help="port to listen on (repeatable)")
    parser.add_argument("--bind", default="0.0.0.0", help="address to listen on")
    args = parser.parse_args()

    servers = [Server((args.bind, port), args.name) for port in args.port]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"echo app {args.name} listening on {', '.join(str(p) for p in args.port)}", flush=True)

    # SIGTERM (what `lab down` sends) keeps its default action: exit at once.
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
