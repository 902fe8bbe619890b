//! Damaged files: SSTs with flipped bytes, a garbled write-ahead log tail, a path that
//! is a file. Never a crash, never a wrong value.

mod common;
use common::assert_exact;
use common::closed_store::{class_value, closed_store, cut, files_with, module_text as artifact, zero, CLASS_N};
use nexxo_core::{Cache, Config};

fn populate(path: &std::path::Path, n: usize) {
    let c = Cache::open(path, &Config::default()).unwrap();
    for i in 0..n {
        c.set(b"transform", format!("m{i}").as_bytes(), &artifact(i)).unwrap();
    }
    c.compact(None).unwrap();
    drop(c);
    // The close left the warm table's image (store/warm/image.rs), whose frames the next
    // run would read instead of the damaged tables': these tests are about reads that
    // reach them. (With the image, the damaged entries read as their undamaged values
    // until a write makes the image stale.)
    std::fs::remove_file(path.join("NEXXO_WARM")).unwrap();
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

// ---- Damage classes on a closed store (issue 26): each keeps every entry whose bytes
// are intact, serves no wrong value, and leaves the stats equal to what is readable.

/// Opens the store, reads every key (never a wrong value), runs `verify` as the README
/// says to, and returns (readable, the stats' entries, recovered). Reads and verify that
/// meet damage mark the store; the count is taken after a second open, which salvages a
/// marked store.
fn readable_after(path: &std::path::Path) -> (usize, u64, bool) {
    let c = Cache::open(path, &Config::default()).expect("a damaged store opens");
    let mut recovered = c.stats().recovered;
    let (hits, _) = assert_never_wrong_class(&c);
    c.store().unwrap().verify(false, &mut |_, _| {}).expect("verify reads through damage");
    drop(c);
    let c = Cache::open(path, &Config::default()).unwrap();
    recovered |= c.stats().recovered;
    let (hits2, _) = assert_never_wrong_class(&c);
    assert!(hits2 >= hits.min(hits2), "entries vanished between opens");
    assert_exact(c.store().unwrap());
    let entries = c.stats().entries;
    assert_eq!(c.store().unwrap().verify(false, &mut |_, _| {}).unwrap().bad, 0, "damage left after the salvage");
    (hits2, entries, recovered)
}

fn assert_never_wrong_class(c: &Cache) -> (usize, usize) {
    let (mut hits, mut misses) = (0, 0);
    for i in 0..CLASS_N {
        match c.get(b"transform", format!("m{i}").as_bytes()) {
            Ok(Some(v)) => {
                assert!(v == class_value(i), "m{i} read back other bytes");
                hits += 1;
            }
            Ok(None) => misses += 1,
            Err(e) => panic!("m{i}: a damaged store must give a miss, not {e}"),
        }
    }
    (hits, misses)
}

fn nothing_aside(path: &std::path::Path) {
    let parent = path.parent().unwrap();
    let aside: Vec<_> = std::fs::read_dir(parent).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().contains(".corrupt-")).collect();
    assert!(aside.is_empty(), "a salvaged store was moved aside: {aside:?}");
    assert!(!path.join("salvage").exists(), "the salvage's work directory was left");
}

fn largest(path: &std::path::Path, ext: &str) -> std::path::PathBuf {
    files_with(path, ext).into_iter().next().unwrap_or_else(|| panic!("a .{ext} file"))
}

#[test]
fn class_current_missing_or_garbage() {
    for garbage in [false, true] {
        let d = tempfile::tempdir().unwrap();
    let path = closed_store(d.path(), "c");
        if garbage {
            std::fs::write(path.join("CURRENT"), b"\x00\x13garbage without newline").unwrap();
        } else {
            std::fs::remove_file(path.join("CURRENT")).unwrap();
        }
        let (readable, entries, recovered) = readable_after(&path);
        assert_eq!(readable, CLASS_N, "garbage={garbage}");
        assert_eq!(entries, CLASS_N as u64);
        assert!(recovered);
        nothing_aside(&path);
    }
}

#[test]
fn class_manifest_truncated() {
    let d = tempfile::tempdir().unwrap();
    let path = closed_store(d.path(), "c");
    let current = std::fs::read_to_string(path.join("CURRENT")).unwrap();
    cut(&path.join(current.trim_end()), |l| l / 2);
    let (readable, entries, recovered) = readable_after(&path);
    assert_eq!(readable, CLASS_N);
    assert_eq!(entries, CLASS_N as u64);
    assert!(recovered, "a truncated MANIFEST went unnoticed");
    nothing_aside(&path);
}

#[test]
fn class_table_with_a_zeroed_block() {
    let d = tempfile::tempdir().unwrap();
    let path = closed_store(d.path(), "c");
    zero(&largest(&path, "sst"), |l| l / 2, 4096);
    let (readable, entries, _) = readable_after(&path);
    // The test's values compress to frames of about 90 bytes: 4 KiB hold about 45
    // records (measured: 47 lost, every one of them in the zeroed stretch's key range).
    assert!(readable >= CLASS_N - 4096 / 60 && readable < CLASS_N, "{readable} readable");
    assert_eq!(entries, readable as u64);
    nothing_aside(&path);
}

#[test]
fn class_table_cut_in_half() {
    let d = tempfile::tempdir().unwrap();
    let path = closed_store(d.path(), "c");
    cut(&largest(&path, "sst"), |l| l / 2);
    let (readable, entries, recovered) = readable_after(&path);
    // The first half of the table's records and every big value (in blob files).
    assert!(readable >= CLASS_N * 2 / 5, "{readable} readable");
    assert!(readable < CLASS_N);
    assert_eq!(entries, readable as u64);
    assert!(recovered);
    nothing_aside(&path);
}

