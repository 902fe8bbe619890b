//! Many workers, one cache: threads and processes of one user open the same directory
//! and all read and write it. The child processes are this test binary run again with
//! `NEXXO_SHARE_CHILD` set (see `share_child_entry`).
//!
//! Rounds of the owner-kill test: NEXXO_SHARE_ROUNDS (default 6).

mod common;
use common::{artifact, assert_exact, noise, Rng};

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use nexxo_core::{Cache, Config};

const CHILD_ENV: &str = "NEXXO_SHARE_CHILD";
const WAIT: Duration = Duration::from_secs(60);

fn value(worker: u64, i: u64) -> Vec<u8> {
    let mut v = format!("w{worker}/{i}:").into_bytes();
    v.extend_from_slice(&artifact((worker * 100_000 + i) as usize, 200 + ((worker * 31 + i * 7) % 900) as usize));
    v
}

fn key(worker: u64, i: u64) -> Vec<u8> {
    format!("w{worker}/{i}").into_bytes()
}

/// Child roles:
/// - `writer,DIR,ID,N`: opens, prints "open", sets N entries one by one and prints
///   "ack I" after each returned, reads each back, prints "done".
/// - `filler,DIR,ID,N`: opens, prints "open", sets N entries one by one, prints "done".
/// - `echo,DIR`: opens, prints "open", then answers stdin lines: `set K V` -> "ok",
///   `get K` -> the value or "miss", `entries` -> the cache's entry count, `flush` -> "ok".
#[test]
fn share_child_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let parts: Vec<&str> = spec.split(',').collect();
    let c = Cache::open(parts[1], &Config::default()).expect("child open");
    assert!(c.disabled_reason().is_none());
    let mut out = std::io::stdout().lock();
    writeln!(out, "open").unwrap();
    out.flush().unwrap();
    match parts[0] {
        "writer" => {
            let (id, n): (u64, u64) = (parts[2].parse().unwrap(), parts[3].parse().unwrap());
            for i in 0..n {
                c.set(b"transform", &key(id, i), &value(id, i)).unwrap_or_else(|e| panic!("set {i}: {e}"));
                writeln!(out, "ack {i}").unwrap();
                out.flush().unwrap();
            }
            for i in 0..n {
                assert_eq!(c.get(b"transform", &key(id, i)).unwrap(), Some(value(id, i)), "read back {i}");
            }
            writeln!(out, "done").unwrap();
        }
        // The same sets without the read-back (some may be evicted by then).
        "filler" => {
            let (id, n): (u64, u64) = (parts[2].parse().unwrap(), parts[3].parse().unwrap());
            for i in 0..n {
                c.set(b"transform", &key(id, i), &value(id, i)).unwrap_or_else(|e| panic!("set {i}: {e}"));
            }
            writeln!(out, "done").unwrap();
        }
        "echo" => {
            for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                let w: Vec<&str> = line.splitn(3, ' ').collect();
                match w[0] {
                    "set" => {
                        c.set(b"parse", w[1].as_bytes(), w[2].as_bytes()).unwrap();
                        writeln!(out, "ok").unwrap();
                    }
                    "get" => match c.get(b"parse", w[1].as_bytes()).unwrap() {
                        Some(v) => writeln!(out, "{}", String::from_utf8(v).unwrap()).unwrap(),
                        None => writeln!(out, "miss").unwrap(),
                    },
                    "entries" => writeln!(out, "{}", c.stats().entries).unwrap(),
                    // "count PREFIX N": how many of keys PREFIX0..PREFIXN-1 read back
                    // as "v-" and the key, and how many missed.
                    "count" => {
                        let n: usize = w[2].parse().unwrap();
                        let (mut right, mut missed) = (0, 0);
                        for i in 0..n {
                            let k = format!("{}{i}", w[1]);
                            match c.get(b"parse", k.as_bytes()).unwrap() {
                                Some(v) if v == format!("v-{k}").as_bytes() => right += 1,
                                Some(_) => {}
                                None => missed += 1,
                            }
                        }
                        writeln!(out, "{right} {missed}").unwrap();
                    }
                    // "countmany PREFIX N": the same, read with one batch_get.
                    "countmany" => {
                        let n: usize = w[2].parse().unwrap();
                        let keys: Vec<String> = (0..n).map(|i| format!("{}{i}", w[1])).collect();
                        let asks: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (&b"parse"[..], k.as_bytes())).collect();
                        let (mut right, mut missed) = (0, 0);
                        for (k, v) in keys.iter().zip(c.batch_get(&asks)) {
                            match v.unwrap() {
                                Some(v) if v == format!("v-{k}").as_bytes() => right += 1,
                                Some(_) => {}
                                None => missed += 1,
                            }
                        }
                        writeln!(out, "{right} {missed}").unwrap();
                    }
                    "flush" => {
                        c.flush().unwrap();
                        writeln!(out, "ok").unwrap();
                    }
                    _ => panic!("unknown command {line}"),
                }
                out.flush().unwrap();
            }
        }
        r => panic!("unknown role {r}"),
    }
}

struct Kid {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

fn spawn(spec: &str) -> Kid {
    spawn_with(spec, &[])
}

/// [`spawn`] with more environment variables for the child.
fn spawn_with(spec: &str, env: &[(&str, &Path)]) -> Kid {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "share_child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, spec)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest prints "running 1 test" and "test share_child_entry ... " first.
            let l = l.strip_prefix("test share_child_entry ... ").unwrap_or(&l).to_owned();
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    Kid { stdin: child.stdin.take(), child, lines }
}

impl Kid {
    /// The next line the child prints that is not libtest's.
    fn line(&self) -> String {
        loop {
            match self.lines.recv_timeout(WAIT) {
                Ok(l) if l.is_empty() || l.starts_with("running ") => continue,
                Ok(l) => return l,
                Err(RecvTimeoutError::Timeout) => panic!("a child said nothing for {WAIT:?}"),
                Err(RecvTimeoutError::Disconnected) => panic!("a child ended early"),
            }
        }
    }

