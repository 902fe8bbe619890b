//! The warm table (store/warm.rs) never serves a value the store no longer holds: reads
//! race the thread that fills it at open, and writes that overwrite and delete.

mod common;
use common::assert_exact;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use nexxo_core::{Cache, Config};

fn value(i: usize, version: usize) -> Vec<u8> {
    format!("export const v{i} = {version}; // {}\n", "x".repeat(100 + i % 50)).into_bytes()
}

fn key(i: usize) -> Vec<u8> {
    format!("src/m{i}.ts").into_bytes()
}

/// What key `i` holds after batch `b` of the writer (batches of 100 keys, in key order,
/// deleting every 11th key when `deletes` and overwriting the others).
fn expected(i: usize, batches_done: usize, deletes: bool) -> Option<Vec<u8>> {
    if i / 100 < batches_done {
        (!deletes || i % 11 != 0).then(|| value(i, 1))
    } else {
        Some(value(i, 0))
    }
}

/// Sets keys `keys` at `version` in `transform`, 1000 to a batch.
fn set_in_batches(c: &Cache, keys: std::ops::Range<usize>, version: usize) {
    for chunk in keys.collect::<Vec<_>>().chunks(1000) {
        let entries: Vec<(Vec<u8>, Vec<u8>)> = chunk.iter().map(|&i| (key(i), value(i, version))).collect();
        let refs: Vec<(&[u8], &[u8], &[u8])> = entries.iter().map(|(k, v)| (&b"transform"[..], &k[..], &v[..])).collect();
        c.batch_set(&refs).unwrap();
    }
}

/// The next number of a xorshift sequence (the readers' choice of keys).
fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn race(config: &Config, n: usize, rounds: usize, deletes: bool) {
    for round in 0..rounds {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("c");
        {
            set_in_batches(&Cache::open(&path, config).unwrap(), 0..n, 0);
        }
        // Reopen: the warm table fills while a writer overwrites and deletes and a reader
        // checks every key the writer has acknowledged.
        let c = Arc::new(Cache::open(&path, config).unwrap());
        let done = Arc::new(AtomicUsize::new(0));
        let writer = {
            let (c, done) = (c.clone(), done.clone());
            std::thread::spawn(move || {
                for b in 0..n / 100 {
                    for i in b * 100..(b + 1) * 100 {
                        if deletes && i % 11 == 0 {
                            c.delete(b"transform", &key(i)).unwrap();
                        } else {
                            c.set(b"transform", &key(i), &value(i, 1)).unwrap();
                        }
                    }
                    done.store(b + 1, Ordering::Release);
                }
            })
        };
        let mut x = 0x2545_F491_4F6C_DD1D_u64 ^ round as u64;
        let mut checked = 0;
        while !writer.is_finished() {
            let acked = done.load(Ordering::Acquire);
            // Keys of acknowledged batches must read as written; others may be either.
            let i = xorshift(&mut x) as usize % (acked * 100).max(1);
            if acked > 0 {
                assert_eq!(c.get(b"transform", &key(i)).unwrap(), expected(i, acked, deletes), "round {round}, key {i}, {acked} batches acknowledged");
                checked += 1;
            }
        }
        writer.join().unwrap();
        for i in 0..n {
            assert_eq!(c.get(b"transform", &key(i)).unwrap(), expected(i, n / 100, deletes), "round {round}, key {i}, after the writer");
        }
        assert!(checked > 0);
        assert_exact(c.store().unwrap());
    }
}

#[test]
fn reads_race_the_fill_and_overwrites_and_see_only_current_values() {
    race(&Config::default(), 20_000, 6, true);
}

#[test]
fn reads_race_the_fill_and_overwrites_alone_and_see_only_current_values() {
    // Overwrites without deletes: the table keeps its other keys and the fill goes on
    // (store/warm.rs `forget`), so frames the fill read before an overwrite reach it.
    race(&Config::default(), 20_000, 6, false);
}

