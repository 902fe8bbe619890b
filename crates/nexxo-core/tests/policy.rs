//! Eviction: size caps with a hot set, per-category limits, max age, exact stats.

mod common;
use common::{assert_exact, noise};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use nexxo_core::{Cache, Compression, Config};

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("nexxo-policy-").tempdir().unwrap()
}



const MIB: u64 = 1 << 20;

/// A clock for `Cache::open_with_clock` that reads the returned time, set by the test.
fn settable_clock(start: u64) -> (Arc<AtomicU64>, nexxo_core::clock::Clock) {
    let now = Arc::new(AtomicU64::new(start));
    let read = now.clone();
    (now, Arc::new(move || read.load(Ordering::SeqCst)))
}

#[test]
fn cap_keeps_the_hot_set_and_evicts_the_oldest() {
    let d = tmp();
    let cap = 8 * MIB;
    let cfg = Config { max_size: cap, compression: Compression::None, ..Config::default() };
    let c = Cache::open(d.path().join("c"), &cfg).unwrap();
    let value_len = 4096;
    let hot: Vec<String> = (0..256).map(|i| format!("hot/{i}")).collect(); // 1 MiB
    for (i, k) in hot.iter().enumerate() {
        c.set(b"transform", k.as_bytes(), &noise(i as u64, value_len)).unwrap();
    }
    let cold = (32 * MIB) as usize / value_len; // 32 MiB of writes
    let mut peak = 0;
    for i in 0..cold {
        c.set(b"bundle", format!("cold/{i}").as_bytes(), &noise(1_000_000 + i as u64, value_len)).unwrap();
        peak = peak.max(c.stats().stored_bytes);
        if i % 64 == 0 {
            for (j, k) in hot.iter().enumerate() {
                let v = c.get(b"transform", k.as_bytes()).unwrap();
                assert_eq!(v.as_deref(), Some(&noise(j as u64, value_len)[..]), "hot entry {k} lost after {i} cold writes");
            }
        }
    }
    // Writers never let the cache run more than a quarter over its cap (plus one write).
    assert!(peak <= cap + cap / 4 + value_len as u64 + 64, "peak {peak} over cap {cap} by more than 25%");

    let r = c.enforce_policy().unwrap();
    let s = c.stats();
    assert!(s.stored_bytes <= cap, "stored {} over cap {cap}", s.stored_bytes);
    assert_eq!(r.stored_bytes_after, s.stored_bytes);
    for (j, k) in hot.iter().enumerate() {
        assert_eq!(c.get(b"transform", k.as_bytes()).unwrap().as_deref(), Some(&noise(j as u64, value_len)[..]));
    }
    for i in 0..1000 {
        assert_eq!(c.get(b"bundle", format!("cold/{i}").as_bytes()).unwrap(), None, "old cold entry {i} survived");
    }
    assert!(c.get(b"bundle", format!("cold/{}", cold - 1).as_bytes()).unwrap().is_some(), "the newest entry was evicted");
    assert!(s.evictions > 0 && s.evictions as usize >= cold - s.entries as usize);
    assert_exact(c.store().unwrap());

    // After compaction the disk holds at most twice the cap (documented in the README).
    c.compact(None).unwrap();
    let disk = c.stats().disk_bytes;
    assert!(disk <= 2 * cap, "disk {disk} over twice the cap {cap}");
}

#[test]
fn category_limit_evicts_only_that_category() {
    let d = tmp();
    let mut cfg = Config { compression: Compression::None, ..Config::default() };
    cfg.set_category_max_size(b"transform", MIB).unwrap();
    let c = Cache::open(d.path().join("c"), &cfg).unwrap();
    for i in 0..100 {
        c.set(b"parse", format!("p{i}").as_bytes(), &noise(i, 4096)).unwrap();
    }
    for i in 0..1024 {
        c.set(b"transform", format!("t{i}").as_bytes(), &noise(10_000 + i, 4096)).unwrap();
    }
    c.enforce_policy().unwrap();
    let t = c.category_stats(b"transform").unwrap();
    let p = c.category_stats(b"parse").unwrap();
    assert!(t.stored_bytes <= MIB, "transform holds {}", t.stored_bytes);
    assert!(t.evictions > 0);
    assert_eq!(p.entries, 100);
    assert_eq!(p.evictions, 0);
    assert!(c.get(b"transform", b"t1023").unwrap().is_some());
    assert!(c.get(b"transform", b"t0").unwrap().is_none());
    assert_exact(c.store().unwrap());
}