    fn ask(&mut self, line: &str) -> String {
        let s = self.stdin.as_mut().unwrap();
        writeln!(s, "{line}").unwrap();
        s.flush().unwrap();
        self.line()
    }

    /// Waits for the child's exit; it must succeed.
    fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "a child failed: {status}");
    }

    /// Every "ack I" printed until the output ends, after `before` (lines taken already).
    fn acks(&self, before: Vec<String>) -> Vec<u64> {
        before.into_iter().chain(self.lines.iter()).filter_map(|l| l.strip_prefix("ack ").map(|n| n.parse().unwrap())).collect()
    }

    /// The lines printed so far.
    fn so_far(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

#[test]
fn threads_with_handles_of_their_own_share_one_store() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("c");
    let barrier = std::sync::Barrier::new(4);
    std::thread::scope(|s| {
        for id in 0..4u64 {
            let (path, barrier) = (&path, &barrier);
            s.spawn(move || {
                let c = Cache::open(path, &Config::default()).unwrap();
                assert!(c.disabled_reason().is_none());
                for i in 0..300 {
                    c.set(b"transform", &key(id, i), &value(id, i)).unwrap();
                }
                barrier.wait();
                for w in 0..4 {
                    for i in 0..300 {
                        assert_eq!(c.get(b"transform", &key(w, i)).unwrap(), Some(value(w, i)));
                    }
                }
                assert_eq!(c.stats().hits, 1200, "each handle counts its own reads");
                barrier.wait();
            });
        }
    });
    let c = Cache::open(&path, &Config::default()).unwrap();
    assert_eq!(c.stats().entries, 1200);
    assert_exact(c.store().unwrap());
}

#[test]
fn processes_creating_a_new_directory_at_once_all_work() {
    for round in 0..3 {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("new").join("cache");
        let kids: Vec<Kid> = (0..4).map(|id| spawn(&format!("writer,{},{id},150", dir.display()))).collect();
        for k in &kids {
            assert_eq!(k.line(), "open", "round {round}");
        }
        for k in kids {
            k.finish();
        }
        let c = Cache::open(&dir, &Config::default()).unwrap();
        for w in 0..4 {
            for i in 0..150 {
                assert_eq!(c.get(b"transform", &key(w, i)).unwrap(), Some(value(w, i)), "round {round}: w{w}/{i}");
            }
        }
        assert_eq!(c.stats().entries, 600);
        assert_exact(c.store().unwrap());
    }
}

#[test]
fn a_write_acknowledged_in_one_process_is_read_at_once_in_another() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("c");
    let c = Cache::open(&dir, &Config::default()).unwrap();
    // Entries there before the child opens: its direct reader has them.
    let big = "B".repeat(100 << 10); // a blob file's value
    c.set(b"parse", b"pre", b"first").unwrap();
    c.set(b"parse", b"big", big.as_bytes()).unwrap();
    let mut kid = spawn(&format!("echo,{}", dir.display()));
    assert_eq!(kid.line(), "open");
    assert_eq!(kid.ask("get pre"), "first");
    assert_eq!(kid.ask("get big"), big);
    // Overwritten and removed by the owner: the child's next read sees it, at once.
    c.set(b"parse", b"pre", b"second").unwrap();
    assert_eq!(kid.ask("get pre"), "second");
    c.delete(b"parse", b"pre").unwrap();
    assert_eq!(kid.ask("get pre"), "miss");
    c.set(b"parse", b"big", b"small now").unwrap();
    assert_eq!(kid.ask("get big"), "small now");
    c.delete(b"parse", b"big").unwrap();
    for i in 0..50 {
        assert_eq!(kid.ask(&format!("set k{i} from-child-{i}")), "ok");
        assert_eq!(c.get(b"parse", format!("k{i}").as_bytes()).unwrap().as_deref(), Some(format!("from-child-{i}").as_bytes()));
        c.set(b"parse", format!("p{i}").as_bytes(), format!("from-parent-{i}").as_bytes()).unwrap();
        assert_eq!(kid.ask(&format!("get p{i}")), format!("from-parent-{i}"));
    }
    // The child's journal applied (a flush waits for it): the copies it keeps of what it
    // wrote give way to what others write over them, at once.
    assert_eq!(kid.ask("flush"), "ok");
    assert_eq!(kid.ask("get k2"), "from-child-2");
    c.set(b"parse", b"k2", b"changed by the owner").unwrap();
    assert_eq!(kid.ask("get k2"), "changed by the owner");
    c.set(b"parse", b"k2", b"from-child-2").unwrap();
    // A set of a key the child knows (the parent wrote it) goes to the owner, and the
    // copy the child keeps of it gives way too.
    assert_eq!(kid.ask("set p5 child-over-parent"), "ok");
    assert_eq!(c.get(b"parse", b"p5").unwrap().as_deref(), Some(&b"child-over-parent"[..]));
    assert_eq!(kid.ask("get p5"), "child-over-parent");
    c.set(b"parse", b"p5", b"from-parent-5").unwrap();
    assert_eq!(kid.ask("get p5"), "from-parent-5");
    // Overwrites and deletes are seen at once too, and the stats agree.
    c.set(b"parse", b"k0", b"again").unwrap();
    assert_eq!(kid.ask("get k0"), "again");
    c.delete(b"parse", b"k1").unwrap();
    assert_eq!(kid.ask("get k1"), "miss");
    assert_eq!(kid.ask("entries"), "99");
    assert_eq!(c.stats().entries, 99);
    // The parent closes: the child takes the store over (at its first request that needs
    // an owner: a key it does not have) and goes on.
    drop(c);
    assert_eq!(kid.ask("get k2"), "from-child-2");
    assert_eq!(kid.ask("get absent"), "miss");
    assert_eq!(kid.ask("set after close"), "ok");
    let c2 = Cache::open(&dir, &Config::default()).unwrap();
    assert!(c2.owner_pid().is_some(), "the child serves now");
    assert_eq!(c2.get(b"parse", b"after").unwrap().as_deref(), Some(&b"close"[..]));
    // A set this client journals is read at once by the owner.
    c2.set(b"parse", b"from-c2", b"journaled").unwrap();
    assert_eq!(kid.ask("get from-c2"), "journaled");
    kid.finish();
    assert_eq!(c2.get(b"parse", b"p3").unwrap().as_deref(), Some(&b"from-parent-3"[..]));
    c2.set(b"parse", b"last", b"write").unwrap();
    assert_eq!(c2.stats().entries, 102);
    assert!(c2.owner_pid().is_none(), "this process took the store over");
    assert_exact(c2.store().unwrap());
}

