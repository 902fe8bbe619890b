#!/usr/bin/env python3
"""The benchmark suite: nexxo-cache side by side with raw RocksDB, lmdb-js, classic-level
and an in-memory map, on the same data, in one run.

Every measurement is one worker process (crates/nexxo-core/examples/bench_worker.rs for Rust contestants,
bench/node/worker.js for Node ones), so that its peak RSS is its own. Contestants run
interleaved, round after round, so that machine noise affects all alike; the report
gives the median and the spread (min-max) of the rounds.

    scripts/bench.sh [--rounds 3] [--quick]

writes bench/results/latest.json, bench/results/report.md and bench/results/*.svg.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/nexxo-cache/target"))
RUST_WORKER = os.path.join(TARGET, "release", "examples", "bench_worker")
NODE_WORKER = os.path.join(ROOT, "bench", "node", "worker.js")
BUILD = os.environ.get("NEXXO_BUILD_DIR", os.path.join(ROOT, "build"))
C_WORKER = os.path.join(BUILD, "bench_worker_c")
GO_WORKER = os.path.join(BUILD, "bench-worker-go")
REMOTE_WORKER = os.path.join(TARGET, "release", "examples", "remote_bench")
# The servers scripts/servers.sh started (scripts/bench.sh does): (label, env variable).
REMOTES = [("remote-http", "NEXXO_TEST_HTTP_URL"), ("remote-redis", "NEXXO_TEST_REDIS_URL"),
           ("remote-https", "NEXXO_TEST_HTTPS_URL"), ("remote-rediss", "NEXXO_TEST_REDISS_URL")]
REMOTE_COUNT = 20000

RUST = ["nexxo", "rocksdb", "memory"]
NODE = ["nexxo-node", "lmdb", "classic-level"]
# The seed's API (getCacheManager, set and get per key): the headline rows.
MANAGER = "nexxo-manager"
FFI = ["nexxo-c", "nexxo-go"]
# The C worker with NEXXO_CACHE_MEMORY_BUDGET=512M: a warm table that holds 1,000,000 of
# these artifacts (1.6 x (stored bytes + 64 per entry), README "Reads: the warm table").
BIG_BUDGET = "nexxo-c-512m"
# Which nexxo each contestant is compared with: the one in the same runtime; the C and
# Go rows are compared with the Rust API, which shows what their FFI costs.
BASELINE = {c: "nexxo" for c in RUST + FFI + ["nexxo-nolz4"]} | {c: "nexxo-node" for c in NODE} | {f"{c}-batch": "nexxo-node-batch" for c in NODE}
LABELS = {
    "nexxo": "nexxo-cache (Rust API)",
    "nexxo-nolz4": "nexxo-cache (Rust API), LZ4 off",
    "rocksdb": "raw RocksDB, default options (Rust)",
    "rocksdb-floor": "raw RocksDB, empty store, one column family (Rust)",
    "memory": "in-memory HashMap (Rust): the limit",
    "nexxo-c": "nexxo-cache (C ABI)",
    BIG_BUDGET: "nexxo-cache (C ABI), NEXXO_CACHE_MEMORY_BUDGET=512M",
    "nexxo-go": "nexxo-cache (Go, cgo)",
    "nexxo-node": "nexxo-cache (Node)",
    "nexxo-manager": "nexxo-cache, the seed's API (Node getCacheManager: set, get)",
    "nexxo-node-batch": "nexxo-cache (Node, getMany of 1000)",
    "lmdb-batch": "lmdb-js 3.5.6 (Node, getMany of 1000)",
    "classic-level-batch": "classic-level 3.0.0 (Node, getMany of 1000)",
    "lmdb": "lmdb-js 3.5.6 (Node)",
    "classic-level": "classic-level 3.0.0 (Node)",
    "remote-http": "nginx WebDAV on loopback (Bazel HTTP layout)",
    "remote-redis": "redis-server on loopback",
    "remote-https": "the same nginx over TLS (https://, the test CA)",
    "remote-rediss": "the same redis-server over TLS (rediss://, the test CA)",
}

# (label, workload, count, value length, contestants, what it shows)
PLAN = [
    ("seed-1k", "write-read", 1000, 1024, RUST + FFI + [MANAGER] + NODE, "the seed's workload: 1000 artifacts of 1 KiB, written one by one, read in an order unrelated to key order"),
    ("seed-100k", "write-read", 100000, 1024, RUST + ["nexxo-nolz4"] + FFI + [MANAGER] + NODE, "the same at a real project's size: 100,000 artifacts"),
    ("cold-open-100k", "cold-open", 100000, 1024, ["nexxo", "rocksdb", "nexxo-c", "nexxo-go", MANAGER, "nexxo-node", "lmdb", "classic-level"], "a new process opens seed-100k's store and reads every entry: the next build. Node's open ms is with the native library already loaded (lmdb-js and classic-level load theirs at require)"),
    ("cold-open-batch-100k", "cold-open-batch", 100000, 1024, [f"{c}-batch" for c in NODE], "the same, each Node contestant reading through its batch read, 1000 keys a call, in the same order"),
    ("first-build-100k", "first-build", 100000, 1024, [MANAGER] + NODE, "the first build, as a build tool runs it on an empty cache: for each of 100,000 modules a get (a miss) then a set of 1 KiB, one key at a time, a turn of the event loop ending every 100 modules (the tool's own asynchronous work) and every 1000th set awaited (as in the seed rows); a timer around each get"),
    ("open-floor", "open-floor", 0, 0, ["rocksdb-floor"], "raw RocksDB (defaults, info log off) opening an empty store with one column family in a new process: the least an open of any RocksDB-based cache costs here, to set beside lmdb-js's open of the 100,000-entry store above"),
    ("values-100B", "write-read", 100000, 100, ["nexxo", "rocksdb", "memory", "nexxo-node", "lmdb"], "100,000 values of 100 bytes"),
    ("values-16KiB", "write-read", 10000, 16384, ["nexxo", "rocksdb", "memory", "nexxo-node", "lmdb"], "10,000 values of 16 KiB"),
    ("values-256KiB", "write-read", 500, 262144, ["nexxo", "rocksdb", "memory", "nexxo-node", "lmdb"], "500 values of 256 KiB"),
    ("batch-1000", "batch", 100000, 1024, RUST + FFI + NODE, "100,000 artifacts written in batches of 1000, then read one by one"),
    ("mixed-90-10", "mixed", 100000, 1024, RUST, "2 threads, 90% gets and 10% sets over 100,000 entries (100,000 operations each)"),
    ("at-cap", "at-cap", 100000, 1024, ["nexxo"], "100,000 artifacts into a cache capped at 1/16 of their logical size (about a quarter of their stored size), eviction working; compare with seed-100k's nexxo row"),
    ("scale-1m", "batch", 1000000, 1024, ["nexxo-c", BIG_BUDGET, "memory"], "1,000,000 artifacts from C, written in batches of 1000 and read back (each store is kept for cold-open-1m), and the same into the in-memory HashMap (the limit: its reads beside seed-100k's show what the memory hierarchy alone costs at this size)"),
    ("cold-open-1m", "cold-open", 1000000, 1024, ["nexxo-c", BIG_BUDGET], "a new process opens scale-1m's store and reads every entry in random order: its per-get cost and peak RSS beside cold-open-100k's nexxo-c row; with the default 64 MiB budget the warm table holds 40 MiB (about 150,000 of these entries), with NEXXO_CACHE_MEMORY_BUDGET=512M (both processes) all of them"),
]
# The stores the cold-open rows read, by label: written by the row named, in the same round.
COLD_SOURCE = {"cold-open-1m": "scale-1m"}
# Rows whose stores are kept for a cold-open row (removed once that row ran).
KEPT = {"seed-100k", "scale-1m"}
QUICK = {"seed-1k", "seed-100k", "cold-open-100k", "cold-open-batch-100k", "first-build-100k", "open-floor", "batch-1000"}


def run_one(contestant, workload, count, length, directory):
    """Runs one worker; wait4 gives its own peak RSS."""
    if contestant == MANAGER or contestant in NODE or contestant.removesuffix("-batch") in NODE:
        cmd = ["node", NODE_WORKER, contestant.removesuffix("-batch"), workload, str(count), str(length), directory]
    elif contestant in ("nexxo-c", BIG_BUDGET):
        cmd = [C_WORKER, workload, str(count), str(length), directory]
    elif contestant == "nexxo-go":
        cmd = [GO_WORKER, workload, str(count), str(length), directory]
    else:
        cmd = [RUST_WORKER, contestant.removesuffix("-floor"), workload, str(count), str(length), directory]
    return run_cmd(cmd, dict(os.environ, NEXXO_CACHE_MEMORY_BUDGET="512M") if contestant == BIG_BUDGET else None)


def run_cmd(cmd, env=None):
    """Runs one worker command and parses its last output line."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.decode()}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["peak_rss_mib"] = usage.ru_maxrss / 1024
    if result.get("disk_bytes") and result.get("logical_bytes"):
        result["compression"] = result["logical_bytes"] / result["disk_bytes"]
    return result


