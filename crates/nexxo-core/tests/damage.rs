//! Damaged files: SSTs with flipped bytes, a garbled write-ahead log tail, a path that
//! is a file. Never a crash, never a wrong value.

mod common;
use common::{assert_exact};
use nexxo_core::{Cache, Config};

fn artifact(i: usize) -> Vec<u8> {
    format!("export default function m{i}() {{ return {i}; }}\n").repeat(8 + i % 20).into_bytes()
}

fn populate(path: &std::path::Path, n: usize) {
    let c = Cache::open(path, &Config::default()).unwrap();
    for i in 0..n {
        c.set(b"transform", format!("m{i}").as_bytes(), &artifact(i)).unwrap();
    }
    c.compact(None).unwrap();
}

fn files_with(path: &std::path::Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(path).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == ext)).collect();
    v.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).unwrap().len()));
    v
}

/// Every key reads back as its value or as a miss, never as other bytes.
fn assert_never_wrong(c: &Cache, n: usize) -> (usize, usize) {
    let (mut hits, mut misses) = (0, 0);
    for i in 0..n {
        match c.get(b"transform", format!("m{i}").as_bytes()) {
            Ok(Some(v)) => {
                assert_eq!(v, artifact(i), "m{i} read back other bytes");
                hits += 1;
            }
            Ok(None) => misses += 1,
            Err(e) => panic!("m{i}: a damaged store must give a miss, not {e}"),
        }
    }
    (hits, misses)
}

#[test]
fn flipped_bytes_in_an_sst_data_block() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("c");
    populate(&path, 3000);
    let sst = files_with(&path, "sst").into_iter().next().expect("an SST file");
    let mut bytes = std::fs::read(&sst).unwrap();
    for off in [bytes.len() / 5, bytes.len() / 3, bytes.len() / 2] {
        bytes[off] ^= 0x5A;
    }
    std::fs::write(&sst, &bytes).unwrap();

    let c = Cache::open(&path, &Config::default()).expect("open a store with a damaged SST");
    let (hits, misses) = assert_never_wrong(&c, 3000);
    assert!(hits > 0, "everything was lost");
    assert!(misses > 0, "the damage went unnoticed");
    let s = c.stats();
    assert!(s.corrupt_dropped > 0 || s.recovered, "damage not reported in stats: {s:?}");
    // The cache keeps working; category tables (PlainTable) have no block checksums, so
    // RocksDB itself notices nothing: each damaged value fails its frame's checksum when
    // read and is dropped. The next open serves the rest, and `verify --drop` removes
    // what damaged keys left (entries under garbled keys, their orphaned index records),
    // after which the stats are exact again.
    c.set(b"transform", b"after", b"still works").unwrap();
    drop(c);
    let c = Cache::open(&path, &Config::default()).unwrap();
    assert_never_wrong(&c, 3000);
    assert_eq!(c.get(b"transform", b"after").unwrap().as_deref(), Some(&b"still works"[..]));
    c.store().unwrap().verify(true, &mut |_, _| {}).unwrap();
    assert_exact(c.store().unwrap());
    assert_eq!(c.store().unwrap().verify(false, &mut |_, _| {}).unwrap().bad, 0);
}