/// A client that has not read for a while lets its direct reader fall behind (it does
/// not replay what others write until it reads again); its first reads after that are
/// still exact: new keys, overwritten and removed ones, in both orders of the pause and
/// the writes, and while the owner keeps writing.
#[test]
fn a_client_that_paused_reading_reads_exactly_what_others_wrote() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("c");
    let c = Cache::open(&dir, &Config::default()).unwrap();
    let put = |prefix: &str, n: usize, tag: &str| {
        for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
            let kv: Vec<(String, String)> = chunk.iter().map(|i| (format!("{prefix}{i}"), format!("{tag}{prefix}{i}"))).collect();
            let entries: Vec<(&[u8], &[u8], &[u8])> = kv.iter().map(|(k, v)| (&b"parse"[..], k.as_bytes(), v.as_bytes())).collect();
            c.batch_set(&entries).unwrap();
        }
    };
    put("a", 2000, "v-");
    let mut kid = spawn(&format!("echo,{}", dir.display()));
    assert_eq!(kid.line(), "open");
    assert_eq!(kid.ask("count a 2000"), "2000 0");
    // Written while the child does not read, then a pause longer than its poll: its
    // reader is behind by all of it.
    put("b", 3000, "v-");
    put("a", 1000, "old-"); // a0..a999 replaced ...
    put("a", 500, "v-"); // ... and a0..a499 replaced again
    for i in 1500..1600 {
        c.delete(b"parse", format!("a{i}").as_bytes()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(kid.ask("countmany a 2000"), "1400 100", "a500..a999 hold old- values; a1500..a1599 are gone");
    assert_eq!(kid.ask("count b 3000"), "3000 0");
    assert_eq!(kid.ask("count a 2000"), "1400 100", "a500..a999 hold old- values; a1500..a1599 are gone");
    // The pause before the writes: the reader last caught up long ago when they come.
    std::thread::sleep(Duration::from_millis(300));
    put("c", 2000, "v-");
    assert_eq!(kid.ask("count c 2000"), "2000 0");
    // New keys only (no replacement makes the read catch up first), after a pause: a
    // batch read's keys that miss are read again after the catch-up, each into its own
    // place among the hits.
    std::thread::sleep(Duration::from_millis(300));
    let kv: Vec<(String, String)> = (2000..2500).map(|i| (format!("c{i}"), format!("v-c{i}"))).collect();
    c.batch_set(&kv.iter().map(|(k, v)| (&b"parse"[..], k.as_bytes(), v.as_bytes())).collect::<Vec<_>>()).unwrap();
    assert_eq!(kid.ask("countmany c 2500"), "2500 0");
    // Reads while the owner writes.
    std::thread::scope(|s| {
        s.spawn(|| put("d", 4000, "v-"));
        for _ in 0..5 {
            let got = kid.ask("count c 2000");
            assert_eq!(got, "2000 0");
        }
    });
    assert_eq!(kid.ask("count d 4000"), "4000 0");
    assert_eq!(kid.ask("entries"), (2000 - 100 + 3000 + 2500 + 4000).to_string());
    kid.finish();
    assert_exact(c.store().unwrap());
}

/// The owner is killed with SIGKILL while clients write; they go on without reopening,
/// and every write acknowledged to any process is there afterwards, byte for byte.
#[test]
fn kill_9_of_the_owner_loses_no_acknowledged_write() {
    let rounds: u64 = std::env::var("NEXXO_SHARE_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(6);
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("c");
    let mut rng = Rng(0xC0FF_EE00_1234_5678 ^ std::process::id() as u64);
    let mut expected: Vec<(u64, u64)> = Vec::new();
    let mut mid_write = 0;
    let mut stall = Duration::ZERO;
    for round in 0..rounds {
        let base = round * 10;
        let owner = spawn(&format!("writer,{},{base},1000000", dir.display()));
        assert_eq!(owner.line(), "open");
        let clients: Vec<Kid> = (1..3).map(|j| spawn(&format!("writer,{},{},3000", dir.display(), base + j))).collect();
        for k in &clients {
            assert_eq!(k.line(), "open");
        }
        // Let the clients write a while through the owner, then kill it.
        assert_eq!(clients[0].line(), "ack 0");
        std::thread::sleep(Duration::from_millis(5 + rng.next() % 60));
        let mut owner = owner;
        owner.child.kill().unwrap();
        let killed = std::time::Instant::now();
        let mut before: Vec<Vec<String>> = clients.iter().map(Kid::so_far).collect();
        if before.iter().all(|b| !b.iter().any(|l| l == "done")) {
            mid_write += 1;
        }
        // How long a client waits after the kill for its next write to be acknowledged
        // (a measurement, printed below: no timing is asserted).
        for (k, b) in clients.iter().zip(before.iter_mut()) {
            if !b.iter().any(|l| l == "done") {
                b.push(k.line());
                stall = stall.max(killed.elapsed());
            }
        }
        owner.child.wait().unwrap();
        drop(owner.stdin.take());
        expected.extend(owner.acks(Vec::new()).into_iter().map(|i| (base, i)));
        for ((j, k), before) in clients.into_iter().enumerate().zip(before) {
            let mut acks = k.acks(before);
            if j == 0 {
                acks.push(0);
            }
            let mut k = k;
            let status = k.child.wait().unwrap();
            assert!(status.success(), "round {round}: a client failed after the owner was killed: {status}");
            acks.sort_unstable();
            assert_eq!(acks.len(), 3000, "round {round}: client {j} finished every write");
            expected.extend(acks.into_iter().map(|i| (base + 1 + j as u64, i)));
        }
    }
    let c = Cache::open(&dir, &Config::default()).unwrap();
    for &(w, i) in &expected {
        assert_eq!(c.get(b"transform", &key(w, i)).unwrap(), Some(value(w, i)), "acknowledged w{w}/{i}");
    }
    assert_exact(c.store().unwrap());
    assert!(mid_write * 2 >= rounds, "the owner was killed while both clients were writing in only {mid_write} of {rounds} rounds");
    eprintln!(
        "owner killed in {rounds} rounds ({mid_write} while both clients were writing): {} acknowledged writes checked; longest wait for a client's next acknowledgement after a kill: {stall:?}",
        expected.len()
    );
}

/// A peer that sends garbage, or stops in the middle of a message, is dropped or left
/// waiting on its own: the owner goes on serving others and closes without waiting on it.
#[test]
fn a_broken_peer_harms_no_one() {
    use std::os::unix::net::UnixStream;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("c");
    let c = Cache::open(&dir, &Config::default()).unwrap();
    c.set(b"parse", b"k", b"v").unwrap();
    let sock = dir.join("nexxo.sock");
    let mut rng = Rng(7);
    for n in [1usize, 3, 4, 5, 64, 4096] {
        let mut s = UnixStream::connect(&sock).unwrap();
        let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        let _ = s.write_all(&junk);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut rest = Vec::new();
        let _ = std::io::Read::read_to_end(&mut s, &mut rest);
    }
    // A frame over the limit, and one that stops half-way and stays open.
    let mut huge = UnixStream::connect(&sock).unwrap();
    huge.write_all(&u32::MAX.to_le_bytes()).unwrap();
    let mut stalled = UnixStream::connect(&sock).unwrap();
    stalled.write_all(&1000u32.to_le_bytes()).unwrap();
    stalled.write_all(b"NEXXO").unwrap();
    let mut kid = spawn(&format!("echo,{}", dir.display()));
    assert_eq!(kid.line(), "open");
    assert_eq!(kid.ask("get k"), "v");
    assert_eq!(kid.ask("set k2 v2"), "ok");
    assert_eq!(c.get(b"parse", b"k2").unwrap().as_deref(), Some(&b"v2"[..]));
    kid.finish();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(c);
        tx.send(()).unwrap();
    });
    rx.recv_timeout(WAIT).expect("close waited on a stalled peer");
    drop((huge, stalled));
}