def summarize(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="only the seed, cold-open and batch workloads")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = ap.parse_args()
    plan = [p for p in PLAN if not args.quick or p[0] in QUICK]
    runs = {}  # label -> contestant -> list of results
    scratch = tempfile.mkdtemp(prefix="nexxo-bench-")
    try:
        for rnd in range(args.rounds):
            for label, workload, count, length, contestants, _ in plan:
                # Rotate the order each round, so that no contestant always runs first.
                order = contestants[rnd % len(contestants):] + contestants[: rnd % len(contestants)]
                for c in order:
                    if workload.startswith("cold-open"):
                        source = COLD_SOURCE.get(label, "seed-100k")
                        directory = os.path.join(scratch, f"{source}-{c.removesuffix('-batch')}-{rnd}")
                    else:
                        directory = os.path.join(scratch, f"{label}-{c}-{rnd}")
                    r = run_one(c, workload, count, length, directory)
                    runs.setdefault(label, {}).setdefault(c, []).append(r)
                    if label in COLD_SOURCE:
                        # A store kept for this row alone goes once it was read.
                        shutil.rmtree(directory, ignore_errors=True)
                    elif label not in KEPT and not workload.startswith("cold-open"):
                        # seed-100k's and scale-1m's stores are kept for the cold-open rows;
                        # the rest go now.
                        shutil.rmtree(directory, ignore_errors=True)
                print(f"round {rnd + 1}/{args.rounds}: {label} done", file=sys.stderr)
            for label, var in REMOTES:
                url = os.environ.get(var)
                if not url:
                    print(f"{var} is not set: the remote benchmark is skipped (scripts/bench.sh starts the servers)", file=sys.stderr)
                    continue
                directory = os.path.join(scratch, f"{label}-{rnd}")
                env = None
                if url.startswith(("https://", "rediss://")) and os.environ.get("NEXXO_TEST_CA_FILE"):
                    env = dict(os.environ, NEXXO_CACHE_REMOTE_CA_FILE=os.environ["NEXXO_TEST_CA_FILE"])
                r = run_cmd([REMOTE_WORKER, url, str(REMOTE_COUNT), "1024", directory], env)
                runs.setdefault("remote", {}).setdefault(label, []).append(r)
                shutil.rmtree(directory, ignore_errors=True)
            print(f"round {rnd + 1}/{args.rounds}: remote done", file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    results = {}
    for label, by_c in runs.items():
        results[label] = {}
        for c, rs in by_c.items():
            metrics = sorted({k for r in rs for k, v in r.items() if isinstance(v, (int, float)) and k not in ("count", "value_len")})
            results[label][c] = {m: summarize([r[m] for r in rs if m in r]) for m in metrics}
    doc = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)},
        "command": "scripts/bench.sh " + " ".join(sys.argv[1:]),
        "rounds": args.rounds,
        "plan": [{"label": p[0], "workload": p[1], "count": p[2], "value_len": p[3], "contestants": p[4], "about": p[5]} for p in plan]
        + ([{"label": "remote", "workload": "remote", "count": REMOTE_COUNT, "value_len": 1024, "contestants": [l for l, _ in REMOTES], "about": REMOTE_ABOUT}] if "remote" in runs else []),
        "results": results,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "latest.json"), "w") as f:
        json.dump(doc, f, indent=1)
    report = render_report(doc)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(report)
    for name, svg in render_plots(doc).items():
        with open(os.path.join(args.out, name), "w") as f:
            f.write(svg)
    print(report)


