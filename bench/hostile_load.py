#!/usr/bin/env python3
"""The dashboard against clients that try to take it down, on a store of 1M events.

1. /health latency (client wall time, p50/p95 of N requests) on an idle server,
   then while 16 clients ask the overview for 365 days with
   `Cache-Control: no-cache` as fast as they can (target: p95 <= 100 ms). How
   the heavy requests were answered (200, or 503 with Retry-After) is counted.
2. The server's resident memory before and after 100,000 distinct failing
   requests (`/api/v1/summary?range=bad<N>` padded to 8 KB; target: growth
   <= 32 MiB).

    AEGIS_BENCH_SIZES=1000000 cargo bench -p aegis-core --bench storage   # once: makes the store
    cargo build --release -p aegis-web && python3 bench/hostile_load.py [--store PATH]
"""
import argparse
import http.client
import os
import re
import subprocess
import tempfile
import threading
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pct(samples, p):
    s = sorted(samples)
    return s[round((len(s) - 1) * p)]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["VmRSS"].split()[0]) / 1024


def get(conn, path, headers=None):
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    r.read()
    return r.status


def health_ms(port, n):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        assert get(conn, "/health") == 200
        times.append((time.perf_counter() - t) * 1000)
        time.sleep(0.01)
    return times


def heavy_client(port, stop, tally):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    while not stop.is_set():
        try:
            tally[get(conn, "/?range=365d", {"Cache-Control": "no-cache"})] += 1
        except (OSError, http.client.HTTPException):
            tally["error"] += 1
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)


def failing_requests(port, start, count):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    pad = "x" * 8000
    for n in range(start, start + count):
        assert get(conn, f"/api/v1/summary?range=bad{n}{pad}") == 400


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default=os.path.join(ROOT, "target/aegis-bench/events-1000000.db"))
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--failing", type=int, default=100_000)
    a = ap.parse_args()
    if not os.path.exists(a.store):
        raise SystemExit(f"no store at {a.store}: make it with the storage benchmark (see --help)")
    config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    config.close()
    binary = os.path.join(ROOT, "target/release/aegis-web")
    server = subprocess.Popen([binary, "--config", config.name, "--storage", f"sqlite://{a.store}",
                               "--bind", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(re.search(r":(\d+)/?$", server.stdout.readline().strip()).group(1))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        get(conn, "/?range=365d")  # builds what a first visit builds
        idle = health_ms(port, a.requests)
        print(f"/health idle:                      p50 {pct(idle, .5):7.1f} ms  p95 {pct(idle, .95):7.1f} ms")
        stop, tally = threading.Event(), Counter()
        clients = [threading.Thread(target=heavy_client, args=(port, stop, tally)) for _ in range(16)]
        for c in clients:
            c.start()
        time.sleep(2)
        loaded = health_ms(port, a.requests)
        stop.set()
        for c in clients:
            c.join()
        print(f"/health, 16 clients /?range=365d:  p50 {pct(loaded, .5):7.1f} ms  p95 {pct(loaded, .95):7.1f} ms"
              f"  (target p95 <= 100 ms)")
        print(f"  the 16 clients were answered: {dict(tally)}")
        before = rss_mib(server.pid)
        per = a.failing // 4
        workers = [threading.Thread(target=failing_requests, args=(port, i * per, per)) for i in range(4)]
        t = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        after = rss_mib(server.pid)
        print(f"resident memory: {before:.1f} MiB before, {after:.1f} MiB after {4 * per:,} distinct failing"
              f" requests in {time.perf_counter() - t:.0f} s: growth {after - before:+.1f} MiB (target <= 32 MiB)")
    finally:
        server.terminate()
        server.wait()
        os.unlink(config.name)


if __name__ == "__main__":
    main()
