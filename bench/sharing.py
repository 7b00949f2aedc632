#!/usr/bin/env python3
"""Sharing bans, timed on real fail2ban servers: two private instances (A and
B, each its own socket, database and log; a shell ban action that forks per
ban, as firewall actions do) and one store, for the embedded SQLite file and
for the MongoDB test server.

1. Propagation: from A's `aegis ban` returning (the ban path as fail2ban runs
   it, with `[share]` on) to the ban being active in B's fail2ban (asked over
   its socket every 5 ms), with the agent's default settings (it asks the
   store every second). p50/p95 over N bans (targets: p50 <= 2 s, p95 <= 5 s).
2. A burst of 1,000 decisions applied on B by `aegis agent --once`, beside the
   same number of bans made with one `fail2ban-client` process per address, in
   the same run on the same server (target: <= 10 s).

    cargo build --release -p aegis-cli && tests/mongodb-server/install &&
    python3 bench/sharing.py [--bans 100] [--burst 1000] [--baseline 1000]
"""
import argparse
import os
import pickle
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
END = b"<F2B_END_COMMAND>"
SHARED = "aegis-shared"


def address(first, i):
    """The i-th public-looking address under `first`.0.0.0/8."""
    return f"{first}.{i // 62500}.{(i // 250) % 250}.{i % 250 + 1}"


def pct(samples, p):
    s = sorted(samples)
    return s[round((len(s) - 1) * p)]


