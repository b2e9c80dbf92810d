#!/usr/bin/env python3
"""An independent HBONE peer, written against the wire format in docs/protocols.md with the Python
`h2` package and the standard `ssl` module: mutual TLS 1.3, ALPN h2, HTTP/2 CONNECT.

client: opens one CONNECT tunnel, sends a payload, half-closes, reads until the server ends the
        stream (and --settle seconds more), and prints one JSON line: {"status", "sent", "sent_sha256",
        "received", "received_sha256", "frames_after_end"}; the last lists the frame types the server
        sent on the tunnel's stream after it ended (a cleanly finished stream gets none).
server: accepts HBONE connections and relays each CONNECT to --upstream; prints "listening <port>".
"""
import argparse
import hashlib
import json
import os
import socket
import ssl
import sys
import threading

import h2.config
import h2.connection
import h2.events
import h2.settings


def pattern(size):
    """The same bytes as any deterministic source would do: a counter modulo 251."""
    return bytes((index * 7 + 3) % 251 for index in range(size))


def peer_spiffe_id(tls):
    for kind, value in tls.getpeercert().get("subjectAltName", ()):
        if kind == "URI" and value.startswith("spiffe://"):
            return value
    return None


def tls_context(server, cert, key, ca):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert, key)
    context.load_verify_locations(ca)
    context.verify_mode = ssl.CERT_REQUIRED
    if not server:
        context.check_hostname = False  # HBONE has no SNI; the SPIFFE SAN is checked below
    context.set_alpn_protocols(["h2"])
    return context


class Peer:
    """An h2 connection over a blocking TLS socket, shared by threads under one lock."""

    def __init__(self, tls, client_side):
        self.tls = tls
        # Every frame received, as (type, flags, stream id), split from the raw bytes independently of h2
        # (which hides frames it ignores, such as RST_STREAM on a stream already closed).
        self.frames = []
        self._unparsed = bytearray()
        # A server first receives the client's 24-byte connection preface, which is not a frame.
        self._preface = 0 if client_side else 24
        self.lock = threading.Condition()
        # h2 4.1 insists on :scheme and :path, which a plain CONNECT must not carry (RFC 9113
        # 8.5); header validation is off and the CONNECT rules are checked here instead.
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=client_side,
                header_encoding="utf-8",
                validate_outbound_headers=False,
                validate_inbound_headers=False,
            )
        )
        # The reference window; the frame size stays at the 16 KiB default, so the Swift side
        # must honour a peer's smaller SETTINGS_MAX_FRAME_SIZE.
        self.h2.local_settings = h2.settings.Settings(client=client_side, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 4 << 20,
        })
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(16 << 20)
        self.flush()

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.tls.sendall(data)

    def send_data(self, stream_id, data, end_stream=False):
        """Sends respecting both flow-control windows; waits for WINDOW_UPDATE when needed."""
        view = memoryview(data)
        with self.lock:
            while view:
                window = min(self.h2.local_flow_control_window(stream_id), self.h2.max_outbound_frame_size)
                if window <= 0:
                    self.lock.wait(1)
                    continue
                chunk, view = view[:window], view[window:]
                self.h2.send_data(stream_id, bytes(chunk))
                self.flush()
            if end_stream:
                self.h2.end_stream(stream_id)
                self.flush()

    def receive(self):
        """Reads from TLS and returns h2 events (None at end of connection)."""
        data = self.tls.recv(65536)
        if not data:
            return None
        self._split_frames(data)
        with self.lock:
            events = self.h2.receive_data(data)
            for event in events:
                if isinstance(event, h2.events.DataReceived):
                    self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            self.flush()
            self.lock.notify_all()
        return events


    def _split_frames(self, data):
        self._unparsed += data
        if self._preface:
            skipped = min(self._preface, len(self._unparsed))
            del self._unparsed[:skipped]
            self._preface -= skipped
        while len(self._unparsed) >= 9:
            length = int.from_bytes(self._unparsed[0:3], "big")
            if len(self._unparsed) < 9 + length:
                break
            kind, flags = self._unparsed[3], self._unparsed[4]
            stream_id = int.from_bytes(self._unparsed[5:9], "big") & 0x7FFFFFFF
            self.frames.append((kind, flags, stream_id))
            del self._unparsed[: 9 + length]


