//! kill -9: a child process writes batches and single sets and acknowledges each on
//! stdout; the parent kills it at a random moment, reopens the cache and checks that
//! every acknowledged write is there, that every batch is all-or-nothing, that no
//! value is wrong, and that the stats equal a recount. Some rounds kill during eviction
//! (a small cap) and during compaction.
//!
//! Rounds: NEXXO_CRASH_ROUNDS (default 60); the soak run in the README uses more.

mod common;
use common::{Rng};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nexxo_core::{Cache, Compression, Config};

const CHILD_ENV: &str = "NEXXO_CRASH_CHILD";
const BATCH: u64 = 8;

fn value(op: u64, j: u64) -> Vec<u8> {
    let len = 100 + ((op * 7919 + j * 104_729) % 3000) as usize;
    let mut v = format!("op{op}/{j}:").into_bytes();
    let mut x = op.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ j;
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(format!("{:x}", x % 4096).as_bytes()); // compressible-ish text
    }
    v.truncate(len);
    v
}

fn config(capped: bool) -> Config {
    Config {
        max_size: if capped { 1 << 20 } else { 0 },
        compression: Compression::Lz4,
        ..Config::default()
    }
}

/// The child: op n is a batch of BATCH entries when n % 3 == 0, else a single set;
/// every op also overwrites `counter` with n. "ack n" is printed once op n returned.
fn child(dir: &str, start: u64, capped: bool) {
    let c = Cache::open(dir, &config(capped)).expect("child open");
    let mut out = std::io::stdout().lock();
    writeln!(out, "open").unwrap();
    out.flush().unwrap();
    for op in start.. {
        if op % 3 == 0 {
            let keys: Vec<String> = (0..BATCH).map(|j| format!("b{op}/{j}")).collect();
            let vals: Vec<Vec<u8>> = (0..BATCH).map(|j| value(op, j)).collect();
            let mut e: Vec<(&[u8], &[u8], &[u8])> = keys.iter().zip(&vals).map(|(k, v)| (&b"bundle"[..], k.as_bytes(), &v[..])).collect();
            let ctr = op.to_string();
            e.push((b"meta", b"counter", ctr.as_bytes()));
            c.batch_set(&e).expect("batch");
        } else {
            c.set(b"transform", format!("s{op}").as_bytes(), &value(op, 0)).expect("set");
            c.set(b"meta", b"counter", op.to_string().as_bytes()).expect("counter");
        }
        writeln!(out, "ack {op}").unwrap();
        out.flush().unwrap();
        if op % 997 == 0 {
            c.compact(None).expect("compact");
        }
    }
}

#[test]
fn crash_child_entry() {
    // Runs only as the child of kill_9_at_random_moments.
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let mut parts = spec.split(',');
        let dir = parts.next().unwrap().to_owned();
        let start: u64 = parts.next().unwrap().parse().unwrap();
        let capped = parts.next() == Some("capped");
        child(&dir, start, capped);
    }
}

