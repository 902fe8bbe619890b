//! One benchmark run in a process of its own (so that its peak RSS is its own), for
//! bench/run.py. Prints one JSON object.
//!
//!   bench_worker <contestant> <workload> <count> <value_len> <dir>
//!
//! contestants: `nexxo` (this library, Rust API), `nexxo-nolz4` (the same with compression
//! off, to show what LZ4 does), `rocksdb` (rust-rocksdb with default
//! options: the floor this library's overhead is measured against), `memory` (a HashMap:
//! the physical limit). Workloads:
//!   write-read   count sets one by one, then count gets in an order unrelated to key order
//!   batch        count sets in batches of 1000, then the gets
//!   mixed        2 threads, 90% gets / 10% sets, over a store of count entries
//!   cold-open    the store of an earlier write-read in <dir> is opened and read: time to
//!                open, to the first get, and to read everything
//!   at-cap       count sets into a cache capped at 1/16 of their logical size (about a
//!                quarter of what they take stored), nexxo only
//!   open-floor   `rocksdb` only: a child process creates an empty store with one column
//!                family, this process opens it: the least time any cache built on RocksDB
//!                takes to open (count and value_len are ignored)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nexxo_core::{Cache, Compression, Config};

mod common;
use common::{key, order, value};

trait Store: Send + Sync {
    fn set(&self, k: &[u8], v: &[u8]);
    fn set_batch(&self, items: &[(Vec<u8>, Vec<u8>)]);
    fn get(&self, k: &[u8]) -> Option<Vec<u8>>;
    fn finish(&self) {}
}

struct Nexxo(Cache);
impl Store for Nexxo {
    fn set(&self, k: &[u8], v: &[u8]) {
        self.0.set(b"transform", k, v).unwrap()
    }
    fn set_batch(&self, items: &[(Vec<u8>, Vec<u8>)]) {
        let b: Vec<(&[u8], &[u8], &[u8])> = items.iter().map(|(k, v)| (&b"transform"[..], &k[..], &v[..])).collect();
        self.0.batch_set(&b).unwrap()
    }
    fn get(&self, k: &[u8]) -> Option<Vec<u8>> {
        self.0.get(b"transform", k).unwrap()
    }
    fn finish(&self) {
        self.0.compact(None).unwrap()
    }
}

struct Raw(rocksdb::DB);
impl Store for Raw {
    fn set(&self, k: &[u8], v: &[u8]) {
        self.0.put(k, v).unwrap()
    }
    fn set_batch(&self, items: &[(Vec<u8>, Vec<u8>)]) {
        let mut b = rocksdb::WriteBatch::default();
        for (k, v) in items {
            b.put(k, v);
        }
        self.0.write(b).unwrap()
    }
    fn get(&self, k: &[u8]) -> Option<Vec<u8>> {
        self.0.get_pinned(k).unwrap().map(|v| v.to_vec())
    }
    fn finish(&self) {
        self.0.compact_range(None::<&[u8]>, None::<&[u8]>)
    }
}

struct Memory(Mutex<HashMap<Vec<u8>, Vec<u8>>>);
impl Store for Memory {
    fn set(&self, k: &[u8], v: &[u8]) {
        self.0.lock().unwrap().insert(k.to_vec(), v.to_vec());
    }
    fn set_batch(&self, items: &[(Vec<u8>, Vec<u8>)]) {
        let mut m = self.0.lock().unwrap();
        for (k, v) in items {
            m.insert(k.clone(), v.clone());
        }
    }
    fn get(&self, k: &[u8]) -> Option<Vec<u8>> {
        self.0.lock().unwrap().get(k).cloned()
    }
}