/// The read-only instance's warm table goes to the store opened for writing in its place
/// (share's `backing.rs`, `publish`): after a build's first write, what its reads brought
/// into memory is still there, and a later overwrite or delete of such an entry is seen
/// (the table keeps its hash seed). A store opened for writing fills its own table only
/// 20 ms after its open at the earliest, so right after the write it holds the moved
/// entries or none.
#[test]
fn the_warm_table_moves_to_the_store_opened_for_writing() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("c");
    {
        let c = Cache::open(&path, &Config::default()).unwrap();
        for i in 0..2000 {
            c.set(b"transform", &key(0, i), &value(0, i)).unwrap();
        }
    }
    let c = Cache::open(&path, &Config::default()).unwrap();
    for i in 0..64 {
        assert_eq!(c.get(b"transform", &key(0, i)).unwrap(), Some(value(0, i)));
    }
    // The lookups started the read-only instance's fill.
    let t = std::time::Instant::now();
    while c.debug_interim_warm_entries() < 2000 && t.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(c.debug_interim_warm_entries(), 2000, "the read-only instance's fill");
    c.set(b"transform", b"changed.ts", b"the build's first write").unwrap();
    let store = c.store().expect("the store, opened by the write");
    let held = (0..2000).filter(|&i| store.debug_warm_holds(b"transform", &key(0, i)).unwrap()).count();
    assert_eq!(held, 2000, "entries the writable store's table holds, found as a read finds them, right after its open");
    assert_eq!(c.debug_interim_warm_entries(), 0);
    c.set(b"transform", &key(0, 7), b"rewritten").unwrap();
    c.delete(b"transform", &key(0, 8)).unwrap();
    assert_eq!(c.get(b"transform", &key(0, 7)).unwrap().as_deref(), Some(&b"rewritten"[..]));
    assert_eq!(c.get(b"transform", &key(0, 8)).unwrap(), None);
    for i in (0..2000).filter(|i| ![7, 8].contains(i)) {
        assert_eq!(c.get(b"transform", &key(0, i)).unwrap(), Some(value(0, i)), "entry {i}");
    }
    assert_eq!(c.get(b"transform", b"changed.ts").unwrap().as_deref(), Some(&b"the build's first write"[..]));
    assert_eq!(c.stats().entries, 2000);
}