FRAME_NAMES = {0: "DATA", 1: "HEADERS", 2: "PRIORITY", 3: "RST_STREAM", 4: "SETTINGS", 5: "PUSH_PROMISE",
               6: "PING", 7: "GOAWAY", 8: "WINDOW_UPDATE", 9: "CONTINUATION"}


def run_client(args):
    context = tls_context(False, args.cert, args.key, args.ca)
    report, session = exchange(context, args)
    if args.resume:
        # A second connection offering the first one's TLS session (if the server issued a ticket).
        second, _ = exchange(context, args, session)
        report["second"] = second
        report["session_ticket"] = session is not None and session.has_ticket
    print(json.dumps(report))
    return 0 if "error" not in report else 3


def exchange(context, args, session=None):
    """One connection, one CONNECT (or other method): the report, and the TLS session to resume."""
    host, port = args.connect.rsplit(":", 1)
    raw = socket.create_connection((host, int(port)))
    tls = context.wrap_socket(raw, server_hostname=None, session=session)
    assert tls.selected_alpn_protocol() == "h2", "server did not negotiate h2"
    identity = peer_spiffe_id(tls)
    if args.expect_id and identity != args.expect_id:
        tls.close()
        return {"error": "unexpected server identity %s" % identity}, None
    peer = Peer(tls, client_side=True)
    stream_id = peer.h2.get_next_available_stream_id()
    headers = [(":method", args.method), (":authority", args.authority)]
    if args.method != "CONNECT":
        headers += [(":scheme", "https"), (":path", "/")]
    headers += [("forwarded", 'for="%s"' % args.forwarded_for), ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    with peer.lock:
        peer.h2.send_headers(stream_id, headers, end_stream=args.method != "CONNECT")
        peer.flush()
    status = None
    received = bytearray()
    payload = pattern(args.size)
    ended = False
    while not ended:
        events = peer.receive()
        if events is None:
            break
        for event in events:
            if isinstance(event, h2.events.ResponseReceived):
                status = int(dict(event.headers)[":status"])
                if status == 200:
                    threading.Thread(target=peer.send_data, args=(stream_id, payload, True), daemon=True).start()
                if event.stream_ended:
                    ended = True
            elif isinstance(event, h2.events.DataReceived):
                received += event.data
            elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset, h2.events.ConnectionTerminated)):
                if getattr(event, "stream_id", stream_id) == stream_id:
                    ended = True
    # The frame that ended the stream: DATA or HEADERS with END_STREAM (0x1), or RST_STREAM.
    ending = next((index for index, (kind, flags, sid) in enumerate(peer.frames)
                   if sid == stream_id and (kind == 3 or (kind in (0, 1) and flags & 0x1))), len(peer.frames) - 1)
    if args.settle > 0:
        tls.settimeout(args.settle)
        try:
            while peer.receive() is not None:
                pass
        except (socket.timeout, TimeoutError):
            pass
    after = [FRAME_NAMES.get(kind, str(kind)) for kind, _, sid in peer.frames[ending + 1:] if sid == stream_id]
    report = {
        "status": status,
        "server_identity": identity,
        "sent": len(payload),
        "sent_sha256": hashlib.sha256(payload).hexdigest(),
        "received": len(received),
        "received_sha256": hashlib.sha256(received).hexdigest(),
        "frames_after_end": after,
        "resumed": tls.session_reused,
    }
    saved = tls.session
    tls.close()
    return report, saved


def relay_upstream(peer, stream_id, upstream, die_after):
    """Copies upstream bytes into DATA frames; the upstream's EOF becomes END_STREAM.

    With `die_after`, the whole process dies once that many bytes went out: its TCP connections end
    with a bare FIN (no GOAWAY, no TLS close_notify, no RST_STREAM), as when a node agent is killed."""
    relayed = 0
    try:
        while True:
            data = upstream.recv(65536)
            if not data:
                peer.send_data(stream_id, b"", end_stream=True)
                return
            peer.send_data(stream_id, data)
            relayed += len(data)
            if die_after is not None and relayed >= die_after:
                with peer.lock:
                    socket.socket.shutdown(peer.tls, socket.SHUT_WR)
                    os._exit(0)
    except OSError:
        with peer.lock:
            peer.h2.reset_stream(stream_id)
            peer.flush()


