//! Write and read throughput and latency of a cache at its size cap with eviction
//! working, next to the same cache unbounded. A benchmark, not a test: it prints numbers.
//!
//!   cargo run --release -p nexxo-core --example policy_bench [total MiB written, default 256]

use std::time::Instant;

use nexxo_core::{Cache, Compression, Config};

fn noise(seed: u64, out: &mut [u8]) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for b in out {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

struct Run {
    sets_per_s: f64,
    set_p50_us: f64,
    set_p99_us: f64,
    set_max_us: f64,
    gets_per_s: f64,
    get_p99_us: f64,
    stored_mib: f64,
    evictions: u64,
}

fn run(max_size: u64, total: usize, value_len: usize) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config { max_size, compression: Compression::None, ..Config::default() };
    let cache = Cache::open(dir.path().join("c"), &cfg).unwrap();
    let n = total / value_len;
    let mut v = vec![0u8; value_len];
    let mut lat = Vec::with_capacity(n);
    let t0 = Instant::now();
    for i in 0..n {
        noise(i as u64, &mut v);
        let t = Instant::now();
        cache.set(b"bundle", format!("k{i}").as_bytes(), &v).unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let write_s = t0.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    // Reads of the newest tenth (what a capped cache keeps), in a scattered order.
    let recent = n / 10;
    let mut glat = Vec::with_capacity(recent);
    let t0 = Instant::now();
    for j in 0..recent {
        let i = n - 1 - (j * 7919) % recent;
        let t = Instant::now();
        let got = cache.get(b"bundle", format!("k{i}").as_bytes()).unwrap();
        glat.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(got.is_some(), "recent entry k{i} missing");
    }
    let read_s = t0.elapsed().as_secs_f64();
    glat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let s = cache.stats();
    Run {
        sets_per_s: n as f64 / write_s,
        set_p50_us: percentile(&lat, 0.5),
        set_p99_us: percentile(&lat, 0.99),
        set_max_us: *lat.last().unwrap(),
        gets_per_s: recent as f64 / read_s,
        get_p99_us: percentile(&glat, 0.99),
        stored_mib: s.stored_bytes as f64 / (1 << 20) as f64,
        evictions: s.evictions,
    }
}

fn main() {
    let total_mib: usize = std::env::args().nth(1).map_or(256, |a| a.parse().expect("total MiB"));
    let total = total_mib << 20;
    let value_len = 4096;
    let cap = (total / 4) as u64;
    println!("policy_bench: {total_mib} MiB of {value_len}-byte incompressible values, cap {} MiB vs unbounded; 3 rounds, interleaved, median shown", cap >> 20);
    let mut capped = Vec::new();
    let mut unbounded = Vec::new();
    for _ in 0..3 {
        unbounded.push(run(0, total, value_len));
        capped.push(run(cap, total, value_len));
    }
    let median = |runs: &Vec<Run>, f: fn(&Run) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (v[1], v[0], v[2])
    };
    println!("| metric | unbounded | at cap (evicting) | ratio |");
    println!("|---|---|---|---|");
    let rows: [(&str, fn(&Run) -> f64); 7] = [
        ("sets/s", |r| r.sets_per_s),
        ("set p50 (µs)", |r| r.set_p50_us),
        ("set p99 (µs)", |r| r.set_p99_us),
        ("set max (µs)", |r| r.set_max_us),
        ("gets/s (recent tenth)", |r| r.gets_per_s),
        ("get p99 (µs)", |r| r.get_p99_us),
        ("stored MiB at end", |r| r.stored_mib),
    ];
    for (name, f) in rows {
        let (u, ulo, uhi) = median(&unbounded, f);
        let (c, clo, chi) = median(&capped, f);
        println!("| {name} | {u:.1} ({ulo:.1}–{uhi:.1}) | {c:.1} ({clo:.1}–{chi:.1}) | {:.2} |", c / u);
    }
    println!("evictions at cap: {}", capped[1].evictions);
}