#[test]
fn max_age_evicts_unused_entries_only() {
    let d = tmp();
    let (now, clock) = settable_clock(1_000);
    let cfg = Config { max_age_secs: 100, ..Config::default() };
    let c = Cache::open_with_clock(d.path().join("c"), &cfg, clock).unwrap();
    for i in 0..10 {
        c.set(b"parse", format!("old/{i}").as_bytes(), b"v").unwrap();
    }
    c.set(b"parse", b"old/keep", b"v").unwrap();
    for t in (1_000..1_300).step_by(10) {
        now.store(t, Ordering::SeqCst);
        c.set(b"meta", format!("f{t}").as_bytes(), b"filler").unwrap();
        if t == 1_250 {
            assert!(c.get(b"parse", b"old/keep").unwrap().is_some());
        }
    }
    now.store(1_300, Ordering::SeqCst);
    let r = c.enforce_policy().unwrap();
    assert!(r.evicted_entries > 0);
    for i in 0..10 {
        assert_eq!(c.get(b"parse", format!("old/{i}").as_bytes()).unwrap(), None, "old/{i} unused for 300 s survived");
    }
    assert!(c.get(b"parse", b"old/keep").unwrap().is_some(), "an entry used 50 s ago was evicted");
    for t in (1_000..=1_100).step_by(10) {
        assert_eq!(c.get(b"meta", format!("f{t}").as_bytes()).unwrap(), None, "f{t} survived");
    }
    for t in (1_250..1_300).step_by(10) {
        assert!(c.get(b"meta", format!("f{t}").as_bytes()).unwrap().is_some(), "f{t}, written within max_age, was evicted");
    }
    assert_exact(c.store().unwrap());
}

#[test]
fn stats_stay_exact_through_eviction_clear_and_reopen() {
    let d = tmp();
    let path = d.path().join("c");
    let cfg = Config { max_size: 2 * MIB, compression: Compression::None, ..Config::default() };
    {
        let c = Cache::open(&path, &cfg).unwrap();
        for i in 0..2000u64 {
            let cat: &[u8] = if i % 3 == 0 { b"parse" } else { b"optimize" };
            c.set(cat, format!("k{}", i % 700).as_bytes(), &noise(i, 1000 + (i as usize % 3000))).unwrap();
            if i % 11 == 0 {
                c.delete(b"optimize", format!("k{}", i % 500).as_bytes()).unwrap();
            }
        }
        c.enforce_policy().unwrap();
        assert_exact(c.store().unwrap());
        c.clear(&[b"parse"]).unwrap();
        assert_exact(c.store().unwrap());
        assert!(c.stats().evictions > 0);
    }
    let c = Cache::open(&path, &cfg).unwrap();
    assert_exact(c.store().unwrap());
    assert!(c.stats().stored_bytes <= 2 * MIB);
}

/// A read answered before the store opens for writing (a new process's reads are answered
/// by a read-only instance: share's `backing.rs`) protects its entry from max_age as any
/// read: the read-only instance's promotions go to the store when it opens for a write,
/// or at close in a process that only read.
#[test]
fn reads_before_the_store_opens_for_writing_protect_their_entries() {
    let d = tmp();
    let (now, clock) = settable_clock(1_000);
    let cfg = Config { max_age_secs: 100, ..Config::default() };
    {
        let c = Cache::open_with_clock(d.path().join("c"), &cfg, clock.clone()).unwrap();
        for i in 0..10 {
            c.set(b"parse", format!("old/{i}").as_bytes(), b"v").unwrap();
        }
        c.set(b"parse", b"old/keep", b"v").unwrap();
        c.set(b"parse", b"old/read-only", b"v").unwrap();
        for t in (1_000..1_250).step_by(10) {
            now.store(t, Ordering::SeqCst);
            c.set(b"meta", format!("f{t}").as_bytes(), b"filler").unwrap();
        }
    }
    // A process that only reads: its promotions are applied as it closes.
    now.store(1_245, Ordering::SeqCst);
    {
        let c = Cache::open_with_clock(d.path().join("c"), &cfg, clock.clone()).unwrap();
        assert!(c.get(b"parse", b"old/read-only").unwrap().is_some());
        assert_eq!(c.interim_reads(), 1, "the read was not answered before the store opened");
    }
    now.store(1_250, Ordering::SeqCst);
    let c = Cache::open_with_clock(d.path().join("c"), &cfg, clock).unwrap();
    assert!(c.get(b"parse", b"old/keep").unwrap().is_some());
    assert_eq!(c.interim_reads(), 1, "the read was not answered before the store opened");
    for t in (1_250..1_300).step_by(10) {
        now.store(t, Ordering::SeqCst);
        c.set(b"meta", format!("f{t}").as_bytes(), b"filler").unwrap();
    }
    now.store(1_300, Ordering::SeqCst);
    let r = c.enforce_policy().unwrap();
    assert!(r.evicted_entries > 0);
    for i in 0..10 {
        assert_eq!(c.get(b"parse", format!("old/{i}").as_bytes()).unwrap(), None, "old/{i} unused for 300 s survived");
    }
    assert!(c.get(b"parse", b"old/keep").unwrap().is_some(), "an entry read 50 s ago, before the store opened, was evicted");
    assert!(c.get(b"parse", b"old/read-only").unwrap().is_some(), "an entry read 55 s ago by a process that only read was evicted");
    assert_exact(c.store().unwrap());
}

