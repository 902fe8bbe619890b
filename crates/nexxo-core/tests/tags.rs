//! Invalidation by tag (store/tags.rs): a model test of set/tagged set/delete/
//! invalidate/clear/reopen against a map; eviction and clear keep the tag records
//! consistent; hostile tags; kill -9 in the middle of invalidations.

mod common;
use common::{assert_exact, noise};

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use nexxo_core::{Cache, Config, Error};
use proptest::prelude::*;

const CATS: [&[u8]; 2] = [b"transform", b"bundle"];
const TAGS: [&[u8]; 4] = [b"tsconfig.json#1", b"babel@7", b"\x00\xff", b"node@20"];

fn config() -> Config {
    Config { ignore_environment: true, max_size: 0, ..Config::default() }
}

#[derive(Debug, Clone)]
enum Op {
    Set { cat: usize, key: u8, tags: Vec<usize>, len: usize },
    Batch { items: Vec<(usize, u8, Vec<usize>)> },
    Delete { cat: usize, key: u8 },
    Invalidate { tag: usize },
    Clear { cat: usize },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let tags = prop::collection::vec(0..TAGS.len(), 0..3);
    prop_oneof![
        4 => (0..2usize, 0..12u8, tags.clone(), 1..300usize).prop_map(|(cat, key, tags, len)| Op::Set { cat, key, tags, len }),
        2 => prop::collection::vec((0..2usize, 0..12u8, tags), 1..5).prop_map(|items| Op::Batch { items }),
        2 => (0..2usize, 0..12u8).prop_map(|(cat, key)| Op::Delete { cat, key }),
        3 => (0..TAGS.len()).prop_map(|tag| Op::Invalidate { tag }),
        1 => (0..2usize).prop_map(|cat| Op::Clear { cat }),
        1 => Just(Op::Reopen),
    ]
}

type Model = BTreeMap<(usize, u8), (Vec<u8>, BTreeSet<usize>)>;

fn key(k: u8) -> Vec<u8> {
    format!("src/m{k}.ts").into_bytes()
}

/// The store's tag records and entries equal the model's.
fn agree(c: &Cache, model: &Model) {
    let store = c.store().unwrap();
    let tagged = store.debug_check_tags().expect("tag records consistent");
    let mut want: Vec<(String, Vec<u8>, BTreeSet<Vec<u8>>)> = model
        .iter()
        .filter(|(_, (_, t))| !t.is_empty())
        .map(|((cat, k), (_, t))| (String::from_utf8(CATS[*cat].to_vec()).unwrap(), key(*k), t.iter().map(|i| TAGS[*i].to_vec()).collect()))
        .collect();
    let mut got: Vec<(String, Vec<u8>, BTreeSet<Vec<u8>>)> = tagged.into_iter().map(|(c, k, t)| (c, k, t.into_iter().collect())).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "tags differ from the model");
    assert_eq!(c.stats().entries, model.len() as u64);
    for ((cat, k), (v, _)) in model {
        assert_eq!(c.get(CATS[*cat], &key(*k)).unwrap().as_deref(), Some(&v[..]));
    }
    assert_exact(store);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn tags_follow_a_model(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        let mut c = Cache::open(&path, &config()).unwrap();
        let mut model: Model = BTreeMap::new();
        for (n, op) in ops.iter().enumerate() {
            match op {
                Op::Set { cat, key: k, tags, len } => {
                    let v = vec![b'a' + (n % 26) as u8; *len];
                    let t: Vec<&[u8]> = tags.iter().map(|i| TAGS[*i]).collect();
                    c.set_tagged(CATS[*cat], &key(*k), &v, &t).unwrap();
                    model.insert((*cat, *k), (v, tags.iter().copied().collect()));
                }
                Op::Batch { items } => {
                    let keys: Vec<Vec<u8>> = items.iter().map(|(_, k, _)| key(*k)).collect();
                    let vals: Vec<Vec<u8>> = items.iter().enumerate().map(|(j, _)| format!("batch {n}/{j}").into_bytes()).collect();
                    let entries: Vec<(&[u8], &[u8], &[u8])> = items.iter().zip(&keys).zip(&vals).map(|(((cat, _, _), k), v)| (CATS[*cat], &k[..], &v[..])).collect();
                    let tag_lists: Vec<Vec<&[u8]>> = items.iter().map(|(_, _, t)| t.iter().map(|i| TAGS[*i]).collect()).collect();
                    let tag_refs: Vec<&[&[u8]]> = tag_lists.iter().map(Vec::as_slice).collect();
                    c.batch_set_tagged(&entries, &tag_refs).unwrap();
                    for ((cat, k, t), v) in items.iter().zip(vals) {
                        model.insert((*cat, *k), (v, t.iter().copied().collect()));
                    }
                }
                Op::Delete { cat, key: k } => {
                    c.delete(CATS[*cat], &key(*k)).unwrap();
                    model.remove(&(*cat, *k));
                }
                Op::Invalidate { tag } => {
                    let holders: Vec<(usize, u8)> = model.iter().filter(|(_, (_, t))| t.contains(tag)).map(|(k, _)| *k).collect();
                    let before = c.stats().stored_bytes;
                    let (n, bytes) = c.invalidate(TAGS[*tag]).unwrap();
                    prop_assert_eq!(n, holders.len() as u64);
                    prop_assert_eq!(before - c.stats().stored_bytes, bytes);
                    for h in holders {
                        model.remove(&h);
                    }
                }
                Op::Clear { cat } => {
                    c.clear(&[CATS[*cat]]).unwrap();
                    model.retain(|(k, _), _| k != cat);
                }
                Op::Reopen => {
                    drop(c);
                    c = Cache::open(&path, &config()).unwrap();
                }
            }
            agree(&c, &model);
        }
    }
}