/// Checks the cache after a kill: every op of this round (`start..`), and `older`, a
/// sample of ops acknowledged in earlier rounds. Returns the next op number.
fn check(dir: &str, capped: bool, acked: &[u64], start: u64, highest_started: u64, older: &[u64]) -> u64 {
    let c = Cache::open(dir, &config(capped)).expect("reopen after kill -9");
    let store = c.store().unwrap();
    // Stats equal a recount, and the index matches the data.
    for ((name, kept), (_, counted, index)) in store.counters().iter().zip(store.recount().unwrap().iter()) {
        assert_eq!(kept, counted, "counters of {name} differ from a recount after kill -9");
        assert_eq!(*index, counted.entries, "index of {name} differs from its entries after kill -9");
    }
    let last_acked = acked.last().copied();
    // The counter is at least the last acknowledged op, and names an op that was started.
    let counter = c.get(b"meta", b"counter").unwrap();
    if !capped {
        if let Some(a) = last_acked {
            let v: u64 = String::from_utf8(counter.clone().expect("counter lost")).unwrap().parse().unwrap();
            assert!(v >= a && v <= highest_started, "counter {v}, last ack {a}, highest started {highest_started}");
        }
    }
    // Every acknowledged op is there (unless evicted by the cap); batches all or nothing;
    // every value present is exactly what was written.
    let probe = (start..highest_started + 2).chain(older.iter().copied());
    for op in probe {
        let was_acked = op < start || acked.binary_search(&op).is_ok();
        if op % 3 == 0 {
            let got: Vec<Option<Vec<u8>>> = (0..BATCH).map(|j| c.get(b"bundle", format!("b{op}/{j}").as_bytes()).unwrap()).collect();
            let present = got.iter().filter(|g| g.is_some()).count();
            for (j, g) in got.iter().enumerate() {
                if let Some(v) = g {
                    assert_eq!(v, &value(op, j as u64), "wrong value for b{op}/{j}");
                }
            }
            if !capped {
                assert!(present == 0 || present == BATCH as usize, "batch {op} is partial: {present} of {BATCH}");
                if was_acked {
                    assert_eq!(present, BATCH as usize, "acknowledged batch {op} lost");
                }
            }
        } else {
            let got = c.get(b"transform", format!("s{op}").as_bytes()).unwrap();
            if let Some(v) = &got {
                assert_eq!(v, &value(op, 0), "wrong value for s{op}");
            }
            if was_acked && !capped {
                assert!(got.is_some(), "acknowledged set {op} lost");
            }
        }
    }
    highest_started + 1
}

#[test]
fn kill_9_at_random_moments() {
    let rounds: usize = std::env::var("NEXXO_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let d = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng(0x5EED_1234_ABCD_0001 ^ std::process::id() as u64);
    let mut next_op = 0u64;
    let mut kills_mid_write = 0;
    let mut acked_before: Vec<u64> = Vec::new(); // acknowledged in earlier plain rounds, sorted
    for round in 0..rounds {
        // A third of the rounds run with a 1 MiB cap, so eviction is running when killed.
        let capped = round % 3 == 2;
        let dir = d.path().join(if capped { "capped" } else { "plain" });
        let dir = dir.to_str().unwrap().to_owned();
        let start = if capped { 1_000_000 * (round as u64 + 1) } else { next_op };
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child_entry", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{dir},{start},{}", if capped { "capped" } else { "plain" }))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait for the open, then let it write for 5 to 250 ms, then kill -9.
        let mut acked = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(l) if l.ends_with("open") => break, // after libtest's "test ... " prefix
                Ok(_) => {}
                Err(_) => panic!("child did not open the cache"),
            }
            assert!(Instant::now() < deadline);
        }
        std::thread::sleep(Duration::from_millis(5 + rng.next() % 245));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        while let Ok(l) = rx.try_recv() {
            if let Some(n) = l.strip_prefix("ack ") {
                acked.push(n.parse::<u64>().unwrap());
            }
        }
        // The op after the last ack may have been applied, so probe one past it.
        let highest_started = acked.last().map_or(start, |a| a + 1);
        if !acked.is_empty() {
            kills_mid_write += 1;
        }
        let older: Vec<u64> = if capped || start == 0 { Vec::new() } else { (0..300).map(|_| rng.next() % start).filter(|op| acked_before.binary_search(op).is_ok()).collect() };
        let next = check(&dir, capped, &acked, start, highest_started, &older);
        if !capped {
            acked_before.extend_from_slice(&acked);
            next_op = next;
        }
    }
    assert!(kills_mid_write >= rounds * 2 / 3, "only {kills_mid_write} of {rounds} kills happened while writing");
    eprintln!("kill -9: {rounds} rounds, {kills_mid_write} killed while writing, {next_op} ops in the plain cache");
}
