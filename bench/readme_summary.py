#!/usr/bin/env python3
"""Rewrites the benchmark summary in README.md (between the bench:start and bench:end
markers) from bench/results/latest.json, so the README never quotes numbers by hand."""

import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
d = json.load(open(os.path.join(ROOT, "bench", "results", "latest.json")))
R = d["results"]


def m(label, c, key):
    return R.get(label, {}).get(c, {}).get(key, {}).get("median")


def k(v):
    return f"{v / 1000:,.0f}k"


def cross(a_label, a, a_key, b_label, b, b_key):
    x, y = m(a_label, a, a_key), m(b_label, b, b_key)
    return None if x is None or y is None else x / y


def ratio(a, b, label, key):
    return cross(label, a, key, label, b, key)


NAMES = [
    ("nexxo-manager", "**nexxo-cache, the seed's API** (Node `getCacheManager`, `set`, `get`)"),
    ("nexxo", "nexxo-cache, Rust API"),
    ("nexxo-nolz4", "nexxo-cache, Rust API, LZ4 off"),
    ("rocksdb", "raw RocksDB, default options"),
    ("memory", "in-memory HashMap (the limit)"),
    ("nexxo-c", "nexxo-cache through the C ABI"),
    ("nexxo-go", "nexxo-cache from Go (cgo)"),
    ("nexxo-node", "nexxo-cache from Node"),
    ("lmdb", "lmdb-js 3.5.6"),
    ("classic-level", "classic-level 3.0.0"),
]
rows = ["| 100,000 x 1 KiB JS artifacts | writes/s | reads/s | disk after compaction | peak RSS |", "|---|---|---|---|---|"]
for c, name in NAMES:
    if m("seed-100k", c, "read_ops_per_s") is None:
        continue
    disk = m("seed-100k", c, "disk_bytes")
    rows.append(
        f"| {name} | {k(m('seed-100k', c, 'write_ops_per_s'))} | {k(m('seed-100k', c, 'read_ops_per_s'))} | "
        f"{'-' if disk is None else f'{disk / 2**20:.1f} MiB'} | {m('seed-100k', c, 'peak_rss_mib'):.0f} MiB |"
    )
def faster(a, b, label, key="read_ops_per_s"):
    """'a reads faster' or 'b reads faster', with both figures."""
    x, y = m(label, a, key), m(label, b, key)
    return f"{k(x)} vs {k(y)}" if x >= 10000 and y >= 10000 else f"{x / 1000:.1f}k vs {y / 1000:.1f}k"


remote = R.get("remote", {})
remote_text = []
if remote:
    h, r = remote.get("remote-http", {}), remote.get("remote-redis", {})
    g = lambda d, key: d.get(key, {}).get("median", float("nan"))
    remote_text = [
        "",
        f"Remote tier (20,000 x 1 KiB, servers on loopback sharing the 2 cores): an empty cache warms from nginx at "
        f"{k(g(h, 'warm_ops_per_s'))}/s one get at a time and {k(g(h, 'warm_batch_ops_per_s'))}/s through batch_get "
        f"(Redis: {k(g(r, 'warm_ops_per_s'))}/s and {k(g(r, 'warm_batch_ops_per_s'))}/s), against "
        f"{k(g(h, 'rebuild_store_ops_per_s'))}/s for the cache's own part of rebuilding (a miss and a set); a remote hit "
        f"costs {g(h, 'remote_get_mean_us'):.0f} µs (nginx) / {g(r, 'remote_get_mean_us'):.0f} µs (Redis), so it pays "
        f"whenever producing an artifact takes longer than that. Sets with uploads queued behind them run at "
        f"{k(g(h, 'set_ops_per_s'))}/s (nginx) and {k(g(r, 'set_ops_per_s'))}/s (Redis) against {k(g(h, 'baseline_set_ops_per_s'))}/s "
        f"without a remote: the upload threads and the server take CPU from the 2 cores here.",
    ]


def ratio_table(title, items):
    """A markdown table of (what, nexxo / lmdb-js) rows, marking the ratios that reach 2x."""
    out = [f"| {title} | this run |", "|---|---|"]
    return out + [f"| {what} | {'-' if r is None else f'{r:.2f}x'}{' (met)' if r is not None and r >= 2 else ''} |" for what, r in items]


