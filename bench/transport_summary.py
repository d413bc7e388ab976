#!/usr/bin/env python3
"""The tables of docs/benchmarks.md from the results bench/transport.sh writes.

    python3 bench/transport_summary.py [RESULTS_DIR]   (default bench/results/transport)

CPU per delivery is the server's CPU time from the end of the connect phase
to the end of the run, divided by the deliveries received (for the floor:
its writer thread's CPU time during the send phase), so sign-ins and joins
are left out for every peer alike.
"""
import glob
import json
import os
import re
import sys

here = os.path.dirname(os.path.abspath(__file__))
d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "results", "transport")


def load(name):
    path = os.path.join(d, name)
    if not os.path.exists(path):
        return None
    try:
        return json.load(open(path))
    except json.JSONDecodeError:
        return None


def g(r, *ks):
    for k in ks:
        r = r.get(k) if isinstance(r, dict) else None
    return r


def f(v, n=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{n}f}"
    return f"{v:,}"


def us_per_delivery(peer, r):
    """Server CPU microseconds per delivery received, delivery phase only."""
    received = r.get("deliveries_received") or 0
    if not received:
        return None
    if peer == "floor":
        cpu = g(r, "writer", "cpu_s")
    else:
        end, start = g(r, "server", "end", "cpu_s"), g(r, "server", "after_connect", "cpu_s")
        cpu = None if end is None or start is None else end - start
    return None if cpu is None else cpu * 1e6 / received


PEERS = [("floor", "floor"), ("switchboard", "switchboard"), ("before", "switchboard before"), ("node", "node socket.io")]


def fanout():
    reps = sorted({int(m.group(1)) for m in (re.search(r"-r(\d+)\.json$", p) for p in glob.glob(os.path.join(d, "*-fanout-*.json"))) if m})
    out = ["| rate (msg/s) | rep | peer | deliveries recv / expected | p50 ms | p99 ms | max ms | CPU us / delivery | x floor | x node |",
           "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for rate in (500, 1000, 2000):
        for rep in reps:
            rows = {p: load(f"{p}-fanout-{rate}-r{rep}.json") for p, _ in PEERS}
            cost = {p: us_per_delivery(p, r) for p, r in rows.items() if r}
            for p, label in PEERS:
                r = rows.get(p)
                if not r:
                    continue
                c = cost.get(p)
                ratio = lambda base: f(c / cost[base], 2) if c and cost.get(base) else "-"
                out.append("| " + " | ".join([
                    f(rate), str(rep), label,
                    f"{f(r.get('deliveries_received'))} / {f(r.get('deliveries_expected'))}",
                    f(g(r, "latency_ms", "p50"), 2), f(g(r, "latency_ms", "p99"), 2), f(g(r, "latency_ms", "max"), 2),
                    f(c, 2), ratio("floor"), ratio("node"),
                ]) + " |")
    return "\n".join(out)


def idle():
    out = ["| peer | conns | alive at end | RSS before MiB | RSS at end of hold MiB | KiB / conn |",
           "|---|---:|---:|---:|---:|---:|"]
    for p, label in PEERS[1:]:
        r = load(f"{p}-idle-r1.json")
        if not r:
            continue
        before, held = g(r, "server", "before", "rss_kb"), g(r, "server", "end_of_hold", "rss_kb")
        out.append("| " + " | ".join([
            label, f(r.get("conns_established")), f(r.get("conns_alive_at_end")),
            f(before / 1024 if before else None), f(held / 1024 if held else None),
            f(g(r, "server", "rss_kb_per_conn"), 2),
        ]) + " |")
    return "\n".join(out)


def idle_max():
    out = ["| build | conns | greeted | answering after the hold | connect s | KiB / conn 2 s in | KiB / conn at end of hold (60 s) |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for build in ("after", "before"):
        r = load(f"{build}-idle-max.json")
        if not r:
            continue
        out.append("| " + " | ".join([
            build, f(r.get("conns_requested")), f(r.get("conns_established")), f(r.get("alive_at_end")),
            f(r.get("connect_time_s"), 1),
            f(g(r, "server_idle", "rss_kb_per_conn_settled") or g(r, "server_idle", "rss_kb_per_conn"), 2),
            f(g(r, "server_idle", "rss_kb_per_conn"), 2),
        ]) + " |")
    return "\n".join(out)


def close():
    out = ["| build | closes | server closed TCP first | timed out (5 s) | p50 ms | p99 ms | max ms | all, one after another, s |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for build in ("after", "before"):
        r = load(f"{build}-close.json")
        if not r:
            continue
        out.append("| " + " | ".join([
            build, f(r.get("closes")), f(r.get("closed_by_server_first")), f(r.get("timed_out_after_5s")),
            f(g(r, "close_ms", "p50"), 2), f(g(r, "close_ms", "p99"), 2), f(g(r, "close_ms", "max"), 2),
            f(r.get("total_s"), 2),
        ]) + " |")
    return "\n".join(out)


def threads():
    out = ["sb-loadgen (`bench/run.sh`), 1 room x 100, 20 s: each server thread's CPU per delivery and share of one core.", "",
           "| rate (msg/s) | deliveries | p99 ms | thread | CPU s | us / delivery | share of one core |",
           "|---:|---:|---:|---|---:|---:|---:|"]
    found = False
    for rate in (500, 1000, 2000):
        r = load(f"after-threads-{rate}.json")
        if not r:
            continue
        found = True
        seconds = (r.get("duration_s") or 20) + (r.get("drain_ms") or 0) / 1000
        received = r.get("deliveries_received") or 0
        for t in g(r, "server", "threads") or []:
            name = re.sub(r" \(\d+\)$", "", t["thread"])
            name = {"switchboard": "main: the live thread", "actix-rt|system": "an HTTP worker"}.get(name, name)
            per = t["cpu_s"] * 1e6 / received if received else None
            out.append(f"| {f(rate)} | {f(received)} | {f(g(r, 'latency_ms', 'p99'), 2)} | {name} | {f(t['cpu_s'], 2)} | "
                       f"{f(per, 2)} | {f(100 * t['cpu_s'] / seconds, 0)}% |")
    return "\n".join(out) if found else ""


def loads():
    path = os.path.join(d, "load.log")
    if not os.path.exists(path):
        return ""
    lines = [l.split(" :: ")[0] for l in open(path).read().splitlines()]
    averages = [float(l.split()[1]) for l in lines if len(l.split()) > 1]
    if not averages:
        return ""
    return f"1-minute load average before each run: {min(averages):.2f} to {max(averages):.2f} ({len(averages)} runs)."


for title, table in [("Fan-out: 1 room x 100, 1 sender, 20 s", fanout()), ("Idle: 5,000 connections, held 30 s", idle()),
                     ("Idle: as many connections as the descriptor limit allows", idle_max()),
                     ("Close: connections closed one after another", close()), ("Threads", threads()), ("Load", loads())]:
    if table:
        print(f"### {title}\n\n{table}\n")