#[test]
fn eviction_is_oldest_first_and_gets_protect() {
    let d = tmp();
    let cap = 4 * MIB;
    let cfg = Config { max_size: cap, compression: Compression::None, ..Config::default() };
    let c = Cache::open(d.path().join("c"), &cfg).unwrap();
    let n = (3 * MIB / 4096) as u64;
    for i in 0..n {
        c.set(b"parse", format!("a{i}").as_bytes(), &noise(i, 4096)).unwrap();
    }
    // Write another 3 MiB; early on, while the cache is still under its cap, touch the
    // oldest tenth of the first entries.
    let protect = n / 10;
    for i in 0..n {
        c.set(b"parse", format!("b{i}").as_bytes(), &noise(n + i, 4096)).unwrap();
        if i == n / 8 {
            for j in 0..protect {
                assert!(c.get(b"parse", format!("a{j}").as_bytes()).unwrap().is_some());
            }
        }
    }
    c.enforce_policy().unwrap();
    for j in 0..protect {
        assert!(c.get(b"parse", format!("a{j}").as_bytes()).unwrap().is_some(), "a{j} was used and evicted");
    }
    let evicted_untouched = (protect..n).filter(|j| c.get(b"parse", format!("a{j}").as_bytes()).unwrap().is_none()).count();
    assert!(evicted_untouched > 0, "nothing untouched was evicted");
    for i in n - 10..n {
        assert!(c.get(b"parse", format!("b{i}").as_bytes()).unwrap().is_some(), "recent b{i} was evicted");
    }
}

/// The cache keeps its limits: an open that sets none gets the stored ones (never the
/// built-in default over a cache someone bounded otherwise); a writable open that sets
/// some stores them; per limit, set > stored > default.
#[test]
fn stored_limits_apply_to_opens_that_set_none() {
    use nexxo_core::store::limits_file::{read_stored, LIMITS_FILE};
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("c");
    let limits = |c: &Cache| {
        let k = c.store().unwrap().config();
        (k.max_size, k.max_age_secs, k.category_limit("bundle"))
    };
    // Nothing stored: the defaults, and a default open stores nothing.
    let c = Cache::open(&path, &Config::default()).unwrap();
    assert_eq!(limits(&c), (2 << 30, 0, 0));
    drop(c);
    assert_eq!(read_stored(&path), Ok(None));
    // An open that sets limits stores them.
    let mut cfg = Config::default();
    cfg.set_max_size(3 << 30);
    cfg.set_max_age(3600);
    cfg.set_category_max_size(b"bundle", 1 << 20).unwrap();
    drop(Cache::open(&path, &cfg).unwrap());
    let c = Cache::open(&path, &Config::default()).unwrap();
    assert_eq!(limits(&c), (3 << 30, 3600, 1 << 20), "an open without limits gets the stored ones");
    drop(c);
    // A limit set wins over the stored one, and replaces it; the others stay stored.
    let mut cfg = Config::default();
    cfg.set_max_size(5 << 20);
    let c = Cache::open(&path, &cfg).unwrap();
    assert_eq!(limits(&c), (5 << 20, 3600, 1 << 20));
    drop(c);
    assert_eq!(limits(&Cache::open(&path, &Config::default()).unwrap()), (5 << 20, 3600, 1 << 20));
    // The stored bound is enforced for an open that set none: past 5 MiB, eviction.
    let c = Cache::open(&path, &Config::default()).unwrap();
    for i in 0..4000 {
        c.set(b"transform", format!("k{i}").as_bytes(), &vec![(i % 251) as u8; 2048]).unwrap();
    }
    c.enforce_policy().unwrap();
    assert!(c.stats().stored_bytes <= 5 << 20, "{:?}", c.stats());
    drop(c);
    // Read-only opens read the stored limits and never write them.
    let mut ro = Config { read_only: true, ..Config::default() };
    ro.set_max_size(1 << 20);
    let c = Cache::open(&path, &ro).unwrap();
    assert_eq!(limits(&c).0, 1 << 20);
    drop(c);
    assert_eq!(read_stored(&path).unwrap().unwrap().max_size, Some(5 << 20));
    // A file this build cannot read: the defaults, one line in the LOG, the open works.
    std::fs::write(path.join(LIMITS_FILE), "nexxo-cache limits 9\nmax_size 1\n").unwrap();
    let c = Cache::open(&path, &Config::default()).unwrap();
    assert_eq!(limits(&c), (2 << 30, 0, 0));
    drop(c);
    assert!(std::fs::read_to_string(path.join("LOG")).unwrap().contains("NEXXO_LIMITS was not read"));
    // A write cut short by a crash leaves its temporary file aside, never a half file.
    std::fs::write(path.join(format!("{LIMITS_FILE}.tmp.1")), "nexxo-cache limits 1\nmax_si").unwrap();
    let mut cfg = Config::default();
    cfg.set_max_size(7 << 20);
    drop(Cache::open(&path, &cfg).unwrap());
    assert_eq!(limits(&Cache::open(&path, &Config::default()).unwrap()).0, 7 << 20);
}
