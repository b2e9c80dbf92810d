#!/usr/bin/env python3
"""The programs Benchmarks/chaos/run starts inside lab pods (standard library only).

  echo-server PORT                   asyncio echo server (thousands of connections, one thread)
  hold HOST PORT COUNT RELEASE       opens COUNT connections (200 at a time), echoes a line on each, prints
                                     "held N", waits for the file RELEASE, echoes again, closes; prints JSON
  probe URL COUNT MARKER             COUNT sequential GETs, a new connection each, with header x-chaos-marker;
                                     prints JSON: latencies of the good ones, and the failures
  load URL SECONDS MARKER            GETs back to back for SECONDS; prints JSON: outcome per request with its
                                     time (ok: 200 with the app's whole body; error: the connection failed;
                                     bad: anything else, such as a 200 cut short)
  transfer HOST PORT BYTES MARKER    streams BYTES through an echo server and reads them back; prints JSON:
                                     "complete", "reset" (ECONNRESET/EPIPE) or "truncated" (a clean end of
                                     stream before every byte came back: the silent loss a mesh must not cause)
  flood HOST PORT COUNT SECONDS      opens COUNT plain TCP connections that never speak (a pod outside the
                                     mesh at an agent's port 15008), holds them SECONDS; prints JSON counts
  resets HOST PORT CERTS AUTHORITY COUNT
                                     HTTP/2 rapid reset with a mesh certificate (CERTS: cert-chain.pem, key.pem,
                                     root-cert.pem): COUNT CONNECTs to AUTHORITY, each reset at once, in bursts of
                                     200 per connection, a new connection whenever the server closes one; prints
                                     JSON counts (needs the h2 package: run with Debian's /usr/bin/python3)
"""
import asyncio
import http.client
import json
import os
import socket
import sys
import time


async def echo_server(port):
    async def handle(reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "0.0.0.0", port, backlog=4096)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


async def hold(host, port, count, release):
    gate = asyncio.Semaphore(200)
    streams, errors = [], []

    async def one(index):
        async with gate:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 30)
                line = b"held-%d\n" % index
                writer.write(line)
                await writer.drain()
                if await asyncio.wait_for(reader.readexactly(len(line)), 30) != line:
                    raise ValueError("wrong echo")
                streams.append((reader, writer, index))
            except Exception as error:  # noqa: BLE001 - every failure is counted
                errors.append("%d: %r" % (index, error))

    started = time.monotonic()
    await asyncio.gather(*(one(index) for index in range(count)))
    opened = time.monotonic() - started
    print("held %d" % len(streams), flush=True)
    while not os.path.exists(release):
        await asyncio.sleep(0.05)
    second = 0
    for reader, writer, index in streams:
        line = b"again-%d\n" % index
        try:
            writer.write(line)
            await writer.drain()
            if await asyncio.wait_for(reader.readexactly(len(line)), 30) == line:
                second += 1
            else:
                errors.append("%d: wrong second echo" % index)
        except Exception as error:  # noqa: BLE001
            errors.append("%d: second echo %r" % (index, error))
        writer.close()
    print(json.dumps({"held": len(streams), "echoedTwice": second, "openSeconds": round(opened, 2),
                      "errors": len(errors), "firstErrors": errors[:5]}), flush=True)


def get(url, marker, timeout=10):
    host, _, path = url.partition("/")
    connection = http.client.HTTPConnection(host, timeout=timeout)
    try:
        connection.request("GET", "/" + path, headers={"x-chaos-marker": marker})
        response = connection.getresponse()
        body = response.read()
        return response.status, body
    finally:
        connection.close()


def probe(url, count, marker):
    latencies, failures = [], []
    for _ in range(count):
        started = time.perf_counter()
        try:
            status, body = get(url, marker)
            if status == 200 and body.startswith(b"hello from"):
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                failures.append("status %d, %d bytes" % (status, len(body)))
        except Exception as error:  # noqa: BLE001
            failures.append(repr(error))
    print(json.dumps({"latenciesMs": latencies, "failures": failures}), flush=True)


def load(url, seconds, marker):
    outcomes = []
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        at = time.monotonic() - started
        try:
            status, body = get(url, marker, timeout=5)
            kind = "ok" if status == 200 and body.startswith(b"hello from") and body.endswith(b"\n") else "bad"
            outcomes.append([round(at, 3), kind, "status %d, %d bytes" % (status, len(body))])
        except (ConnectionError, OSError, http.client.HTTPException) as error:
            # http.client reports a connection closed before a whole response as RemoteDisconnected or
            # IncompleteRead: the application sees the failure, nothing passes for a good answer.
            outcomes.append([round(at, 3), "error", repr(error)])
        time.sleep(0.005)
    print(json.dumps({"outcomes": outcomes}), flush=True)


