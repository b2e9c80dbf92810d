#!/usr/bin/env python3
"""An independent Envoy external authorization (ext_authz v3) gRPC server, built with grpcio and
the Python code generated from proto/ (Tests/Interop/generated, see scripts/generate-protos).
It serves /envoy.service.auth.v3.Authorization/Check over plain HTTP/2 (no TLS) on --host
(127.0.0.1 by default).

    ext_authz_server.py [--host ADDRESS] [--port N] [--log FILE]

Prints "listening <port>" once it accepts calls (--port 0, the default, picks a free port).

What it answers depends only on the request (first rule that matches):
  path starts with /slow            waits 3 s, then answers as for the rest of the path (a timeout test)
  path starts with /deny            deny: HTTP 403, header x-ext-authz: denied, body "denied by ext_authz"
  header x-ext-authz is "allow",
  or path starts with /allow        allow, adding the header x-ext-authz-check: allowed upstream
  path is /status/<code>            deny with HTTP status <code> (same header and body)
  anything else                     deny with HTTP 403 (same header and body)
A deny carries gRPC status PERMISSION_DENIED (7) in CheckResponse.status, an allow OK (0).

With --log FILE, each Check appends one JSON line to FILE (flushed at once), so a test can assert
what the client sent: method, path, host, scheme, protocol, id, size, headers, body,
context_extensions, source/destination principal and address, and the decision taken.
"""
import argparse
import base64
import json
import os
import signal
import sys
import threading
import time
from concurrent import futures

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "generated"))

import grpc  # noqa: E402

from envoy.config.core.v3 import base_pb2  # noqa: E402
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc  # noqa: E402
from envoy.type.v3 import http_status_pb2  # noqa: E402
from google.rpc import status_pb2  # noqa: E402

GRPC_OK = 0
GRPC_PERMISSION_DENIED = 7
DENY_BODY = "denied by ext_authz"


def header(key, value):
    return base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=key, value=value))


def denied(http_status):
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=GRPC_PERMISSION_DENIED, message="denied"),
        denied_response=external_auth_pb2.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=http_status),
            headers=[header("x-ext-authz", "denied")],
            body=DENY_BODY,
        ),
    )


def allowed():
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=GRPC_OK),
        ok_response=external_auth_pb2.OkHttpResponse(headers=[header("x-ext-authz-check", "allowed")]),
    )


def status_from_path(path):
    """The <code> of /status/<code>[/...][?...], or None when the path is not of that form."""
    if not path.startswith("/status/"):
        return None
    digits = ""
    for char in path[len("/status/"):]:
        if not char.isdigit():
            break
        digits += char
    if not digits or not 100 <= int(digits) <= 599:
        return None
    return int(digits)


def decide(http):
    """(response, decision description) for an AttributeContext.HttpRequest."""
    path = http.path
    if path.startswith("/slow"):
        time.sleep(3)
        path = path[len("/slow"):] or "/"
    if path.startswith("/deny"):
        return denied(403), "deny 403"
    if http.headers.get("x-ext-authz") == "allow" or path.startswith("/allow"):
        return allowed(), "allow"
    code = status_from_path(path)
    if code is not None:
        return denied(code), f"deny {code}"
    return denied(403), "deny 403"


def peer_fields(peer):
    socket_address = peer.address.socket_address
    port = socket_address.port_value if socket_address.WhichOneof("port_specifier") == "port_value" else None
    return {
        "principal": peer.principal,
        "address": socket_address.address,
        "port": port,
        "service": peer.service,
        "labels": dict(peer.labels),
        "certificate": peer.certificate,
    }


class Authorization(external_auth_pb2_grpc.AuthorizationServicer):
    def __init__(self, log_path):
        self.log_path = log_path
        self.lock = threading.Lock()

    def Check(self, request, context):
        attributes = request.attributes
        http = attributes.request.http
        response, decision = decide(http)
        if self.log_path:
            source, destination = peer_fields(attributes.source), peer_fields(attributes.destination)
            entry = {
                "method": http.method,
                "path": http.path,
                "host": http.host,
                "scheme": http.scheme,
                "protocol": http.protocol,
                "id": http.id,
                "size": http.size,
                "headers": dict(http.headers),
                "body": http.body,
                "raw_body": base64.b64encode(http.raw_body).decode("ascii"),
                "context_extensions": dict(attributes.context_extensions),
                "source_principal": source["principal"],
                "source_address": source["address"],
                "source_port": source["port"],
                "destination_principal": destination["principal"],
                "destination_address": destination["address"],
                "destination_port": destination["port"],
                "source": source,
                "destination": destination,
                "has_time": attributes.request.HasField("time"),
                "decision": decision,
            }
            line = json.dumps(entry, sort_keys=True) + "\n"
            with self.lock, open(self.log_path, "a", encoding="utf-8") as log:
                log.write(line)
                log.flush()
        return response


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    parser.add_argument("--log", help="append one JSON line per Check call to this file")
    args = parser.parse_args()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(Authorization(args.log), server)
    port = server.add_insecure_port(f"{args.host}:{args.port}")
    if port == 0:
        print(f"error: cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 1
    server.start()
    print(f"listening {port}", flush=True)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=None).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
