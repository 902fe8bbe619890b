//! The remote tier's benchmark, for bench/run.py: a cold local cache warmed from a remote
//! against one rebuilt from nothing, and the cost of a remote hit. Prints one JSON line.
//!
//!   remote_bench <url> <count> <value_len> <dir>
//!
//! Phases, each timed on its own:
//!   set        cache A (remote read-write) stores `count` artifacts: the local cost of a
//!              set with uploads queued behind it
//!   upload     A's queue drains to the server (remote_sync)
//!   warm       cache B, empty, remote attached: a get of every artifact in an order
//!              unrelated to key order; each is a remote hit, verified and backfilled
//!   local      B again: every get is now local
//!   warm-batch cache E, empty, remote attached: batch_get of 1000 keys at a time (its
//!              remote misses are fetched by up to 8 threads at once)
//!   rebuild    cache C, empty, no remote: a miss and a set per artifact, the cache's own
//!              part of rebuilding (the build tool's work comes on top)
//!   baseline   cache D, no remote: the set loop of phase `set`, for comparison
//!   reupload   cache F, empty, remote attached with the existence check: the same
//!              artifacts set again and synced (a second CI job): HEAD/EXISTS, no PUT

use std::time::{Duration, Instant};

use nexxo_core::{Cache, Config};

mod common;
use common::{key, order, value};

fn ops(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, count, len, dir] = &args[..] else {
        eprintln!("usage: remote_bench <url> <count> <value_len> <dir>");
        std::process::exit(2);
    };
    let (n, len): (usize, usize) = (count.parse().unwrap(), len.parse().unwrap());
    let values: Vec<Vec<u8>> = (0..n).map(|i| value(i, len)).collect();
    let keys: Vec<Vec<u8>> = (0..n).map(key).collect();
    let name = format!("bench-{}-{}", std::process::id(), Instant::now().elapsed().as_nanos() ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    let with_remote = || {
        let mut c = Config::default();
        c.remote.add_remote(url).unwrap();
        c.remote.set_name(name.as_bytes()).unwrap();
        c.remote.set_hmac_key(b"benchmark key, 32 bytes long....").unwrap();
        c.remote.queue_bytes = 1 << 30;
        c
    };

    let a = Cache::open(format!("{dir}/a"), &with_remote()).unwrap();
    let t = Instant::now();
    for i in 0..n {
        a.set(b"transform", &keys[i], &values[i]).unwrap();
    }
    let set = t.elapsed();
    let t = Instant::now();
    assert!(a.remote_sync(Duration::from_secs(600)));
    let upload = set + t.elapsed();
    let up = a.remote_stats().unwrap();
    assert_eq!(up.totals.uploads, n as u64, "{up:?}");
    drop(a);

    let b = Cache::open(format!("{dir}/b"), &with_remote()).unwrap();
    let ord = order(n);
    let t = Instant::now();
    for &i in &ord {
        assert_eq!(b.get(b"transform", &keys[i]).unwrap().as_deref(), Some(&values[i][..]));
    }
    let warm = t.elapsed();
    let r = b.remote_stats().unwrap();
    assert_eq!((r.totals.hits, r.backfills), (n as u64, n as u64));
    let t = Instant::now();
    for &i in &ord {
        assert!(b.get(b"transform", &keys[i]).unwrap().is_some());
    }
    let local = t.elapsed();
    assert_eq!(b.remote_stats().unwrap().totals.gets, n as u64);
    drop(b);

    let e = Cache::open(format!("{dir}/e"), &with_remote()).unwrap();
    let t = Instant::now();
    for chunk in ord.chunks(1000) {
        let ks: Vec<(&[u8], &[u8])> = chunk.iter().map(|&i| (&b"transform"[..], &keys[i][..])).collect();
        for (r, &i) in e.batch_get(&ks).into_iter().zip(chunk) {
            assert_eq!(r.unwrap().as_deref(), Some(&values[i][..]));
        }
    }
    let warm_batch = t.elapsed();
    assert_eq!(e.remote_stats().unwrap().backfills, n as u64);
    drop(e);

    let c = Cache::open(format!("{dir}/c"), &Config::default()).unwrap();
    let t = Instant::now();
    for &i in &ord {
        assert!(c.get(b"transform", &keys[i]).unwrap().is_none());
        c.set(b"transform", &keys[i], &values[i]).unwrap();
    }
    let rebuild = t.elapsed();
    drop(c);

    let d = Cache::open(format!("{dir}/d"), &Config::default()).unwrap();
    let t = Instant::now();
    for i in 0..n {
        d.set(b"transform", &keys[i], &values[i]).unwrap();
    }
    let baseline = t.elapsed();
    drop(d);

    let mut checked = with_remote();
    checked.remote.check_exists = true;
    let f = Cache::open(format!("{dir}/f"), &checked).unwrap();
    let t = Instant::now();
    for i in 0..n {
        f.set(b"transform", &keys[i], &values[i]).unwrap();
    }
    assert!(f.remote_sync(Duration::from_secs(600)));
    let reupload = t.elapsed();
    let fr = f.remote_stats().unwrap();
    assert_eq!((fr.totals.uploads, fr.totals.already_there), (0, n as u64), "{fr:?}");

    println!(
        "{{\"count\":{n},\"value_len\":{len},\"set_ops_per_s\":{:.0},\"baseline_set_ops_per_s\":{:.0},\"upload_ops_per_s\":{:.0},\
         \"warm_ops_per_s\":{:.0},\"warm_batch_ops_per_s\":{:.0},\"local_after_ops_per_s\":{:.0},\"rebuild_store_ops_per_s\":{:.0},\"remote_get_mean_us\":{:.1},\
         \"remote_get_max_us\":{},\"bytes_up\":{},\"bytes_down\":{},\"reupload_checked_ops_per_s\":{:.0},\"reupload_bytes_up\":{}}}",
        ops(n, set),
        ops(n, baseline),
        ops(n, upload),
        ops(n, warm),
        ops(n, warm_batch),
        ops(n, local),
        ops(n, rebuild),
        r.totals.mean_get_micros(),
        r.totals.get_micros_max,
        up.totals.bytes_up,
        r.totals.bytes_down,
        ops(n, reupload),
        fr.totals.bytes_up
    );
}