/// A store closed cleanly is served from a read-only instance until something needs it
/// for writing (share's `backing.rs`). A process that only reads never opens it for
/// writing (RocksDB's CURRENT is untouched). Readers in several threads, racing a writer
/// that overwrites and deletes (its first write opens the store), read only values that
/// were written (the old one or the writer's), the writer reads its own writes at once,
/// and the stats are exact.
#[test]
fn reads_are_answered_before_the_store_opens_for_writing() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("c");
    for round in 0..3u64 {
        {
            let c = Cache::open(&path, &Config::default()).unwrap();
            for i in 0..500 {
                c.set(b"transform", &key(round, i), &value(round, i)).unwrap();
            }
            if round > 0 {
                // The previous round's writer left keys 0..100 rewritten, 100..150 gone.
                assert_eq!(c.get(b"transform", &key(round - 1, 120)).unwrap(), None);
            }
        }
        let current = std::fs::read_to_string(path.join("CURRENT")).unwrap();
        {
            let c = Cache::open(&path, &Config::default()).unwrap();
            for i in 150..500 {
                assert_eq!(c.get(b"transform", &key(round, i)).unwrap(), Some(value(round, i)));
            }
            assert_eq!(c.interim_reads(), 350);
        }
        assert_eq!(std::fs::read_to_string(path.join("CURRENT")).unwrap(), current, "a process that only read opened the store for writing");
        let c = Cache::open(&path, &Config::default()).unwrap();
        // Answered by the read-only instance, exactly: nothing wrote since it opened.
        let s = c.stats();
        assert!(!s.read_only);
        let entries_at_open = s.entries;
        let barrier = std::sync::Barrier::new(4);
        std::thread::scope(|sc| {
            for _ in 0..3 {
                let (c, barrier) = (&c, &barrier);
                sc.spawn(move || {
                    barrier.wait();
                    for i in 0..500 {
                        let got = c.get(b"transform", &key(round, i)).unwrap();
                        let rewritten = [b"new/".as_slice(), &value(round, i)].concat();
                        match i {
                            0..100 => assert!(got == Some(value(round, i)) || got == Some(rewritten), "round {round}: key {i}"),
                            100..150 => assert!(got.is_none() || got == Some(value(round, i)), "round {round}: key {i}"),
                            _ => assert_eq!(got, Some(value(round, i)), "round {round}: key {i}"),
                        }
                    }
                });
            }
            let (c, barrier) = (&c, &barrier);
            sc.spawn(move || {
                barrier.wait();
                for i in 0..150 {
                    if i < 100 {
                        let v = [b"new/".as_slice(), &value(round, i)].concat();
                        c.set(b"transform", &key(round, i), &v).unwrap();
                        assert_eq!(c.get(b"transform", &key(round, i)).unwrap(), Some(v), "round {round}: own write {i}");
                    } else {
                        c.delete(b"transform", &key(round, i)).unwrap();
                        assert_eq!(c.get(b"transform", &key(round, i)).unwrap(), None, "round {round}: own delete {i}");
                    }
                }
            });
        });
        assert!(c.interim_reads() > 0, "round {round}: no read was answered before the store opened");
        assert_eq!(c.stats().entries, entries_at_open - 50, "round {round}");
        assert_exact(c.store().unwrap());
    }
}

/// Processes that open a cache closed cleanly, all at once: one serves it from a
/// read-only instance, the others' writes open it; every acknowledged write of each is
/// there afterwards.
#[test]
fn processes_opening_a_closed_cache_at_once_all_work() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("c");
    for round in 0..3u64 {
        let kids: Vec<Kid> = (0..4).map(|j| spawn(&format!("writer,{},{},150", dir.display(), round * 10 + j))).collect();
        for k in &kids {
            assert_eq!(k.line(), "open", "round {round}");
        }
        for k in kids {
            k.finish();
        }
    }
    let c = Cache::open(&dir, &Config::default()).unwrap();
    for round in 0..3u64 {
        for j in 0..4 {
            for i in 0..150 {
                let w = round * 10 + j;
                assert_eq!(c.get(b"transform", &key(w, i)).unwrap(), Some(value(w, i)), "w{w}/{i}");
            }
        }
    }
    assert!(c.interim_reads() > 0);
    assert_eq!(c.stats().entries, 1800);
    assert_exact(c.store().unwrap());
}

