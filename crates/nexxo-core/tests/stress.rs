//! Many threads against one cache, each checked against its own model, while other
//! threads clear, compact and enforce the policy on categories they do not write.

mod common;
use common::{assert_exact, Rng};
use std::collections::HashMap;
use std::sync::Arc;

use nexxo_core::{Cache, Config};

#[test]
fn many_threads_against_a_model() {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = Config::default();
    for i in 0..8 {
        cfg.add_category(format!("t{i}").as_bytes()).unwrap();
    }
    cfg.add_category(b"churn").unwrap();
    let cache = Arc::new(Cache::open(d.path().join("c"), &cfg).unwrap());
    let mut handles = Vec::new();
    for t in 0..8u64 {
        let cache = cache.clone();
        handles.push(std::thread::spawn(move || {
            let cat = format!("t{t}");
            let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
            let mut rng = Rng(0x1234_5678 ^ (t + 1) * 0x9E37_79B9);
            for step in 0..3000 {
                let key = format!("k{}", rng.next() % 200).into_bytes();
                match rng.next() % 10 {
                    0..=4 => {
                        let v = format!("{t}/{step}/").repeat(1 + (rng.next() % 50) as usize).into_bytes();
                        cache.set(cat.as_bytes(), &key, &v).unwrap();
                        model.insert(key, v);
                    }
                    5 => {
                        cache.delete(cat.as_bytes(), &key).unwrap();
                        model.remove(&key);
                    }
                    6 => {
                        let keys: Vec<Vec<u8>> = (0..5).map(|i| format!("b{}", (rng.next() + i) % 100).into_bytes()).collect();
                        let vals: Vec<Vec<u8>> = keys.iter().map(|k| [k.as_slice(), b"=", step.to_string().as_bytes()].concat()).collect();
                        let batch: Vec<(&[u8], &[u8], &[u8])> = keys.iter().zip(&vals).map(|(k, v)| (cat.as_bytes(), &k[..], &v[..])).collect();
                        cache.batch_set(&batch).unwrap();
                        for (k, v) in keys.into_iter().zip(vals) {
                            model.insert(k, v);
                        }
                    }
                    _ => {
                        assert_eq!(cache.get(cat.as_bytes(), &key).unwrap(), model.get(&key).cloned(), "thread {t} step {step}");
                    }
                }
            }
            for (k, v) in &model {
                assert_eq!(cache.get(cat.as_bytes(), k).unwrap().as_ref(), Some(v));
            }
            let s = cache.category_stats(cat.as_bytes()).unwrap();
            assert_eq!(s.entries, model.len() as u64, "thread {t}: entries");
            let logical: u64 = model.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
            assert_eq!(s.logical_bytes, logical, "thread {t}: logical bytes");
        }));
    }
    // Maintenance running at the same time, on a category of its own and on the whole.
    let churn = {
        let cache = cache.clone();
        std::thread::spawn(move || {
            for i in 0..200 {
                cache.set(b"churn", format!("c{i}").as_bytes(), &[7u8; 2000]).unwrap();
                if i % 20 == 0 {
                    cache.clear(&[b"churn"]).unwrap();
                    cache.compact(None).unwrap();
                    cache.enforce_policy().unwrap();
                    let _ = cache.stats();
                }
            }
        })
    };
    for h in handles {
        h.join().unwrap();
    }
    churn.join().unwrap();
    assert_exact(cache.store().unwrap());
}