#[test]
fn keys_new_to_the_store_written_while_the_table_fills_read_as_written() {
    // The fill of a table empty when it starts does not ask the table whether it holds
    // each key it scans (store/warm.rs `scan_into_warm`): keys written meanwhile, new
    // ones and then overwritten, must still read as last written.
    const N: usize = 20_000;
    for round in 0..4 {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("c");
        {
            set_in_batches(&Cache::open(&path, &Config::default()).unwrap(), 0..N, 0);
        }
        let c = Arc::new(Cache::open(&path, &Config::default()).unwrap());
        let done = Arc::new(AtomicUsize::new(0));
        // Batch b writes new keys N + 100b.. at version 0 and the batch before's at 1.
        let writer = {
            let (c, done) = (c.clone(), done.clone());
            std::thread::spawn(move || {
                for b in 0..50 {
                    for i in N + b * 100..N + (b + 1) * 100 {
                        c.set(b"transform", &key(i), &value(i, 0)).unwrap();
                    }
                    if b > 0 {
                        for i in N + (b - 1) * 100..N + b * 100 {
                            c.set(b"transform", &key(i), &value(i, 1)).unwrap();
                        }
                    }
                    done.store(b + 1, Ordering::Release);
                }
            })
        };
        // What key i may read once `acked` batches were acknowledged: the last of them's
        // new keys may be overwritten already by the batch in progress.
        let expect = |i: usize, acked: usize| -> Vec<Vec<u8>> {
            if i < N {
                return vec![value(i, 0)];
            }
            match (i - N) / 100 {
                b if b + 1 < acked => vec![value(i, 1)],
                b if b + 1 == acked => vec![value(i, 0), value(i, 1)],
                _ => unreachable!("key {i} of a batch not acknowledged"),
            }
        };
        let read = |i: usize| c.get(b"transform", &key(i)).unwrap().unwrap_or_else(|| panic!("round {round}, key {i}: a miss"));
        // The fill starts at the 32nd read or 20 ms after the open: the first batches' new
        // keys are in the store before it, for its scan to meet.
        while done.load(Ordering::Acquire) < 5 {
            std::thread::yield_now();
        }
        let mut x = 0x9E37_79B9_7F4A_7C15_u64 ^ round as u64;
        while !writer.is_finished() {
            let acked = done.load(Ordering::Acquire);
            let i = xorshift(&mut x) as usize % (N + acked * 100);
            assert!(expect(i, acked).contains(&read(i)), "round {round}, key {i}, {acked} batches acknowledged");
        }
        writer.join().unwrap();
        for i in 0..N + 50 * 100 {
            let last = if i < N || i >= N + 49 * 100 { 0 } else { 1 };
            assert_eq!(read(i), value(i, last), "round {round}, key {i}, after the writer");
        }
        assert_exact(c.store().unwrap());
    }
}

#[test]
fn a_table_smaller_than_the_store_serves_what_it_holds_and_rocksdb_the_rest() {
    // 4 MiB holds about 15,000 of these 30,000 entries.
    let mut config = Config::default();
    config.set_memory_budget(4 << 20).unwrap();
    race(&config, 30_000, 2, true);
}

#[test]
fn written_values_read_back_through_the_table_after_overwrite_delete_and_clear() {
    let d = tempfile::tempdir().unwrap();
    let c = Cache::open(d.path().join("c"), &Config::default()).unwrap();
    for v in 0..3 {
        for i in 0..500 {
            c.set(b"parse", &key(i), &value(i, v)).unwrap();
        }
        for i in 0..500 {
            assert_eq!(c.get(b"parse", &key(i)).unwrap(), Some(value(i, v)));
            let mut buf = vec![0u8; 400];
            let n = c.get_into(b"parse", &key(i), &mut buf).unwrap().unwrap();
            assert_eq!(&buf[..n], &value(i, v)[..]);
        }
    }
    c.delete(b"parse", &key(7)).unwrap();
    assert_eq!(c.get(b"parse", &key(7)).unwrap(), None);
    c.clear(&[b"parse"]).unwrap();
    assert_eq!(c.get(b"parse", &key(8)).unwrap(), None);
    assert_exact(c.store().unwrap());
}

