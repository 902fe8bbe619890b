//! What tags cost: per-key sets in a cache that never held a tag against one whose tag
//! bookkeeping is on (every overwrite then reads the key's tag record), and
//! `invalidate` of a tag held by k = 1, 1,000 and 100,000 entries. Medians (range) of 3
//! rounds, each in a new temporary cache.
//!
//!   cargo run --release -p nexxo-core --example tag_cost

use std::time::Instant;

use nexxo_core::{Cache, Config};

fn config() -> Config {
    Config { ignore_environment: true, max_size: 0, latency: false, ..Config::default() }
}

fn med(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let p = if v[v.len() - 1] < 10.0 { 3 } else { 0 };
    format!("{:.p$} ({:.p$}-{:.p$})", v[v.len() / 2], v[0], v[v.len() - 1])
}

/// Sets per second: 20,000 new keys then 20,000 overwrites, one `set` each.
fn sets(tagging_on: bool) -> (f64, f64) {
    let d = tempfile::tempdir().unwrap();
    let c = Cache::open(d.path().join("c"), &config()).unwrap();
    if tagging_on {
        c.set_tagged(b"meta", b"other", b"x", &[b"some tag"]).unwrap();
    }
    let v = vec![b'v'; 1024];
    let mut rates = [0.0; 2];
    for r in &mut rates {
        let t = Instant::now();
        for i in 0..20_000u32 {
            c.set(b"transform", format!("src/m{i}.ts").as_bytes(), &v).unwrap();
        }
        *r = 20_000.0 / t.elapsed().as_secs_f64();
    }
    (rates[0], rates[1])
}

/// Milliseconds to invalidate a tag k entries carry (among 2k entries).
fn invalidate(k: u32) -> f64 {
    let d = tempfile::tempdir().unwrap();
    let c = Cache::open(d.path().join("c"), &config()).unwrap();
    let v = vec![b'v'; 256];
    let keys: Vec<String> = (0..2 * k).map(|i| format!("src/m{i}.ts")).collect();
    for chunk in keys.chunks(1000) {
        let entries: Vec<(&[u8], &[u8], &[u8])> = chunk.iter().map(|k| (&b"transform"[..], k.as_bytes(), &v[..])).collect();
        const BOTH: &[&[u8]] = &[b"the tag", b"other"];
        const OTHER: &[&[u8]] = &[b"other"];
        let tags: Vec<&[&[u8]]> = (0..chunk.len()).map(|i| if i % 2 == 0 { BOTH } else { OTHER }).collect();
        c.batch_set_tagged(&entries, &tags).unwrap();
    }
    let t = Instant::now();
    let (n, _) = c.invalidate(b"the tag").unwrap();
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(n, k as u64);
    ms
}

fn main() {
    let (mut plain_new, mut plain_over, mut on_new, mut on_over) = (vec![], vec![], vec![], vec![]);
    for _ in 0..3 {
        let (a, b) = sets(false);
        plain_new.push(a);
        plain_over.push(b);
        let (a, b) = sets(true);
        on_new.push(a);
        on_over.push(b);
    }
    println!("untagged sets/s, new keys:   never tagged {}   bookkeeping on {}", med(plain_new), med(on_new));
    println!("untagged sets/s, overwrites: never tagged {}   bookkeeping on {}", med(plain_over), med(on_over));
    for k in [1, 1_000, 100_000] {
        let v: Vec<f64> = (0..3).map(|_| invalidate(k)).collect();
        println!("invalidate a tag held by {k:>6} entries: {} ms", med(v));
    }
}