def manager_vs_lmdb(label, key):
    return cross(label, "nexxo-manager", key, label, "lmdb", key)


# The seed API's goals (issue 21), each the CacheManager / lmdb-js in this run, per key on
# both sides: set against put, get against getBinary.
seed_goals = [
    ("writes, 100,000: `set` against `put`, a timer around each", manager_vs_lmdb("seed-100k", "write_ops_per_s")),
    ("writes, 100,000, into a second new store (the process warmed up), no timer per call", manager_vs_lmdb("seed-100k", "untimed_write_ops_per_s")),
    ("reads in the same process, 100,000: `get` against `getBinary`, a timer around each", manager_vs_lmdb("seed-100k", "read_ops_per_s")),
    ("reads in the same process, 100,000, a second pass without a timer", manager_vs_lmdb("seed-100k", "untimed_read_ops_per_s")),
    ("second build, 100,000 (a new process opens and reads all; the library already loaded)", manager_vs_lmdb("cold-open-100k", "read_all_ops_per_s")),
    ("first build, 100,000 (an empty cache: `get`, a miss, then `set`, per module)", manager_vs_lmdb("first-build-100k", "build_ops_per_s")),
    ("writes, 1,000 (the process's first, JIT cold), a timer around each", manager_vs_lmdb("seed-1k", "write_ops_per_s")),
    ("reads, 1,000, a timer around each", manager_vs_lmdb("seed-1k", "read_ops_per_s")),
    ("reads, 1,000, a second pass without a timer", manager_vs_lmdb("seed-1k", "untimed_read_ops_per_s")),
]
seed_rows = ratio_table("the seed's API (Node `CacheManager`) / lmdb-js 3.5.6, 1 KiB JS artifacts (goal: at least 2x)", seed_goals)
s1 = lambda key: m("seed-1k", "nexxo-manager", key)
seed_text = (
    "" if s1("write_ops_per_s") is None else
    f"The seed claimed 314k writes/s and 963k reads/s at 1,000 entries; through its API here: "
    f"{k(s1('untimed_write_ops_per_s'))} writes/s (a warmed-up process, no timer; {k(s1('write_ops_per_s'))} with one) and "
    f"{k(s1('untimed_read_ops_per_s'))} reads/s ({k(s1('read_ops_per_s'))} with a timer per read)."
)

# The side paths, each nexxo's Cache / lmdb-js: batched puts, getMany. Reads and writes
# are compared without a timer per operation on either side (the timer costs about as
# much as a read); batch reads against lmdb-js's getBinary.
goals = [
    ("writes: `put` (batched, asynchronous) against lmdb-js's `put`, into a second new store (the process warmed up), no timer per put", cross("seed-100k", "nexxo-node", "untimed_write_ops_per_s", "seed-100k", "lmdb", "untimed_write_ops_per_s")),
    ("writes: the same into the process's first store, with a timer around every `put`", cross("seed-100k", "nexxo-node", "write_ops_per_s", "seed-100k", "lmdb", "write_ops_per_s")),
    ("reads in the same process (a second pass, no timer per read): `get` against `getBinary`", cross("seed-100k", "nexxo-node", "untimed_read_ops_per_s", "seed-100k", "lmdb", "untimed_read_ops_per_s")),
    ("reads in the same process: `getMany` of 1000 (a batch read of one category) against `getBinary`", cross("seed-100k", "nexxo-node", "batch_read_ops_per_s", "seed-100k", "lmdb", "untimed_read_ops_per_s")),
    ("second build (a new process reads all): `get` against `getBinary`", cross("cold-open-100k", "nexxo-node", "read_all_ops_per_s", "cold-open-100k", "lmdb", "read_all_ops_per_s")),
    ("second build: `getMany` of 1000 against `getBinary`", cross("cold-open-batch-100k", "nexxo-node-batch", "read_all_ops_per_s", "cold-open-100k", "lmdb", "read_all_ops_per_s")),
]
goal_rows = ratio_table("Node side paths, 100,000 x 1 KiB: nexxo-cache's `Cache` / lmdb-js", goals)
bm = cross("seed-100k", "nexxo-node", "batch_read_ops_per_s", "seed-100k", "lmdb", "batch_read_ops_per_s")
node_text = (
    f"From Node, lmdb-js's own batch read (`getMany`, asynchronous) is slower than its `getBinary`: nexxo's "
    f"`getMany` reads at {'-' if bm is None else f'{bm:.2f}x'} lmdb-js's; with a timer around every read (the report's "
    f"reads/s column) one `get` at a time reads at {ratio('nexxo-node', 'lmdb', 'seed-100k', 'read_ops_per_s'):.2f}x `getBinary`; "
    f"batches of 1000 write at {ratio('nexxo-node', 'lmdb', 'batch-1000', 'write_ops_per_s'):.2f}x lmdb-js's `put`."
)