#[test]
fn class_blob_file_damaged() {
    let d = tempfile::tempdir().unwrap();
    let path = closed_store(d.path(), "c");
    zero(&largest(&path, "blob"), |l| l / 3, 4096);
    let (readable, entries, _) = readable_after(&path);
    // One 80 KiB value (at most two) holds the zeroed bytes.
    assert!(readable >= CLASS_N - 2 && readable < CLASS_N, "{readable} readable");
    assert_eq!(entries, readable as u64);
    nothing_aside(&path);
}

#[test]
fn class_options_or_format_marker_garbage() {
    for what in ["OPTIONS", "NEXXO_FORMAT"] {
        let d = tempfile::tempdir().unwrap();
    let path = closed_store(d.path(), "c");
        for e in std::fs::read_dir(&path).unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with(what) {
                std::fs::write(e.path(), b"\xff\xfe garbage").unwrap();
            }
        }
        let (readable, entries, _) = readable_after(&path);
        assert_eq!(readable, CLASS_N, "{what}");
        assert_eq!(entries, CLASS_N as u64);
        nothing_aside(&path);
    }
}

/// A salvage stopped half-way (the files moved into `salvage/`, the new store partly
/// written) is taken up again by the next open.
#[test]
fn class_interrupted_salvage_resumes() {
    let d = tempfile::tempdir().unwrap();
    let path = closed_store(d.path(), "c");
    let work = path.join("salvage");
    std::fs::create_dir(&work).unwrap();
    for e in std::fs::read_dir(&path).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".sst") || name.ends_with(".blob") || name.starts_with("MANIFEST-") || name == "CURRENT" || name.starts_with("OPTIONS-") {
            std::fs::rename(e.path(), work.join(&name)).unwrap();
        }
    }
    let (readable, entries, recovered) = readable_after(&path);
    assert_eq!(readable, CLASS_N);
    assert_eq!(entries, CLASS_N as u64);
    assert!(recovered);
    nothing_aside(&path);
}

/// Nothing readable at all: the old files are moved aside, the cache starts empty.
#[test]
fn class_nothing_readable_is_moved_aside() {
    let d = tempfile::tempdir().unwrap();
    let path = closed_store(d.path(), "c");
    for e in std::fs::read_dir(&path).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".sst") || name.ends_with(".blob") {
            let len = e.metadata().unwrap().len() as usize;
            std::fs::write(e.path(), vec![0u8; len]).unwrap();
        }
    }
    std::fs::remove_file(path.join("CURRENT")).unwrap();
    let c = Cache::open(&path, &Config::default()).unwrap();
    assert!(c.stats().recovered);
    assert_eq!(c.stats().entries, 0);
    c.set(b"transform", b"k", b"v").unwrap();
    drop(c);
    let aside: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().contains(".corrupt-")).collect();
    assert_eq!(aside.len(), 1, "the unreadable files were not moved aside");
    let log = std::fs::read_to_string(path.join("LOG")).unwrap();
    assert!(log.contains("nothing could be read"), "{log}");
}

/// Overwritten entries come back from a salvage with their newest value: small values
/// and blob values overwritten, compacted (the tables' records then carry sequence number
/// 0), overwritten again in the log only, and deleted; then CURRENT deleted.
#[test]
fn class_salvage_keeps_the_newest_version() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("c");
    let big = |i: usize, round: u64| -> Vec<u8> {
        let mut rng = common::Rng(i as u64 * 31 + round + 1);
        (0..80 * 1024).map(|_| rng.next() as u8).collect()
    };
    let small = |i: usize, round: u64| format!("export const v{i} = {round};\n").repeat(20).into_bytes();
    let c = Cache::open(&path, &Config::default()).unwrap();
    for round in 0..2u64 {
        for i in 0..20 {
            c.set(b"transform", format!("s{i}").as_bytes(), &small(i, round)).unwrap();
            c.set(b"bundle", format!("b{i}").as_bytes(), &big(i, round)).unwrap();
        }
        c.compact(None).unwrap();
    }
    // A third version of half of them, in the write-ahead log only (a crash copy).
    for i in 0..10 {
        c.set(b"transform", format!("s{i}").as_bytes(), &small(i, 2)).unwrap();
        c.set(b"bundle", format!("b{i}").as_bytes(), &big(i, 2)).unwrap();
    }
    c.delete(b"transform", b"s19").unwrap();
    c.delete(b"bundle", b"b19").unwrap();
    let copy = d.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    for e in std::fs::read_dir(&path).unwrap().flatten() {
        if e.file_name() != "LOCK" && e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
        }
    }
    drop(c);
    std::fs::remove_file(copy.join("CURRENT")).unwrap();
    let c = Cache::open(&copy, &Config::default()).unwrap();
    assert!(c.stats().recovered);
    for i in 0..19 {
        let round = if i < 10 { 2 } else { 1 };
        assert!(c.get(b"transform", format!("s{i}").as_bytes()).unwrap() == Some(small(i, round)), "s{i}: not its newest value");
        assert!(c.get(b"bundle", format!("b{i}").as_bytes()).unwrap() == Some(big(i, round)), "b{i}: not its newest value");
    }
    assert_eq!(c.get(b"transform", b"s19").unwrap(), None, "a deleted entry came back");
    assert_eq!(c.get(b"bundle", b"b19").unwrap(), None, "a deleted entry came back");
    assert_exact(c.store().unwrap());
}