def fmt(v, metric):
    if v != v:  # NaN
        return "-"
    if metric.endswith("ops_per_s"):
        return f"{v / 1000:,.0f}k" if v >= 10000 else f"{v:,.0f}"
    if metric.endswith("_us"):
        return f"{v:.1f}"
    if metric.endswith("_ms"):
        return f"{v:.1f}"
    if metric.endswith("_bytes"):
        return f"{v / 2**20:,.1f} MiB"
    if metric.endswith("_mib"):
        return f"{v:,.0f}"
    if metric == "hit_rate":
        return f"{v * 100:.1f}%"
    if metric == "compression":
        return f"{v:.2f}x"
    return f"{v:.3g}"


COLUMNS = [
    ("write_ops_per_s", "writes/s"), ("untimed_write_ops_per_s", "writes/s, second store, no timer"),
    ("read_ops_per_s", "reads/s"), ("untimed_read_ops_per_s", "reads/s, no timer per read"),
    ("batch_read_ops_per_s", "reads/s, batch read of 1000"), ("read_p50_us", "read p50 µs"), ("read_p99_us", "read p99 µs"),
    ("write_p99_us", "write p99 µs"), ("batch_p99_us", "batch p99 µs"), ("mixed_ops_per_s", "ops/s"), ("mixed_p99_us", "p99 µs"),
    ("build_ops_per_s", "modules/s (get, a miss, then set)"), ("miss_p50_us", "get (a miss) p50 µs"), ("miss_p99_us", "get (a miss) p99 µs"),
    ("open_ms", "open ms"), ("first_read_ms", "first read ms"), ("read_all_ops_per_s", "reads/s"), ("hit_rate", "hit rate"),
    ("disk_bytes", "disk after compaction"), ("compression", "logical ÷ disk"), ("peak_rss_mib", "peak RSS MiB"),
    ("loop_get_ops_per_s", "C: loop of get/s"), ("batch_get_ops_per_s", "C: batch_get/s"),
    ("lz4_decompress_ops_per_s", "lz4_flex decompress/s (reference)"),
]
RATIO_OF = ["read_ops_per_s", "untimed_read_ops_per_s", "batch_read_ops_per_s", "write_ops_per_s", "untimed_write_ops_per_s", "mixed_ops_per_s", "read_all_ops_per_s", "build_ops_per_s"]


