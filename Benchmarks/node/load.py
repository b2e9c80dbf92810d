#!/usr/bin/env python3
"""Load for the node-agent benchmark, run inside a lab pod (`ambitctl lab exec`). Standard library only.

    load.py hold HOST PORT COUNT SECONDS   open COUNT echo connections, prove each with one byte, keep them
                                           open SECONDS, print "held COUNT" once all are up
    load.py setup HOST PORT COUNT          connection set-up latency: COUNT times connect, 1 byte there and back
                                           (the first byte's round trip completes the tunnel), close; prints JSON
                                           percentiles in milliseconds
    load.py rate HOST PORT SECONDS PROCS   new connections per second: PROCS processes loop connect, 1 byte
                                           there and back, close; prints JSON {"connections", "seconds", "rate",
                                           "errors"}
"""

import json
import multiprocessing
import socket
import sys
import time


def hold(host, port, count, seconds):
    sockets = []
    for _ in range(count):
        s = socket.create_connection((host, port), timeout=30)
        s.sendall(b"x")
        sockets.append(s)
    for s in sockets:
        if s.recv(1) != b"x":
            raise SystemExit("a held connection did not echo")
    print("held", len(sockets), flush=True)
    time.sleep(seconds)


def worker(host, port, deadline, results):
    done = errors = 0
    while time.time() < deadline:
        try:
            s = socket.create_connection((host, port), timeout=10)
            s.sendall(b"x")
            s.shutdown(socket.SHUT_WR)
            if s.recv(1) == b"x":
                done += 1
            else:
                errors += 1
            s.close()
        except OSError:
            errors += 1
    results.put((done, errors))


def rate(host, port, seconds, procs):
    results = multiprocessing.Queue()
    start = time.time()
    deadline = start + seconds
    workers = [multiprocessing.Process(target=worker, args=(host, port, deadline, results)) for _ in range(procs)]
    for w in workers:
        w.start()
    totals = [results.get() for _ in workers]
    for w in workers:
        w.join()
    elapsed = time.time() - start
    done = sum(t[0] for t in totals)
    print(json.dumps({"connections": done, "seconds": round(elapsed, 2), "rate": round(done / elapsed),
                      "errors": sum(t[1] for t in totals)}))


def setup(host, port, count):
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        s = socket.create_connection((host, port), timeout=10)
        s.sendall(b"x")
        if s.recv(1) != b"x":
            raise SystemExit("no echo")
        samples.append((time.perf_counter() - start) * 1000)
        s.close()
    samples.sort()

    def pct(p):
        return round(samples[min(len(samples) - 1, int(p / 100 * len(samples)))], 3)

    print(json.dumps({"count": count, "p50": pct(50), "p90": pct(90), "p99": pct(99)}))


if __name__ == "__main__":
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "hold":
        hold(host, port, int(sys.argv[4]), float(sys.argv[5]))
    elif mode == "setup":
        setup(host, port, int(sys.argv[4]))
    elif mode == "rate":
        rate(host, port, float(sys.argv[4]), int(sys.argv[5]))
    else:
        raise SystemExit(f"unknown mode {mode}")
