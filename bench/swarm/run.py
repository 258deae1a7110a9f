#!/usr/bin/env python3
"""Swarm testbed (issue 4): one origin and N nodes on rate-limited links,
fleetcast against plain HTTP and BitTorrent, each measured against F/B.

What it measures: for each system, the time from "every node told to start"
to "this node holds the complete, verified dataset", per node, as a ratio to
the physical limit F/B (dataset bytes over one link's rate), plus the
origin's egress and the machine's CPU busy share (a CPU-bound run is no
measurement of the network and is reported as such, without a ratio).

How: every host (h0 = the origin, h1..hN = the nodes) is a network
namespace joined by a veth pair to a bridge in a namespace of the testbed's
own (sw). Both directions of every host's link are shaped with tc tbf at
--rate Mbit/s (±--rate-spread % per node, deterministic from --seed; the
origin's link is always at --rate). Addresses (10.77.0.0/16) exist only in
those namespaces. The dataset is generated from --seed (fleetcast generate)
and prepared once per invocation; each run starts a fresh origin (serving,
warm page cache), starts the clock, starts every node's fetcher at once and
waits until every node is complete:
  fleetcast   fleetcast origin (embedded tracker, the version published once
              into its store) and one fleetcast agent per node (--subscribe);
              a node is complete when its /v1/status shows the version active
              (polled every 50 ms from the sw namespace); afterwards every
              node's `current` is checked with fleetcast verify
  http        nginx on the origin; curl of every file on every node at once,
              then sha256sum -c against the origin's list (inside the timing)
  bittorrent  opentracker + an aria2c seeder on the origin (mktorrent
              defaults); aria2c on every node, which checks every piece hash;
              a node is complete when aria2c reports the download complete
              (--on-bt-download-complete); afterwards sha256sum -c per node
Every node keeps serving (agents, aria2c seeding) until the last node is
complete. Origin egress = bytes the origin's upload shaper sent (every
segment as a frame, headers and retransmissions included), the interface's
tx bytes, and for fleetcast also fleetcast_origin_bytes_sent_total (chunk
payload). The links are sampled every 0.25 s from the bridge's side. The
generated tree loses its symlink, empty file/dir and duplicate file, so
every system moves the same F distinct bytes. CPU busy = share of all cores busy (/proc/stat) from the start to
the last node complete; >= 90% marks the run CPU-bound. With --zones Z, node
i is in zone z((i-1) mod Z + 1), the origin in z1, and the bytes fleetcast
moved across zones (agents' fleetcast_bytes_received_by_zone_total, origin
bytes counted as z1) are reported next to the least possible (Z-1) x F.

Output per invocation: one JSON line per system and repeat appended to
--results (default bench/results/swarm.jsonl), and next to it a CSV of
per-node times and a PNG (gnuplot) of the completion-time CDF of every
system (swarm-RUNID.{csv,png}), and the link samples with a plot of the
origin's uplink and the nodes' mean downlink (swarm-RUNID-links.{csv,png}).
A table of medians over the repeats is printed. Everything the run creates (namespaces, links,
processes, the temp dir under ${TMPDIR:-/var/tmp}) is removed on exit, on
error, on Ctrl-C and SIGTERM (--keep keeps the temp dir and its logs);
namespaces of an earlier run that was killed outright (its PID in their
name is gone) are removed at the start. Needs root (network namespaces).

Usage: bench/swarm/run.py FLEETCAST_BIN [--nodes 16] [--size 256MiB]
         [--files 8] [--rate 100] [--zones Z] [--rate-spread PCT]
         [--systems fleetcast,http,bittorrent] [--repeat 3] [--seed 1]
         [--results FILE] [--timeout S] [--netns-prefix fcsw-] [--no-plot] [--keep]
"""
import argparse
import hashlib
import http.client
import json
import os
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DATASET = "swarm/data"
NET = "10.77"          # 10.77.0.0/16, only inside the testbed's namespaces
SW_ADDR = f"{NET}.0.1"  # the bridge's address (pollers, readiness checks)
NGINX_PORT = 8080       # fixed ports only inside the namespaces
TRACKER_PORT = 6969
POLL_S = 0.05
BUSY_CPU_BOUND = 0.90


def log(msg):
    print(f"  {msg}", file=sys.stderr, flush=True)


class Failure(Exception):
    pass


def run(argv, **kw):
    """Runs a short command; raises Failure with its stderr if it fails."""
    kw.setdefault("timeout", 120)
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if r.returncode != 0:
        raise Failure(f"{shlex.join(argv)}: exit {r.returncode}: {r.stderr.strip()[-500:]}")
    return r.stdout


def parse_size(s):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)", s.strip(), re.I)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {s!r} (e.g. 256MiB)")
    mult = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m.group(2).upper()]
    return int(float(m.group(1)) * mult)


def cpu_snap():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    total = sum(v[:8])  # guest time is already in user
    idle = v[3] + v[4]  # idle + iowait
    return total - idle, total


def cpu_busy(a, b):
    dt = b[1] - a[1]
    return (b[0] - a[0]) / dt if dt > 0 else 0.0


def median(xs):
    return statistics.median(xs) if xs else None


def ns_list():
    out = run(["ip", "netns", "list"])
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def default_cc():
    try:
        with open("/proc/sys/net/ipv4/tcp_congestion_control") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