#[test]
fn eviction_and_untagged_overwrites_drop_the_tags() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c");
    let c = Cache::open(&path, &config()).unwrap();
    for i in 0..400u32 {
        let t: &[&[u8]] = if i % 2 == 0 { &[b"even", b"all"] } else { &[b"all"] };
        c.set_tagged(b"transform", format!("k{i}").as_bytes(), &noise(i.into(), 2000), t).unwrap();
    }
    // An untagged overwrite drops the key's tags.
    c.set(b"transform", b"k0", b"plain").unwrap();
    assert_eq!(c.invalidate(b"even").unwrap().0, 199);
    drop(c);
    // A cap that evicts most of them: the survivors' tags, and only theirs, remain.
    let capped = Config { max_size: 128 << 10, ..config() };
    let c = Cache::open(&path, &capped).unwrap();
    c.enforce_policy().unwrap();
    let left = c.stats().entries;
    assert!(left > 0 && left < 200, "{left} entries left");
    let tagged = c.store().unwrap().debug_check_tags().unwrap();
    assert_eq!(tagged.len() as u64, left - u64::from(c.get(b"transform", b"k0").unwrap().is_some()));
    let (n, _) = c.invalidate(b"all").unwrap();
    assert_eq!(n, tagged.len() as u64);
    assert!(c.store().unwrap().debug_check_tags().unwrap().is_empty());
    assert_exact(c.store().unwrap());
}

