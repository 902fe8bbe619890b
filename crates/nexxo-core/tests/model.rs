//! Sequences of operations checked against an in-memory model (proptest).

use std::collections::BTreeMap;

use nexxo_core::{Cache, Config};
use proptest::prelude::*;

const CATS: [&str; 3] = ["parse", "transform", "meta"];

#[derive(Debug, Clone)]
enum Op {
    Set(usize, u8, Vec<u8>),
    Delete(usize, u8),
    Batch(Vec<(usize, u8, Vec<u8>)>),
    Clear(Vec<usize>),
    Get(usize, u8),
    Reopen,
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        (any::<u8>(), 0usize..3000).prop_map(|(b, n)| vec![b; n]),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 0..16u8, value()).prop_map(|(c, k, v)| Op::Set(c, k, v)),
        2 => (0..3usize, 0..16u8).prop_map(|(c, k)| Op::Delete(c, k)),
        2 => proptest::collection::vec((0..3usize, 0..16u8, value()), 0..6).prop_map(Op::Batch),
        1 => proptest::collection::vec(0..3usize, 0..3).prop_map(Op::Clear),
        3 => (0..3usize, 0..16u8).prop_map(|(c, k)| Op::Get(c, k)),
        1 => Just(Op::Reopen),
    ]
}

fn key(k: u8) -> Vec<u8> {
    format!("key-{k}").into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn cache_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("c");
        let cfg = Config::default();
        let mut cache = Some(Cache::open(&path, &cfg).unwrap());
        let mut model: BTreeMap<(usize, Vec<u8>), Vec<u8>> = BTreeMap::new();
        for op in ops {
            let c = cache.as_ref().unwrap();
            match op {
                Op::Set(ci, k, v) => {
                    c.set(CATS[ci].as_bytes(), &key(k), &v).unwrap();
                    model.insert((ci, key(k)), v);
                }
                Op::Delete(ci, k) => {
                    c.delete(CATS[ci].as_bytes(), &key(k)).unwrap();
                    model.remove(&(ci, key(k)));
                }
                Op::Batch(entries) => {
                    let keys: Vec<Vec<u8>> = entries.iter().map(|(_, k, _)| key(*k)).collect();
                    let b: Vec<(&[u8], &[u8], &[u8])> = entries
                        .iter()
                        .zip(&keys)
                        .map(|((ci, _, v), k)| (CATS[*ci].as_bytes(), &k[..], &v[..]))
                        .collect();
                    c.batch_set(&b).unwrap();
                    for ((ci, _, v), k) in entries.into_iter().zip(keys) {
                        model.insert((ci, k), v);
                    }
                }
                Op::Clear(cis) => {
                    let names: Vec<&[u8]> = cis.iter().map(|&ci| CATS[ci].as_bytes()).collect();
                    c.clear(&names).unwrap();
                    if cis.is_empty() {
                        model.clear();
                    } else {
                        model.retain(|(ci, _), _| !cis.contains(ci));
                    }
                }
                Op::Get(ci, k) => {
                    prop_assert_eq!(c.get(CATS[ci].as_bytes(), &key(k)).unwrap(), model.get(&(ci, key(k))).cloned());
                }
                Op::Reopen => {
                    drop(cache.take()); // close before the reopen
                    cache = Some(Cache::open(&path, &cfg).unwrap());
                }
            }
            let c = cache.as_ref().unwrap();
            let s = c.stats();
            prop_assert_eq!(s.entries, model.len() as u64);
            let logical: u64 = model.iter().map(|((_, k), v)| (k.len() + v.len()) as u64).sum();
            prop_assert_eq!(s.logical_bytes, logical);
        }
        let c = cache.as_ref().unwrap();
        for ((ci, k), v) in &model {
            prop_assert_eq!(c.get(CATS[*ci].as_bytes(), k).unwrap(), Some(v.clone()));
        }
        let store = c.store().unwrap();
        for ((_, kept), (_, counted, index)) in store.counters().iter().zip(store.recount().unwrap().iter()) {
            prop_assert_eq!(kept, counted);
            prop_assert_eq!(*index, counted.entries);
        }
    }
}
