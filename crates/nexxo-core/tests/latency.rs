//! Latency histograms and the history closed handles keep (crate::latency,
//! crate::history): what is timed, what a close adds, and that many handles closing at
//! once add up exactly.

use std::collections::BTreeMap;

use nexxo_core::history::{Counts, History};
use nexxo_core::latency::{Snapshot, GET_SAMPLE};
use nexxo_core::{Cache, Config};

fn count(by: &BTreeMap<(String, String), Snapshot>, op: &str, cat: &str) -> u64 {
    by.get(&(op.to_owned(), cat.to_owned())).map_or(0, Snapshot::count)
}

fn config() -> Config {
    Config { ignore_environment: true, ..Config::default() }
}

#[test]
fn every_call_is_timed_and_a_close_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c");
    let c = Cache::open(&path, &config()).unwrap();
    for i in 0..100u32 {
        c.set(b"transform", format!("k{i}").as_bytes(), &[7u8; 900]).unwrap();
    }
    c.batch_set(&[(b"parse", b"a", b"1"), (b"meta", b"b", b"2")]).unwrap();
    // This test's thread made no gets before: exactly one in GET_SAMPLE is timed.
    let gets = 20 * GET_SAMPLE as usize;
    for i in 0..gets {
        let _ = c.get(b"transform", format!("k{}", i % 150).as_bytes()).unwrap();
    }
    let _ = c.batch_get(&[(b"parse", b"a"), (b"transform", b"k1")]);
    let lat = c.latency();
    assert_eq!(count(&lat, "set", "transform"), 100);
    assert_eq!(count(&lat, "batch_set", "*"), 1);
    assert_eq!(count(&lat, "get", "transform"), 20);
    assert_eq!(count(&lat, "batch_get", "*"), 1);
    let set = &lat[&("set".to_owned(), "transform".to_owned())];
    assert!(set.quantile_ns(0.5) > 0 && set.quantile_ns(0.5) <= set.quantile_ns(0.99) && set.quantile_ns(0.99) <= set.max_ns);
    let json = c.stats_json("");
    assert!(json.contains(&format!("\"latency\":{{\"enabled\":true,\"get_sample\":{GET_SAMPLE},\"ops\":{{\"get\":{{\"count\":20,")), "{json}");
    assert!(json.contains("\"history\":{\"since\":0,\"handles\":0,"), "nothing kept before the first close: {json}");
    drop(c);

    let c = Cache::open(&path, &config()).unwrap();
    let h = c.history().unwrap().unwrap();
    assert_eq!(h.handles, 1);
    assert!(h.since > 1_700_000_000);
    let hits = (0..gets).filter(|i| i % 150 < 100).count() as u64 + 2;
    assert_eq!(h.counts["transform"], Counts { hits: hits - 1, misses: gets as u64 - (hits - 2), writes: 100, deletes: 0 });
    assert_eq!(h.counts["parse"], Counts { hits: 1, misses: 0, writes: 1, deletes: 0 });
    assert_eq!(count(&h.latency, "set", "transform"), 100);
    assert_eq!(count(&h.latency, "get", "transform"), 20);
    // A handle that did nothing adds nothing.
    drop(c);
    let c = Cache::open(&path, &config()).unwrap();
    assert_eq!(c.history().unwrap().unwrap().handles, 1);
}

#[test]
fn handles_closing_at_once_add_up_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c");
    drop(Cache::open(&path, &config()).unwrap());
    let rounds = 25;
    std::thread::scope(|s| {
        for t in 0..4 {
            let path = &path;
            s.spawn(move || {
                for r in 0..rounds {
                    let c = Cache::open(path, &config()).unwrap();
                    c.set(b"bundle", format!("t{t}-{r}").as_bytes(), b"v").unwrap();
                    let _ = c.get(b"bundle", b"absent").unwrap();
                }
            });
        }
    });
    let c = Cache::open(&path, &config()).unwrap();
    let h = c.history().unwrap().unwrap();
    assert_eq!(h.handles, 4 * rounds);
    assert_eq!(h.counts["bundle"], Counts { hits: 0, misses: 4 * rounds, writes: 4 * rounds, deletes: 0 });
    assert_eq!(count(&h.latency, "set", "bundle"), 4 * rounds);
}

#[test]
fn recording_off_and_read_only_handles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c");
    let off = Config { latency: false, ..config() };
    let c = Cache::open(&path, &off).unwrap();
    c.set(b"parse", b"k", b"v").unwrap();
    assert!(c.latency().is_empty());
    assert!(c.stats_json("").contains("\"latency\":{\"enabled\":false}"));
    drop(c);
    // The counts are kept; no histogram.
    let h = History::read(&path).unwrap();
    assert_eq!((h.handles, h.counts["parse"].writes), (1, 1));
    assert!(h.latency.is_empty());

    let ro = Cache::open(&path, &Config { read_only: true, ..config() }).unwrap();
    assert_eq!(ro.get(b"parse", b"k").unwrap().as_deref(), Some(&b"v"[..]));
    drop(ro);
    assert_eq!(History::read(&path).unwrap().handles, 1, "a read-only handle leaves the directory alone");

    // A damaged file: read refuses it, stats_json leaves it out, the next close starts afresh.
    std::fs::write(path.join(nexxo_core::history::METRICS_FILE), "garbage").unwrap();
    let c = Cache::open(&path, &config()).unwrap();
    assert!(c.history().unwrap().is_err());
    assert!(!c.stats_json("").contains("\"history\""));
    c.set(b"parse", b"k2", b"v").unwrap();
    drop(c);
    assert_eq!(History::read(&path).unwrap().handles, 1);
}