REMOTE_ABOUT = (
    f"the remote tier (crates/nexxo-core/examples/remote_bench.rs), {REMOTE_COUNT:,} artifacts of 1 KiB, HMAC-signed. "
    "set: cache A's sets with uploads queued behind them; baseline set: the same without a remote; "
    "upload: A's sets until its queue drained to the server; warm: a new, empty cache B reads every artifact "
    "(each a remote hit, verified and backfilled); warm batch_get: the same through batch_get, 1000 keys a call, whose remote misses go out 8 at a time; local after: B reads them again, now locally; "
    "rebuild (store only): an empty cache without a remote takes a miss and a set per artifact, the cache's "
    "part of rebuilding, to which the build tool's own work per artifact adds. A remote hit pays off when "
    "rebuilding an artifact costs more than the difference of the two per-artifact times. "
    "re-upload checked: a new cache with the existence check sets the same artifacts and syncs (a second CI "
    "job): one HEAD/EXISTS each, nothing sent"
)
REMOTE_COLUMNS = [
    ("set_ops_per_s", "set/s"), ("baseline_set_ops_per_s", "baseline set/s"), ("upload_ops_per_s", "upload/s"),
    ("warm_ops_per_s", "warm get/s"), ("warm_batch_ops_per_s", "warm batch_get/s"), ("local_after_ops_per_s", "local get/s after"),
    ("rebuild_store_ops_per_s", "rebuild (store only)/s"), ("remote_get_mean_us", "remote get, mean µs"),
    ("reupload_checked_ops_per_s", "re-upload checked/s"),
    ("peak_rss_mib", "peak RSS MiB"),
]