class Testbed:
    """Namespaces, links and every process of one invocation, tracked by PID."""

    def __init__(self, prefix, work, cc=None):
        self.prefix = f"{prefix}{os.getpid()}-"
        self.work = work
        self.cc = cc  # TCP congestion control in every host; None: the kernel's default
        self.allowed_cc = None  # the host's allowed list before we widened it
        self.namespaces = []  # created by us, removed in cleanup
        self.procs = {}       # pid -> Popen (each the leader of its own process group)
        self.sw = self.prefix + "sw"

    # -- namespaces and links -------------------------------------------------
    def host_ns(self, i):
        return f"{self.prefix}h{i}"

    @staticmethod
    def addr(i):  # host i (0 = origin) -> 10.77.x.y
        k = i + 10
        return f"{NET}.{k >> 8}.{k & 255}"

    def add_ns(self, name):
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        run(["ip", "-n", name, "link", "set", "lo", "up"])

    @staticmethod
    def tbf(ns, dev, mbit):
        rate_bps = mbit * 1e6
        burst = max(128 * 1024, int(rate_bps / 8 * 0.002))
        run(["tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf",
             "rate", f"{int(round(rate_bps / 1000))}kbit", "burst", str(burst), "latency", "50ms"])

    ALLOWED_CC = "/proc/sys/net/ipv4/tcp_allowed_congestion_control"

    def allow_cc(self):
        """A namespace may only pick an algorithm of the host's allowed list:
        add self.cc to it for the run (restored in cleanup)."""
        with open(self.ALLOWED_CC) as f:
            allowed = f.read().split()
        if self.cc in allowed:
            return
        self.allowed_cc = " ".join(allowed)
        with open(self.ALLOWED_CC, "w") as f:
            f.write(" ".join(allowed + [self.cc]))

    def build(self, rates):
        """rates[i] = Mbit/s of host i's link (0 = origin)."""
        if self.cc:
            self.allow_cc()
        self.add_ns(self.sw)
        run(["ip", "-n", self.sw, "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", self.sw, "addr", "add", f"{SW_ADDR}/16", "dev", "br0"])
        run(["ip", "-n", self.sw, "link", "set", "br0", "up"])
        for i, mbit in enumerate(rates):
            h = self.host_ns(i)
            self.add_ns(h)
            if self.cc:
                run(["ip", "netns", "exec", h, "sysctl", "-q", "-w",
                     f"net.ipv4.tcp_congestion_control={self.cc}"])
            # Both ends are created inside namespaces: nothing in the root one.
            run(["ip", "-n", self.sw, "link", "add", f"v{i}", "type", "veth",
                 "peer", "name", "eth0", "netns", h])
            run(["ip", "-n", self.sw, "link", "set", f"v{i}", "master", "br0", "up"])
            run(["ip", "-n", h, "addr", "add", f"{self.addr(i)}/16", "dev", "eth0"])
            run(["ip", "-n", h, "link", "set", "eth0", "up"])
            self.tbf(h, "eth0", mbit)        # the host's upload
            self.tbf(self.sw, f"v{i}", mbit)  # the host's download

        # A process that lives in sw for the whole invocation: its
        # /proc/PID/net/dev shows sw's interfaces (v<i> rx = host i's upload,
        # tx = its download) to the sampler.
        self.holder = self.spawn(self.sw, ["sleep", "infinity"], os.path.join(self.work, "logs", "holder"))

    def link_counters(self):
        """{i: (bytes host i sent, bytes host i received)} from sw's side."""
        res = {}
        with open(f"/proc/{self.holder.pid}/net/dev") as f:
            for line in f.readlines()[2:]:
                name, data = line.split(":", 1)
                name, v = name.strip(), data.split()
                if name.startswith("v") and name[1:].isdigit():
                    res[int(name[1:])] = (int(v[0]), int(v[8]))
        return res

    def wire_bytes(self, i):
        """Bytes host i's upload shaper sent: every TCP segment as a frame,
        headers included (what tbf charges against the rate; the interface
        counter sees GSO super-packets, so its header share varies)."""
        j = json.loads(run(["tc", "-n", self.host_ns(i), "-s", "-j", "qdisc", "show", "dev", "eth0"]))
        return j[0]["bytes"]

    def tcp_out(self, i):
        """(segments sent, segments retransmitted) by host i's TCP (the
        namespace's /proc/net/snmp)."""
        text = run(["ip", "netns", "exec", self.host_ns(i), "cat", "/proc/net/snmp"])
        rows = [l.split() for l in text.splitlines() if l.startswith("Tcp:")]
        tcp = dict(zip(rows[0][1:], rows[1][1:]))
        return int(tcp["OutSegs"]), int(tcp["RetransSegs"])

    def tx_bytes(self, i):
        j = json.loads(run(["ip", "-n", self.host_ns(i), "-s", "-j", "link", "show", "eth0"]))
        return j[0]["stats64"]["tx"]["bytes"]

    # -- processes --------------------------------------------------------------
    def spawn(self, ns, argv, log_base, env=None, cwd=None):
        """Starts argv in namespace ns (its own process group), stdout/stderr
        to log_base.out/.err."""
        with open(log_base + ".out", "w") as out, open(log_base + ".err", "w") as err:
            p = subprocess.Popen(["ip", "netns", "exec", ns] + argv, stdout=out, stderr=err,
                                 stdin=subprocess.DEVNULL, start_new_session=True,
                                 env=env, cwd=cwd)
        self.procs[p.pid] = p
        return p

    def stop(self, procs, grace=10.0):
        """SIGTERM each process group, wait (SIGKILL after grace); returns
        {pid: exit status}."""
        procs = [p for p in procs if p.pid in self.procs]
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.time() + grace
        codes = {}
        for p in procs:
            try:
                codes[p.pid] = p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                codes[p.pid] = p.wait()
            # The group's leader is gone; its children (nginx workers, a
            # hook) die with SIGTERM to the group; make sure.
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            del self.procs[p.pid]
        return codes

    def own_cpu(self, exclude=()):
        """CPU seconds used by our processes: those alive (and their reaped
        children) plus every child we reaped."""
        hz = os.sysconf("SC_CLK_TCK")
        groups = set(self.procs) - set(exclude)
        ticks = 0
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    rest = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(rest[2]) in groups:  # pgrp
                ticks += sum(int(x) for x in rest[11:15])  # utime stime cutime cstime
        t = os.times()
        return ticks / hz + t.children_user + t.children_system

    def cleanup(self):
        self.stop(list(self.procs.values()), grace=5.0)
        for ns in reversed(self.namespaces):
            kill_ns_processes(ns)
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        self.namespaces = []
        if self.allowed_cc is not None:
            with open(self.ALLOWED_CC, "w") as f:
                f.write(self.allowed_cc)
            self.allowed_cc = None


def kill_ns_processes(ns):
    """Kills, by PID, whatever still runs in one of the testbed's namespaces."""
    r = subprocess.run(["ip", "netns", "pids", ns], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    for pid in r.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def remove_stale(prefix):
    """Removes namespaces left by a testbed run with this prefix that was
    killed without cleaning up (its PID, in the name, is gone)."""
    for ns in ns_list():
        m = re.fullmatch(re.escape(prefix) + r"(\d+)-\w+", ns)
        if m and not pid_alive(int(m.group(1))):
            log(f"removing stale namespace {ns}")
            kill_ns_processes(ns)
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


# ---------------------------------------------------------------------------
# The systems. Each: prepare() once; start_origin(); start_node(i) for every
# node at t0; wait(t0, deadline) -> {node: seconds}; collect() -> extra
# figures (while everything still runs); verify() after stopping.


class LinkSampler(threading.Thread):
    """Samples every link's byte counters every 0.25 s during a run."""

    def __init__(self, tb, t0):
        super().__init__(daemon=True)
        self.tb, self.t0, self.rows, self.done = tb, t0, [], threading.Event()
        self.base = tb.link_counters()

    def sample(self):
        c = self.tb.link_counters()
        up = {i: c[i][0] - self.base[i][0] for i in c}
        down = {i: c[i][1] - self.base[i][1] for i in c}
        nodes = [i for i in c if i > 0]
        self.rows.append((time.time() - self.t0, up[0], sum(down[i] for i in nodes),
                          sum(up[i] for i in nodes)))

    def run(self):
        while not self.done.wait(0.25):
            self.sample()

    def finish(self):
        self.done.set()
        self.join()
        self.sample()
        return self.rows


class System:
    def __init__(self, ctx):
        self.ctx = ctx
        self.tb = ctx.tb
        self.origin_procs = []
        self.node_procs = {}
        self.exclude_cpu = []

    def node_dir(self, i):
        return os.path.join(self.ctx.work, "nodes", str(i))

    def wait_files(self, t0, deadline):
        """Waits for NODE/done (a timestamp the node writes when complete)."""
        times = {}
        while len(times) < len(self.node_procs):
            for i, p in self.node_procs.items():
                if i in times:
                    continue
                path = os.path.join(self.node_dir(i), "done")
                if os.path.exists(path):
                    with open(path) as f:
                        times[i] = float(f.read()) - t0
                elif p.poll() is not None:
                    raise Failure(f"node {i}: {self.name} exited with {p.returncode} before "
                                  f"completing: {tail(self.node_dir(i) + '/fetch.err')}")
            if time.time() > deadline:
                raise Failure(f"{len(self.node_procs) - len(times)} nodes not complete "
                              f"after {self.ctx.args.timeout} s")
            time.sleep(0.02)
        return times

    def collect(self):
        return {}

    def verify(self):
        pass

    def stop_all(self):
        codes = self.tb.stop(list(self.node_procs.values()) + self.origin_procs)
        self.origin_procs = []
        return codes


def tail(path, n=3):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-n:])
    except OSError:
        return ""