#[test]
fn hostile_tags_are_refused_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cache::open(dir.path().join("c"), &config()).unwrap();
    c.set_tagged(b"parse", b"k", b"v", &[b"ok"]).unwrap();
    let long = vec![b'x'; nexxo_core::store::MAX_TAG_LEN + 1];
    let many: Vec<&[u8]> = vec![b"t"; nexxo_core::store::MAX_TAGS + 1];
    for tags in [vec![&b""[..]], many] {
        assert!(matches!(c.set_tagged(b"parse", b"k", b"other", &tags), Err(Error::InvalidArgument(_))));
    }
    assert!(matches!(c.set_tagged(b"parse", b"k", b"other", &[&long]), Err(Error::TooLarge(_))));
    assert!(matches!(c.invalidate(b""), Err(Error::InvalidArgument(_))));
    assert!(matches!(c.invalidate(&long), Err(Error::TooLarge(_))));
    assert!(matches!(c.batch_set_tagged(&[(b"parse", b"a", b"1")], &[]), Err(Error::InvalidArgument(_))));
    assert_eq!(c.get(b"parse", b"k").unwrap().as_deref(), Some(&b"v"[..]));
    // Tags that are prefixes of one another, and every byte value, stay apart.
    let all: Vec<u8> = (0..=255u8).collect();
    c.set_tagged(b"parse", b"a", b"1", &[b"ab", &all]).unwrap();
    c.set_tagged(b"parse", b"b", b"2", &[b"a", b"\x00"]).unwrap();
    assert_eq!(c.invalidate(b"a").unwrap().0, 1);
    assert_eq!(c.get(b"parse", b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(c.invalidate(&all).unwrap().0, 1);
    assert_eq!(c.invalidate(b"nothing carries this").unwrap(), (0, 0));
    // A read-only handle refuses; a cache that never held a tag answers (0, 0).
    let ro = Cache::open(dir.path().join("c"), &Config { read_only: true, ..config() });
    drop(ro);
    let fresh = Cache::open(dir.path().join("d"), &config()).unwrap();
    assert_eq!(fresh.invalidate(b"x").unwrap(), (0, 0));
    assert!(!dir.path().join("d").join("NEXXO_TAGGED").exists());
}

const CHILD_ENV: &str = "NEXXO_TAGS_CHILD";

/// The child: round r writes 40 entries tagged `r` (and `all`), then invalidates round
/// r-1's tag, acknowledging each step.
#[test]
fn tags_child_entry() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let c = Cache::open(&dir, &config()).unwrap();
    let mut out = std::io::stdout().lock();
    for r in 0u64.. {
        let tag = format!("round{r}");
        let keys: Vec<String> = (0..40).map(|j| format!("r{r}/{j}")).collect();
        let entries: Vec<(&[u8], &[u8], &[u8])> = keys.iter().map(|k| (&b"transform"[..], k.as_bytes(), &b"artifact"[..])).collect();
        let both: [&[u8]; 2] = [tag.as_bytes(), b"all"];
        let tags: Vec<&[&[u8]]> = keys.iter().map(|_| &both[..]).collect();
        c.batch_set_tagged(&entries, &tags).unwrap();
        writeln!(out, "set {r}").unwrap();
        out.flush().unwrap();
        if r > 0 {
            c.invalidate(format!("round{}", r - 1).as_bytes()).unwrap();
            writeln!(out, "invalidated {}", r - 1).unwrap();
            out.flush().unwrap();
        }
    }
}