def per_get_us(label, c="nexxo-c"):
    v = m(label, c, "read_all_ops_per_s")
    return None if v is None else 1e6 / v


if per_get_us("cold-open-1m") is None:
    scale_text = "The scale rows (scale-1m, cold-open-1m) were not in this run."
else:
    g1, g100 = per_get_us("cold-open-1m"), per_get_us("cold-open-100k")
    scale_text = (
        f"At scale, from C: a new process reading all of a 1,000,000-entry cache in random order spends "
        f"{g1:.2f} µs a get against {g100:.2f} µs at 100,000 ({g1 / g100:.2f}x; the issue's goal: at most 1.5x), "
        f"with a peak RSS of {m('cold-open-1m', 'nexxo-c', 'peak_rss_mib'):.0f} MiB against "
        f"{m('cold-open-100k', 'nexxo-c', 'peak_rss_mib'):.0f} MiB: the warm table is bounded by the memory budget "
        f"(40 MiB of the default 64 MiB, about 150,000 of these entries), the rest of the RSS is the memory-mapped tables' pages the reads touched "
        f"(the OS's page cache, shared and reclaimable). Its open took {m('cold-open-1m', 'nexxo-c', 'open_ms'):.1f} ms "
        f"({m('cold-open-100k', 'nexxo-c', 'open_ms'):.1f} ms at 100,000)."
    )
    big = per_get_us("cold-open-1m", "nexxo-c-512m")
    if big is not None:
        scale_text += (
            f" With `NEXXO_CACHE_MEMORY_BUDGET=512M` (the process that wrote the store and the one that reads it), the "
            f"table holds all 1,000,000 and a get costs {big:.2f} µs ({big / g100:.2f}x the 100,000-entry cost at the default budget), "
            f"for a peak RSS of {m('cold-open-1m', 'nexxo-c-512m', 'peak_rss_mib'):.0f} MiB "
            f"(the table's image, {m('cold-open-1m', 'nexxo-c-512m', 'open_ms'):.1f} ms to open)."
        )
    mem1, mem100 = m("scale-1m", "memory", "read_ops_per_s"), m("seed-100k", "memory", "read_ops_per_s")
    if mem1 is not None and mem100 is not None:
        scale_text += (
            f" For scale, the in-memory HashMap's timed gets cost {mem100 / mem1:.2f}x as much at 1,000,000 as at 100,000 "
            f"({1e6 / mem1:.2f} against {1e6 / mem100:.2f} µs): that much is the memory hierarchy's."
        )


if m("seed-100k", "nexxo-go", "read_ops_per_s") is None or m("seed-100k", "nexxo-c", "read_ops_per_s") is None:
    go_text = ""
else:
    c_reads = m("seed-100k", "nexxo-c", "read_ops_per_s")
    go_text = (
        f"From Go, seed-100k's per-key `Get` reads {k(m('seed-100k', 'nexxo-go', 'read_ops_per_s'))}/s and `GetInto` "
        f"(one buffer, as the C worker's `nexxo_cache_get_into`) {k(m('seed-100k', 'nexxo-go', 'read_into_ops_per_s'))}/s, "
        f"against C's {k(c_reads)}/s: {m('seed-100k', 'nexxo-go', 'read_ops_per_s') / c_reads:.2f}x and "
        f"{m('seed-100k', 'nexxo-go', 'read_into_ops_per_s') / c_reads:.2f}x (the issue's goal: 0.8x); a new process's "
        f"`Get` {ratio('nexxo-go', 'nexxo-c', 'cold-open-100k', 'read_all_ops_per_s'):.2f}x C's. What `Get` pays over "
        f"`GetInto` is Go's heap (see the Go binding's section)."
    )

