//! The remote tier against real servers on loopback: nginx (WebDAV PUT, the Bazel HTTP
//! layout) and redis-server. Every scenario runs against both.

mod common;
#[macro_use]
mod remote_servers;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nexxo_core::remote::{BreakerState, Mode};
use nexxo_core::{Cache, Config, Error};
use common::artifact;
use remote_servers::{sync, Kind, Server};

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("nexxo-remote-").tempdir().unwrap()
}

fn config(url: &str) -> Config {
    let mut c = Config::default();
    c.remote.add_remote(url).unwrap();
    c.remote.timeout_ms = 2000;
    c.remote.cooldown_ms = 300;
    c
}

const CATS: [&[u8]; 3] = [b"parse", b"transform", b"bundle"];

fn key(i: usize) -> Vec<u8> {
    format!("src/module-{i}.ts#{:x}", i * 7919).into_bytes()
}

/// What one cache writes, another reads; backfill makes the second read local.
fn shared_between_two_caches(kind: Kind) {
    let d = tmp();
    let server = Server::start(kind, &d.path().join("server"));
    let n = 60;
    {
        let a = Cache::open(d.path().join("a"), &config(&server.url())).unwrap();
        for i in 0..n {
            a.set(CATS[i % 3], &key(i), &artifact(i, 100 + i * 50)).unwrap();
        }
        // A batch goes up too, and an empty value is a value.
        a.batch_set(&[(b"optimize", b"x", b"batched"), (b"optimize", b"empty", b"")]).unwrap();
        sync(&a);
        let r = a.remote_stats().unwrap();
        assert_eq!(r.totals.uploads, n as u64 + 2, "{r:?}");
        assert_eq!((r.totals.upload_errors, r.upload_dropped, r.queued), (0, 0, 0));
        assert!(r.totals.bytes_up > 0);
    }
    assert_eq!(server.objects().len(), n + 2);

    let b = Cache::open(d.path().join("b"), &config(&server.url())).unwrap();
    for i in 0..n {
        assert_eq!(b.get(CATS[i % 3], &key(i)).unwrap(), Some(artifact(i, 100 + i * 50)), "entry {i}");
    }
    assert_eq!(b.get(b"optimize", b"empty").unwrap(), Some(Vec::new()));
    // The same key in another category is another entry.
    assert_eq!(b.get(b"meta", &key(0)).unwrap(), None);
    let r = b.remote_stats().unwrap();
    assert_eq!((r.totals.hits, r.totals.misses, r.backfills, r.totals.rejected), (n as u64 + 1, 1, n as u64 + 1, 0));
    assert!(r.totals.bytes_down > 0 && r.totals.gets == n as u64 + 2);
    let local_before = b.stats();
    assert_eq!(local_before.entries, n as u64 + 1);
    // Now local: the remote is not asked again.
    for i in 0..n {
        assert_eq!(b.get(CATS[i % 3], &key(i)).unwrap(), Some(artifact(i, 100 + i * 50)));
    }
    assert_eq!(b.remote_stats().unwrap().totals.gets, n as u64 + 2);
    assert_eq!(b.stats().hits, local_before.hits + n as u64);
    // Backfills were not uploaded back.
    sync(&b);
    assert_eq!(b.remote_stats().unwrap().totals.uploads, 0);
    nexxo_cache_json_has_remote(&b);
}
on_both!(shared_between_two_caches);

fn nexxo_cache_json_has_remote(c: &Cache) {
    let j = c.stats_json("");
    assert!(j.contains("\"remote\":{\"mode\":\"read-write\",\"hits\":"), "{j}");
    assert!(j.contains("\"breaker\":\"closed\""), "{j}");
}