REFUSED = {"count": 0}
REFUSED_LOCK = threading.Lock()


def refuse_this_stream(args):
    """True for the first --refuse-streams CONNECTs this server receives (over all its connections)."""
    with REFUSED_LOCK:
        if REFUSED["count"] >= args.refuse_streams:
            return False
        REFUSED["count"] += 1
        return True


def serve_connection(tls, args):
    identity = peer_spiffe_id(tls)
    if tls.selected_alpn_protocol() != "h2" or not identity or not identity.startswith("spiffe://cluster.local/"):
        tls.close()
        return
    peer = Peer(tls, client_side=False)
    upstreams = {}
    while True:
        try:
            events = peer.receive()
        except (OSError, ssl.SSLError):
            events = None
        if events is None:
            break
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                if refuse_this_stream(args):
                    # A draining server: GOAWAY whose last stream id is below this stream, which it never processes.
                    with peer.lock:
                        peer.h2.close_connection(error_code=0, last_stream_id=max(0, event.stream_id - 2))
                        peer.flush()
                    continue
                fields = dict(event.headers)
                status = 200
                if fields.get(":method") != "CONNECT":
                    status = 400
                elif fields.get(":authority") != args.allow_authority:
                    status = 400
                else:
                    try:
                        host, port = args.upstream.rsplit(":", 1)
                        upstream = socket.create_connection((host, int(port)))
                    except OSError:
                        status = 503
                with peer.lock:
                    peer.h2.send_headers(event.stream_id, [(":status", str(status))], end_stream=status != 200)
                    peer.flush()
                if status == 200:
                    upstreams[event.stream_id] = upstream
                    threading.Thread(target=relay_upstream, args=(peer, event.stream_id, upstream, args.die_after), daemon=True).start()
            elif isinstance(event, h2.events.DataReceived) and event.stream_id in upstreams:
                upstreams[event.stream_id].sendall(event.data)
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id in upstreams:
                upstreams[event.stream_id].shutdown(socket.SHUT_WR)
            elif isinstance(event, h2.events.StreamReset) and event.stream_id in upstreams:
                upstreams.pop(event.stream_id).close()
    tls.close()


def run_server(args):
    context = tls_context(True, args.cert, args.key, args.ca)
    listener = socket.create_server(("127.0.0.1", args.port))
    print("listening %d" % listener.getsockname()[1], flush=True)
    for _ in range(args.connections):
        raw, _ = listener.accept()
        try:
            tls = context.wrap_socket(raw, server_side=True)
        except ssl.SSLError as error:
            print("handshake refused: %s" % error, flush=True)
            continue
        threading.Thread(target=serve_connection, args=(tls, args), daemon=True).start()
    threading.Event().wait(args.linger)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="mode", required=True)
    for name in ("client", "server"):
        mode = sub.add_parser(name)
        mode.add_argument("--cert", required=True)
        mode.add_argument("--key", required=True)
        mode.add_argument("--ca", required=True)
    client = sub.choices["client"]
    client.add_argument("--connect", required=True, help="HBONE server host:port")
    client.add_argument("--authority", required=True, help=":authority of the CONNECT")
    client.add_argument("--method", default="CONNECT")
    client.add_argument("--size", type=int, default=1 << 20)
    client.add_argument("--forwarded-for", default="127.0.0.1:40000")
    client.add_argument("--expect-id")
    client.add_argument("--settle", type=float, default=0, help="seconds to keep reading after the stream ended")
    client.add_argument("--resume", action="store_true",
                        help="then a second connection offering the first's TLS session (reported as 'second')")
    server = sub.choices["server"]
    server.add_argument("--upstream", required=True, help="where CONNECTs are relayed, host:port")
    server.add_argument("--allow-authority", required=True)
    server.add_argument("--connections", type=int, default=1)
    server.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    server.add_argument("--linger", type=float, default=30)
    server.add_argument("--die-after", type=int, help="exit abruptly (bare FIN) after relaying this many bytes")
    server.add_argument(
        "--refuse-streams", type=int, default=0,
        help="answer the first N CONNECTs with a GOAWAY that leaves them unprocessed (a draining server)",
    )
    args = parser.parse_args()
    return run_client(args) if args.mode == "client" else run_server(args)


if __name__ == "__main__":
    sys.exit(main())