#[test]
fn kill_9_during_invalidation_leaves_tags_consistent() {
    // NEXXO_CRASH_ROUNDS (the crash suite's knob, default 60) / 5, at least 4.
    let rounds: u64 = std::env::var("NEXXO_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).map_or(12, |n: u64| (n / 5).max(4));
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    for round in 0..rounds {
        let path = dir.path().join(format!("c{round}"));
        let mut child = Command::new(&exe)
            .args(["--exact", "tags_child_entry", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut set, mut invalidated) = (Vec::new(), Vec::new());
        // Kill after a few rounds, at a point that moves with the round.
        let stop = 3 + round % 5;
        while let Some(Ok(line)) = lines.next() {
            if let Some(r) = line.strip_prefix("set ") {
                set.push(r.parse::<u64>().unwrap());
            } else if let Some(r) = line.strip_prefix("invalidated ") {
                invalidated.push(r.parse::<u64>().unwrap());
                if invalidated.len() as u64 >= stop {
                    std::thread::sleep(Duration::from_micros(200 * (round % 7)));
                    break;
                }
            }
        }
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        let c = Cache::open(&path, &config()).unwrap();
        let store = c.store().unwrap();
        let tagged = store.debug_check_tags().expect("consistent tag records after kill -9");
        assert_exact(store);
        // Acknowledged invalidations hold; acknowledged sets not invalidated are whole.
        for r in &invalidated {
            assert_eq!(c.get(b"transform", format!("r{r}/0").as_bytes()).unwrap(), None, "round {r} came back");
        }
        for r in set.iter().filter(|r| !invalidated.contains(r)) {
            let here = (0..40).filter(|j| c.get(b"transform", format!("r{r}/{j}").as_bytes()).unwrap().is_some()).count();
            // Batches are whole; the last acknowledged round may have been invalidated by
            // the call the kill interrupted; every earlier one was acknowledged as such.
            if Some(r) == set.last() {
                assert!(here == 0 || here == 40, "round {r}: {here} of 40");
            } else {
                assert_eq!(here, 40, "round {r}");
            }
        }
        // Every entry left carries its tags; invalidating `all` removes exactly them.
        let (n, _) = c.invalidate(b"all").unwrap();
        assert_eq!(n, tagged.len() as u64);
        assert_eq!(c.stats().entries, 0);
    }
}

const CLIENT_ENV: &str = "NEXXO_TAGS_CLIENT";

/// A second process (a client of the one holding the store) tags and invalidates.
#[test]
fn tags_client_entry() {
    let Ok(dir) = std::env::var(CLIENT_ENV) else { return };
    let c = Cache::open(&dir, &config()).unwrap();
    assert!(c.owner_pid().is_some_and(|p| p != std::process::id()), "the child should be a client");
    for j in 0..10 {
        c.set_tagged(b"bundle", format!("y{j}").as_bytes(), b"from the client", &[b"y"]).unwrap();
    }
    let (n, bytes) = c.invalidate(b"x").unwrap();
    println!("invalidated {n} {bytes}");
}

#[test]
fn a_client_process_tags_and_invalidates_through_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c");
    let c = Cache::open(&path, &config()).unwrap();
    c.set_tagged(b"transform", b"x1", b"v", &[b"x"]).unwrap();
    c.set_tagged(b"parse", b"x2", b"v", &[b"x", b"y"]).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "tags_client_entry", "--nocapture", "--test-threads=1"])
        .env(CLIENT_ENV, &path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("invalidated 2 "), "{text}");
    assert_eq!(c.get(b"transform", b"x1").unwrap(), None);
    assert_eq!(c.invalidate(b"y").unwrap().0, 10);
    assert!(c.store().unwrap().debug_check_tags().unwrap().is_empty());
    assert_exact(c.store().unwrap());
}

/// A damaged store that used tags is emptied, not salvaged (its tag records cannot be
/// read back with the entries), and its files are kept aside; one without tags is
/// salvaged as before.
#[test]
fn a_damaged_tagged_store_is_emptied_not_salvaged() {
    for tagged in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        {
            let c = Cache::open(&path, &config()).unwrap();
            for i in 0..50u32 {
                let k = format!("k{i}");
                if tagged && i == 7 {
                    c.set_tagged(b"transform", k.as_bytes(), b"v", &[b"cfg"]).unwrap();
                } else {
                    c.set(b"transform", k.as_bytes(), b"v").unwrap();
                }
            }
        }
        std::fs::remove_file(path.join("CURRENT")).unwrap();
        let c = Cache::open(&path, &config()).unwrap();
        let s = c.stats();
        assert!(s.recovered);
        assert_eq!(s.entries, if tagged { 0 } else { 50 }, "tagged: {tagged}");
        assert!(!path.join("NEXXO_TAGGED").exists());
        let aside = std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()).any(|e| e.file_name().to_string_lossy().contains(".corrupt-"));
        assert_eq!(aside, tagged, "the old files are kept aside only when nothing was salvaged");
        assert_exact(c.store().unwrap());
    }
}