/// batch_get and get_into consult the remote for local misses too.
fn batch_get_and_get_into(kind: Kind) {
    let d = tmp();
    let server = Server::start(kind, &d.path().join("server"));
    let a = Cache::open(d.path().join("a"), &config(&server.url())).unwrap();
    a.set(b"parse", b"k1", &artifact(1, 3000)).unwrap();
    a.set(b"parse", b"k2", &artifact(2, 10)).unwrap();
    sync(&a);
    let b = Cache::open(d.path().join("b"), &config(&server.url())).unwrap();
    let got = b.batch_get(&[(b"parse", b"k1"), (b"parse", b"none"), (b"nope", b"k"), (b"parse", b"k2")]);
    assert_eq!(got[0], Ok(Some(artifact(1, 3000))));
    assert_eq!(got[1], Ok(None));
    assert!(matches!(got[2], Err(Error::UnknownCategory(_))));
    assert_eq!(got[3], Ok(Some(artifact(2, 10))));

    let c = Cache::open(d.path().join("c"), &config(&server.url())).unwrap();
    let mut small = [0u8; 100];
    assert_eq!(c.get_into(b"parse", b"k1", &mut small), Err(Error::BufferTooSmall(3000)));
    // Backfilled by the first call: the retry is a local hit.
    let mut big = vec![0u8; 4000];
    assert_eq!(c.get_into(b"parse", b"k1", &mut big), Ok(Some(3000)));
    assert_eq!(&big[..3000], &artifact(1, 3000)[..]);
    assert_eq!(c.remote_stats().unwrap().totals.gets, 1);

    // The packed batch read (bindings' batchGet) fetches local misses too, laid out in order.
    let e = Cache::open(d.path().join("e"), &config(&server.url())).unwrap();
    let keys: [(&[u8], &[u8]); 3] = [(b"parse", b"k2"), (b"parse", b"none"), (b"parse", b"k1")];
    let mut out = vec![0u8; 8 * 3 + 3010];
    let nexxo_core::store::PackedRead::Written(outcomes, len) = e.batch_get_into(&keys, &mut out, 8) else { panic!("the answer fits") };
    assert_eq!(outcomes, vec![Ok(Some(10)), Ok(None), Ok(Some(3000))]);
    assert_eq!(len, out.len());
    assert_eq!(&out[8..18], &artifact(2, 10)[..]);
    assert_eq!(&out[34..], &artifact(1, 3000)[..]);
}
on_both!(batch_get_and_get_into);

/// Read-only mode reads and never writes; "off" does neither; local-only categories stay local.
fn modes_and_local_only(kind: Kind) {
    let d = tmp();
    let server = Server::start(kind, &d.path().join("server"));
    {
        let mut cfg = config(&server.url());
        cfg.set_remote_local_only(b"meta", true).unwrap();
        let a = Cache::open(d.path().join("a"), &cfg).unwrap();
        a.set(b"parse", b"shared", b"from CI").unwrap();
        a.set(b"meta", b"local", b"machine-specific").unwrap();
        sync(&a);
    }
    assert_eq!(server.objects().len(), 1, "meta stayed local");

    let mut ro = config(&server.url());
    ro.remote.mode = Mode::ReadOnly;
    let dev = Cache::open(d.path().join("dev"), &ro).unwrap();
    assert_eq!(dev.get(b"parse", b"shared").unwrap().as_deref(), Some(&b"from CI"[..]));
    assert_eq!(dev.get(b"meta", b"local").unwrap(), None);
    for i in 0..20 {
        dev.set(b"parse", &key(i), b"developer's own").unwrap();
    }
    assert!(dev.remote_sync(Duration::from_secs(1)));
    drop(dev);
    assert_eq!(server.objects().len(), 1, "read-only mode wrote nothing");

    let mut off = config(&server.url());
    off.remote.mode = Mode::Off;
    let o = Cache::open(d.path().join("off"), &off).unwrap();
    assert_eq!(o.get(b"parse", b"shared").unwrap(), None);
    assert!(o.remote_stats().is_none());
}
on_both!(modes_and_local_only);

/// A killed server degrades to local-only; once it is back, the cache uses it again.
fn server_killed_mid_run(kind: Kind) {
    let d = tmp();
    let mut server = Server::start(kind, &d.path().join("server"));
    let c = Cache::open(d.path().join("c"), &config(&server.url())).unwrap();
    c.set(b"parse", b"before", b"uploaded").unwrap();
    sync(&c);
    server.kill();

    // Everything local keeps working; remote trouble is counted, never returned.
    for i in 0..50 {
        c.set(b"transform", &key(i), &artifact(i, 500)).unwrap();
        assert_eq!(c.get(b"transform", &key(i)).unwrap(), Some(artifact(i, 500)));
        assert_eq!(c.get(b"bundle", &key(i)).unwrap(), None);
    }
    sync(&c);
    let r = c.remote_stats().unwrap();
    assert!(r.totals.errors >= 1, "{r:?}");
    assert!(r.totals.skipped >= 40, "the breaker kept most requests from going out: {r:?}");
    assert!(r.endpoints[0].trips >= 1);
    assert!(!r.endpoints[0].last_error.is_empty());

    server.restart();
    std::thread::sleep(Duration::from_millis(400)); // past the 300 ms cooldown
    // The next request probes the server and closes the breaker.
    assert_eq!(c.get(b"bundle", b"absent").unwrap(), None);
    assert_eq!(c.remote_stats().unwrap().endpoints[0].state, BreakerState::Closed);
    c.set(b"parse", b"after", b"uploaded again").unwrap();
    sync(&c);
    let other = Cache::open(d.path().join("other"), &config(&server.url())).unwrap();
    assert_eq!(other.get(b"parse", b"after").unwrap().as_deref(), Some(&b"uploaded again"[..]));
}
on_both!(server_killed_mid_run);