/// A new cache's table answers its misses without RocksDB, and never hides an entry:
/// after writes within its budget, writes past it, and a delete.
#[test]
fn a_new_caches_table_answers_its_misses_and_never_hides_an_entry() {
    let d = tempfile::tempdir().unwrap();
    // 4 MiB: a table of 2.5 MiB, about 15,000 of these entries.
    let mut config = Config::default();
    config.set_memory_budget(4 << 20).unwrap();
    let c = Cache::open(d.path().join("c"), &config).unwrap();
    for i in 0..1000 {
        assert_eq!(c.get(b"transform", &key(i)).unwrap(), None);
        c.set(b"transform", &key(i), &value(i, 0)).unwrap();
    }
    assert!(c.store().unwrap().debug_warm_complete(), "a new store's table answers for it");
    for i in 0..2000 {
        assert_eq!(c.get(b"transform", &key(i)).unwrap(), (i < 1000).then(|| value(i, 0)), "key {i}");
    }
    // A batch read too: present and absent keys, in two categories.
    let keys: Vec<Vec<u8>> = (990..1010).map(key).collect();
    let asked: Vec<(&[u8], &[u8])> = keys.iter().enumerate().map(|(j, k)| (if j % 5 == 0 { &b"parse"[..] } else { &b"transform"[..] }, &k[..])).collect();
    for (j, got) in c.batch_get(&asked).into_iter().enumerate() {
        let i = 990 + j;
        assert_eq!(got.unwrap(), (j % 5 != 0 && i < 1000).then(|| value(i, 0)), "batch, key {i}");
    }
    set_in_batches(&c, 1000..30_000, 0);
    assert!(!c.store().unwrap().debug_warm_complete(), "past its budget the table holds part of the store");
    for i in 0..30_000 {
        assert_eq!(c.get(b"transform", &key(i)).unwrap(), Some(value(i, 0)), "key {i}");
    }
    let d2 = tempfile::tempdir().unwrap();
    let c = Cache::open(d2.path().join("c"), &config).unwrap();
    for i in 0..100 {
        c.set(b"parse", &key(i), &value(i, 0)).unwrap();
    }
    c.delete(b"parse", &key(7)).unwrap();
    assert!(!c.store().unwrap().debug_warm_complete(), "a removal empties the table, not the store");
    for i in 0..100 {
        assert_eq!(c.get(b"parse", &key(i)).unwrap(), (i != 7).then(|| value(i, 0)), "key {i}");
    }
    assert_exact(c.store().unwrap());
}

/// A reopened store's table answers for it once the fill has scanned it whole (the
/// store taken over from the read-only instance at the first write).
#[test]
fn a_filled_table_answers_for_the_store_it_covered() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("c");
    {
        let c = Cache::open(&path, &Config::default()).unwrap();
        for i in 0..3000 {
            c.set(b"transform", &key(i), &value(i, 0)).unwrap();
        }
    }
    let c = Cache::open(&path, &Config::default()).unwrap();
    c.set(b"transform", &key(3000), &value(3000, 0)).unwrap();
    assert!(!c.store().unwrap().debug_warm_complete(), "the store held entries at its open");
    let start = std::time::Instant::now();
    let mut i = 0;
    while !c.store().unwrap().debug_warm_complete() {
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "the fill did not cover the store");
        assert_eq!(c.get(b"transform", &key(i % 3001)).unwrap(), Some(value(i % 3001, 0)));
        i += 1;
    }
    for i in 0..3100 {
        assert_eq!(c.get(b"transform", &key(i)).unwrap(), (i <= 3000).then(|| value(i, 0)), "key {i}");
    }
    assert_exact(c.store().unwrap());
}

/// While the table answers misses, keys being overwritten are never read as missing (a
/// writer takes them out of the table before it puts their new frames in).
#[test]
fn overwritten_keys_never_read_as_missing() {
    let d = tempfile::tempdir().unwrap();
    let c = Arc::new(Cache::open(d.path().join("c"), &Config::default()).unwrap());
    let n = 2000;
    let batch = |version: usize| set_in_batches(&c, 0..n, version);
    batch(0);
    assert!(c.store().unwrap().debug_warm_complete());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (c, stop) = (c.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut x = 0x9E37_79B9_7F4A_7C15_u64 ^ r;
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let i = xorshift(&mut x) as usize % n;
                    assert!(c.get(b"transform", &key(i)).unwrap().is_some(), "key {i} read as missing during an overwrite");
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for version in 1..=40 {
        batch(version);
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert!(c.store().unwrap().debug_warm_complete(), "overwrites keep the table complete");
    assert_exact(c.store().unwrap());
}

/// The warm table's image (store/warm/image.rs), in the cache directory.
const IMAGE: &str = "NEXXO_WARM";

/// Opens the cache at `path` and reads keys `0..n` of `transform` until the read-only
/// instance's table holds all of them (from the image or a scan), each as `want` says,
/// then all of them once more; returns whether the table was the image's.
fn reopen_and_read(path: &std::path::Path, n: usize, want: impl Fn(usize) -> Vec<u8>) -> bool {
    let c = Cache::open(path, &Config::default()).unwrap();
    let start = std::time::Instant::now();
    let mut i = 0;
    while c.debug_interim_warm_entries() < n {
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "the table did not fill");
        assert_eq!(c.get(b"transform", &key(i % n)).unwrap(), Some(want(i % n)), "key {}", i % n);
        i += 1;
    }
    for i in 0..n {
        assert_eq!(c.get(b"transform", &key(i)).unwrap(), Some(want(i)), "key {i}");
    }
    // The store opened for writing takes the read-only instance's table as it is.
    let from_image = c.store().unwrap().debug_warm_from_image();
    assert_exact(c.store().unwrap());
    from_image
}

#[test]
fn the_next_run_fills_its_table_from_the_image_a_clean_close_left() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("c");
    set_in_batches(&Cache::open(&path, &Config::default()).unwrap(), 0..3000, 0);
    assert!(path.join(IMAGE).exists(), "a clean close leaves an image of a table that holds the store");
    assert!(reopen_and_read(&path, 3000, |i| value(i, 0)), "the table came from the image");
    // A run that only read leaves the image as it was, and the next uses it again.
    assert!(reopen_and_read(&path, 3000, |i| value(i, 0)));
    // So does one that opened the store for writing and wrote and read nothing. (Its
    // table is empty when the store opens for writing before the read-only instance's
    // fill starts, 20 ms after the open: then it has no image of its own to leave, and
    // only the rule that keeps an image of the present state keeps this one. Under load
    // the fill may come first and the table be the image's.)
    {
        let c = Cache::open(&path, &Config::default()).unwrap();
        assert!(c.store().is_some());
    }
    assert!(reopen_and_read(&path, 3000, |i| value(i, 0)));
}