text = [
    f"Run of {d['date']}, {d['machine']['cpus']} cores, {d['machine']['memory_gib']} GiB, `{d['command']}` "
    f"({d['rounds']} rounds, medians). On this shared 2-core machine the same code moves by up to ~20% "
    f"between runs (the report gives each cell's min-max): read the ratios as approximate.",
    "",
    "![seed-100k](bench/results/seed-100k.svg)",
    "",
    *seed_rows,
    "",
    seed_text,
    "",
    *rows,
    "",
    *goal_rows,
    "",
    f"Read from Rust, nexxo-cache is {ratio('nexxo', 'rocksdb', 'seed-100k', 'read_ops_per_s'):.2f}x raw RocksDB with default "
    f"options, and through the C ABI {ratio('nexxo-c', 'rocksdb', 'seed-100k', 'read_ops_per_s'):.2f}x (the core issue's goal: "
    f"at least 1x); a new process reading all 100,000 entries, {ratio('nexxo', 'rocksdb', 'cold-open-100k', 'read_all_ops_per_s'):.2f}x "
    f"(C ABI {ratio('nexxo-c', 'rocksdb', 'cold-open-100k', 'read_all_ops_per_s'):.2f}x). "
    f"With LZ4, reads are {ratio('nexxo', 'nexxo-nolz4', 'seed-100k', 'read_ops_per_s'):.2f}x and writes "
    f"{ratio('nexxo', 'nexxo-nolz4', 'seed-100k', 'write_ops_per_s'):.2f}x what they are without it, on "
    f"{m('seed-100k', 'nexxo-nolz4', 'disk_bytes') / m('seed-100k', 'nexxo', 'disk_bytes'):.1f}x less disk and "
    f"{m('seed-100k', 'nexxo-nolz4', 'peak_rss_mib') / m('seed-100k', 'nexxo', 'peak_rss_mib'):.1f}x less peak RSS (the tables are "
    f"memory-mapped). At a cap of about a quarter of "
    f"the stored size it writes {k(m('at-cap', 'nexxo', 'write_ops_per_s'))}/s "
    f"({m('at-cap', 'nexxo', 'write_ops_per_s') / m('seed-100k', 'nexxo', 'write_ops_per_s'):.2f}x unbounded). "
    f"{node_text} Opening the 100,000-entry cache takes {m('cold-open-100k', 'nexxo', 'open_ms'):.1f} ms from Rust, "
    f"{m('cold-open-100k', 'nexxo-node', 'open_ms'):.1f} ms from Node (lmdb-js {m('cold-open-100k', 'lmdb', 'open_ms'):.1f} ms); "
    f"raw RocksDB opens an empty store with one column family in {m('open-floor', 'rocksdb-floor', 'open_ms'):.1f} ms "
    f"(a new MANIFEST, an OPTIONS file written, synced and read back, a new WAL: work every RocksDB open does). "
    f"Value sizes, nexxo vs raw RocksDB reads: 100 B "
    f"{faster('nexxo', 'rocksdb', 'values-100B')}, 16 KiB {faster('nexxo', 'rocksdb', 'values-16KiB')}, 256 KiB "
    f"{faster('nexxo', 'rocksdb', 'values-256KiB')}; at 256 KiB nexxo-cache reads at "
    f"{m('values-256KiB', 'nexxo', 'read_ops_per_s') / m('values-256KiB', 'nexxo', 'lz4_decompress_ops_per_s'):.2f}x the speed "
    f"of lz4_flex decompressing the same values in memory. From C, `nexxo_cache_batch_get` of 1000 keys reads "
    f"{k(m('batch-1000', 'nexxo-c', 'batch_get_ops_per_s'))}/s against {k(m('batch-1000', 'nexxo-c', 'loop_get_ops_per_s'))}/s "
    f"for a loop of `nexxo_cache_get` ({m('batch-1000', 'nexxo-c', 'batch_get_ops_per_s') / m('batch-1000', 'nexxo-c', 'loop_get_ops_per_s'):.2f}x).",
    "",
    *([go_text, ""] if go_text else []),
    scale_text,
    *remote_text,
]
path = os.path.join(ROOT, "README.md")
s = open(path).read()
start, end = s.index("<!-- bench:start -->") + len("<!-- bench:start -->"), s.index("<!-- bench:end -->")
open(path, "w").write(s[:start] + "\n" + "\n".join(text) + "\n" + s[end:])
print("README.md: benchmark summary rewritten from bench/results/latest.json")
