//! The safe core, without FFI: reads and writes, exact stats, damage, locking.

mod common;
use common::{artifact, assert_exact};
use nexxo_core::{Cache, Config, Error};

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("nexxo-core-").tempdir().unwrap()
}



#[test]
fn set_get_overwrite_delete() {
    let d = tmp();
    let c = Cache::open(d.path().join("c"), &Config::default()).unwrap();
    c.set(b"transform", b"a.ts", b"one").unwrap();
    assert_eq!(c.get(b"transform", b"a.ts").unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(c.get(b"parse", b"a.ts").unwrap(), None);
    c.set(b"transform", b"a.ts", &artifact(1, 5000)).unwrap();
    assert_eq!(c.get(b"transform", b"a.ts").unwrap().unwrap(), artifact(1, 5000));
    c.delete(b"transform", b"a.ts").unwrap();
    assert_eq!(c.get(b"transform", b"a.ts").unwrap(), None);
    c.delete(b"transform", b"a.ts").unwrap();
    assert_eq!(c.get(b"nope", b"k"), Err(Error::UnknownCategory("nope".into())));
    assert!(matches!(c.set(b"parse", b"", b"v"), Err(Error::InvalidArgument(_))));
    assert!(matches!(c.set(b"parse", &[1u8; 4097], b"v"), Err(Error::TooLarge(_))));
    assert_exact(c.store().unwrap());
}

#[test]
fn large_values_round_trip() {
    let d = tmp();
    let c = Cache::open(d.path().join("c"), &Config::default()).unwrap();
    for (i, len) in [100usize, 1024, 16 << 10, 256 << 10, 3 << 20].into_iter().enumerate() {
        let v = artifact(i, len);
        c.set(b"bundle", format!("k{len}").as_bytes(), &v).unwrap();
        assert_eq!(c.get(b"bundle", format!("k{len}").as_bytes()).unwrap().unwrap(), v);
        let mut buf = vec![0u8; len];
        assert_eq!(c.get_into(b"bundle", format!("k{len}").as_bytes(), &mut buf).unwrap(), Some(len));
        assert_eq!(buf, v);
    }
    let mut small = [0u8; 10];
    assert_eq!(c.get_into(b"bundle", b"k1024", &mut small), Err(Error::BufferTooSmall(1024)));
}

#[test]
fn stats_exact_across_overwrites_deletes_batches_clear_and_reopen() {
    let d = tmp();
    let path = d.path().join("c");
    let stored;
    {
        let c = Cache::open(&path, &Config::default()).unwrap();
        for i in 0..500 {
            c.set(b"transform", format!("m{i}").as_bytes(), &artifact(i, 1000)).unwrap();
        }
        for i in 0..100 {
            c.set(b"transform", format!("m{i}").as_bytes(), b"x").unwrap();
        }
        for i in 100..200 {
            c.delete(b"transform", format!("m{i}").as_bytes()).unwrap();
        }
        let keys: Vec<String> = (0..50).map(|i| format!("b{i}")).collect();
        let vals: Vec<Vec<u8>> = (0..50).map(|i| artifact(i, 300)).collect();
        let batch: Vec<(&[u8], &[u8], &[u8])> =
            keys.iter().zip(&vals).map(|(k, v)| (&b"parse"[..], k.as_bytes(), &v[..])).collect();
        c.batch_set(&batch).unwrap();
        c.set(b"meta", b"x", b"y").unwrap();
        c.clear(&[b"meta"]).unwrap();
        let s = c.stats();
        assert_eq!(s.entries, 400 + 50);
        let logical: u64 = (0..100).map(|i| format!("m{i}").len() as u64 + 1).sum::<u64>()
            + (200..500).map(|i| format!("m{i}").len() as u64 + 1000).sum::<u64>()
            + (0..50).map(|i| format!("b{i}").len() as u64 + 300).sum::<u64>();
        assert_eq!(s.logical_bytes, logical);
        assert!(s.stored_bytes < s.logical_bytes, "text should compress");
        assert_exact(c.store().unwrap());
        stored = s.stored_bytes;
    }
    let c = Cache::open(&path, &Config::default()).unwrap();
    let s = c.stats();
    assert_eq!((s.entries, s.stored_bytes), (450, stored));
    assert_exact(c.store().unwrap());
}

#[test]
fn damaged_frame_is_a_miss_dropped_and_counted() {
    let d = tmp();
    let c = Cache::open(d.path().join("c"), &Config::default()).unwrap();
    let store = c.store().unwrap();
    c.set(b"parse", b"good", b"fine").unwrap();
    let mut frame = nexxo_core::codec::encode(b"parse", b"bad", b"original value", 1, nexxo_core::Compression::None);
    let last = frame.len() - 1;
    frame[last] ^= 0x40;
    store.debug_put_raw(b"parse", b"bad", &frame).unwrap();
    // A value written for another key is never served under this one.
    let moved = nexxo_core::codec::encode(b"parse", b"other", b"someone else's", 1, nexxo_core::Compression::None);
    store.debug_put_raw(b"parse", b"swapped", &moved).unwrap();
    // Garbage that is not a frame at all.
    store.debug_put_raw(b"parse", b"garbage", &[0xFF; 7]).unwrap();
    assert_exact(store);

    assert_eq!(c.get(b"parse", b"bad").unwrap(), None);
    assert_eq!(c.get(b"parse", b"swapped").unwrap(), None);
    let mut buf = [0u8; 64];
    assert_eq!(c.get_into(b"parse", b"garbage", &mut buf).unwrap(), None);
    let s = c.stats();
    assert_eq!(s.corrupt_dropped, 3);
    assert_eq!(s.entries, 1);
    assert_eq!(c.get(b"parse", b"good").unwrap().as_deref(), Some(&b"fine"[..]));
    assert_exact(store);
}

#[test]
fn damaged_frame_in_batch_get() {
    let d = tmp();
    let c = Cache::open(d.path().join("c"), &Config::default()).unwrap();
    c.set(b"parse", b"ok", b"v").unwrap();
    c.store().unwrap().debug_put_raw(b"parse", b"bad", b"\x01\x00\x00\x00").unwrap();
    let r = c.batch_get(&[(b"parse", b"ok"), (b"parse", b"bad"), (b"nope", b"x")]);
    assert_eq!(r[0], Ok(Some(b"v".to_vec())));
    assert_eq!(r[1], Ok(None));
    assert_eq!(r[2], Err(Error::UnknownCategory("nope".into())));
    assert_eq!(c.stats().corrupt_dropped, 1);
}

/// The packed batch read decodes straight into the caller's buffer, split across threads
/// for large batches: damaged values in any part leave no hole, misses and errors keep
/// their places, and a buffer found too small counts nothing.
#[test]
fn batch_get_into_lays_out_every_part_with_damage() {
    use nexxo_core::store::PackedRead;
    let d = tmp();
    let c = Cache::open(d.path().join("c"), &Config::default()).unwrap();
    let store = c.store().unwrap();
    let n = 1500;
    let key = |i: usize| format!("k{i}");
    let value = |i: usize| if i % 7 == 0 { Vec::new() } else { artifact(i, 40 + (i * 37) % 3000) };
    for i in 0..n {
        c.set(b"transform", key(i).as_bytes(), &value(i)).unwrap();
    }
    // Frames whose header is fine but whose value fails its checksum (raw: checked before
    // the copy; LZ4: decompressed, then checked), early and late in the batch.
    let damaged = [3usize, 250, 700, 1100, 1499];
    for (j, &i) in damaged.iter().enumerate() {
        let compression = if j % 2 == 0 { nexxo_core::Compression::None } else { nexxo_core::Compression::Lz4 };
        let mut frame = nexxo_core::codec::encode(b"transform", key(i).as_bytes(), &artifact(i, 2000), 1, compression);
        let last = frame.len() - 1;
        frame[last] ^= 0x40;
        store.debug_put_raw(b"transform", key(i).as_bytes(), &frame).unwrap();
    }
    let mut names: Vec<(Vec<u8>, Vec<u8>)> = (0..n).map(|i| (b"transform".to_vec(), key(i).into_bytes())).collect();
    names[10].1 = b"missing".to_vec();
    names[900].0 = b"nope".to_vec();
    names[1200].1 = Vec::new();
    let keys: Vec<(&[u8], &[u8])> = names.iter().map(|(c, k)| (&c[..], &k[..])).collect();
    let before = c.stats();

    let mut small = vec![0u8; 100];
    let PackedRead::TooSmall(need) = c.batch_get_into(&keys, &mut small, 8) else { panic!("100 bytes cannot hold the answer") };
    let after = c.stats();
    assert_eq!((after.hits, after.misses), (before.hits, before.misses), "a too-small call counts nothing");

    let mut out = vec![0xAAu8; need + 16];
    let PackedRead::Written(outcomes, len) = c.batch_get_into(&keys, &mut out, 8) else { panic!("the answer fits") };
    assert_eq!(outcomes.len(), n);
    let mut at = 0;
    let (mut hits, mut misses) = (0, 0);
    for (i, r) in outcomes.iter().enumerate() {
        at += 8;
        match i {
            10 => assert_eq!(r, &Ok(None)),
            900 => assert_eq!(r, &Err(Error::UnknownCategory("nope".into()))),
            1200 => assert!(matches!(r, Err(Error::InvalidArgument(_)))),
            _ if damaged.contains(&i) => assert_eq!(r, &Ok(None), "damaged {i}"),
            _ => {
                let v = value(i);
                assert_eq!(r, &Ok(Some(v.len())), "key {i}");
                assert!(out[at..at + v.len()] == v[..], "value of key {i}");
                at += v.len();
            }
        }
        match r {
            Ok(Some(_)) => hits += 1,
            Ok(None) => misses += 1,
            Err(_) => {}
        }
    }
    assert_eq!(len, at, "the parts are moved together over the damaged values' room");
    assert!(len < need);
    let s = c.stats();
    assert_eq!((s.hits - before.hits, s.misses - before.misses), (hits, misses));
    assert_eq!(s.corrupt_dropped, damaged.len() as u64);
    assert_exact(store);
}

#[test]
fn invalid_batch_writes_nothing() {
    let d = tmp();
    let c = Cache::open(d.path().join("c"), &Config::default()).unwrap();
    let r = c.batch_set(&[(b"parse", b"a", b"1"), (b"nope", b"b", b"2")]);
    assert_eq!(r, Err(Error::UnknownCategory("nope".into())));
    let r = c.batch_set(&[(b"parse", b"a", b"1"), (b"parse", b"", b"2")]);
    assert!(matches!(r, Err(Error::InvalidArgument(_))));
    assert_eq!(c.stats().entries, 0);
}

/// Every open of a directory in one process shares its store: a second handle reads
/// and writes it, keeps its own hit/miss counts, and outlives the first.
#[test]
fn second_open_shares_the_store() {
    let d = tmp();
    let path = d.path().join("c");
    let c = Cache::open(&path, &Config::default()).unwrap();
    c.set(b"parse", b"k", b"v").unwrap();
    let c2 = Cache::open(&path, &Config::default()).unwrap();
    assert_eq!(c2.get(b"parse", b"k").unwrap().as_deref(), Some(&b"v"[..]));
    c2.set(b"parse", b"k2", b"v2").unwrap();
    assert_eq!(c.get(b"parse", b"k2").unwrap().as_deref(), Some(&b"v2"[..]));
    assert_eq!(c2.get(b"parse", b"nope").unwrap(), None);
    let (s1, s2) = (c.stats(), c2.stats());
    assert_eq!((s1.hits, s1.misses, s1.writes), (1, 0, 1), "the first handle's own counts");
    assert_eq!((s2.hits, s2.misses, s2.writes), (1, 1, 1), "the second handle's own counts");
    assert_eq!((s1.entries, s2.entries), (2, 2), "entries are the cache's");
    let ro = Cache::open(&path, &Config { read_only: true, ..Config::default() }).unwrap();
    assert_eq!(ro.get(b"parse", b"k2").unwrap().as_deref(), Some(&b"v2"[..]), "a read-only handle shares the live store");
    assert_eq!(ro.set(b"parse", b"k", b"w"), Err(Error::ReadOnly));
    assert_eq!(ro.delete(b"parse", b"k"), Err(Error::ReadOnly));
    assert!(ro.stats().read_only);
    drop(c);
    c2.set(b"parse", b"k3", b"v3").unwrap();
    assert_eq!(ro.get(b"parse", b"k3").unwrap().as_deref(), Some(&b"v3"[..]));
    drop((c2, ro));
    let c = Cache::open(&path, &Config::default()).unwrap();
    assert_eq!(c.stats().entries, 3);
    assert_exact(c.store().unwrap());
}

/// A handle that names a category the shared store lacks is refused with the reason.
#[test]
fn a_second_open_with_a_new_category_is_incompatible() {
    let d = tmp();
    let path = d.path().join("c");
    let _c = Cache::open(&path, &Config::default()).unwrap();
    let mut cfg = Config::default();
    cfg.add_category(b"lint").unwrap();
    match Cache::open(&path, &cfg) {
        Err(Error::Incompatible(m)) => assert!(m.contains("\"lint\""), "{m}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn disabled_fallback() {
    let d = tmp();
    let file = d.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let dis = Cache::open(&file, &Config { fallback_disabled: true, ..Config::default() }).unwrap();
    assert!(matches!(dis.disabled_reason(), Some(Error::Io(_))));
    dis.set(b"parse", b"k", b"w").unwrap();
    assert_eq!(dis.get(b"parse", b"k").unwrap(), None);
    assert_eq!(dis.stats().misses, 1);
}

#[test]
fn custom_categories_persist() {
    let d = tmp();
    let path = d.path().join("c");
    let mut cfg = Config::default();
    cfg.add_category(b"lint").unwrap();
    {
        let c = Cache::open(&path, &cfg).unwrap();
        c.set(b"lint", b"a.ts", b"[]").unwrap();
    }
    let c = Cache::open(&path, &Config::default()).unwrap();
    assert_eq!(c.get(b"lint", b"a.ts").unwrap().as_deref(), Some(&b"[]"[..]));
    assert!(c.categories().contains(&"lint".to_string()));
}

#[test]
fn opens_write_no_rocksdb_info_log() {
    // RocksDB's file logger dumped ~1000 lines of options at every open (a fifth of an
    // open's time); only warnings and errors are logged now, to <store>/LOG.
    let d = tmp();
    let path = d.path().join("c");
    for _ in 0..2 {
        let c = Cache::open(&path, &Config::default()).unwrap();
        c.set(b"parse", b"k", b"v").unwrap();
    }
    let logs: Vec<_> = std::fs::read_dir(&path).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name()).filter(|n| n.to_string_lossy().starts_with("LOG")).collect();
    assert!(logs.is_empty(), "{logs:?}");
}

#[test]
fn stats_json_is_well_formed() {
    let d = tmp();
    let c = Cache::open(d.path().join("c\"quoted"), &Config::default()).unwrap();
    c.set(b"parse", b"k", b"v").unwrap();
    let j = c.stats_json("");
    assert!(j.starts_with(&format!("{{\"version\":\"{}\",\"path\":\"", env!("CARGO_PKG_VERSION"))));
    assert!(j.contains("c\\\"quoted"));
    assert!(j.contains("\"totals\":{\"hits\":0"));
    assert!(j.contains("\"parse\":{") && j.contains("\"meta\":{"));
    let opens = j.matches('{').count();
    assert_eq!(opens, j.matches('}').count());
}

#[test]
fn newer_format_is_left_untouched() {
    let d = tmp();
    let path = d.path().join("c");
    std::fs::create_dir(&path).unwrap();
    let newer = nexxo_core::store::STORE_FORMAT + 1;
    std::fs::write(path.join("NEXXO_FORMAT"), format!("nexxo-cache format {newer}\n")).unwrap();
    assert!(matches!(Cache::open(&path, &Config::default()), Err(Error::Incompatible(_))));
    assert_eq!(std::fs::read_dir(&path).unwrap().count(), 1);
}

/// A cache of format 1 (1.0's block-based tables) is emptied by the first writable open
/// and used in format 2; a read-only open leaves it alone.
#[test]
fn older_format_is_replaced_by_an_empty_cache() {
    let d = tmp();
    let path = d.path().join("c");
    {
        let c = Cache::open(&path, &Config::default()).unwrap();
        c.set(b"parse", b"old", b"value").unwrap();
    }
    std::fs::write(path.join("NEXXO_FORMAT"), "nexxo-cache format 1\n").unwrap();
    let ro = Config { read_only: true, ..Config::default() };
    assert!(matches!(Cache::open(&path, &ro), Err(Error::Incompatible(_))));
    assert_eq!(std::fs::read_to_string(path.join("NEXXO_FORMAT")).unwrap(), "nexxo-cache format 1\n");
    // A live writer of the old format is never pulled from under: another process holds
    // RocksDB's lock (a POSIX record lock on LOCK, as RocksDB takes it).
    {
        use std::io::{BufRead, Write};
        let mut holder = std::process::Command::new("python3")
            .args(["-c", "import fcntl,sys; f=open(sys.argv[1],'a'); fcntl.lockf(f, fcntl.LOCK_EX|fcntl.LOCK_NB); print('held', flush=True); sys.stdin.read()"])
            .arg(path.join("LOCK"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs the lock holder");
        let mut line = String::new();
        std::io::BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "held");
        assert!(matches!(Cache::open(&path, &Config::default()), Err(Error::Locked(_))));
        assert!(path.join("NEXXO_FORMAT").exists() && std::fs::read_dir(&path).unwrap().count() > 2, "nothing was removed");
        holder.stdin.take().unwrap().write_all(b"").unwrap();
        holder.wait().unwrap();
    }
    let c = Cache::open(&path, &Config::default()).unwrap();
    assert_eq!(c.get(b"parse", b"old").unwrap(), None);
    assert_eq!(c.stats().entries, 0);
    c.set(b"parse", b"new", b"value").unwrap();
    drop(c);
    let format = std::fs::read_to_string(path.join("NEXXO_FORMAT")).unwrap();
    assert_eq!(format, format!("nexxo-cache format {}\n", nexxo_core::store::STORE_FORMAT));
    let c = Cache::open(&path, &Config::default()).unwrap();
    assert_eq!(c.get(b"parse", b"new").unwrap().as_deref(), Some(&b"value"[..]));
    assert_exact(c.store().unwrap());
}

#[test]
fn damaged_manifest_is_repaired_or_set_aside() {
    let d = tmp();
    let path = d.path().join("c");
    {
        let c = Cache::open(&path, &Config::default()).unwrap();
        for i in 0..200 {
            c.set(b"parse", format!("k{i}").as_bytes(), &artifact(i, 500)).unwrap();
        }
    }
    // Garble every MANIFEST.
    for e in std::fs::read_dir(&path).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().starts_with("MANIFEST") {
            std::fs::write(e.path(), b"this is not a manifest").unwrap();
        }
    }
    let c = Cache::open(&path, &Config::default()).unwrap();
    let s = c.stats();
    assert!(s.recovered);
    // Whatever survived is served correctly, and the stats match it.
    for i in 0..200 {
        if let Some(v) = c.get(b"parse", format!("k{i}").as_bytes()).unwrap() {
            assert_eq!(v, artifact(i, 500));
        }
    }
    assert_exact(c.store().unwrap());
    c.set(b"parse", b"after", b"works").unwrap();
}

/// Short processes one after another, each writing one entry and closing (a compiler
/// wrapper under `make`): each close flushes a table of one key per column family, and
/// RocksDB moves a table that overlaps no other down as it is, so without the merge at
/// close they only accumulated (every open loads every table).
#[test]
fn one_entry_per_open_keeps_the_tables_few() {
    let d = tmp();
    let path = d.path().join("c");
    let n = 60;
    for i in 0..n {
        let c = Cache::open(&path, &Config::default()).unwrap();
        c.set(b"transform", format!("obj/{i:04}.o").as_bytes(), &artifact(i, 800)).unwrap();
    }
    let tables = std::fs::read_dir(&path).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".sst")).count();
    // Two column families take a table per close (the category and the recency index),
    // each merged when it holds 16 small ones; without the merge, 2 per close (120).
    assert!(tables <= 40, "{tables} tables after {n} closes");
    let c = Cache::open(&path, &Config::default()).unwrap();
    for i in 0..n {
        assert_eq!(c.get(b"transform", format!("obj/{i:04}.o").as_bytes()).unwrap().unwrap(), artifact(i, 800), "entry {i}");
    }
    assert_eq!(c.stats().entries, n as u64);
    assert_exact(c.store().unwrap());
}