/// A store larger than the table: the image holds what the table held (the first
/// 15,000 or so entries written, of 30,000), and the next run's table is that.
#[test]
fn a_store_larger_than_the_table_leaves_an_image_of_what_it_held() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("c");
    // 4 MiB: a table of 2.5 MiB, about 15,000 of these entries.
    let mut config = Config::default();
    config.set_memory_budget(4 << 20).unwrap();
    const N: usize = 30_000;
    {
        let c = Cache::open(&path, &config).unwrap();
        set_in_batches(&c, 0..N, 0);
        let held = c.store().unwrap().debug_warm_entries();
        assert!(held > N / 4 && held < N, "the table holds part of the store: {held}");
    }
    assert!(path.join(IMAGE).exists());
    let c = Cache::open(&path, &config).unwrap();
    let start = std::time::Instant::now();
    let mut i = 0;
    while c.debug_interim_warm_entries() < N / 4 {
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "the table did not fill");
        assert_eq!(c.get(b"transform", &key(i % N)).unwrap(), Some(value(i % N, 0)));
        i += 1;
    }
    for i in 0..N {
        assert_eq!(c.get(b"transform", &key(i)).unwrap(), Some(value(i, 0)), "key {i}");
    }
    assert!(c.store().unwrap().debug_warm_from_image());
    assert!(!c.store().unwrap().debug_warm_complete(), "part of the store: a key the table lacks is looked up");
    assert_eq!(c.get(b"transform", &key(N + 1)).unwrap(), None);
    assert_exact(c.store().unwrap());
}

/// An image is used only for the state of the very store it was taken from: not after a
/// write (an older image put back), not in another store in the same state (the same
/// number of writes, the same sizes, other bytes), not with a byte of it changed. Each
/// such image is one whose frames would read as values the store does not hold.
#[test]
fn an_image_of_another_state_or_store_is_never_used() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    const N: usize = 2000;
    set_in_batches(&Cache::open(&a, &Config::default()).unwrap(), 0..N, 0);
    let before = std::fs::read(a.join(IMAGE)).unwrap();
    {
        // value(i, 1) is as long as value(i, 0): the counters do not change.
        Cache::open(&a, &Config::default()).unwrap().set(b"transform", &key(5), &value(5, 1)).unwrap();
    }
    let now_a = |i: usize| value(i, usize::from(i == 5));
    std::fs::write(a.join(IMAGE), &before).unwrap();
    assert!(!reopen_and_read(&a, N, now_a), "an image from before a write");
    // That run's close left an image of the store as it is, which the next one uses.
    assert!(reopen_and_read(&a, N, now_a));
    // Another store through the same writes, with other bytes of the same lengths.
    set_in_batches(&Cache::open(&b, &Config::default()).unwrap(), 0..N, 2);
    {
        Cache::open(&b, &Config::default()).unwrap().set(b"transform", &key(5), &value(5, 3)).unwrap();
    }
    let now_b = |i: usize| value(i, if i == 5 { 3 } else { 2 });
    std::fs::copy(a.join(IMAGE), b.join(IMAGE)).unwrap();
    assert!(!reopen_and_read(&b, N, now_b), "another store's image");
    // A byte of a frame changed (a value's last byte, "x" to "y", in the middle of the file).
    let good = std::fs::read(a.join(IMAGE)).unwrap();
    let mut bad = good.clone();
    let at = good.len() / 2 + good[good.len() / 2..].iter().position(|&c| c == b'x').unwrap();
    bad[at] = b'y';
    std::fs::write(a.join(IMAGE), &bad).unwrap();
    assert!(!reopen_and_read(&a, N, now_a), "a damaged image");
    assert!(reopen_and_read(&a, N, now_a));
}

