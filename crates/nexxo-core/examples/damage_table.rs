//! The README's damage table: for each class of damage to a closed cache of 10,000
//! entries (10 of them 80 KiB values in blob files), what a user sees. Each store is
//! opened, every key read (a wrong value aborts), `verify --drop` run as the command
//! runs it (verify, then reopen when it found damaged tables), and the entries readable
//! after that counted against the stats.
//!
//! `cargo run --release -p nexxo-core --example damage_table`

use std::path::Path;

use nexxo_core::{Cache, Config};

// The tests' closed store and damage helpers (tests/common/closed_store.rs).
#[path = "../tests/common/mod.rs"]
mod common;
use common::closed_store::{class_value as value, closed_store, cut, files_with as files, zero, CLASS_N as N};

fn readable(c: &Cache) -> usize {
    (0..N)
        .filter(|&i| match c.get(b"transform", format!("m{i}").as_bytes()).unwrap() {
            Some(v) => {
                assert!(v == value(i), "m{i}: a wrong value");
                true
            }
            None => false,
        })
        .count()
}

fn main() {
    let root = tempfile::tempdir().unwrap();
    type Damage = Box<dyn Fn(&Path)>;
    let classes: Vec<(&str, Damage)> = vec![
        ("CURRENT deleted", Box::new(|p| std::fs::remove_file(p.join("CURRENT")).unwrap())),
        ("CURRENT garbage", Box::new(|p| std::fs::write(p.join("CURRENT"), b"\x00garbage").unwrap())),
        ("MANIFEST cut in half", Box::new(|p| {
            let m = std::fs::read_to_string(p.join("CURRENT")).unwrap();
            cut(&p.join(m.trim_end()), |l| l / 2)
        })),
        ("category table: 4 KiB zeroed in the middle", Box::new(|p| zero(&files(p, "sst")[0], |l| l / 2, 4096))),
        ("category table cut in half", Box::new(|p| cut(&files(p, "sst")[0], |l| l / 2))),
        ("newest table cut in half", Box::new(|p| {
            let mut v = files(p, "sst");
            v.sort();
            cut(v.last().unwrap(), |l| l / 2)
        })),
        ("blob file: 4 KiB zeroed", Box::new(|p| zero(&files(p, "blob")[0], |l| l / 3, 4096))),
        ("write-ahead log deleted", Box::new(|p| files(p, "log").iter().for_each(|f| std::fs::remove_file(f).unwrap()))),
        ("OPTIONS garbage", Box::new(|p| {
            for e in std::fs::read_dir(p).unwrap().flatten() {
                if e.file_name().to_string_lossy().starts_with("OPTIONS-") {
                    std::fs::write(e.path(), b"\xff garbage").unwrap();
                }
            }
        })),
        ("format marker garbage", Box::new(|p| std::fs::write(p.join("NEXXO_FORMAT"), b"\xff\xfe").unwrap())),
    ];
    println!("| damage (closed cache of {N} entries) | readable at first open | recovered at open | `verify --drop` | readable after | stats entries after | moved aside |");
    println!("|---|---|---|---|---|---|---|");
    for (i, (name, damage)) in classes.iter().enumerate() {
        let path = closed_store(root.path(), &format!("c{i}"));
        damage(&path);
        let c = Cache::open(&path, &Config::default()).unwrap();
        let recovered = c.stats().recovered;
        let first = readable(&c);
        let r = c.store().unwrap().verify(true, &mut |_, _| {}).unwrap();
        let verify = match (r.bad, r.damaged_tables.len()) {
            (0, 0) => "nothing found".to_owned(),
            (b, 0) => format!("{b} damaged entries dropped"),
            (b, t) => format!("{b} damaged entries, {t} damaged table(s): salvaged at the reopen"),
        };
        drop(c);
        let c = Cache::open(&path, &Config::default()).unwrap();
        let after = readable(&c);
        let entries = c.stats().entries;
        drop(c);
        let aside = std::fs::read_dir(root.path()).unwrap().flatten().any(|e| e.file_name().to_string_lossy().starts_with(&format!("c{i}.corrupt-")));
        println!("| {name} | {first} | {} | {verify} | {after} | {entries} | {} |", if recovered { "yes" } else { "no" }, if aside { "yes" } else { "no" });
    }
}
