#!/usr/bin/env python3
"""The dashboard under load, on the stores the storage benchmark generated.

For each store: the overview's server time (the Server-Timing header, so the
client's own cost is left out) p50/p95 over N requests; /api/v1/summary
requests per second with wrk beside a trivial endpoint of the same server
(an embedded static file) in the same run, as served (answers kept for the
second they describe) and with `Cache-Control: no-cache` (every request asks
the store); the server's resident memory.

    AEGIS_BENCH_SIZES=1000000,10000000 cargo bench -p aegis-core --bench storage   # once: makes the stores
    cargo build --release -p aegis-web && python3 bench/dashboard.py [--requests 200] [--seconds 10]
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pct(samples, p):
    s = sorted(samples)
    return s[round((len(s) - 1) * p)]


def server_ms(url):
    # no-cache: the store computes every answer (see the answer cache in aegis-web).
    request = urllib.request.Request(url, headers={"Cache-Control": "no-cache"})
    with urllib.request.urlopen(request) as r:
        r.read()
        timing = r.headers["Server-Timing"]
    return float(re.search(r"dur=([\d.]+)", timing).group(1))


def wrk(url, seconds, *headers, concurrency=16):
    extra = [a for h in headers for a in ("-H", h)]
    out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", *extra, url],
                         check=True, capture_output=True, text=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def memory_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def bench(binary, db, requests, seconds):
    config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    config.close()
    server = subprocess.Popen(
        [binary, "--config", config.name, "--storage", f"sqlite://{db}", "--bind", "127.0.0.1:0"],
        stdout=subprocess.PIPE, text=True)
    try:
        base = re.search(r"(http://\S+?)/?$", server.stdout.readline().strip()).group(1)
        t = time.perf_counter()
        first = server_ms(base + "/")  # builds the rolling windows if the store never had them
        print(f"  first overview {first:.0f} ms (window build included: {time.perf_counter() - t:.1f} s wall)")
        for _ in range(10):
            server_ms(base + "/")
        overview = [server_ms(base + "/") for _ in range(requests)]
        summary = [server_ms(base + "/api/v1/summary?range=24h") for _ in range(requests)]
        print(f"  overview /          server time p50 {pct(overview, .5):6.2f} ms  p95 {pct(overview, .95):6.2f} ms")
        print(f"  /api/v1/summary     server time p50 {pct(summary, .5):6.2f} ms  p95 {pct(summary, .95):6.2f} ms")
        if shutil.which("wrk"):
            trivial = wrk(base + "/static/favicon.svg", seconds)
            api = wrk(base + "/api/v1/summary?range=24h", seconds)
            fresh = wrk(base + "/api/v1/summary?range=24h", seconds, "Cache-Control: no-cache")
            trivial_again = wrk(base + "/static/favicon.svg", seconds)
            baseline = statistics.mean([trivial, trivial_again])
            print(f"  static file         {baseline:8.0f} req/s ({trivial:.0f} before, {trivial_again:.0f} after)")
            print(f"  /api/v1/summary     {api:8.0f} req/s: {100 * api / baseline:.0f}% of the static file")
            print(f"    ... no-cache      {fresh:8.0f} req/s: {100 * fresh / baseline:.0f}% (every request asks the store)")
            for c in (1, 4, 16):
                served = wrk(base + "/", seconds, concurrency=c)
                fresh = wrk(base + "/", seconds, "Cache-Control: no-cache", concurrency=c)
                print(f"  overview, {c:2} connections: {served:6.0f} req/s as served, {fresh:5.0f} req/s no-cache")
        else:
            print("  (wrk not installed: apt-get install wrk for the requests-per-second figures)")
        rss, peak = memory_kib(server.pid)
        print(f"  resident memory {rss / 1024:.1f} MiB now, {peak / 1024:.1f} MiB peak")
    finally:
        server.terminate()
        server.wait()
        os.unlink(config.name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--sizes", default=os.environ.get("AEGIS_BENCH_SIZES", "1000000,10000000"))
    a = ap.parse_args()
    binary = os.path.join(ROOT, "target/release/aegis-web")
    for size in a.sizes.split(","):
        db = os.path.join(ROOT, f"target/aegis-bench/events-{size}.db")
        if not os.path.exists(db):
            print(f"{size} events: no store at {db}; make it with the storage benchmark")
            continue
        print(f"{int(size):,} events ({os.path.getsize(db) / 2**30:.1f} GiB store)")
        bench(binary, db, a.requests, a.seconds)


if __name__ == "__main__":
    main()