/// Writes after the table was filled from the image: overwrites and deletes read as
/// written, in this run and the next.
#[test]
fn writes_after_a_fill_from_the_image_read_as_written() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("c");
    const N: usize = 3000;
    set_in_batches(&Cache::open(&path, &Config::default()).unwrap(), 0..N, 0);
    let want = |i: usize| match i {
        0..100 => Some(value(i, 1)),
        100..150 => None,
        _ => Some(value(i, 0)),
    };
    {
        let c = Cache::open(&path, &Config::default()).unwrap();
        let start = std::time::Instant::now();
        let mut i = 0;
        while c.debug_interim_warm_entries() < N {
            assert!(start.elapsed() < std::time::Duration::from_secs(20), "the table did not fill");
            assert_eq!(c.get(b"transform", &key(i % N)).unwrap(), Some(value(i % N, 0)));
            i += 1;
        }
        set_in_batches(&c, 0..100, 1);
        assert!(c.store().unwrap().debug_warm_from_image(), "the store opened for writing took the image's table");
        for i in 0..N {
            assert_eq!(c.get(b"transform", &key(i)).unwrap(), want(i).or(Some(value(i, 0))), "key {i}");
        }
        for i in 100..150 {
            c.delete(b"transform", &key(i)).unwrap();
        }
        for i in 0..N {
            assert_eq!(c.get(b"transform", &key(i)).unwrap(), want(i), "key {i}");
        }
        assert_exact(c.store().unwrap());
    }
    let c = Cache::open(&path, &Config::default()).unwrap();
    for i in 0..N {
        assert_eq!(c.get(b"transform", &key(i)).unwrap(), want(i), "key {i}, the next run");
    }
}

/// Set in a child process of [`the_memory_budget_from_the_environment_sizes_the_table`]:
/// the cache directory it writes to, then `+` when it sets a budget of its own.
const BUDGET_CHILD: &str = "NEXXO_WARM_BUDGET_CHILD";

/// How many of 30,000 entries written by a new process (this binary, running
/// [`warm_budget_child_entry`]) its table holds, with `env` as its
/// `NEXXO_CACHE_MEMORY_BUDGET` and, when `own`, a budget of 64 MiB set by the opener.
fn held_by_a_writer(dir: &std::path::Path, env: Option<&str>, own: bool) -> usize {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "warm_budget_child_entry", "--nocapture", "--test-threads=1"])
        .env(BUDGET_CHILD, format!("{}{}", dir.display(), if own { "+" } else { "" }))
        .env_remove("NEXXO_CACHE_MEMORY_BUDGET");
    if let Some(v) = env {
        cmd.env("NEXXO_CACHE_MEMORY_BUDGET", v);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child: {text} {}", String::from_utf8_lossy(&out.stderr));
    let line = text.lines().find_map(|l| l.split("held ").nth(1)).unwrap_or_else(|| panic!("no count from the child: {text}"));
    line.trim().parse().unwrap()
}

/// The entry of [`held_by_a_writer`]'s child; does nothing in a test run.
#[test]
fn warm_budget_child_entry() {
    let Ok(spec) = std::env::var(BUDGET_CHILD) else { return };
    let (dir, own) = match spec.strip_suffix('+') {
        Some(d) => (d.to_owned(), true),
        None => (spec, false),
    };
    let mut config = Config::default();
    if own {
        config.set_memory_budget(64 << 20).unwrap();
    }
    let c = Cache::open(std::path::Path::new(&dir), &config).unwrap();
    set_in_batches(&c, 0..30_000, 0);
    println!("held {}", c.store().unwrap().debug_warm_entries());
}

/// `NEXXO_CACHE_MEMORY_BUDGET` sizes the warm table as the option does, unless the opener
/// set a budget: 4 MiB (a table of 2.5 MiB) holds part of 30,000 entries, which the
/// default 64 MiB holds whole.
#[test]
fn the_memory_budget_from_the_environment_sizes_the_table() {
    let d = tempfile::tempdir().unwrap();
    let held = held_by_a_writer(&d.path().join("default"), None, false);
    assert_eq!(held, 30_000, "the default budget holds them all");
    let held = held_by_a_writer(&d.path().join("env"), Some("4M"), false);
    assert!(held > 30_000 / 4 && held < 30_000, "4 MiB from the environment: {held}");
    let held = held_by_a_writer(&d.path().join("own"), Some("4M"), true);
    assert_eq!(held, 30_000, "a budget the opener set wins");
}