/// A store another process has locked without sharing it (RocksDB's POSIX lock on LOCK)
/// is not served from a read-only instance: the open waits for the lock and reports it,
/// as before.
#[test]
fn a_store_locked_by_a_process_that_does_not_share_it_is_reported() {
    use std::io::Write as _;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("c");
    Cache::open(&dir, &Config::default()).unwrap().set(b"parse", b"k", b"v").unwrap();
    let mut holder = Command::new("python3")
        .args(["-c", "import fcntl,sys; f=open(sys.argv[1],'a'); fcntl.lockf(f, fcntl.LOCK_EX|fcntl.LOCK_NB); print('held', flush=True); sys.stdin.read()"])
        .arg(dir.join("LOCK"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs the lock holder");
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "held");
    match Cache::open(&dir, &Config::default()) {
        Err(nexxo_core::Error::Locked(_)) => {}
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(c) => panic!("opened a store another process holds (interim reads: {})", c.interim_reads()),
    }
    holder.stdin.take().unwrap().write_all(b"").unwrap();
    holder.wait().unwrap();
    let c = Cache::open(&dir, &Config::default()).unwrap();
    assert_eq!(c.get(b"parse", b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

/// An owner serving from its read-only instance, and a client process that writes: the
/// client's write opens the owner's store, and the owner's next read of a key it had
/// read from the read-only instance sees the client's overwrite at once.
#[test]
fn a_client_write_reaches_an_owner_that_has_only_read() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("c");
    {
        let c = Cache::open(&dir, &Config::default()).unwrap();
        c.set(b"parse", b"a", b"first").unwrap();
        c.set(b"parse", b"b", b"kept").unwrap();
    }
    let c = Cache::open(&dir, &Config::default()).unwrap();
    assert_eq!(c.get(b"parse", b"a").unwrap().as_deref(), Some(&b"first"[..]));
    assert_eq!(c.interim_reads(), 1);
    let mut kid = spawn(&format!("echo,{}", dir.display()));
    assert_eq!(kid.line(), "open");
    assert_eq!(kid.ask("get a"), "first");
    assert_eq!(kid.ask("entries"), "2");
    assert_eq!(kid.ask("set a second"), "ok");
    assert_eq!(c.get(b"parse", b"a").unwrap().as_deref(), Some(&b"second"[..]), "the owner read a stale value");
    assert_eq!(kid.ask("set n new"), "ok");
    assert_eq!(c.get(b"parse", b"n").unwrap().as_deref(), Some(&b"new"[..]));
    c.delete(b"parse", b"b").unwrap();
    assert_eq!(kid.ask("get b"), "miss");
    assert_eq!(kid.ask("entries"), "2");
    assert_eq!(c.stats().entries, 2);
    kid.finish();
    assert_exact(c.store().unwrap());
}

/// An owner whose warm table answers its misses from memory (a new cache, nothing
/// removed) reads at once what a client wrote, before and after the client's journal is
/// taken in, and its table still answers for the store afterwards.
#[test]
fn an_owner_that_answers_misses_from_memory_reads_what_clients_wrote() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("c");
    let c = Cache::open(&dir, &Config::default()).unwrap();
    c.set(b"parse", b"mine", b"owner").unwrap();
    assert!(c.store().unwrap().debug_warm_complete());
    let mut kid = spawn(&format!("echo,{}", dir.display()));
    assert_eq!(kid.line(), "open");
    for i in 0..50 {
        assert_eq!(c.get(b"parse", format!("k{i}").as_bytes()).unwrap(), None);
        assert_eq!(kid.ask(&format!("set k{i} from-child-{i}")), "ok");
        assert_eq!(c.get(b"parse", format!("k{i}").as_bytes()).unwrap().as_deref(), Some(format!("from-child-{i}").as_bytes()), "k{i}");
    }
    assert_eq!(kid.ask("flush"), "ok");
    for i in 0..50 {
        assert_eq!(c.get(b"parse", format!("k{i}").as_bytes()).unwrap().as_deref(), Some(format!("from-child-{i}").as_bytes()), "k{i}");
    }
    assert_eq!(kid.ask("get mine"), "owner");
    kid.finish();
    assert_eq!(c.stats().entries, 51);
    assert!(c.store().unwrap().debug_warm_complete(), "clients' writes keep the owner's table whole");
    assert_exact(c.store().unwrap());
}

/// A client is killed with SIGKILL in the middle of its sets, which it journals (see
/// `share/journal.rs`): every set it acknowledged is read back from the owner, byte for
/// byte, the owner removes the dead client's journal, and the counters equal a recount.
#[test]
fn kill_9_of_a_client_loses_no_acknowledged_write() {
    let rounds: u64 = std::env::var("NEXXO_SHARE_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(6);
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("c");
    let c = Cache::open(&dir, &Config::default()).unwrap();
    let mut rng = Rng(0x5EED_0000_9999_0001 ^ std::process::id() as u64);
    let mut expected: Vec<(u64, u64)> = Vec::new();
    let mut killed_mid_write = 0;
    for round in 0..rounds {
        let kids: Vec<Kid> = (0..2).map(|j| spawn(&format!("writer,{},{},1000000", dir.display(), 100 + round * 2 + j))).collect();
        for k in &kids {
            assert_eq!(k.line(), "open");
            assert_eq!(k.line(), "ack 0");
        }
        std::thread::sleep(Duration::from_millis(5 + rng.next() % 80));
        for (j, mut k) in kids.into_iter().enumerate() {
            k.child.kill().unwrap();
            k.child.wait().unwrap();
            drop(k.stdin.take());
            let acks = k.acks(vec!["ack 0".into()]);
            if acks.len() > 1 {
                killed_mid_write += 1;
            }
            expected.extend(acks.into_iter().map(|i| (100 + round * 2 + j as u64, i)));
        }
        // Read by the owner at once (a key it lacks makes it take the journals in).
        for &(w, i) in &expected {
            assert_eq!(c.get(b"transform", &key(w, i)).unwrap(), Some(value(w, i)), "round {round}: acknowledged w{w}/{i}");
        }
    }
    // The owner removes a journal whose process is gone when its connection ends.
    let journals = dir.join("journal");
    let deadline = std::time::Instant::now() + WAIT;
    while std::fs::read_dir(&journals).unwrap().next().is_some() {
        assert!(std::time::Instant::now() < deadline, "dead clients' journals still there: {:?}", std::fs::read_dir(&journals).unwrap().map(|e| e.unwrap().file_name()).collect::<Vec<_>>());
        std::thread::sleep(Duration::from_millis(20));
    }
    // At most one set per killed client was made but not acknowledged (killed before it
    // printed its "ack").
    let entries = c.stats().entries;
    assert!((expected.len() as u64..=expected.len() as u64 + 2 * rounds).contains(&entries), "{entries} entries for {} acknowledged sets", expected.len());
    assert_exact(c.store().unwrap());
    drop(c);
    // And after a reopen.
    let c = Cache::open(&dir, &Config::default()).unwrap();
    for &(w, i) in &expected {
        assert_eq!(c.get(b"transform", &key(w, i)).unwrap(), Some(value(w, i)), "after reopening: w{w}/{i}");
    }
    assert!(killed_mid_write * 2 >= rounds, "clients were killed after more than one write in only {killed_mid_write} cases of {}", rounds * 2);
    eprintln!("clients killed in {rounds} rounds: {} acknowledged writes checked", expected.len());
}

/// One journal record as `share/journal.rs` writes it.
fn journal_record(out: &mut Vec<u8>, seq: u64, last: bool, cat: &[u8], key: &[u8], value: &[u8]) {
    let mut body = seq.to_le_bytes().to_vec();
    body.push(last as u8);
    body.push(cat.len() as u8);
    body.extend_from_slice(&(key.len() as u32).to_le_bytes());
    body.extend_from_slice(&(value.len() as u32).to_le_bytes());
    body.extend_from_slice(cat);
    body.extend_from_slice(key);
    body.extend_from_slice(value);
    out.extend_from_slice(b"NXJ1");
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&body).to_le_bytes());
    out.extend_from_slice(&body);
}

/// Journals left by processes that are gone, some broken or hostile: the next owner applies
/// what is whole and valid, skips the rest (a torn last batch, garbage, a record the store
/// would refuse) without failing or hanging, and removes them.
#[test]
fn journals_left_behind_are_taken_in_and_bad_ones_harm_no_one() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("c");
    let c = Cache::open(&dir, &Config::default()).unwrap();
    c.set(b"parse", b"before", b"owner").unwrap();
    drop(c);
    let j = dir.join("journal");
    std::fs::create_dir_all(&j).unwrap();
    let long_key = vec![b'k'; 5000];
    // 1: two whole batches (one of two records), then a batch whose last record is torn.
    let mut a = Vec::new();
    journal_record(&mut a, 1, true, b"parse", b"a1", b"one");
    journal_record(&mut a, 2, false, b"parse", b"a2", b"two");
    journal_record(&mut a, 3, true, b"transform", b"a3", &artifact(3, 3000));
    journal_record(&mut a, 4, false, b"parse", b"a4", b"torn batch");
    let mut torn = Vec::new();
    journal_record(&mut torn, 5, true, b"parse", b"a5", b"torn record");
    a.extend_from_slice(&torn[..torn.len() - 3]);
    std::fs::write(j.join("00000000000000a1.lock"), b"").unwrap();
    std::fs::write(j.join("00000000000000a1.0"), &a).unwrap();
    // 2: records the store refuses (unknown category, a key over the limit), then a good one.
    let mut b = Vec::new();
    journal_record(&mut b, 1, true, b"nosuch", b"b1", b"x");
    journal_record(&mut b, 2, true, b"parse", &long_key, b"x");
    journal_record(&mut b, 3, true, b"parse", b"b3", b"three");
    std::fs::write(j.join("00000000000000b2.lock"), b"").unwrap();
    std::fs::write(j.join("00000000000000b2.0"), &b).unwrap();
    // 3: garbage, a lock file with no segment, and names that are not journals.
    std::fs::write(j.join("00000000000000c3.lock"), b"").unwrap();
    std::fs::write(j.join("00000000000000c3.0"), noise(7, 10_000)).unwrap();
    std::fs::write(j.join("00000000000000d4.lock"), b"").unwrap();
    std::fs::write(j.join("not-a-journal"), b"x").unwrap();
    let c = Cache::open(&dir, &Config::default()).unwrap();
    let get = |k: &[u8]| c.get(if k == b"a3" { b"transform" } else { b"parse" }, k).unwrap();
    assert_eq!(get(b"before").as_deref(), Some(&b"owner"[..]));
    assert_eq!(get(b"a1").as_deref(), Some(&b"one"[..]));
    assert_eq!(get(b"a2").as_deref(), Some(&b"two"[..]));
    assert_eq!(get(b"a3"), Some(artifact(3, 3000)));
    assert_eq!(get(b"a4"), None, "a batch whose end is torn is not applied");
    assert_eq!(get(b"a5"), None);
    assert_eq!(get(b"b3").as_deref(), Some(&b"three"[..]));
    assert_eq!(c.stats().entries, 5);
    let mut left: Vec<String> = std::fs::read_dir(&j).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    left.sort();
    assert_eq!(left, vec!["not-a-journal".to_string()], "journals whose process is gone are removed");
    assert_exact(c.store().unwrap());
    // Applied once: a journal read again from its start after an owner change (its
    // process still alive, so it is not removed) skips what the store holds already.
    drop(c);
    let mut first = Vec::new();
    journal_record(&mut first, 1, true, b"parse", b"x1", b"one");
    journal_record(&mut first, 2, true, b"parse", b"x2", b"two");
    std::fs::write(j.join("00000000000000e5.lock"), b"").unwrap();
    std::fs::write(j.join("00000000000000e5.0"), &first).unwrap();
    let mut holder = Command::new("python3")
        .args(["-c", "import fcntl,sys,time; f=open(sys.argv[1],'r+'); fcntl.lockf(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(120)"])
        .arg(j.join("00000000000000e5.lock"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    // What a client does after each journaled batch: count it in the shared counter.
    let bump = || {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().read(true).write(true).open(dir.join("nexxo.changes")).unwrap();
        let mut n = [0u8; 8];
        f.read_exact_at(&mut n, 16).unwrap();
        f.write_all_at(&(u64::from_le_bytes(n) + 1).to_le_bytes(), 16).unwrap();
    };
    bump();
    let c = Cache::open(&dir, &Config::default()).unwrap();
    assert_eq!(c.get(b"parse", b"x1").unwrap().as_deref(), Some(&b"one"[..]));
    assert!(j.join("00000000000000e5.0").exists(), "a journal whose process lives is kept");
    drop(c);
    let mut again = Vec::new();
    journal_record(&mut again, 1, true, b"parse", b"x1", b"read again: must not win");
    journal_record(&mut again, 2, true, b"parse", b"x2", b"read again: must not win");
    journal_record(&mut again, 3, true, b"parse", b"x3", b"three");
    std::fs::write(j.join("00000000000000e5.0"), &again).unwrap();
    bump();
    let c = Cache::open(&dir, &Config::default()).unwrap();
    assert_eq!(c.get(b"parse", b"x3").unwrap().as_deref(), Some(&b"three"[..]));
    assert_eq!(c.get(b"parse", b"x1").unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(c.get(b"parse", b"x2").unwrap().as_deref(), Some(&b"two"[..]));
    assert_eq!(c.stats().entries, 8);
    assert_exact(c.store().unwrap());
    drop(c);
    holder.kill().unwrap();
    holder.wait().unwrap();
    let c = Cache::open(&dir, &Config::default()).unwrap();
    assert!(!j.join("00000000000000e5.0").exists(), "removed once its process is gone");
    assert_eq!(c.stats().entries, 8);
}

/// Limits hold with many writers: the cache's size limit (stored by the owner's open,
/// taken by clients opened with default options) bounds what every process writes, with
/// one evictor, the owner's, and the counters stay exact.
#[test]
fn limits_hold_with_many_writing_processes() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("c");
    let cap: u64 = 4 << 20;
    let c = Cache::open(&dir, &Config { max_size: cap, ..Config::default() }).unwrap();
    let (writers, n) = (3u64, 20_000u64);
    let kids: Vec<Kid> = (0..writers).map(|w| spawn(&format!("filler,{},{w},{n}", dir.display()))).collect();
    for k in &kids {
        assert_eq!(k.line(), "open");
    }
    // The peak the owner's counters show while the clients write.
    let mut peak = 0;
    let mut running = kids.len();
    let mut done = vec![false; kids.len()];
    let deadline = std::time::Instant::now() + WAIT;
    while running > 0 {
        assert!(std::time::Instant::now() < deadline, "the writers did not finish in {WAIT:?}");
        peak = peak.max(c.stats().stored_bytes);
        for (j, k) in kids.iter().enumerate() {
            if !done[j] {
                match k.lines.try_recv() {
                    Ok(l) if l.is_empty() => {}
                    Ok(l) => {
                        assert_eq!(l, "done");
                        done[j] = true;
                        running -= 1;
                    }
                    Err(std::sync::mpsc::TryRecvError::Empty) => {}
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => panic!("writer {j} ended early"),
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    for k in kids {
        k.finish();
    }
    let written: u64 = (0..writers).flat_map(|w| (0..n).map(move |i| (w, i))).map(|(w, i)| (key(w, i).len() + value(w, i).len()) as u64).sum();
    let s = c.stats();
    // A writer runs an eviction step itself when the cache is 25% over (README,
    // "Eviction"); a take-in of clients' journals is one write of whatever they wrote since
    // the last (about a millisecond's worth while they write): twice the cap leaves room
    // for a loaded machine's longer gaps. Without eviction during the writes the peak is
    // 2.4x the cap here (10.1 MB: checked).
    assert!(peak <= 2 * cap, "stored bytes peaked at {peak} with a cap of {cap}");
    assert!(s.logical_bytes < written / 2, "{} of {written} logical bytes still there: nothing was evicted", s.logical_bytes);
    c.enforce_policy().unwrap();
    let s = c.stats();
    assert!(s.stored_bytes <= cap, "stored {} over the cap {cap} after enforce_policy", s.stored_bytes);
    assert!(s.evictions > 0);
    // Every writer's last entry is there (the oldest go first), value for value.
    for w in 0..writers {
        assert_eq!(c.get(b"transform", &key(w, n - 1)).unwrap(), Some(value(w, n - 1)), "writer {w}'s newest entry");
    }
    assert_exact(c.store().unwrap());
    eprintln!("{writers} processes wrote {written} logical bytes under a {cap}-byte cap: peak {peak} stored bytes, {} entries left", s.entries);
}

/// A client killed with SIGKILL leaves nothing in the system's temporary directory (its
/// RocksDB reader made a directory there until 1.10.9, which only a close removed), and a
/// reader of another process's store adds no file to the cache directory.
#[test]
fn a_killed_client_leaves_nothing_in_the_temporary_directory() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("c");
    let tmp = d.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let c = Cache::open(&dir, &Config::default()).unwrap();
    c.set(b"parse", b"k", b"v-k").unwrap();
    c.flush().unwrap();
    let names = |p: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(p).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    };
    let before = names(&dir);
    for _ in 0..3 {
        let mut kid = spawn_with(&format!("echo,{}", dir.display()), &[("TMPDIR", &tmp)]);
        assert_eq!(kid.line(), "open");
        assert_eq!(kid.ask("get k"), "v-k");
        kid.child.kill().unwrap();
        kid.child.wait().unwrap();
        assert_eq!(names(&tmp), Vec::<String>::new(), "left in the temporary directory by a killed client");
    }
    // A reader of the store (what a client reads through) opens, reads, and makes no file.
    let reader = nexxo_core::store::Store::open_follower(&dir, &Config::default(), nexxo_core::clock::system_clock()).unwrap();
    assert_eq!(reader.get(b"parse", b"k").unwrap().as_deref(), Some(&b"v-k"[..]));
    drop(reader);
    // (A killed client's journal may still be there until the owner takes it in.)
    let after: Vec<String> = names(&dir).into_iter().filter(|n| n != "journal").collect();
    assert_eq!(after, before.into_iter().filter(|n| n != "journal").collect::<Vec<_>>());
}

/// Clients that journal and close, one after another (one process per compile): each
/// removes its journal, and the owner lets go of what it read of them (at its next
/// take-in), so a long build does not pile up files or open descriptors.
#[test]
fn clients_that_close_leave_nothing_behind() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("c");
    let c = Cache::open(&dir, &Config::default()).unwrap();
    let journals = std::fs::canonicalize(&dir).unwrap().join("journal");
    let open_journal_files = || std::fs::read_dir("/proc/self/fd").unwrap().filter_map(|e| std::fs::read_link(e.unwrap().path()).ok()).filter(|p| p.starts_with(&journals)).count();
    for i in 0..20 {
        let mut kid = spawn(&format!("echo,{}", dir.display()));
        assert_eq!(kid.line(), "open");
        assert_eq!(kid.ask(&format!("set k{i} v{i}")), "ok");
        kid.finish();
        assert_eq!(c.get(b"parse", format!("k{i}").as_bytes()).unwrap().as_deref(), Some(format!("v{i}").as_bytes()));
        assert!(std::fs::read_dir(&journals).unwrap().next().is_none(), "client {i} left its journal");
        // The segment the last take-in read stays open until the next one.
        assert!(open_journal_files() <= 1, "{} journal files open after {} clients", open_journal_files(), i + 1);
    }
    assert_eq!(c.stats().entries, 20);
    assert_exact(c.store().unwrap());
}
