//! Category tables written by older versions (1.10.3 and before: a hash index of 0.75
//! keys per bucket, a bloom filter without locality) are read beside the current ones,
//! and compaction rewrites them. Its own test binary: the switch is process-global.

mod common;
use common::{artifact, assert_exact};
use nexxo_core::{Cache, Config, Store};

const N: usize = 3000;

fn key(i: usize) -> Vec<u8> {
    format!("src/components/module{i}.tsx").into_bytes()
}

fn value(i: usize, round: usize) -> Vec<u8> {
    let mut v = artifact(i, 200 + i % 700);
    v.extend_from_slice(format!("// round {round}").as_bytes());
    v
}

/// Writes keys `from..to` (round `round`) in batches of 100 and one at a time.
fn write(c: &Cache, from: usize, to: usize, round: usize) {
    let vals: Vec<(Vec<u8>, Vec<u8>)> = (from..to).map(|i| (key(i), value(i, round))).collect();
    for (n, chunk) in vals.chunks(100).enumerate() {
        if n % 2 == 0 {
            let e: Vec<(&[u8], &[u8], &[u8])> = chunk.iter().map(|(k, v)| (&b"transform"[..], &k[..], &v[..])).collect();
            c.batch_set(&e).unwrap();
        } else {
            for (k, v) in chunk {
                c.set(b"transform", k, v).unwrap();
            }
        }
    }
}

fn check(c: &Cache, expect: &[(usize, usize)]) {
    for &(i, round) in expect {
        assert_eq!(c.get(b"transform", &key(i)).unwrap(), Some(value(i, round)), "key {i}");
    }
    assert_eq!(c.get(b"transform", b"src/absent.tsx").unwrap(), None);
    assert_eq!(c.stats().entries, expect.len() as u64);
    assert_exact(c.store().unwrap());
}

fn sst_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".sst"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[test]
fn tables_of_the_older_layout_are_read_beside_new_ones_and_compacted() {
    let d = tempfile::Builder::new().prefix("nexxo-layout-").tempdir().unwrap();
    let (old_dir, new_dir) = (d.path().join("old"), d.path().join("new"));
    let cfg = Config::default();

    // The same entries, compacted, in the older layout and in the current one: the
    // switch works (the current index takes about 10 bytes a key more).
    Store::debug_legacy_tables(true);
    let c = Cache::open(&old_dir, &cfg).unwrap();
    write(&c, 0, N, 0);
    c.compact(None).unwrap();
    drop(c);
    Store::debug_legacy_tables(false);
    let c = Cache::open(&new_dir, &cfg).unwrap();
    write(&c, 0, N, 0);
    c.compact(None).unwrap();
    drop(c);
    let (old_bytes, new_bytes) = (sst_bytes(&old_dir), sst_bytes(&new_dir));
    assert!(new_bytes > old_bytes + 8 * N as u64, "older layout {old_bytes} bytes, current {new_bytes}");

    // The older store opened by the current layout: read, then written (new tables
    // beside the old ones: overwrites of old keys and new keys), read again.
    let mut expect: Vec<(usize, usize)> = (0..N).map(|i| (i, 0)).collect();
    let c = Cache::open(&old_dir, &cfg).unwrap();
    check(&c, &expect);
    write(&c, N / 2, N + N / 2, 1);
    expect.truncate(N / 2);
    expect.extend((N / 2..N + N / 2).map(|i| (i, 1)));
    check(&c, &expect);
    drop(c);
    let c = Cache::open(&old_dir, &cfg).unwrap();
    check(&c, &expect);
    // A compaction rewrites the tables (forced to the bottom level), in the current layout.
    c.compact(None).unwrap();
    check(&c, &expect);
    drop(c);
    let c = Cache::open(&old_dir, &cfg).unwrap();
    check(&c, &expect);
}