class Fail2ban:
    """A private fail2ban server with the shared jail and a forking ban action."""

    def __init__(self, root, aegis):
        self.root = root
        etc = os.path.join(root, "etc")
        for d in ("action.d", "jail.d", "filter.d", "run"):
            os.makedirs(os.path.join(etc if d != "run" else root, d), exist_ok=True)
        self.socket = os.path.join(root, "run/f2b.sock")
        self.etc = etc
        subprocess.run([aegis, "fail2ban", "install", "--share", "--dir", f"{etc}/action.d",
                        "--unit-dir", root], check=True, stdout=subprocess.DEVNULL)
        with open(f"{etc}/fail2ban.local", "w") as f:
            f.write(f"[Definition]\nloglevel = WARNING\nlogtarget = {root}/fail2ban.log\n"
                    f"socket = {self.socket}\npidfile = {root}/run/f2b.pid\n"
                    f"dbfile = {root}/fail2ban.sqlite3\n")
        with open(f"{etc}/action.d/record.conf", "w") as f:
            f.write(f"[Definition]\nactionban = echo ban <ip> >> {root}/fw.log\n"
                    f"actionunban = echo unban <ip> >> {root}/fw.log\n")
        with open(f"{etc}/jail.local", "w") as f:
            f.write("[DEFAULT]\nbackend = polling\nbanaction = record\naction_ = %(banaction)s\n\n"
                    "[baseline]\nenabled = true\nfilter =\naction = record\nbantime = -1\n")
        self.server = subprocess.Popen(
            ["fail2ban-server", "-c", etc, "-s", self.socket, "-p", f"{root}/run/f2b.pid", "-xf", "start"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while True:
            try:
                self.call(["ping"])
                return
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)

    def call(self, command):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.socket)
            s.sendall(pickle.dumps(command) + END)
            reply = b""
            while not reply.endswith(END):
                chunk = s.recv(65536)
                if not chunk:
                    raise OSError("fail2ban closed the connection")
                reply += chunk
        code, value = pickle.loads(reply[:-len(END)])
        if code != 0:
            raise RuntimeError(f"{command}: {value}")
        return value

    def client(self, *args):
        subprocess.run(["fail2ban-client", "-c", self.etc, "-s", self.socket, *args],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        try:
            self.call(["stop"])
        except (OSError, RuntimeError):
            pass
        try:
            self.server.wait(15)
        except subprocess.TimeoutExpired:
            self.server.kill()


def config(path, host, url, work, f2b, share):
    with open(path, "w") as f:
        f.write(f'host = "{host}"\n\n[storage]\nurl = "{url}"\nspool_dir = "{work}/{host}-spool"\n\n'
                f"[share]\nenabled = {'true' if share else 'false'}\nper_minute = 100000\n\n"
                f'[agent]\nsocket = "{f2b.socket}"\nstate_file = "{work}/{host}-agent.json"\n')


def propagation(aegis, url, work, bans, label):
    a = Fail2ban(os.path.join(work, "A"), aegis)
    b = Fail2ban(os.path.join(work, "B"), aegis)
    conf_a, conf_b = os.path.join(work, "A.toml"), os.path.join(work, "B.toml")
    config(conf_a, "A", url, work, a, True)
    config(conf_b, "B", url, work, b, False)
    env = dict(os.environ, USER="bench")
    env.pop("AEGIS_STORAGE_URL", None)
    agent = subprocess.Popen([aegis, "--config", conf_b, "agent"], env=env,
                             stdout=subprocess.DEVNULL, stderr=open(f"{work}/B-agent.log", "w"))
    try:
        samples = []
        for i in range(bans):
            ip = address(45, i)
            subprocess.run([aegis, "--config", conf_a, "ban", "--ip", ip, "--jail", "sshd",
                            "--bantime", "600"], env=env, check=True, stdout=subprocess.DEVNULL)
            started = time.perf_counter()
            while b.call(["get", SHARED, "banned", ip]) != 1:
                if time.perf_counter() - started > 30:
                    sys.exit(f"{ip} did not reach B within 30 s; see {work}/B-agent.log")
                time.sleep(0.005)
            samples.append(time.perf_counter() - started)
        print(f"  {label}: propagation over {bans} bans  p50 {statistics.median(samples):.3f} s   "
              f"p95 {pct(samples, .95):.3f} s   (targets: p50 <= 2 s, p95 <= 5 s)")
    finally:
        agent.terminate()
        agent.wait()
        a.stop()
        b.stop()


def burst(aegis, url, work, count, baseline, label):
    b = Fail2ban(os.path.join(work, "burst"), aegis)
    conf = os.path.join(work, "burst.toml")
    config(conf, "burst", url, work, b, False)
    env = dict(os.environ, USER="bench")
    env.pop("AEGIS_STORAGE_URL", None)
    for i in range(count):
        subprocess.run([aegis, "--config", conf, "decide", "ban", address(46, i),
                        "--hosts", "burst", "--reason", "bench"], env=env, check=True, stdout=subprocess.DEVNULL)
    started = time.perf_counter()
    subprocess.run([aegis, "--config", conf, "agent", "--once"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    agent_s = time.perf_counter() - started
    held = len(b.call(["get", SHARED, "banned"]))
    assert held == count, f"{held} of {count} banned"
    line = f"  {label}: {count} decisions applied by the agent in {agent_s:.2f} s (target <= 10 s)"
    if baseline:
        started = time.perf_counter()
        for i in range(baseline):
            b.client("set", "baseline", "banip", address(47, i))
        client_s = time.perf_counter() - started
        line += f"; one fail2ban-client per address: {client_s:.2f} s for {baseline} ({client_s / agent_s * count / baseline:.0f}x)"
    print(line)
    b.stop()


def mongodb():
    """The MongoDB test server on a free port: (process, URI)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    server = subprocess.Popen(["node", os.path.join(ROOT, "tests/mongodb-server/start.mjs"), str(port)],
                              stdout=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    if not line.startswith("READY "):
        sys.exit(f"the MongoDB test server did not start: {line!r} (run tests/mongodb-server/install)")
    return server, line.split()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bans", type=int, default=100)
    ap.add_argument("--burst", type=int, default=1000)
    ap.add_argument("--baseline", type=int, default=1000)
    ap.add_argument("--aegis", default=os.path.join(ROOT, "target/release/aegis"))
    a = ap.parse_args()
    aegis = os.path.abspath(a.aegis)
    if not shutil.which("fail2ban-server"):
        sys.exit("fail2ban is not installed (apt-get install fail2ban)")
    print("sharing bans between two private fail2ban servers (shell ban action)")
    server, uri = mongodb()
    try:
        for label, url in (("sqlite ", None), ("mongodb", f"{uri}/bench_sharing")):
            with tempfile.TemporaryDirectory() as work:
                url = url or f"sqlite://{work}/aegis.db"
                propagation(aegis, url, work, a.bans, label)
            with tempfile.TemporaryDirectory() as work:
                url = url if url.startswith("mongodb") else f"sqlite://{work}/aegis.db"
                if url.startswith("mongodb"):
                    url = f"{uri}/bench_burst"
                burst(aegis, url, work, a.burst, a.baseline if label == "sqlite " else 0, label)
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
