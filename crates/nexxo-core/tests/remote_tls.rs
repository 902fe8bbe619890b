//! The remote tier over TLS (`https://`, `rediss://`) and with tokens, against real
//! servers on loopback: nginx with its ssl module and redis-server's TLS port, with
//! certificates openssl makes at test time.

mod common;
#[macro_use]
mod remote_servers;

use std::time::{Duration, Instant};

use nexxo_core::remote::BreakerState;
use nexxo_core::{Cache, Config};
use common::artifact;
use remote_servers::{sync, Kind, Pki, Server};

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("nexxo-tls-").tempdir().unwrap()
}

const KEY: &[u8] = b"a shared key of the team, 32 bytes";

fn config(url: &str, pki: Option<&Pki>) -> Config {
    let mut c = Config::default();
    c.ignore_environment = true;
    c.remote.add_remote(url).unwrap();
    c.remote.timeout_ms = 2000;
    c.remote.cooldown_ms = 60_000;
    c.remote.set_hmac_key(KEY).unwrap();
    if let Some(p) = pki {
        c.remote.set_ca_file(&p.ca()).unwrap();
    }
    c
}

fn key(i: usize) -> Vec<u8> {
    format!("src/tls-{i}.ts").into_bytes()
}

/// What one cache uploads over TLS, a second cache directory reads and backfills; a
/// reader with another HMAC key serves none of it.
fn round_trip(kind: Kind) {
    let d = tmp();
    let pki = Pki::new(&d.path().join("pki"));
    let server = Server::start_tls(kind, &d.path().join("server"), pki.cert("good"), None);
    let url = server.url();
    assert!(url.starts_with("https://localhost:") || url.starts_with("rediss://localhost:"), "{url}");
    let n = 40;
    {
        let a = Cache::open(d.path().join("a"), &config(&url, Some(&pki))).unwrap();
        for i in 0..n {
            a.set(b"transform", &key(i), &artifact(i, 2000)).unwrap();
        }
        sync(&a);
        let r = a.remote_stats().unwrap();
        assert_eq!((r.totals.uploads, r.totals.upload_errors), (n as u64, 0), "{r:?}");
    }
    let b = Cache::open(d.path().join("b"), &config(&url, Some(&pki))).unwrap();
    for i in 0..n {
        assert_eq!(b.get(b"transform", &key(i)).unwrap(), Some(artifact(i, 2000)), "entry {i}");
    }
    let r = b.remote_stats().unwrap();
    assert_eq!((r.totals.hits, r.totals.errors, r.backfills), (n as u64, 0, n as u64), "{r:?}");

    let mut other = config(&url, Some(&pki));
    other.remote.set_hmac_key(b"another team's key, 32 bytes long").unwrap();
    let c = Cache::open(d.path().join("c"), &other).unwrap();
    for i in 0..n {
        assert_eq!(c.get(b"transform", &key(i)).unwrap(), None);
    }
    assert_eq!(c.remote_stats().unwrap().totals.rejected, n as u64);
}
on_both!(round_trip);

/// A certificate that does not verify (unknown CA, expired, another host's, or a CA the
/// cache was not given): every get misses at once, the failure is counted and named,
/// the breaker opens, and the local cache goes on.
fn bad_certificates_are_refused(kind: Kind) {
    let d = tmp();
    let pki = Pki::new(&d.path().join("pki"));
    for (cert, trust_ca, expect) in [
        ("rogue", true, "UnknownIssuer"),
        ("expired", true, "certificate expired"),
        ("other-host", true, "not valid for name"),
        ("good", false, "UnknownIssuer"),
    ] {
        let server = Server::start_tls(kind, &d.path().join(format!("server-{cert}-{trust_ca}")), pki.cert(cert), None);
        let c = Cache::open(d.path().join(format!("cache-{cert}-{trust_ca}")), &config(&server.url(), trust_ca.then_some(&pki))).unwrap();
        let t = Instant::now();
        for i in 0..20 {
            assert_eq!(c.get(b"parse", &key(i)).unwrap(), None);
        }
        assert!(t.elapsed() < Duration::from_secs(5), "{cert}: {:?}", t.elapsed());
        let r = c.remote_stats().unwrap();
        let e = &r.endpoints[0];
        assert_eq!(e.counts.errors, 1, "{cert}: one failure, then the breaker skips: {r:?}");
        assert_eq!(e.counts.skipped, 19, "{cert}: {r:?}");
        assert_eq!(e.state, BreakerState::Open, "{cert}");
        assert!(e.last_error.contains("TLS") && e.last_error.contains(expect), "{cert}: {}", e.last_error);
        // The local cache works.
        c.set(b"parse", b"local", b"value").unwrap();
        assert_eq!(c.get(b"parse", b"local").unwrap().as_deref(), Some(&b"value"[..]));
    }
}
on_both!(bad_certificates_are_refused);