def wait_listening(p, out_path, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(out_path, errors="replace") as f:
            m = re.search(r"listening on (\S+)", f.read())
        if m:
            return m.group(1)
        if p.poll() is not None:
            raise Failure(f"{what} exited ({p.returncode}) before listening: "
                          f"{tail(out_path[:-4] + '.err')}")
        time.sleep(0.05)
    raise Failure(f"{what} did not print 'listening on' within {timeout} s")


class Fleetcast(System):
    name = "fleetcast"

    def prepare(self):
        c = self.ctx
        self.store = os.path.join(c.work, "store")
        self.key = os.path.join(c.work, "key")
        run([c.bin, "keygen", "--out", self.key])
        # Published once through an origin (as a publisher would), from the
        # origin's own namespace (over its loopback: not through the link).
        self.start_origin()
        out = run(["ip", "netns", "exec", self.tb.host_ns(0), c.bin, "publish", c.data,
                   "--origin", f"http://{self.origin}", "--dataset", DATASET,
                   "--key", self.key, "--label", "v1", "--release", "--json"],
                  timeout=600)
        self.root = json.loads(out)["root"]
        self.stop_all()
        log(f"fleetcast: published {DATASET} root {self.root[:16]}")

    def start_origin(self):
        c = self.ctx
        argv = [c.bin, "origin", "--store", self.store, "--listen", f"{self.tb.addr(0)}:0",
                "--trust", self.key + ".pub", "--announce-interval", "1"]
        if c.zones:
            argv += ["--zone", c.zone(0)]
        base = os.path.join(c.work, "logs", "fleetcast-origin")
        p = self.tb.spawn(self.tb.host_ns(0), argv, base)
        self.origin_procs = [p]
        self.origin = wait_listening(p, base + ".out", "fleetcast origin")

    def warm(self):
        return [self.store]

    def start_node(self, i):
        c, d = self.ctx, self.node_dir(i)
        argv = [c.bin, "agent", "--tracker", f"http://{self.origin}",
                "--data", os.path.join(d, "data"), "--state", os.path.join(d, "state"),
                "--listen", f"{self.tb.addr(i)}:0", "--subscribe", DATASET,
                "--trust", self.key + ".pub", "--announce-interval", "1"]
        if c.zones:
            argv += ["--zone", c.zone(i)]
        self.node_procs[i] = self.tb.spawn(self.tb.host_ns(i), argv, os.path.join(d, "fetch"))

    def wait(self, t0, deadline):
        # The poller runs in the sw namespace, where every host is reachable.
        cfg = {"t0": t0, "deadline": deadline, "dataset": DATASET, "root": self.root,
               "origin": self.origin,
               "agents": [{"node": i, "pid": p.pid, "out": os.path.join(self.node_dir(i), "fetch.out")}
                          for i, p in self.node_procs.items()]}
        cfg_path = os.path.join(self.ctx.work, "poll.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        base = os.path.join(self.ctx.work, "logs", "poller")
        p = self.tb.spawn(self.tb.sw, [sys.executable, os.path.abspath(__file__), "--poll", cfg_path], base)
        self.exclude_cpu = [p.pid]
        # Its CPU is not the system's: waited for here, with its rusage.
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        del self.tb.procs[p.pid]
        self.poller_cpu = ru.ru_utime + ru.ru_stime
        try:
            with open(base + ".out") as f:
                self.polled = json.load(f)
        except (OSError, ValueError):
            raise Failure(f"poller failed: {tail(base + '.err')}")
        if self.polled.get("error"):
            raise Failure(self.polled["error"])
        return {int(k): v - t0 for k, v in self.polled["times"].items()}

    def collect(self):
        pm = self.polled
        res = {"origin_egress_app_bytes": metric_sum(pm["origin_metrics"], "fleetcast_origin_bytes_sent_total")}
        by_source = {"peer": 0.0, "origin": 0.0}
        cross = 0.0
        for node, text in pm["metrics"].items():
            for labels, v in metric_samples(text, "fleetcast_bytes_received_total"):
                by_source[labels.get("source", "?")] = by_source.get(labels.get("source", "?"), 0) + v
            if self.ctx.zones:
                mine = self.ctx.zone(int(node))
                for labels, v in metric_samples(text, "fleetcast_bytes_received_by_zone_total"):
                    sender = labels.get("zone") or self.ctx.zone(0)  # the origin counts as z1
                    if sender != mine:
                        cross += v
        res["received_bytes_by_source"] = by_source
        # Where the bytes above 1 x F go: the origin's repeated sends, the
        # agents' duplicate receipts and the connections they dropped.
        res["origin_resent_bytes"] = metric_sum(pm["origin_metrics"], "fleetcast_origin_bytes_resent_total")
        res["duplicate_bytes"] = sum(metric_sum(t, "fleetcast_bytes_duplicate_total")
                                     for t in pm["metrics"].values())
        drops = {}
        for text in pm["metrics"].values():
            for labels, v in metric_samples(text, "fleetcast_peer_drops_total"):
                drops[labels.get("reason", "?")] = drops.get(labels.get("reason", "?"), 0) + v
        res["peer_drops"] = drops
        if self.ctx.zones:
            res["cross_zone_bytes"] = cross
            res["cross_zone_min_bytes"] = (self.ctx.zones - 1) * self.ctx.bytes
        return res

    def verify(self):
        for i in self.node_procs:
            cur = os.path.join(self.node_dir(i), "data", DATASET, "current")
            r = subprocess.run([self.ctx.bin, "verify", cur, "--store", self.store, "--root", self.root],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if r.returncode != 0:
                raise Failure(f"node {i}: fleetcast verify failed: {r.stdout.strip()[-300:]}")


def metric_samples(text, name):
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(re.escape(name) + r"(?:\{(.*)\})?\s+(\S+)$", line)
        if m:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1) or ""))
            yield labels, float(m.group(2))


def metric_sum(text, name):
    return sum(v for _, v in metric_samples(text, name))