/// A tampered value is a miss, never served, and never written locally.
fn tampered_values_are_rejected(kind: Kind) {
    let d = tmp();
    let server = Server::start(kind, &d.path().join("server"));
    let secret = b"team secret, 16 bytes or more".to_vec();
    let signed = |c: &mut Config| c.remote.set_hmac_key(&secret).unwrap();
    {
        let mut cfg = config(&server.url());
        signed(&mut cfg);
        let a = Cache::open(d.path().join("a"), &cfg).unwrap();
        a.set(b"bundle", b"app.js", &artifact(7, 4000)).unwrap();
        a.set(b"bundle", b"vendor.js", &artifact(8, 4000)).unwrap();
        sync(&a);
    }
    let objects = server.objects();
    assert_eq!(objects.len(), 2);
    // Flip one byte of one value on the server.
    let victim = &objects[0];
    let mut data = server.read_object(victim);
    let mid = data.len() / 2;
    data[mid] ^= 0x20;
    server.overwrite(victim, &data);

    let mut cfg = config(&server.url());
    signed(&mut cfg);
    let b = Cache::open(d.path().join("b"), &cfg).unwrap();
    let got: Vec<_> = [&b"app.js"[..], b"vendor.js"].iter().map(|k| b.get(b"bundle", k).unwrap()).collect();
    assert_eq!(got.iter().filter(|v| v.is_none()).count(), 1, "the tampered value is a miss");
    assert!(got.contains(&Some(artifact(7, 4000))) || got.contains(&Some(artifact(8, 4000))));
    let r = b.remote_stats().unwrap();
    assert_eq!((r.totals.rejected, r.totals.hits, r.backfills), (1, 1, 1));
    assert_eq!(b.stats().entries, 1, "nothing rejected was stored");

    // A cache with another key, or none, cannot plant values the signed cache accepts.
    for other_key in [Some(&b"a different key, long enough"[..]), None] {
        let mut cfg = config(&server.url());
        if let Some(k) = other_key {
            cfg.remote.set_hmac_key(k).unwrap();
        }
        let forger = Cache::open(d.path().join("forger"), &cfg).unwrap();
        forger.set(b"bundle", b"planted.js", b"malicious").unwrap();
        sync(&forger);
        drop(forger);
        std::fs::remove_dir_all(d.path().join("forger")).unwrap();
        assert_eq!(b.get(b"bundle", b"planted.js").unwrap(), None);
    }
    assert_eq!(b.remote_stats().unwrap().totals.rejected, 3);

    // Without a key the checksum still catches the flipped byte.
    let c = Cache::open(d.path().join("c"), &config(&server.url())).unwrap();
    let got: Vec<_> = [&b"app.js"[..], b"vendor.js"].iter().map(|k| c.get(b"bundle", k).unwrap()).collect();
    assert_eq!(got.iter().filter(|v| v.is_none()).count(), 1);
    assert_eq!(c.remote_stats().unwrap().totals.rejected, 1);
}
on_both!(tampered_values_are_rejected);