#[test]
fn a_batch_in_any_order_with_repeated_keys_keeps_each_keys_last_value() {
    // Batches are written in key order (store/write.rs): a key given twice must still
    // keep its later value, in a batch big enough for the multi-get path, across
    // categories and over entries already stored.
    let d = tmp();
    let c = Cache::open(d.path().join("c"), &Config::default()).unwrap();
    let key = |i: u64| format!("src/{:016x}.ts", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).into_bytes();
    for i in 0..100u64 {
        c.set(b"transform", &key(i), format!("stored {i}").as_bytes()).unwrap();
    }
    let mut batch: Vec<(&[u8], Vec<u8>, Vec<u8>)> = Vec::new();
    for round in 0..3u64 {
        for i in (0..300u64).rev() {
            if i % (round + 1) == 0 {
                let cat: &[u8] = if i % 3 == 0 { b"parse" } else { b"transform" };
                batch.push((cat, key(i), format!("{i} round {round}").into_bytes()));
            }
        }
    }
    let entries: Vec<(&[u8], &[u8], &[u8])> = batch.iter().map(|(c, k, v)| (*c, &k[..], &v[..])).collect();
    c.batch_set(&entries).unwrap();
    let mut want = std::collections::HashMap::new();
    for (cat, k, v) in &batch {
        want.insert((cat.to_vec(), k.clone()), v.clone());
    }
    for ((cat, k), v) in &want {
        assert_eq!(c.get(cat, k).unwrap().as_ref(), Some(v), "{}", String::from_utf8_lossy(k));
    }
    for i in 0..100u64 {
        if i % 3 == 0 {
            // parse got the batch's value; transform keeps what was stored
            assert_eq!(c.get(b"transform", &key(i)).unwrap(), Some(format!("stored {i}").into_bytes()));
        }
    }
    assert_eq!(c.stats().entries, want.len() as u64 + (0..100u64).filter(|i| i % 3 == 0).count() as u64);
    assert_exact(c.store().unwrap());
}
