#!/usr/bin/env python3
"""The ban path, timed as fail2ban sees it: wall time of one `aegis ban` process.

Prints p50/p95 over N calls on the embedded store, beside the lightest Python
hook in the seed's style (interpreter start, argument parsing, one SQLite insert)
timed by the same driver in the same run; then how long after a call its event
is in the store (the detached writer's work). Then times `aegis import
fail2ban-db` on a generated fail2ban database beside a raw SQLite copy of the
same rows.

    cargo build --release -p aegis-cli && python3 bench/ban_path.py [--calls 1000] [--rows 1000000]
"""
import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

# The system interpreter, as fail2ban's own hooks run: a version manager's
# shim starts several times slower and would flatter Aegis.
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

HOOK = r'''
import argparse, sqlite3, sys
p = argparse.ArgumentParser()
p.add_argument("action"); p.add_argument("--ip"); p.add_argument("--jail")
p.add_argument("--failures"); p.add_argument("--time")
a = p.parse_args()
c = sqlite3.connect(sys.argv[0] + ".db")
c.execute("CREATE TABLE IF NOT EXISTS bans (ip TEXT, jail TEXT, failures INT, time REAL)")
c.execute("INSERT INTO bans VALUES (?, ?, ?, ?)", (a.ip, a.jail, a.failures, a.time))
c.commit()
'''


def timed(cmd, env):
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - t) * 1000


def durable_write(directory, i):
    """The spool's durable write alone, in-process, as `aegis ban` makes it
    (write, rename, fsync the file, fsync the directory): the floor of any
    ban path that loses nothing on a crash, on this disk."""
    tmp, final = os.path.join(directory, f".{i}.tmp"), os.path.join(directory, f"{i}.json")
    t = time.perf_counter()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"x" * 155)
    os.rename(tmp, final)
    os.fsync(fd)
    os.close(fd)
    dfd = os.open(directory, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
    took = (time.perf_counter() - t) * 1000
    os.unlink(final)
    return took


def pct(samples, p):
    s = sorted(samples)
    return s[round((len(s) - 1) * p)]


def ban_path(aegis, calls, work):
    env = dict(os.environ, AEGIS_STORAGE_URL=f"sqlite://{work}/aegis.db",
               AEGIS_STORAGE_SPOOL_DIR=f"{work}/spool", AEGIS_HOST="bench")
    hook = os.path.join(work, "hook.py")
    with open(hook, "w") as f:
        f.write(HOOK)
    aegis_ms, python_ms, true_ms, durable_ms = [], [], [], []
    durable_dir = os.path.join(work, "durable")
    os.makedirs(durable_dir)
    now = int(time.time()) - 3600
    for i in range(calls):
        ip = f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}"
        args = ["--ip", ip, "--jail", "sshd", "--failures", "5", "--time", f"{now + i}.0"]
        # Interleaved, so that machine noise hits both alike.
        aegis_ms.append(timed([aegis, "ban", *args], env))
        python_ms.append(timed([PYTHON, hook, "ban", *args], env))
        true_ms.append(timed(["/bin/true"], env))
        durable_ms.append(durable_write(durable_dir, i))
    a50, p50 = statistics.median(aegis_ms), statistics.median(python_ms)
    print(f"ban path over {calls} calls (wall time per process, embedded store)")
    print(f"  aegis ban            p50 {a50:7.2f} ms   p95 {pct(aegis_ms, .95):7.2f} ms")
    print(f"  python hook (floor)  p50 {p50:7.2f} ms   p95 {pct(python_ms, .95):7.2f} ms   ({PYTHON})")
    print(f"  /bin/true (spawn)    p50 {statistics.median(true_ms):7.2f} ms   p95 {pct(true_ms, .95):7.2f} ms   (the cost of starting any process here)")
    d50 = statistics.median(durable_ms)
    print(f"  durable write alone  p50 {d50:7.2f} ms   p95 {pct(durable_ms, .95):7.2f} ms   (write, rename, two fsyncs, in-process)")
    t50 = statistics.median(true_ms)
    print(f"  aegis is {p50 / a50:.1f}x faster than the hook at the median (target >= 5x) "
          f"and takes {a50 / t50:.2f}x the time of /bin/true (target <= 2x);")
    print(f"  without the durable write it would take {(a50 - d50) / t50:.2f}x /bin/true")

    # Until stored: the writer deletes the spool file once the store has the event.
    spool = env["AEGIS_STORAGE_SPOOL_DIR"]
    returned, stored = [], []
    for i in range(min(calls, 200)):
        args = ["--ip", f"10.200.{i // 256}.{i % 256}", "--jail", "sshd"]
        t = time.perf_counter()
        subprocess.run([aegis, "ban", *args], env=env, check=True, stdout=subprocess.DEVNULL)
        returned.append((time.perf_counter() - t) * 1000)
        while any(f.endswith(".json") for f in os.listdir(spool)):
            time.sleep(0.0002)
        stored.append((time.perf_counter() - t) * 1000)
    print(f"  one call at a time: returned p50 {statistics.median(returned):.2f} ms, "
          f"event in the store p50 {statistics.median(stored):.2f} ms / p95 {pct(stored, .95):.2f} ms")


def fail2ban_db(path, rows):
    c = sqlite3.connect(path)
    c.execute("CREATE TABLE bans(jail TEXT NOT NULL, ip TEXT, timeofban INTEGER NOT NULL, "
              "bantime INTEGER NOT NULL, bancount INTEGER NOT NULL default 1, data JSON)")
    rnd = random.Random(7)
    start = int(time.time()) - 300 * 86400
    jails = ["sshd", "sshd", "nginx-http-auth", "postfix-sasl", "recidive"]

    def gen():
        for i in range(rows):
            ip = f"{rnd.randint(1, 223)}.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}"
            data = {"matches": [f"sshd[{i}]: Failed password for root from {ip} port 22 ssh2"],
                    "failures": 5, "user": "root"}
            yield (rnd.choice(jails), ip, start + i * 25, 600, 1, json.dumps(data))
    c.executemany("INSERT INTO bans VALUES (?, ?, ?, ?, ?, ?)", gen())
    c.commit()
    c.close()


def import_rate(aegis, rows, work):
    src = os.path.join(work, "fail2ban.sqlite3")
    fail2ban_db(src, rows)
    env = dict(os.environ, AEGIS_STORAGE_URL=f"sqlite://{work}/import.db", AEGIS_HOST="bench")
    t = time.perf_counter()
    subprocess.run([aegis, "import", "fail2ban-db", src], env=env, check=True, stdout=subprocess.DEVNULL)
    imported = time.perf_counter() - t
    raw = sqlite3.connect(os.path.join(work, "raw.db"))
    t = time.perf_counter()
    raw.execute("ATTACH ? AS f2b", (src,))
    raw.execute("CREATE TABLE bans AS SELECT * FROM f2b.bans")
    raw.commit()
    copied = time.perf_counter() - t
    print(f"import of a fail2ban database with {rows} bans")
    print(f"  aegis import fail2ban-db  {rows / imported:10.0f} rows/s  ({imported:.1f} s)")
    print(f"  raw SQLite copy           {rows / copied:10.0f} rows/s  ({copied:.1f} s)  (target for aegis: >= 100000)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--aegis", default=os.path.join(os.path.dirname(__file__), "../target/release/aegis"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        ban_path(os.path.abspath(a.aegis), a.calls, work)
        if a.rows:
            import_rate(os.path.abspath(a.aegis), a.rows, work)


if __name__ == "__main__":
    main()