def transfer(host, port, total, marker):
    chunk = (marker.encode() + b"-") * (65536 // (len(marker) + 1))
    sent = received = 0
    sock = socket.create_connection((host, port), timeout=30)
    sock.setblocking(False)
    outcome = None
    try:
        while received < total:
            if sent < total:
                try:
                    sent += sock.send(chunk[: min(len(chunk), total - sent)])
                except BlockingIOError:
                    pass
            try:
                data = sock.recv(65536)
                if not data:
                    outcome = "truncated"
                    break
                received += len(data)
            except BlockingIOError:
                time.sleep(0.001)
        else:
            outcome = "complete"
    except (ConnectionResetError, BrokenPipeError) as error:
        outcome = "reset"
    finally:
        sock.close()
    print(json.dumps({"outcome": outcome, "sent": sent, "received": received}), flush=True)


def flood(host, port, count, seconds):
    sockets, refused = [], 0
    for _ in range(count):
        try:
            sockets.append(socket.create_connection((host, port), timeout=5))
        except OSError:
            refused += 1
    print("flooding %d" % len(sockets), flush=True)
    time.sleep(seconds)
    closed_by_agent = 0
    for sock in sockets:
        sock.setblocking(False)
        try:
            if sock.recv(1) == b"":
                closed_by_agent += 1
        except BlockingIOError:
            pass
        except OSError:
            closed_by_agent += 1
        sock.close()
    print(json.dumps({"opened": len(sockets), "refused": refused, "closedByAgent": closed_by_agent}), flush=True)


def resets(host, port, certs, authority, count):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                    "Tests", "Interop"))
    import h2.events
    from hbone_peer import Peer, tls_context

    context = tls_context(False, os.path.join(certs, "cert-chain.pem"), os.path.join(certs, "key.pem"),
                          os.path.join(certs, "root-cert.pem"))
    sent = connections = goaways = 0
    errors = []
    started = time.monotonic()
    while sent < count and time.monotonic() - started < 120:
        tls = None
        try:
            raw = socket.create_connection((host, port), timeout=10)
            tls = context.wrap_socket(raw, server_hostname=None)
            connections += 1
            peer = Peer(tls, client_side=True)
            for _ in range(min(200, count - sent)):
                stream = peer.h2.get_next_available_stream_id()
                peer.h2.send_headers(stream, [(":method", "CONNECT"), (":authority", authority)])
                peer.h2.reset_stream(stream)
                sent += 1
            peer.flush()
            # Read until the server closes (it should, past its premature-reset limit) or goes quiet.
            tls.settimeout(2)
            while True:
                events = peer.receive()
                if events is None:
                    break
                goaways += sum(1 for event in events if isinstance(event, h2.events.ConnectionTerminated))
        except Exception as error:  # noqa: BLE001 - a connection the server closed ends its burst
            if len(errors) < 5:
                errors.append(repr(error))
        finally:
            if tls is not None:
                tls.close()
    print(json.dumps({"resetStreams": sent, "connections": connections, "goaways": goaways,
                      "seconds": round(time.monotonic() - started, 1), "firstErrors": errors}), flush=True)


def main():
    command, arguments = sys.argv[1], sys.argv[2:]
    if command == "echo-server":
        asyncio.run(echo_server(int(arguments[0])))
    elif command == "hold":
        asyncio.run(hold(arguments[0], int(arguments[1]), int(arguments[2]), arguments[3]))
    elif command == "probe":
        probe(arguments[0], int(arguments[1]), arguments[2])
    elif command == "load":
        load(arguments[0], float(arguments[1]), arguments[2])
    elif command == "transfer":
        transfer(arguments[0], int(arguments[1]), int(arguments[2]), arguments[3])
    elif command == "resets":
        resets(arguments[0], int(arguments[1]), arguments[2], arguments[3], int(arguments[4]))
    elif command == "flood":
        flood(arguments[0], int(arguments[1]), int(arguments[2]), float(arguments[3]))
    else:
        sys.exit("unknown command %s" % command)


if __name__ == "__main__":
    main()
