#!/usr/bin/env python3
"""A gRPC peer for the lab's waypoint tests, with Python's grpcio (Debian's python3-grpcio): an
implementation independent of Ambit's HTTP/2 code. Messages are raw bytes (no protobuf), through
grpcio's generic handlers, so no generated code is needed.

    grpc_echo.py serve --port 9090                 # service ambit.lab.Echo: Say, Fail, Count
    grpc_echo.py call ADDRESS METHOD [MESSAGE]     # prints "OK <reply>" or "<STATUS_CODE> <details>"

Say answers "echo <message> from <pod> (x-lab=<metadata value>)"; Fail aborts with NOT_FOUND;
Count streams "1".."N" for a message N (server streaming). The client exits 0 whatever the
status, so callers can assert on it; it exits 2 on a usage error.
"""

import argparse
import os
import socket
import sys
import time
from concurrent import futures

import grpc

SERVICE = "ambit.lab.Echo"


def serve(port: int) -> None:
    pod = os.environ.get("AMBIT_LAB_POD", socket.gethostname())

    def say(request: bytes, context: grpc.ServicerContext) -> bytes:
        metadata = dict(context.invocation_metadata())
        context.set_trailing_metadata((("x-lab-trailer", "done"),))
        return b"echo %s from %s (x-lab=%s)" % (request, pod.encode(), metadata.get("x-lab", "-").encode())

    def fail(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing: %s" % request.decode(errors="replace"))

    def count(request: bytes, context: grpc.ServicerContext):
        for index in range(1, int(request or b"3") + 1):
            yield str(index).encode()

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Say": grpc.unary_unary_rpc_method_handler(say),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
            "Count": grpc.unary_stream_rpc_method_handler(count),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port("0.0.0.0:%d" % port)
    server.start()
    print("serving %s on %d" % (SERVICE, port), flush=True)
    server.wait_for_termination()


def call(address: str, method: str, message: str) -> None:
    with grpc.insecure_channel(address) as channel:
        path = "/%s/%s" % (SERVICE, method)
        try:
            if method == "Count":
                replies = channel.unary_stream(path)(message.encode(), timeout=10)
                print("OK " + ",".join(reply.decode() for reply in replies))
            else:
                reply, call_info = channel.unary_unary(path).with_call(
                    message.encode(), timeout=10, metadata=(("x-lab", "meta-1"),)
                )
                trailers = dict(call_info.trailing_metadata() or ())
                print("OK %s [trailer %s]" % (reply.decode(), trailers.get("x-lab-trailer", "-")))
        except grpc.RpcError as error:
            print("%s %s" % (error.code().name, error.details()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve")
    serve_parser.add_argument("--port", type=int, default=9090)
    call_parser = commands.add_parser("call")
    call_parser.add_argument("address")
    call_parser.add_argument("method", choices=["Say", "Fail", "Count"])
    call_parser.add_argument("message", nargs="?", default="hello")
    arguments = parser.parse_args()
    if arguments.command == "serve":
        serve(arguments.port)
    else:
        call(arguments.address, arguments.method, arguments.message)


if __name__ == "__main__":
    main()