/// A bearer token: the right one reads and writes; a wrong one gets 401s, counted as
/// errors, and nothing is cached from them. A custom `Authorization` header replaces it.
#[test]
fn bearer_tokens_and_headers() {
    let d = tmp();
    let pki = Pki::new(&d.path().join("pki"));
    let server = Server::start_tls(Kind::Nginx, &d.path().join("server"), pki.cert("good"), Some("Bearer s3cret-token"));
    let url = server.url();
    let with_token = |t: &[u8]| {
        let mut c = config(&url, Some(&pki));
        c.remote.set_token(t).unwrap();
        c
    };
    {
        let a = Cache::open(d.path().join("a"), &with_token(b"s3cret-token")).unwrap();
        a.set(b"bundle", b"k", b"from a").unwrap();
        sync(&a);
        assert_eq!(a.remote_stats().unwrap().totals.uploads, 1);
    }
    let wrong = Cache::open(d.path().join("wrong"), &with_token(b"not-the-token")).unwrap();
    assert_eq!(wrong.get(b"bundle", b"k").unwrap(), None);
    let r = wrong.remote_stats().unwrap();
    assert_eq!((r.totals.errors, r.totals.hits, r.backfills), (1, 0, 0), "{r:?}");
    assert!(r.endpoints[0].last_error.contains("401"), "{}", r.endpoints[0].last_error);
    assert!(!r.endpoints[0].last_error.contains("not-the-token") && !format!("{r:?}").contains("not-the-token"));
    assert!(!wrong.stats_json("").contains("not-the-token"));
    wrong.set(b"bundle", b"w", b"from wrong").unwrap();
    sync(&wrong);
    assert_eq!(wrong.remote_stats().unwrap().totals.upload_errors, 1);
    drop(wrong);

    let mut header = config(&url, Some(&pki));
    header.remote.set_token(b"ignored-token").unwrap();
    header.remote.add_header("Authorization", b"Bearer s3cret-token").unwrap();
    header.remote.add_header("X-Team", b"build infra").unwrap();
    let h = Cache::open(d.path().join("h"), &header).unwrap();
    assert_eq!(h.get(b"bundle", b"k").unwrap().as_deref(), Some(&b"from a"[..]));
    assert_eq!(h.get(b"bundle", b"w").unwrap(), None, "the wrong token's upload never landed");
}

#[test]
fn bad_tls_options_are_refused_at_once() {
    let d = tmp();
    let mut c = Config::default();
    assert!(c.remote.set_ca_file(&d.path().join("missing.pem")).is_err());
    std::fs::write(d.path().join("junk.pem"), "not a certificate").unwrap();
    let e = c.remote.set_ca_file(&d.path().join("junk.pem")).unwrap_err();
    assert!(e.to_string().contains("no PEM certificate"), "{e}");
    for bad in [&b"has space"[..], b"new\nline", &[b'x'; 9000][..]] {
        assert!(c.remote.set_token(bad).is_err());
    }
    assert!(c.remote.add_header("Host", b"x").is_err());
    assert!(c.remote.add_header("X Bad", b"x").is_err());
    assert!(c.remote.add_header("X-Ok", b"line\r\nInjected: 1").is_err());
    assert!(c.remote.add_header("X-Ok", b"fine").is_ok());
}