/// Caches with different names share a server without seeing each other's entries.
fn names_are_namespaces(kind: Kind) {
    let d = tmp();
    let server = Server::start(kind, &d.path().join("server"));
    let named = |n: &str| {
        let mut c = config(&server.url());
        c.remote.set_name(n.as_bytes()).unwrap();
        c
    };
    let a = Cache::open(d.path().join("a"), &named("app-a")).unwrap();
    a.set(b"parse", b"same-key", b"a's").unwrap();
    sync(&a);
    let b = Cache::open(d.path().join("b"), &named("app-b")).unwrap();
    assert_eq!(b.get(b"parse", b"same-key").unwrap(), None);
    let a2 = Cache::open(d.path().join("a2"), &named("app-a")).unwrap();
    assert_eq!(a2.get(b"parse", b"same-key").unwrap().as_deref(), Some(&b"a's"[..]));
    if kind == Kind::Redis {
        let keys = server.objects();
        assert_eq!(keys.len(), 1);
        assert!(keys[0].starts_with("nexxo:app-a:parse:"), "{keys:?}");
        let ttl = server.ttl(&keys[0]);
        assert!(ttl > 6 * 24 * 3600 && ttl <= 7 * 24 * 3600, "default TTL is 7 days: {ttl}");
    }
}
on_both!(names_are_namespaces);

#[test]
fn redis_with_password_and_database() {
    let d = tmp();
    let server = Server::start_with(Kind::Redis, &d.path().join("server"), Some("s3cret:pw"));
    let url = server.url().replace("s3cret:pw", "s3cret%3Apw");
    let mut cfg = config(&url);
    cfg.remote.ttl_secs = 60;
    let a = Cache::open(d.path().join("a"), &cfg).unwrap();
    a.set(b"parse", b"k", b"v").unwrap();
    sync(&a);
    assert_eq!(a.remote_stats().unwrap().totals.uploads, 1, "{:?}", a.remote_stats());
    let keys = server.objects();
    assert_eq!(keys.len(), 1);
    assert!((1..=60).contains(&server.ttl(&keys[0])));
    let b = Cache::open(d.path().join("b"), &config(&url)).unwrap();
    assert_eq!(b.get(b"parse", b"k").unwrap().as_deref(), Some(&b"v"[..]));
    // The wrong password is an error counted, and a miss; the password is never shown.
    let wrong = server.url().replace("s3cret:pw", "wrong");
    let c = Cache::open(d.path().join("c"), &config(&wrong)).unwrap();
    assert_eq!(c.get(b"parse", b"k").unwrap(), None);
    let r = c.remote_stats().unwrap();
    assert_eq!(r.totals.errors, 1);
    assert!(!c.stats_json("").contains("wrong") && !c.stats_json("").contains("s3cret"), "{}", c.stats_json(""));
}

/// A server that accepts connections and never answers: the first request costs the
/// timeout, then the breaker keeps every other request from going out.
#[test]
fn a_silent_server_costs_one_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let n = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            n.fetch_add(1, Ordering::SeqCst);
            held.push(s); // never answered, never closed
        }
    });
    let d = tmp();
    let mut cfg = config(&format!("http://127.0.0.1:{port}"));
    cfg.remote.timeout_ms = 300;
    cfg.remote.cooldown_ms = 60_000;
    let c = Cache::open(d.path().join("c"), &cfg).unwrap();
    for i in 0..30 {
        assert_eq!(c.get(b"parse", &key(i)).unwrap(), None);
        c.set(b"parse", &key(i), b"local").unwrap();
    }
    sync(&c);
    let r = c.remote_stats().unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection, one timeout: {r:?}");
    assert_eq!(r.totals.errors, 1);
    assert_eq!(r.totals.skipped, 59, "29 gets and 30 uploads skipped");
    assert_eq!(r.endpoints[0].state, BreakerState::Open);
    assert!(r.endpoints[0].last_error.contains("timed out"), "{}", r.endpoints[0].last_error);
    assert_eq!(c.stats().entries, 30);
}

/// Garbage from a server is rejected, not served: a 200 with foreign bytes, a broken
/// status line, a lying Content-Length.
#[test]
fn garbage_responses_are_misses() {
    let replies: Vec<&'static [u8]> = vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"SSH-2.0-OpenSSH_9.2\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 999999\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
    ];
    // Interim responses without end: refused after a few, no recursion, no hang.
    let endless_interim: &'static [u8] = "HTTP/1.1 100 Continue\r\n\r\n".repeat(5000).leak().as_bytes();
    for reply in replies.into_iter().chain([endless_interim]) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let mut s = s.unwrap();
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(reply);
            }
        });
        let d = tmp();
        let mut cfg = config(&format!("http://127.0.0.1:{port}"));
        cfg.remote.retries = 1;
        let c = Cache::open(d.path().join("c"), &cfg).unwrap();
        assert_eq!(c.get(b"parse", b"k").unwrap(), None, "{}", String::from_utf8_lossy(reply));
        let r = c.remote_stats().unwrap();
        assert_eq!(r.totals.hits, 0);
        assert_eq!(r.totals.rejected + r.totals.errors, 1, "{r:?}");
        assert_eq!(c.stats().entries, 0);
    }
}