class Http(System):
    name = "http"

    def prepare(self):
        c = self.ctx
        self.conf_dir = os.path.join(c.work, "nginx")
        os.makedirs(self.conf_dir)
        # Run by root, nginx switches its workers to nobody: they must read the data.
        os.chmod(c.work, 0o755)
        run(["chmod", "-R", "a+rX", c.data])
        group = run(["id", "-gn", "nobody"]).strip() or "nogroup"
        with open(os.path.join(self.conf_dir, "nginx.conf"), "w") as f:
            f.write(f"""user nobody {group};
daemon off;
worker_processes 1;
pid {self.conf_dir}/nginx.pid;
error_log {self.conf_dir}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  default_type application/octet-stream;
  client_body_temp_path {self.conf_dir}/client_body;
  proxy_temp_path {self.conf_dir}/proxy;
  fastcgi_temp_path {self.conf_dir}/fastcgi;
  uwsgi_temp_path {self.conf_dir}/uwsgi;
  scgi_temp_path {self.conf_dir}/scgi;
  server {{ listen {self.tb.addr(0)}:{NGINX_PORT}; root {c.data}; }}
}}
""")

    def warm(self):
        return []

    def url(self, name):
        return f"http://{self.tb.addr(0)}:{NGINX_PORT}/{urllib.parse.quote(name)}"

    def start_origin(self):
        base = os.path.join(self.ctx.work, "logs", "nginx")
        p = self.tb.spawn(self.tb.host_ns(0), ["nginx", "-p", self.conf_dir, "-e", f"{self.conf_dir}/error.log",
                                               "-c", f"{self.conf_dir}/nginx.conf"], base)
        self.origin_procs = [p]
        probe = ["ip", "netns", "exec", self.tb.sw, "curl", "-sf", "-o", "/dev/null", "-r", "0-0",
                 self.url(self.ctx.names[0])]
        wait_for(lambda: subprocess.run(probe).returncode == 0, p, "nginx", base)

    def start_node(self, i):
        d = self.node_dir(i)
        os.makedirs(d, exist_ok=True)
        args = []
        for n in self.ctx.names:
            args += ["-o", "data/" + n, self.url(n)]
        script = (f"curl -sSf --create-dirs {shlex.join(args)} && "
                  f"cd data && sha256sum -c --quiet {shlex.quote(self.ctx.sha_list)} && "
                  "date +%s.%N >../done.tmp && mv ../done.tmp ../done")
        self.node_procs[i] = self.tb.spawn(self.tb.host_ns(i), ["sh", "-c", script],
                                           os.path.join(d, "fetch"), cwd=d)

    def wait(self, t0, deadline):
        return self.wait_files(t0, deadline)


def wait_for(cond, p, what, base, timeout=30):
    deadline = time.time() + timeout
    while not cond():
        if p.poll() is not None:
            raise Failure(f"{what} exited ({p.returncode}): {tail(base + '.err')}")
        if time.time() > deadline:
            raise Failure(f"{what} not ready within {timeout} s: {tail(base + '.err')}")
        time.sleep(0.1)


def bdecode_info_span(b):
    """The byte span of the 'info' value of a bencoded torrent."""
    def skip(i):
        c = b[i:i + 1]
        if c == b"i":
            return b.index(b"e", i) + 1
        if c in (b"l", b"d"):
            i += 1
            while b[i:i + 1] != b"e":
                i = skip(i)
            return i + 1
        colon = b.index(b":", i)
        return colon + 1 + int(b[i:colon])
    assert b[:1] == b"d"
    i = 1
    while b[i:i + 1] != b"e":
        kend = skip(i)
        key = b[b.index(b":", i) + 1:kend]
        vend = skip(kend)
        if key == b"info":
            return kend, vend
        i = vend
    raise Failure("torrent has no info dictionary")