fn open(contestant: &str, dir: &str, cap: u64) -> Arc<dyn Store> {
    match contestant {
        "nexxo" => Arc::new(Nexxo(Cache::open(dir, &Config { max_size: cap, ..Config::default() }).unwrap())),
        "nexxo-nolz4" => {
            let cfg = Config { max_size: cap, compression: Compression::None, ..Config::default() };
            Arc::new(Nexxo(Cache::open(dir, &cfg).unwrap()))
        }
        "rocksdb" => {
            let mut o = rocksdb::Options::default();
            o.create_if_missing(true);
            Arc::new(Raw(rocksdb::DB::open(&o, dir).unwrap()))
        }
        "memory" => Arc::new(Memory(Mutex::new(HashMap::new()))),
        other => panic!("unknown contestant {other}"),
    }
}

struct Lat(Vec<f64>);
impl Lat {
    fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let r = f();
        self.0.push(t.elapsed().as_secs_f64() * 1e6);
        r
    }
    fn pct(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.sort_by(|a, b| a.partial_cmp(b).unwrap());
        self.0[((self.0.len() - 1) as f64 * p) as usize]
    }
}

fn disk_bytes(dir: &str) -> u64 {
    nexxo_core::stats::disk_usage(std::path::Path::new(dir))
}

/// RocksDB at its leanest for an open: defaults, and an info log that writes nothing
/// (its file logger would write ~1000 lines of options at every open).
fn floor_options() -> rocksdb::Options {
    let mut o = rocksdb::Options::default();
    o.create_if_missing(true);
    o.set_log_level(rocksdb::LogLevel::Fatal);
    o.set_info_logger(rocksdb::InfoLogger::new_callback_logger(rocksdb::LogLevel::Fatal, |_, _| {}));
    o
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (contestant, workload) = (a[1].as_str(), a[2].as_str());
    if workload == "create-empty" {
        drop(rocksdb::DB::open(&floor_options(), &a[5]).unwrap());
        return;
    }
    let n: usize = a[3].parse().unwrap();
    let len: usize = a[4].parse().unwrap();
    let dir = a[5].as_str();
    let values: Vec<Vec<u8>> = (0..64).map(|i| value(i, len)).collect(); // reused: realistic sizes, bounded memory
    let keys: Vec<Vec<u8>> = (0..n).map(key).collect();
    let logical: u64 = keys.iter().enumerate().map(|(i, k)| (k.len() + values[i % 64].len()) as u64).sum();
    let mut out: Vec<(String, f64)> = Vec::new();
    let mut put = |k: &str, v: f64| out.push((k.to_owned(), v));

    match workload {
        "write-read" | "batch" | "at-cap" => {
            // Values compress about 5x: a sixteenth of the logical size is about a
            // quarter of what is stored, so eviction works throughout.
            let cap = if workload == "at-cap" { logical / 16 } else { 0 };
            let s = open(contestant, dir, cap);
            let mut wl = Lat(Vec::with_capacity(n));
            let t = Instant::now();
            if workload == "batch" {
                let items: Vec<(Vec<u8>, Vec<u8>)> = keys.iter().enumerate().map(|(i, k)| (k.clone(), values[i % 64].clone())).collect();
                for chunk in items.chunks(1000) {
                    wl.time(|| s.set_batch(chunk));
                }
            } else {
                for (i, k) in keys.iter().enumerate() {
                    wl.time(|| s.set(k, &values[i % 64]));
                }
            }
            let w = t.elapsed().as_secs_f64();
            put("write_ops_per_s", n as f64 / w);
            let slow = wl.0.iter().filter(|&&us| us > 1000.0).count();
            put("writes_over_1ms", slow as f64);
            put("write_max_us", wl.0.iter().cloned().fold(0.0, f64::max));
            put(if workload == "batch" { "batch_p50_us" } else { "write_p50_us" }, wl.pct(0.5));
            put(if workload == "batch" { "batch_p99_us" } else { "write_p99_us" }, wl.pct(0.99));
            let mut rl = Lat(Vec::with_capacity(n));
            let (mut hits, t) = (0usize, Instant::now());
            for i in order(n) {
                if rl.time(|| s.get(&keys[i])).is_some() {
                    hits += 1;
                }
            }
            let r = t.elapsed().as_secs_f64();
            put("read_ops_per_s", n as f64 / r);
            put("read_p50_us", rl.pct(0.5));
            put("read_p99_us", rl.pct(0.99));
            put("hit_rate", hits as f64 / n as f64);
            if contestant == "nexxo" && len >= 64 << 10 {
                // The reference for large values: lz4_flex decompressing the same values
                // in memory, in the same order (no store, no checksum).
                let packed: Vec<Vec<u8>> = values.iter().map(|v| lz4_flex::block::compress(v)).collect();
                let mut buf = vec![0u8; len];
                let t = Instant::now();
                for i in order(n) {
                    lz4_flex::block::decompress_into(&packed[i % 64], &mut buf).unwrap();
                }
                put("lz4_decompress_ops_per_s", n as f64 / t.elapsed().as_secs_f64());
            }
            s.finish();
            // Measured once closed: a close writes files too (nexxo-cache's warm-table image).
            drop(s);
            if contestant != "memory" {
                put("disk_bytes", disk_bytes(dir) as f64);
                put("logical_bytes", logical as f64);
            }
        }
        "mixed" => {
            let s = open(contestant, dir, 0);
            for (i, k) in keys.iter().enumerate() {
                s.set(k, &values[i % 64]);
            }
            let per_thread = n;
            let t = Instant::now();
            let lats: Vec<Vec<f64>> = std::thread::scope(|sc| {
                let hs: Vec<_> = (0..2)
                    .map(|th| {
                        let (s, keys, values) = (s.clone(), &keys, &values);
                        sc.spawn(move || {
                            let mut l = Lat(Vec::with_capacity(per_thread));
                            let mut x = 0x9E37_79B9u64 + th;
                            for _ in 0..per_thread {
                                x ^= x << 13;
                                x ^= x >> 7;
                                x ^= x << 17;
                                let i = (x % n as u64) as usize;
                                if x % 10 == 0 {
                                    l.time(|| s.set(&keys[i], &values[(i + 1) % 64]));
                                } else {
                                    l.time(|| s.get(&keys[i]));
                                }
                            }
                            l.0
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let secs = t.elapsed().as_secs_f64();
            let mut all = Lat(lats.concat());
            put("mixed_ops_per_s", (2 * per_thread) as f64 / secs);
            put("mixed_p50_us", all.pct(0.5));
            put("mixed_p99_us", all.pct(0.99));
        }
        "cold-open" => {
            let t = Instant::now();
            let s = open(contestant, dir, 0);
            let opened = t.elapsed().as_secs_f64();
            let o = order(n);
            let first = s.get(&keys[o[0]]).is_some();
            let first_s = t.elapsed().as_secs_f64();
            let mut hits = first as usize;
            for &i in &o[1..] {
                hits += s.get(&keys[i]).is_some() as usize;
            }
            let all = t.elapsed().as_secs_f64();
            put("open_ms", opened * 1e3);
            put("first_read_ms", first_s * 1e3);
            put("read_all_ops_per_s", n as f64 / (all - opened));
            put("hit_rate", hits as f64 / n as f64);
        }
        "open-floor" => {
            assert_eq!(contestant, "rocksdb", "open-floor measures raw RocksDB only");
            let made = std::process::Command::new(std::env::current_exe().unwrap()).args([contestant, "create-empty", "0", "0", dir]).status().unwrap();
            assert!(made.success(), "creating the empty store failed");
            let t = Instant::now();
            let db = rocksdb::DB::open(&floor_options(), dir).unwrap();
            put("open_ms", t.elapsed().as_secs_f64() * 1e3);
            drop(db);
        }
        other => panic!("unknown workload {other}"),
    }
    let fields: Vec<String> = out.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    println!("{{\"contestant\":\"{contestant}\",\"workload\":\"{workload}\",\"count\":{n},\"value_len\":{len},{}}}", fields.join(","));
}