/// A full upload queue drops uploads (counted); the writes themselves succeed.
#[test]
fn a_full_queue_drops_uploads_not_writes() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let d = tmp();
    let mut cfg = config(&format!("http://127.0.0.1:{port}"));
    cfg.remote.timeout_ms = 500;
    cfg.remote.queue_bytes = 10_000;
    cfg.remote.close_wait_ms = 100;
    let c = Cache::open(d.path().join("c"), &cfg).unwrap();
    for i in 0..100 {
        c.set(b"bundle", &key(i), &artifact(i, 1000)).unwrap();
    }
    let r = c.remote_stats().unwrap();
    assert!(r.upload_dropped >= 80, "{r:?}");
    assert!(r.queued_bytes <= 10_000);
    assert_eq!(c.stats().entries, 100);
}

/// A read-only local handle reads through to the remote without writing locally.
#[test]
fn read_only_local_handle_does_not_backfill() {
    let d = tmp();
    let server = Server::start(Kind::Redis, &d.path().join("server"));
    let a = Cache::open(d.path().join("a"), &config(&server.url())).unwrap();
    a.set(b"parse", b"k", b"v").unwrap();
    sync(&a);
    drop(a);
    Cache::open(d.path().join("b"), &Config::default()).unwrap();
    let mut cfg = config(&server.url());
    cfg.read_only = true;
    let b = Cache::open(d.path().join("b"), &cfg).unwrap();
    assert_eq!(b.get(b"parse", b"k").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(b.remote_stats().unwrap().backfills, 0);
    assert_eq!(b.stats().entries, 0);
}

/// A remote value never replaces one written locally meanwhile.
#[test]
fn backfill_never_overwrites_a_local_value() {
    let d = tmp();
    let server = Server::start(Kind::Nginx, &d.path().join("server"));
    let a = Cache::open(d.path().join("a"), &config(&server.url())).unwrap();
    a.set(b"parse", b"k", b"remote").unwrap();
    sync(&a);
    let b = Cache::open(d.path().join("b"), &config(&server.url())).unwrap();
    let store = b.store().unwrap();
    assert!(store.fill(b"parse", b"k", b"local").unwrap());
    assert!(!store.fill(b"parse", b"k", b"remote").unwrap());
    assert_eq!(b.get(b"parse", b"k").unwrap().as_deref(), Some(&b"local"[..]));
    // Written through the store, not the handle: the store's count says how many.
    assert_eq!(store.stats().writes, 1);
}

#[test]
fn bad_remote_options() {
    let mut c = Config::default();
    for bad in ["httpx://x", "redis://x/abc", "ftp://x", "http://x:70000"] {
        assert!(matches!(c.remote.add_remote(bad), Err(Error::InvalidArgument(_))), "{bad}");
    }
    for i in 0..8 {
        c.remote.add_remote(&format!("http://h{i}")).unwrap();
    }
    c.remote.add_remote("http://h0").unwrap(); // a duplicate is a no-op
    assert!(c.remote.add_remote("http://h8").is_err());
    assert!(c.remote.set_hmac_key(b"short").is_err());
    assert!(c.remote.set_name(b"has space").is_err());
    assert!(c.remote.set_timeout_ms(0).is_err());
    assert!(c.remote.set_retries(11).is_err());
    assert_eq!(c.set_remote_local_only(b"nope", true), Err(Error::UnknownCategory("nope".into())));
    assert!(!format!("{c:?}").contains("s3cret"));
    c.remote.set_hmac_key(b"s3cret-s3cret-s3cret").unwrap();
    assert!(!format!("{c:?}").contains("s3cret"), "Debug never prints the key");
}

/// Hostile servers: hundreds of random and mutated answers, over HTTP and RESP. Each get
/// returns (a miss, or the value when the mutation left a valid answer) and never a wrong
/// value, never a panic, never past its timeout.
#[test]
fn random_answers_never_crash_hang_or_lie() {
    use std::sync::Mutex;
    let mut rng = common::Rng(0xDEC0_DE00_1234_5678);
    // A valid stored value for parse/k, as a real server would hold it.
    let d = tmp();
    let real = Server::start(Kind::Redis, &d.path().join("server"));
    let writer = Cache::open(d.path().join("w"), &config(&real.url())).unwrap();
    writer.set(b"parse", b"k", &artifact(3, 600)).unwrap();
    sync(&writer);
    let stored = real.read_object(&real.objects()[0]);
    drop(writer);
    let valid_http = [format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", stored.len()).into_bytes(), stored.clone()].concat();
    let valid_resp = [format!("${}\r\n", stored.len()).into_bytes(), stored.clone(), b"\r\n".to_vec()].concat();

    for (scheme, valid) in [("http", valid_http), ("redis", valid_resp)] {
        let answers: Arc<Mutex<Vec<Vec<u8>>>> = Arc::new(Mutex::new(Vec::new()));
        for round in 0..150 {
            let mut a = valid.clone();
            match round % 3 {
                0 => a = (0..(rng.next() % 300) as usize).map(|_| rng.next() as u8).collect(),
                1 => {
                    for _ in 0..(1 + rng.next() % 4) {
                        let at = (rng.next() as usize) % a.len();
                        a[at] ^= (rng.next() as u8) | 1;
                    }
                }
                _ => a.truncate((rng.next() as usize) % a.len()),
            }
            answers.lock().unwrap().push(a);
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let queue = answers.clone();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { continue };
                let answer = queue.lock().unwrap().pop();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 8192];
                    let _ = s.read(&mut buf);
                    if let Some(a) = answer {
                        let _ = s.write_all(&a);
                    }
                    // Then close: a truncated answer ends at EOF, not at the timeout.
                });
            }
        });
        let n = answers.lock().unwrap().len();
        for i in 0..n {
            let dir = d.path().join(format!("{scheme}-{i}"));
            let mut cfg = config(&format!("{scheme}://127.0.0.1:{port}"));
            cfg.remote.timeout_ms = 1000;
            cfg.remote.retries = 0;
            cfg.remote.cooldown_ms = 0;
            let c = Cache::open(&dir, &cfg).unwrap();
            match c.get(b"parse", b"k").unwrap() {
                None => {}
                Some(v) => assert_eq!(v, artifact(3, 600), "{scheme} answer {i} served other bytes"),
            }
        }
    }
}