/// A forward proxy on loopback: `CONNECT` tunnels and absolute-form requests, each
/// counted; with `auth`, anything without that `Proxy-Authorization` gets a 407.
struct TestProxy {
    port: u16,
    connects: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    forwards: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl TestProxy {
    fn start(auth: Option<&str>) -> TestProxy {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (connects, forwards) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (c, f, auth) = (connects.clone(), forwards.clone(), auth.map(str::to_owned));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (c, f, auth) = (c.clone(), f.clone(), auth.clone());
                std::thread::spawn(move || {
                    let _ = Self::serve(client, &c, &f, auth.as_deref());
                });
            }
        });
        let _ = Ordering::Relaxed;
        TestProxy { port, connects, forwards }
    }

    fn serve(mut client: std::net::TcpStream, connects: &std::sync::atomic::AtomicUsize, forwards: &std::sync::atomic::AtomicUsize, auth: Option<&str>) -> std::io::Result<()> {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if client.read(&mut b)? == 0 || head.len() > 65536 {
                return Ok(());
            }
            head.push(b[0]);
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut first = text.lines().next().unwrap_or("").split(' ');
        let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or("").to_owned());
        if let Some(want) = auth {
            let ok = text.lines().any(|l| l.split_once(':').is_some_and(|(n, v)| n.eq_ignore_ascii_case("proxy-authorization") && v.trim() == want));
            if !ok {
                return client.write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n");
            }
        }
        let mut upstream = if method == "CONNECT" {
            connects.fetch_add(1, Ordering::SeqCst);
            let s = std::net::TcpStream::connect(target.as_str())?;
            client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
            s
        } else {
            forwards.fetch_add(1, Ordering::SeqCst);
            let hostport = target.strip_prefix("http://").and_then(|r| r.split('/').next()).unwrap_or("").to_owned();
            let mut s = std::net::TcpStream::connect(hostport.as_str())?;
            s.write_all(&head)?;
            s
        };
        let (mut c2, mut u2) = (client.try_clone()?, upstream.try_clone()?);
        let up = std::thread::spawn(move || {
            let _ = std::io::copy(&mut c2, &mut u2);
            let _ = u2.shutdown(std::net::Shutdown::Write);
        });
        let _ = std::io::copy(&mut upstream, &mut client);
        let _ = client.shutdown(std::net::Shutdown::Write);
        let _ = up.join();
        Ok(())
    }

    fn url(&self, userinfo: &str) -> String {
        format!("http://{userinfo}127.0.0.1:{}", self.port)
    }

    fn counts(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering;
        (self.connects.load(Ordering::SeqCst), self.forwards.load(Ordering::SeqCst))
    }
}

/// Through an HTTP proxy: `https://` remotes in a CONNECT tunnel (the certificate still
/// verified end to end), `http://` ones in absolute form; proxy credentials from its URL;
/// `""` goes direct.
#[test]
fn through_a_proxy() {
    let d = tmp();
    let pki = Pki::new(&d.path().join("pki"));
    let tls_server = Server::start_tls(Kind::Nginx, &d.path().join("tls"), pki.cert("good"), None);
    let plain_server = Server::start(Kind::Nginx, &d.path().join("plain"));
    let proxy = TestProxy::start(Some("Basic dTpwdw==")); // u:pw

    for (name, url) in [("tls", tls_server.url()), ("plain", plain_server.url())] {
        let via = |proxy_url: &str| {
            let mut c = config(&url, Some(&pki));
            c.remote.set_proxy(proxy_url).unwrap();
            c
        };
        let before = proxy.counts();
        {
            let a = Cache::open(d.path().join(format!("{name}-a")), &via(&proxy.url("u:pw@"))).unwrap();
            a.set(b"parse", b"k", b"through the proxy").unwrap();
            sync(&a);
            assert_eq!(a.remote_stats().unwrap().totals.uploads, 1, "{name}: {:?}", a.remote_stats());
        }
        let b = Cache::open(d.path().join(format!("{name}-b")), &via(&proxy.url("u:pw@"))).unwrap();
        assert_eq!(b.get(b"parse", b"k").unwrap().as_deref(), Some(&b"through the proxy"[..]), "{name}");
        let after = proxy.counts();
        if name == "tls" {
            assert!(after.0 > before.0 && after.1 == before.1, "{name}: CONNECT tunnels {before:?} -> {after:?}");
        } else {
            assert!(after.1 > before.1 && after.0 == before.0, "{name}: absolute-form requests {before:?} -> {after:?}");
        }
        // Without the proxy's credentials: 407, counted, nothing served.
        let c = Cache::open(d.path().join(format!("{name}-c")), &via(&proxy.url(""))).unwrap();
        assert_eq!(c.get(b"parse", b"k").unwrap(), None, "{name}");
        let r = c.remote_stats().unwrap();
        assert!(r.totals.errors == 1 && r.endpoints[0].last_error.contains("407"), "{name}: {r:?}");
        assert!(!r.endpoints[0].last_error.contains("pw"), "{name}");
        // "" goes direct.
        let before = proxy.counts();
        let e = Cache::open(d.path().join(format!("{name}-e")), &via("")).unwrap();
        assert_eq!(e.get(b"parse", b"k").unwrap().as_deref(), Some(&b"through the proxy"[..]), "{name}");
        assert_eq!(proxy.counts(), before, "{name}");
    }
}