def render_remote(p, res):
    lines = ["## remote", "", p["about"] + ".", ""]
    lines.append("| server | " + " | ".join(h for _, h in REMOTE_COLUMNS) + " |")
    lines.append("|" + "---|" * (len(REMOTE_COLUMNS) + 1))
    for c, r in res.items():
        cells = [LABELS.get(c, c)]
        for k, _ in REMOTE_COLUMNS:
            if k not in r:
                cells.append("")
            elif k.endswith("ops_per_s"):
                cells.append(f"{fmt(r[k]['median'], k)} ({fmt(r[k]['min'], k)}-{fmt(r[k]['max'], k)})")
            elif k == "remote_get_mean_us":
                cells.append(f"{r[k]['median']:.0f}")
            else:
                cells.append(fmt(r[k]["median"], k))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def render_report(doc):
    m = doc["machine"]
    lines = [
        "# Benchmark report",
        "",
        f"{doc['date']}, {m['cpus']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}; `{doc['command']}`; "
        f"{doc['rounds']} rounds, contestants interleaved; each cell is the median, with min-max of the rounds below it in the JSON. "
        "\"nexxo ÷ it\" is the nexxo-cache of the same runtime divided by the contestant: above 1, nexxo-cache is faster.",
        "",
    ]
    for p in doc["plan"]:
        label = p["label"]
        res = doc["results"].get(label, {})
        if not res:
            continue
        if label == "remote":
            lines += render_remote(p, res)
            continue
        present = [(k, h) for k, h in COLUMNS if any(k in r for r in res.values())]
        ratio_metrics = [k for k in RATIO_OF if any(k in r for r in res.values())]
        lines += [f"## {label}", "", p["about"] + ".", ""]
        head = ["contestant"] + [h for _, h in present] + [f"nexxo ÷ it ({k.split('_ops')[0]})" for k in ratio_metrics]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for c, r in res.items():
            cells = [LABELS.get(c, c)]
            for k, _ in present:
                cells.append(f"{fmt(r[k]['median'], k)} ({fmt(r[k]['min'], k)}-{fmt(r[k]['max'], k)})" if k in r and k.endswith("ops_per_s") else (fmt(r[k]["median"], k) if k in r else ""))
            base = res.get(BASELINE.get(c, ""), {})
            for k in ratio_metrics:
                cells.append(f"{base[k]['median'] / r[k]['median']:.2f}" if k in r and k in base and r[k]["median"] else "")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def bar_chart(title, groups, series, unit):
    """A grouped horizontal bar chart as SVG: groups = [(name, {series: value})]."""
    colors = ["#2f6fb3", "#e08a2e", "#4a9a57", "#a5479b"]
    row_h, bar_h, left, width = 12 + 18 * len(series), 16, 290, 470
    height = 60 + row_h * len(groups) + 20
    vmax = max((v for _, vals in groups for v in vals.values() if v == v), default=1) or 1
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 120}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="100%" height="100%" fill="white"/><text x="10" y="22" font-size="15" font-weight="bold">{title}</text>']
    for i, s in enumerate(series):
        out.append(f'<rect x="{left + i * 150}" y="34" width="12" height="12" fill="{colors[i % 4]}"/><text x="{left + i * 150 + 16}" y="45">{s}</text>')
    for gi, (name, vals) in enumerate(groups):
        y0 = 60 + gi * row_h
        out.append(f'<text x="{left - 8}" y="{y0 + row_h / 2 + 2}" text-anchor="end">{name}</text>')
        for si, s in enumerate(series):
            v = vals.get(s)
            if v is None or v != v:
                continue
            w = max(1, width * v / vmax)
            y = y0 + 4 + si * 18
            out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colors[si % 4]}"/>')
            out.append(f'<text x="{left + w + 4:.1f}" y="{y + 12}">{v / 1000:,.0f}k {unit}</text>')
    out.append("</svg>")
    return "\n".join(out)


def render_plots(doc):
    plots = {}
    res = doc["results"]
    for label in ("seed-100k", "seed-1k", "batch-1000"):
        if label in res:
            groups = [(LABELS.get(c, c), {"reads/s": r.get("read_ops_per_s", {}).get("median"), "writes/s": r.get("write_ops_per_s", {}).get("median")}) for c, r in res[label].items()]
            plots[f"{label}.svg"] = bar_chart(f"{label}: operations per second (median of {doc['rounds']} rounds)", groups, ["reads/s", "writes/s"], "/s")
    sizes = [l for l in ("values-100B", "seed-100k", "values-16KiB", "values-256KiB") if l in res]
    if sizes:
        contestants = ["nexxo", "rocksdb", "nexxo-node", "lmdb"]
        groups = [(l, {c: res[l].get(c, {}).get("read_ops_per_s", {}).get("median") for c in contestants}) for l in sizes]
        plots["value-sizes.svg"] = bar_chart("reads/s by value size (median)", groups, contestants, "/s")
    return plots


if __name__ == "__main__":
    main()