/// Many random damages of a category table: never a crash, never a wrong value, and a
/// store that `verify --drop` makes exact again.
#[test]
fn random_damage_to_category_tables() {
    let d = tempfile::tempdir().unwrap();
    let mut rng = common::Rng(0x9E37_79B9_7F4A_7C15);
    let rounds: usize = std::env::var("NEXXO_DAMAGE_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(12);
    for round in 0..rounds {
        let path = d.path().join(format!("c{round}"));
        populate(&path, 800);
        for sst in files_with(&path, "sst") {
            let mut bytes = std::fs::read(&sst).unwrap();
            let n = bytes.len();
            // A few flips anywhere, sometimes a run of garbage, sometimes the tail.
            for _ in 0..(1 + rng.next() % 6) {
                let at = (rng.next() as usize) % n;
                let len = if rng.next() % 4 == 0 { 1 + (rng.next() as usize) % 64 } else { 1 };
                for b in &mut bytes[at..(at + len).min(n)] {
                    *b ^= (rng.next() as u8) | 1;
                }
            }
            std::fs::write(&sst, &bytes).unwrap();
        }
        match Cache::open(&path, &Config::default()) {
            Ok(c) => {
                // Half the keys overwritten in one batch before anything reads them: the
                // batch looks the damaged frames up (one multi-get) for exact counters.
                let fresh: Vec<(Vec<u8>, Vec<u8>)> = (0..400).map(|i| (format!("m{i}").into_bytes(), format!("new {i}").into_bytes())).collect();
                let batch: Vec<(&[u8], &[u8], &[u8])> = fresh.iter().map(|(k, v)| (&b"transform"[..], &k[..], &v[..])).collect();
                c.batch_set(&batch).unwrap_or_else(|e| panic!("round {round}: batch over damage: {e}"));
                for (k, v) in &fresh {
                    assert_eq!(c.get(b"transform", k).unwrap().as_deref(), Some(&v[..]), "round {round}");
                }
                for i in 400..800 {
                    if let Some(v) = c.get(b"transform", format!("m{i}").as_bytes()).unwrap() {
                        assert_eq!(v, artifact(i), "round {round}: m{i} read back other bytes");
                    }
                }
                c.set(b"transform", b"after", b"still works").unwrap();
                c.store().unwrap().verify(true, &mut |_, _| {}).unwrap_or_else(|e| panic!("round {round}: verify --drop failed: {e}"));
                assert_exact(c.store().unwrap());
                assert_eq!(c.get(b"transform", b"after").unwrap().as_deref(), Some(&b"still works"[..]));
            }
            Err(e) => panic!("round {round}: a damaged store must open (repaired or set aside), not {e}"),
        }
    }
}

#[test]
fn garbled_sst_footer_is_repaired_at_open() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("c");
    populate(&path, 2000);
    let sst = files_with(&path, "sst").into_iter().next().unwrap();
    let mut bytes = std::fs::read(&sst).unwrap();
    let n = bytes.len();
    for b in &mut bytes[n - 48..] {
        *b = !*b;
    }
    std::fs::write(&sst, &bytes).unwrap();
    let c = Cache::open(&path, &Config::default()).expect("open repairs or sets aside");
    assert!(c.stats().recovered);
    assert_never_wrong(&c, 2000);
    c.set(b"parse", b"k", b"v").unwrap();
}

#[test]
fn truncated_and_garbled_wal_tail() {
    for garble in [false, true] {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("c");
        {
            let c = Cache::open(&path, &Config::default()).unwrap();
            for i in 0..500 {
                c.set(b"transform", format!("m{i}").as_bytes(), &artifact(i)).unwrap();
            }
            // Leave the data in the log only: copy the directory as a crash would leave it.
            let copy = d.path().join("copy");
            std::fs::create_dir(&copy).unwrap();
            for e in std::fs::read_dir(&path).unwrap() {
                let e = e.unwrap();
                // Regular files only: the socket of the live cache is not copied (tar and
                // CI caches skip sockets too).
                if e.file_name() != "LOCK" && e.file_type().unwrap().is_file() {
                    std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
                }
            }
        }
        let copy = d.path().join("copy");
        let log = files_with(&copy, "log").into_iter().next().expect("a write-ahead log");
        let mut bytes = std::fs::read(&log).unwrap();
        let len = bytes.len();
        if garble {
            for b in &mut bytes[len - 700..len - 300] {
                *b = b.wrapping_mul(31).wrapping_add(7);
            }
        } else {
            bytes.truncate(len - 500);
        }
        std::fs::write(&log, &bytes).unwrap();
        let c = Cache::open(&copy, &Config::default()).expect("open with a damaged log tail");
        let (hits, _) = assert_never_wrong(&c, 500);
        assert!(hits >= 400, "only {hits} of 500 survived a damaged log tail");
        assert_exact(c.store().unwrap());
    }
}
