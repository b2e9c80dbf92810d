#!/usr/bin/env python3
"""The Ambit lab's pod app: a threaded TCP server on each --port.

If a connection starts with an HTTP method it answers one HTTP/1.1 200 whose body names the app and both
ends of the connection as the app sees them:

    hello from <namespace>/<pod> to <local ip:port> from <peer ip:port>

(Connection: close). Anything else is echoed back until the peer closes its side, then the connection closes.
Standard library only; runs inside the pod's network namespace (`ambitctl lab up` starts it there).
"""

import argparse
import socket
import socketserver
import sys
import threading

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
        local, peer = self.endpoints(conn)
        head_only = buffered.startswith(b"HEAD ")
        body = f"hello from {self.server.app_name} to {local} from {peer}\n".encode()
        response = (
            b"HTTP/1.1 200 OK\r\n"
            b"Content-Type: text/plain\r\n"
            + f"Content-Length: {len(body)}\r\n".encode()
            + f"X-Ambit-Lab-App: {self.server.app_name}\r\n".encode()
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