/// With the existence check, an entry the server has is not sent again; without it,
/// every write is uploaded (last write wins).
fn check_exists_skips_what_the_server_has(kind: Kind) {
    let d = tmp();
    let server = Server::start(kind, &d.path().join("server"));
    let n = 30;
    let with_check = |check: bool| {
        let mut c = config(&server.url());
        c.remote.check_exists = check;
        c
    };
    let a = Cache::open(d.path().join("a"), &with_check(true)).unwrap();
    for i in 0..n {
        a.set(b"transform", &key(i), &artifact(i, 1500)).unwrap();
    }
    sync(&a);
    let r = a.remote_stats().unwrap();
    assert_eq!((r.totals.uploads, r.totals.already_there), (n as u64, 0), "{r:?}");
    // A second CI job builds the same artifacts: nothing is sent again.
    let b = Cache::open(d.path().join("b"), &with_check(true)).unwrap();
    for i in 0..n {
        b.set(b"transform", &key(i), &artifact(i, 1500)).unwrap();
    }
    b.set(b"transform", b"new", b"only this one").unwrap();
    sync(&b);
    let r = b.remote_stats().unwrap();
    assert_eq!((r.totals.uploads, r.totals.already_there, r.totals.upload_errors), (1, n as u64, 0), "{r:?}");
    assert!(b.stats_json("").contains("\"already_there\":30"));
    // Without the check, everything goes up again.
    let c = Cache::open(d.path().join("c"), &with_check(false)).unwrap();
    for i in 0..n {
        c.set(b"transform", &key(i), &artifact(i, 1500)).unwrap();
    }
    sync(&c);
    let r = c.remote_stats().unwrap();
    assert_eq!((r.totals.uploads, r.totals.already_there), (n as u64, 0), "{r:?}");
}
on_both!(check_exists_skips_what_the_server_has);