class BitTorrent(System):
    name = "bittorrent"

    def prepare(self):
        c = self.ctx
        self.bt = os.path.join(c.work, "bt")
        os.makedirs(self.bt)
        self.torrent = os.path.join(self.bt, "data.torrent")
        self.announce = f"http://{self.tb.addr(0)}:{TRACKER_PORT}/announce"
        run(["mktorrent", "-a", self.announce, "-n", "data", "-o", self.torrent, c.data], timeout=600)
        with open(self.torrent, "rb") as f:
            t = f.read()
        a, b = bdecode_info_span(t)
        self.info_hash = hashlib.sha1(t[a:b]).digest()
        m = re.search(rb"12:piece lengthi(\d+)e", t)
        self.piece_length = int(m.group(1)) if m else None
        # opentracker (Debian's build serves only whitelisted torrents) chroots
        # to its rootdir and drops to nobody.
        self.ot = os.path.join(self.bt, "opentracker")
        os.makedirs(self.ot)
        with open(os.path.join(self.ot, "whitelist"), "w") as f:
            f.write(self.info_hash.hex() + "\n")
        with open(os.path.join(self.ot, "opentracker.conf"), "w") as f:
            f.write(f"tracker.rootdir {self.ot}\ntracker.user nobody\n"
                    "access.whitelist /whitelist\n")  # opened inside the chroot
        os.chmod(self.bt, 0o755)
        os.chmod(self.ot, 0o755)
        # A hook aria2c runs when a download is complete (before seeding).
        self.hook = os.path.join(self.bt, "done-hook.sh")
        with open(self.hook, "w") as f:
            f.write('#!/bin/sh\ndate +%s.%N >"$FCSW_DONE.tmp" && mv "$FCSW_DONE.tmp" "$FCSW_DONE"\n')
        os.chmod(self.hook, 0o755)
        log(f"bittorrent: info hash {self.info_hash.hex()}, piece length {self.piece_length}")

    def warm(self):
        return []

    ARIA2 = ["aria2c", "--no-conf=true", "--seed-ratio=0.0", "--enable-dht=false", "--enable-dht6=false",
             "--bt-enable-lpd=false", "--file-allocation=none", "--summary-interval=0",
             "--console-log-level=warn", "--disable-ipv6=true"]

    def scrape_complete(self):
        q = urllib.parse.quote_from_bytes(self.info_hash)
        r = subprocess.run(["ip", "netns", "exec", self.tb.sw, "curl", "-sf",
                            f"http://{self.tb.addr(0)}:{TRACKER_PORT}/scrape?info_hash={q}"],
                           stdout=subprocess.PIPE)
        m = re.search(rb"8:completei(\d+)e", r.stdout)
        return int(m.group(1)) if m else 0

    def start_origin(self):
        c, h0 = self.ctx, self.tb.host_ns(0)
        base = os.path.join(c.work, "logs", "opentracker")
        ot = self.tb.spawn(h0, ["opentracker", "-f", os.path.join(self.ot, "opentracker.conf"),
                                "-i", self.tb.addr(0), "-p", str(TRACKER_PORT), "-P", str(TRACKER_PORT)], base)
        sbase = os.path.join(c.work, "logs", "aria2c-seeder")
        seeder_dir = os.path.join(self.bt, "seeder")
        shutil.rmtree(seeder_dir, ignore_errors=True)
        os.makedirs(seeder_dir)
        # The seeder's copy: hard links to the generated files (aria2c checks them).
        run(["cp", "-al", c.data, os.path.join(seeder_dir, "data")])
        seeder = self.tb.spawn(h0, self.ARIA2 + ["--check-integrity=true", "--dir", seeder_dir,
                                                 self.torrent], sbase)
        self.origin_procs = [ot, seeder]
        wait_for(lambda: self.scrape_complete() >= 1, seeder, "aria2c seeder", sbase, timeout=120)
        if ot.poll() is not None:
            raise Failure(f"opentracker exited: {tail(base + '.err')}")

    def start_node(self, i):
        d = self.node_dir(i)
        os.makedirs(d, exist_ok=True)
        env = dict(os.environ, FCSW_DONE=os.path.join(d, "done"))
        self.node_procs[i] = self.tb.spawn(
            self.tb.host_ns(i), self.ARIA2 + [f"--on-bt-download-complete={self.hook}",
                                             "--dir", d, self.torrent],
            os.path.join(d, "fetch"), env=env, cwd=d)

    def wait(self, t0, deadline):
        return self.wait_files(t0, deadline)

    def verify(self):
        for i in self.node_procs:
            r = subprocess.run(["sha256sum", "-c", "--quiet", self.ctx.sha_list],
                               cwd=os.path.join(self.node_dir(i), "data"),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if r.returncode != 0:
                raise Failure(f"node {i}: sha256sum -c failed: {r.stdout.strip()[-300:]}")


SYSTEMS = {"fleetcast": Fleetcast, "http": Http, "bittorrent": BitTorrent}
TOOLS = {"fleetcast": [], "http": ["nginx", "curl", "sha256sum"],
         "bittorrent": ["opentracker", "aria2c", "mktorrent", "sha256sum", "curl"]}


# ---------------------------------------------------------------------------
def poll_main(cfg_path):
    """Runs in the sw namespace: waits for every agent's 'listening on' line,
    polls its /v1/status every 50 ms until the root is active, then reads
    every agent's and the origin's /metrics. Prints JSON on stdout."""
    with open(cfg_path) as f:
        cfg = json.load(f)
    agents = {a["node"]: a for a in cfg["agents"]}
    addrs, conns, times = {}, {}, {}
    result = {"times": times, "addrs": addrs}

    def get(node, addr, path):
        for attempt in (0, 1):  # a kept-alive connection may have been closed
            c = conns.get(node)
            if c is None:
                c = conns[node] = http.client.HTTPConnection(addr, timeout=5)
            try:
                c.request("GET", path)
                r = c.getresponse()
                body = r.read()
                if r.status != 200:
                    raise OSError(f"HTTP {r.status}")
                return body
            except (OSError, http.client.HTTPException):
                c.close()
                conns.pop(node, None)
                if attempt:
                    raise
        return None

    while len(times) < len(agents):
        tick = time.time()
        for n, a in agents.items():
            if n in times:
                continue
            if n not in addrs:
                try:
                    with open(a["out"], errors="replace") as f:
                        m = re.search(r"listening on (\S+)", f.read())
                except OSError:
                    m = None
                if m:
                    addrs[n] = m.group(1)
            if n in addrs:
                try:
                    status = json.loads(get(n, addrs[n], "/v1/status"))
                except (OSError, ValueError, http.client.HTTPException):
                    status = {}
                for d in status.get("datasets", []):
                    if d.get("name") == cfg["dataset"] and (d.get("active") or {}).get("root") == cfg["root"]:
                        times[n] = time.time()
            if n not in times and not pid_alive(a["pid"]):
                result["error"] = f"node {n}: agent exited before activating the version"
                break
        if result.get("error"):
            break
        if time.time() > cfg["deadline"]:
            result["error"] = f"{len(agents) - len(times)} agents not active by the deadline"
            break
        time.sleep(max(0.0, POLL_S - (time.time() - tick)))
    result["metrics"] = {}
    for n, addr in addrs.items():
        try:
            result["metrics"][n] = get(n, addr, "/metrics").decode()
        except (OSError, http.client.HTTPException):
            result["metrics"][n] = ""
    try:
        result["origin_metrics"] = get("origin", cfg["origin"], "/metrics").decode()
    except (OSError, http.client.HTTPException):
        result["origin_metrics"] = ""
    json.dump(result, sys.stdout)


# ---------------------------------------------------------------------------
class Context:
    pass


def warm_page_cache(paths):
    for p in paths:
        for dirpath, _, files in os.walk(p):
            for fn in files:
                try:
                    with open(os.path.join(dirpath, fn), "rb") as f:
                        while f.read(1 << 20):
                            pass
                except OSError:
                    pass


def one_run(ctx, system, rep):
    """One measurement of one system: returns the record (without the common
    fields) and the per-node times."""
    tb = ctx.tb
    shutil.rmtree(os.path.join(ctx.work, "nodes"), ignore_errors=True)
    for i in range(1, ctx.n + 1):
        os.makedirs(system.node_dir(i))
    warm_page_cache([ctx.data] + system.warm())
    system.node_procs = {}
    system.start_origin()
    subprocess.run(["sync"])
    egress0, wire0 = tb.tx_bytes(0), tb.wire_bytes(0)
    segs0 = tb.tcp_out(0)
    own0 = tb.own_cpu()
    cpu0 = cpu_snap()
    t0 = time.time()
    sampler = LinkSampler(tb, t0)
    sampler.start()
    deadline = t0 + ctx.args.timeout
    rec = {"system": system.name, "repeat": rep}
    times = {}
    try:
        for i in range(1, ctx.n + 1):
            system.start_node(i)
        rec["start_spread_s"] = time.time() - t0
        times = system.wait(t0, deadline)
        cpu1 = cpu_snap()
        own1 = tb.own_cpu(exclude=system.exclude_cpu)
        if system.name == "fleetcast":
            own1 -= system.poller_cpu
        rec["cpu_busy"] = cpu_busy(cpu0, cpu1)
        rec["own_cpu_s"] = own1 - own0
        rec["origin_egress_bytes"] = tb.tx_bytes(0) - egress0
        rec["origin_egress_wire_bytes"] = tb.wire_bytes(0) - wire0
        segs1 = tb.tcp_out(0)
        # Retransmitted segments over all segments the origin sent: the part
        # of the wire bytes that carried data a second time.
        rec["origin_tcp_retrans_share"] = ((segs1[1] - segs0[1]) / max(1, segs1[0] - segs0[0]))
        rec.update(system.collect())
    finally:
        system.links = sampler.finish()
        codes = system.stop_all()
    bad = {str(pid): c for pid, c in codes.items() if c not in (0, -15, 143)}
    if bad:
        rec["nonzero_exits"] = bad
    system.verify()
    rec["verified"] = True
    shutil.rmtree(os.path.join(ctx.work, "nodes"), ignore_errors=True)
    return rec, times


def summarize(ctx, rec, times):
    ideal = ctx.ideal_s
    t = [times[i] for i in sorted(times)]
    rec["completion_s"] = {"min": min(t), "median": median(t), "max": max(t)}
    rec["cpu_bound"] = rec["cpu_busy"] >= BUSY_CPU_BOUND
    rec["valid"] = not rec["cpu_bound"]
    r_max, r_med = max(t) / ideal, median(t) / ideal
    # A CPU-bound run measures the CPU, not the network: no ratio.
    rec["ratio"] = None if rec["cpu_bound"] else r_max
    rec["ratio_median"] = None if rec["cpu_bound"] else r_med
    rec["ratio_unchecked"] = r_max
    rec["origin_egress_over_size"] = rec["origin_egress_bytes"] / ctx.bytes
    rec["origin_egress_wire_over_size"] = rec["origin_egress_wire_bytes"] / ctx.bytes
    # The origin's uplink (at B) busy share until the last node: near 1, it
    # is the bottleneck and every byte it sends beyond F costs time.
    rec["origin_link_utilization"] = rec["origin_egress_wire_bytes"] * 8 / (ctx.rates[0] * 1e6 * max(t))
    if "origin_egress_app_bytes" in rec:
        rec["origin_egress_app_over_size"] = rec["origin_egress_app_bytes"] / ctx.bytes
    if ctx.args.rate_spread:
        per = {i: times[i] / (ctx.bytes * 8 / (ctx.rates[i] * 1e6)) for i in times}
        rec["node_ratio_max"] = None if rec["cpu_bound"] else max(per.values())
        rec["node_ratio_max_unchecked"] = max(per.values())
        # The origin's link (at B) bounds every node too: F / min(B_node, B).
        bound = {i: times[i] / (ctx.bytes * 8 / (min(ctx.rates[i], ctx.rates[0]) * 1e6)) for i in times}
        rec["node_ratio_to_bound_max"] = max(bound.values())
    if "cross_zone_bytes" in rec:
        rec["cross_zone_over_min"] = (rec["cross_zone_bytes"] / rec["cross_zone_min_bytes"]
                                      if rec["cross_zone_min_bytes"] else None)
    return rec


def plot(ctx, csv_rows, png):
    d = os.path.join(ctx.work, "plot")
    os.makedirs(d, exist_ok=True)
    series = []
    allx = []
    for name in ctx.systems:
        xs = sorted(r["seconds"] / ctx.ideal_s for r in csv_rows if r["system"] == name)
        if not xs:
            continue
        allx += xs
        path = os.path.join(d, f"{name}.dat")
        with open(path, "w") as f:
            f.write(f"{xs[0]} 0\n")
            for k, x in enumerate(xs, 1):
                f.write(f"{x} {k / len(xs)}\n")
        series.append(f"'{path}' using 1:2 with steps lw 2 title '{name} ({len(xs)} node runs)'")
    if not series:
        return False
    a = ctx.args
    spread = f", rate spread ±{a.rate_spread}%" if a.rate_spread else ""
    zones = f", {a.zones} zones" if a.zones else ""
    logx = "set logscale x\n" if max(allx) / max(min(allx), 1e-9) > 5 else ""
    script = f"""set terminal pngcairo size 960,600 font ',11'
set output '{png}'
set title "completion time CDF: N={ctx.n} nodes, F={ctx.bytes / 2**20:.0f} MiB in {len(ctx.names)} files, B={a.rate:g} Mbit/s{spread}{zones}, F/B={ctx.ideal_s:.2f} s, {a.repeat} repeat(s)"
set xlabel 'completion time / (F/B)'
set ylabel 'fraction of nodes complete'
set yrange [0:1.02]
set grid
set key bottom right
{logx}set arrow from 1, graph 0 to 1, graph 1 nohead dt 2 lc rgb 'gray40'
plot {', '.join(series)}
"""
    r = subprocess.run(["gnuplot"], input=script, text=True, stderr=subprocess.PIPE)
    if r.returncode != 0:
        log(f"gnuplot failed: {r.stderr.strip()}")
        return False
    return True


def plot_links(ctx, link_rows, png):
    """The origin's uplink and the nodes' mean downlink over time, the first
    repeat of each system."""
    d = os.path.join(ctx.work, "plot")
    up, down = [], []
    for name in ctx.systems:
        rows = [r for r in link_rows if r[0] == name and r[1] == 1]
        if len(rows) < 2:
            continue
        path = os.path.join(d, f"{name}-links.dat")
        with open(path, "w") as f:
            for a, b in zip(rows, rows[1:]):
                dt = b[2] - a[2]
                if dt > 0:
                    f.write(f"{b[2] / ctx.ideal_s} {(b[3] - a[3]) * 8 / dt / 1e6} "
                            f"{(b[4] - a[4]) * 8 / dt / 1e6 / ctx.n}\n")
        up.append(f"'{path}' using 1:2 with lines lw 2 title '{name}'")
        down.append(f"'{path}' using 1:3 with lines lw 2 title '{name}'")
    if not up:
        return False
    # HTTP's flat N x F/B would squeeze the others: cut the x axis after them.
    ends = {name: max(r[2] for r in link_rows if r[0] == name and r[1] == 1) / ctx.ideal_s
            for name in ctx.systems if any(r[0] == name and r[1] == 1 for r in link_rows)}
    others = [v for k, v in ends.items() if k != "http"]
    xmax = 1.15 * max(others) if others and "http" in ends else max(ends.values()) * 1.02
    b = ctx.args.rate
    script = f"""set terminal pngcairo size 960,720 font ',11'
set output '{png}'
set multiplot layout 2,1 title "links over time (repeat 1): N={ctx.n}, F={ctx.bytes / 2**20:.0f} MiB, B={b:g} Mbit/s, F/B={ctx.ideal_s:.2f} s"
set grid
set key top right
set xlabel 'time / (F/B)'
set xrange [0:{xmax}]
set yrange [0:{b * 1.15}]
set ylabel "origin uplink, Mbit/s"
plot {', '.join(up)}, {b} with lines dt 2 lc rgb 'gray40' title 'B'
set ylabel "mean node downlink, Mbit/s"
plot {', '.join(down)}, {b} with lines dt 2 lc rgb 'gray40' title 'B'
unset multiplot
"""
    r = subprocess.run(["gnuplot"], input=script, text=True, stderr=subprocess.PIPE)
    if r.returncode != 0:
        log(f"gnuplot failed: {r.stderr.strip()}")
        return False
    return True


def rel(path):
    return os.path.relpath(path, REPO) if path.startswith(REPO + "/") else path


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--poll":
        poll_main(sys.argv[2])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bin", help="the fleetcast binary")
    ap.add_argument("--nodes", type=int, default=16)
    ap.add_argument("--size", type=parse_size, default=parse_size("256MiB"))
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--rate", type=float, default=100.0, help="link rate B in Mbit/s")
    ap.add_argument("--zones", type=int, default=0)
    ap.add_argument("--rate-spread", type=float, default=0.0, help="±PCT around B per node")
    ap.add_argument("--systems", default="fleetcast,http,bittorrent")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cc", default="cubic",
                    help="TCP congestion control in every host (default cubic, Debian's default; "
                         "'system' keeps this kernel's default; docs/performance.md)")
    ap.add_argument("--results", default=os.path.join(REPO, "bench", "results", "swarm.jsonl"))
    ap.add_argument("--timeout", type=float, default=0, help="seconds per run (default: 60 + 4 x N x F/B)")
    ap.add_argument("--netns-prefix", default="fcsw-")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs) for debugging")
    a = ap.parse_args()
    systems = [s for s in a.systems.split(",") if s]
    for s in systems:
        if s not in SYSTEMS:
            ap.error(f"unknown system {s} (fleetcast, http, bittorrent)")
    if a.nodes < 1 or a.nodes > 4000 or a.files < 1 or a.repeat < 1 or a.rate <= 0:
        ap.error("need --nodes 1..4000, --files >= 1, --repeat >= 1, --rate > 0")
    if a.zones < 0 or a.zones > a.nodes or not 0 <= a.rate_spread < 100:
        ap.error("need 0 <= --zones <= --nodes and 0 <= --rate-spread < 100")
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,15}", a.netns_prefix):
        ap.error("--netns-prefix: up to 16 of a-z 0-9 -")
    os.environ["PATH"] += ":/usr/sbin:/sbin"
    need = ["ip", "tc", "sync"] + sorted({t for s in systems for t in TOOLS[s]})
    if not a.no_plot:
        need.append("gnuplot")
    missing = [t for t in need if not shutil.which(t)]
    if missing:
        print(f"swarm testbed: not found: {' '.join(missing)} (./dev setup)", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("swarm testbed: needs root (network namespaces, tc)", file=sys.stderr)
        return 2

    ctx = Context()
    ctx.args, ctx.systems, ctx.n = a, systems, a.nodes
    ctx.zones = a.zones
    ctx.zone = lambda i: f"z{(i - 1) % a.zones + 1}" if i > 0 else "z1"
    rng = random.Random(a.seed)
    ctx.rates = [a.rate] + [a.rate * (1 + a.rate_spread / 100 * rng.uniform(-1, 1)) for _ in range(a.nodes)]
    base = os.environ.get("TMPDIR") or "/var/tmp"
    ctx.work = work = tempfile.mkdtemp(prefix="fleetcast-swarm-", dir=base)
    if a.cc == "system":
        a.cc = None
    ctx.tb = tb = Testbed(a.netns_prefix, work, a.cc)
    run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    results_dir = os.path.dirname(os.path.abspath(a.results))
    csv_path = os.path.join(results_dir, f"swarm-{run_id}.csv")
    png_path = os.path.join(results_dir, f"swarm-{run_id}.png")
    links_path = os.path.join(results_dir, f"swarm-{run_id}-links.csv")
    links_png = os.path.join(results_dir, f"swarm-{run_id}-links.png")

    def on_signal(sig, _frame):
        raise SystemExit(128 + sig)
    # Ctrl-C cleans up even where SIGINT was ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    failed = []
    try:
        os.chmod(work, 0o755)  # nginx and opentracker run as nobody
        os.makedirs(os.path.join(work, "logs"))
        os.makedirs(os.path.join(work, "bin"))
        # The binary under test, copied: a rebuild during the run must not change it.
        ctx.bin = os.path.join(work, "bin", "fleetcast")
        shutil.copy(a.bin, ctx.bin)
        with open(ctx.bin, "rb") as f:
            bin_sha = hashlib.sha256(f.read()).hexdigest()[:16]
        remove_stale(a.netns_prefix)
        ctx.data = os.path.join(work, "data")
        run([ctx.bin, "generate", ctx.data, "--size", str(a.size), "--files", str(a.files),
             "--seed", str(a.seed)], timeout=600)
        ctx.names = regular_unique_files(ctx.data)
        ctx.bytes = sum(os.path.getsize(os.path.join(ctx.data, n)) for n in ctx.names)
        ctx.sha_list = os.path.join(work, "data.sha256")
        with open(ctx.sha_list, "w") as f:
            f.write(run(["sha256sum", "--"] + ctx.names, cwd=ctx.data, timeout=600))
        ctx.ideal_s = ctx.bytes * 8 / (a.rate * 1e6)
        if not a.timeout:
            a.timeout = 60 + 4 * a.nodes * ctx.ideal_s
        fstype = run(["df", "--output=fstype", work]).split()[-1]
        log(f"{work} ({fstype}): {ctx.bytes} bytes in {len(ctx.names)} files (seed {a.seed}); "
            f"N={a.nodes}, B={a.rate:g} Mbit/s, F/B={ctx.ideal_s:.2f} s")
        tb.build(ctx.rates)
        log(f"testbed: {len(tb.namespaces)} namespaces ({tb.prefix}*)")
        impls = {s: SYSTEMS[s](ctx) for s in systems}
        for s in systems:
            impls[s].prepare()

        common = {
            "bench": "swarm", "run_id": run_id, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "commit": subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True).stdout.strip() or "unknown",
            "binary_sha256": bin_sha,
            "machine": {"nproc": os.cpu_count(), "cpu": cpu_model(), "kernel": os.uname().release,
                        "fs": fstype, "loadavg_at_start": os.getloadavg()[0]},
            "nodes": a.nodes, "files": len(ctx.names), "bytes": ctx.bytes, "rate_mbit": a.rate,
            "zones": a.zones, "rate_spread_pct": a.rate_spread, "seed": a.seed, "repeats": a.repeat,
            "tcp_cc": a.cc or default_cc(),
            "ideal_s": ctx.ideal_s,
            "csv": rel(csv_path), "links_csv": rel(links_path),
            "plot": None,
        }
        records, csv_rows, link_rows = [], [], []
        for rep in range(1, a.repeat + 1):
            order = systems[(rep - 1) % len(systems):] + systems[:(rep - 1) % len(systems)]
            for s in order:
                rec = {"system": s, "repeat": rep}
                times = {}
                impls[s].links = []
                try:
                    rec, times = one_run(ctx, impls[s], rep)
                    rec = summarize(ctx, rec, times)
                    log(f"repeat {rep}/{a.repeat}: {describe(rec)}")
                except Failure as e:
                    rec["error"] = str(e)
                    failed.append(rec)
                    log(f"repeat {rep}/{a.repeat}: {s} FAILED: {e}")
                    for p in list(impls[s].node_procs.values()) + impls[s].origin_procs:
                        tb.stop([p])
                records.append(rec)
                link_rows += [(s, rep) + row for row in impls[s].links]
                for i, t in sorted(times.items()):
                    csv_rows.append({"system": s, "repeat": rep, "node": i,
                                     "zone": ctx.zone(i) if a.zones else "",
                                     "rate_mbit": ctx.rates[i], "seconds": t})
        os.makedirs(results_dir, exist_ok=True)
        with open(csv_path, "w") as f:
            f.write("run_id,system,repeat,node,zone,rate_mbit,seconds,ratio_ideal,ratio_node\n")
            for r in csv_rows:
                node_ideal = ctx.bytes * 8 / (r["rate_mbit"] * 1e6)
                f.write(f"{run_id},{r['system']},{r['repeat']},{r['node']},{r['zone']},"
                        f"{r['rate_mbit']:.3f},{r['seconds']:.3f},{r['seconds'] / ctx.ideal_s:.4f},"
                        f"{r['seconds'] / node_ideal:.4f}\n")
        with open(links_path, "w") as f:
            f.write("run_id,system,repeat,t_s,origin_up_bytes,nodes_down_bytes,nodes_up_bytes\n")
            for r in link_rows:
                f.write(f"{run_id},{r[0]},{r[1]},{r[2]:.3f},{r[3]},{r[4]},{r[5]}\n")
        if not a.no_plot and plot(ctx, csv_rows, png_path):
            common["plot"] = rel(png_path)
            if plot_links(ctx, link_rows, links_png):
                common["links_plot"] = rel(links_png)
        with open(a.results, "a") as f:
            for rec in records:
                f.write(json.dumps({**common, **rec}, sort_keys=True) + "\n")
        print_table(ctx, records)
        print(f"appended {len(records)} lines to {a.results}; per-node times {csv_path}, "
              f"links {links_path}" + (f"; plots {png_path}, {links_png}" if common["plot"] else ""))
        return 1 if failed else 0
    except Failure as e:
        print(f"swarm testbed: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("swarm testbed: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        tb.cleanup()
        if a.keep:
            print(f"swarm testbed: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def regular_unique_files(root):
    """Makes the generated tree one that every system moves in full: drops
    its symlinks, empty files, empty dirs and files whose content another
    file already has (fleetcast would move those bytes once, HTTP and
    BitTorrent twice). Returns the remaining file names, sorted."""
    seen, names = set(), []
    for dp, dirs, fs in sorted(os.walk(root)):
        for f in sorted(fs):
            path = os.path.join(dp, f)
            if os.path.islink(path) or not os.path.isfile(path) or os.path.getsize(path) == 0:
                os.unlink(path)
                continue
            h = hashlib.sha256()
            with open(path, "rb") as fh:
                while b := fh.read(1 << 20):
                    h.update(b)
            if h.digest() in seen:
                os.unlink(path)
                continue
            seen.add(h.digest())
            names.append(os.path.relpath(path, root))
    for dp, dirs, fs in sorted(os.walk(root, topdown=False)):
        if dp != root and not os.listdir(dp):
            os.rmdir(dp)
    return sorted(names)


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def describe(rec):
    c = rec["completion_s"]
    s = (f"{rec['system']}: min {c['min']:.2f} / median {c['median']:.2f} / max {c['max']:.2f} s, ")
    if rec["cpu_bound"]:
        s += f"CPU-BOUND (busy {rec['cpu_busy'] * 100:.0f}%): not a valid measurement"
    else:
        s += f"max {rec['ratio']:.2f} x F/B, median {rec['ratio_median']:.2f} x, cpu busy {rec['cpu_busy'] * 100:.0f}%"
    s += f", origin egress {rec['origin_egress_wire_over_size']:.2f} x F on the wire"
    if "origin_tcp_retrans_share" in rec:
        s += f" ({rec['origin_tcp_retrans_share'] * 100:.1f}% of its TCP segments retransmitted)"
    if "origin_egress_app_over_size" in rec:
        s += f", {rec['origin_egress_app_over_size']:.2f} x in chunk payload"
    s += f" (uplink busy {rec['origin_link_utilization'] * 100:.0f}% until the last node)"
    if "cross_zone_over_min" in rec:
        s += f", cross-zone {rec['cross_zone_bytes'] / 2**20:.0f} MiB = {rec['cross_zone_over_min']:.2f} x (Z-1)F"
    if "origin_resent_bytes" in rec:
        s += (f", origin resent {rec['origin_resent_bytes'] / 2**20:.1f} MiB"
              f", agents' duplicates {rec['duplicate_bytes'] / 2**20:.1f} MiB"
              f", drops {rec['peer_drops'] or 'none'}")
    if "node_ratio_max_unchecked" in rec:
        s += f", max node t/(F/B_node) {rec['node_ratio_max_unchecked']:.2f}"
    if rec.get("nonzero_exits"):
        s += f", NONZERO EXITS on SIGTERM (pid: status) {rec['nonzero_exits']}"
    return s


def print_table(ctx, records):
    a = ctx.args
    print(f"\nswarm testbed: N={ctx.n}, F={ctx.bytes / 2**20:.1f} MiB in {len(ctx.names)} files, "
          f"B={a.rate:g} Mbit/s, F/B={ctx.ideal_s:.2f} s"
          + (f", {a.zones} zones" if a.zones else "") + (f", rate spread ±{a.rate_spread:g}%" if a.rate_spread else "")
          + f"; {os.cpu_count()} cores; medians over {a.repeat} repeat(s)")
    hdr = (f"{'system':<11} {'runs':>4} {'min s':>7} {'median s':>8} {'max s':>7} {'max/ideal':>10} "
           f"{'med/ideal':>10} {'egress/F':>8} {'cpu busy':>8} {'own cpu s':>9}")
    extra = []
    if a.zones:
        extra.append("cross-zone/(Z-1)F")
    if a.rate_spread:
        extra.append("max t/(F/B_node)")
    print(hdr + "".join(f" {e:>17}" for e in extra))
    for s in ctx.systems:
        ok = [r for r in records if r["system"] == s and "error" not in r]
        nfail = sum(1 for r in records if r["system"] == s and "error" in r)
        if not ok:
            print(f"{s:<11} {0:>4} FAILED ({nfail} runs)")
            continue

        def m(f):
            return median([f(r) for r in ok])
        valid = [r for r in ok if r["valid"]]
        if valid:
            rmax = f"{median([r['ratio'] for r in valid]):.2f}"
            rmed = f"{median([r['ratio_median'] for r in valid]):.2f}"
            if len(valid) < len(ok):
                rmax += "*"
        else:
            rmax = rmed = "CPU-bound"
        line = (f"{s:<11} {len(ok):>4} {m(lambda r: r['completion_s']['min']):>7.2f} "
                f"{m(lambda r: r['completion_s']['median']):>8.2f} {m(lambda r: r['completion_s']['max']):>7.2f} "
                f"{rmax:>10} {rmed:>10} {m(lambda r: r['origin_egress_wire_over_size']):>8.2f} "
                f"{m(lambda r: r['cpu_busy']) * 100:>7.0f}% {m(lambda r: r['own_cpu_s']):>9.1f}")
        if a.zones:
            v = [r["cross_zone_over_min"] for r in ok if r.get("cross_zone_over_min") is not None]
            line += f" {median(v):>17.2f}" if v else f" {'':>17}"
        if a.rate_spread:
            v = [r["node_ratio_max"] for r in ok if r.get("node_ratio_max") is not None]
            line += f" {median(v):>17.2f}" if v else f" {'CPU-bound':>17}"
        if nfail:
            line += f"  ({nfail} failed)"
        print(line)
    print("ratios: completion time / (F/B); a run with the machine's CPUs >= 90% busy is CPU-bound, "
          "not a measurement of the network, and gets no ratio (* = CPU-bound runs left out of the median); "
          "egress/F: bytes the origin's upload shaper sent (every segment as a frame, headers included) / dataset bytes")


if __name__ == "__main__":
    sys.exit(main())
