//! The remote tier: cache servers a team already runs, behind the local store.
//!
//! A local miss asks each remote in turn; a verified hit is written back locally
//! (backfill) and returned. Writes are queued and sent by background threads, so a slow
//! or dead remote never slows a `set`. Every remote value is checked (its frame's
//! checksum, and an HMAC tag when a key is configured) before use; a remote that times
//! out or refuses connections trips its circuit breaker and is skipped for a cooldown.
//! No remote failure ever fails a local operation: it is counted in [`RemoteStats`].

mod breaker;
mod config;
pub mod endpoint;
pub mod envelope;
mod http;
mod net;
mod redis;
mod proxy;
mod stats;
mod tls;

use std::collections::hash_map::DefaultHasher;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::codec::Compression;
use crate::error::{Error, Result};
use crate::latency::{Histogram, Snapshot};
use crate::limits::MAX_VALUE_LEN;
pub use breaker::State as BreakerState;
use breaker::Breaker;
pub use endpoint::{Address, Kind};
pub use proxy::{Proxy, ProxySetting};
use net::{Failure, Outcome};
pub use config::*;
use config::UPLOADERS;
pub use stats::*;


enum Client {
    Http(http::Http),
    Redis(redis::Redis),
}

struct Endpoint {
    addr: Address,
    client: Client,
    breaker: Breaker,
    counts: Counts,
    last_error: Mutex<String>,
}

impl Endpoint {
    /// The entry's name on this server, from its [`envelope::entry_name`].
    fn entry(&self, ns: &str, category: &[u8], name: String) -> String {
        match self.client {
            Client::Http(_) => name,
            // Readable prefixes, so that an operator can see and expire a cache or a category.
            Client::Redis(_) => format!("nexxo:{ns}:{}:{name}", String::from_utf8_lossy(category)),
        }
    }

    fn get(&self, entry: &str, deadline: Instant) -> Outcome<Option<Vec<u8>>> {
        match &self.client {
            Client::Http(c) => c.get(entry, deadline),
            Client::Redis(c) => c.get(entry, deadline),
        }
    }

    fn exists(&self, entry: &str, deadline: Instant) -> Outcome<bool> {
        match &self.client {
            Client::Http(c) => c.exists(entry, deadline),
            Client::Redis(c) => c.exists(entry, deadline),
        }
    }

    fn put(&self, entry: &str, data: &[u8], deadline: Instant) -> Outcome<()> {
        match &self.client {
            Client::Http(c) => c.put(entry, data, deadline),
            Client::Redis(c) => c.put(entry, data, deadline),
        }
    }
}

struct Job {
    category: Vec<u8>,
    key: Vec<u8>,
    value: Vec<u8>,
}

impl Job {
    fn bytes(&self) -> u64 {
        (self.category.len() + self.key.len() + self.value.len()) as u64
    }
}

#[derive(Default)]
struct Queue {
    /// One queue per upload thread; an entry always hashes to the same one, so two
    /// writes of one key reach the server in the order they were made.
    shards: Vec<VecDeque<Job>>,
    bytes: u64,
    in_flight: usize,
    closing: bool,
    /// Set when closing gave up waiting: what is left is dropped.
    abandon: bool,
}

impl Queue {
    fn jobs(&self) -> usize {
        self.shards.iter().map(VecDeque::len).sum()
    }
}

struct Shared {
    endpoints: Vec<Endpoint>,
    mode: Mode,
    name: String,
    local_only: Vec<String>,
    secret: Option<Vec<u8>>,
    /// Ask before uploading (see `RemoteConfig::check_exists`).
    check_exists: bool,
    compression: Compression,
    timeout: Duration,
    retries: u32,
    queue_limit: u64,
    queue: Mutex<Queue>,
    work: Condvar,
    idle: Condvar,
    backfills: AtomicU64,
    upload_dropped: AtomicU64,
    /// Each fetch that asked a remote, and each upload, whole (every endpoint it tried).
    fetch_latency: Histogram,
    upload_latency: Histogram,
}

/// The remotes of one open cache, with their upload threads.
pub struct Remote {
    shared: Arc<Shared>,
    close_wait: Duration,
    threads: Vec<JoinHandle<()>>,
}

impl Remote {
    /// The remote tier for `config`, or `None` when it has no remotes or is off.
    /// Contacts no server: a dead remote cannot slow or fail an open.
    pub fn start(config: &RemoteConfig, compression: Compression) -> Result<Option<Remote>> {
        if config.remotes.is_empty() || config.mode == Mode::Off {
            return Ok(None);
        }
        let max_len = MAX_VALUE_LEN + 4096;
        let tls = match config.remotes.iter().any(|a| a.tls) {
            true => Some(tls::client_config(config.ca_file.as_ref().map_or(&[][..], |(_, certs)| certs))?),
            false => None,
        };
        let mut endpoints = Vec::new();
        for a in &config.remotes {
            let via = proxy::for_target(&config.proxy, a)?;
            let pool = match (&tls, a.tls) {
                (Some(t), true) => net::Pool::with_tls(&a.host, a.port, 16, t.clone())?,
                _ => net::Pool::new(&a.host, a.port, 16),
            }
            .through(via.clone());
            endpoints.push(Endpoint {
                addr: a.clone(),
                client: match a.kind {
                    Kind::Http => Client::Http(http::Http::new(a, pool, via.as_ref(), config, max_len)),
                    Kind::Redis => Client::Redis(redis::Redis::new(a, pool, config.ttl_secs, max_len)),
                },
                breaker: Breaker::new(Duration::from_millis(config.cooldown_ms.into())),
                counts: Counts::default(),
                last_error: Mutex::new(String::new()),
            });
        }
        let shared = Arc::new(Shared {
            endpoints,
            mode: config.mode,
            name: config.name.clone(),
            local_only: config.local_only.clone(),
            secret: config.hmac_key.as_ref().map(|s| s.0.clone()),
            check_exists: config.check_exists,
            compression,
            timeout: Duration::from_millis(config.timeout_ms.into()),
            retries: config.retries,
            queue_limit: config.queue_bytes,
            queue: Mutex::new(Queue { shards: (0..UPLOADERS).map(|_| VecDeque::new()).collect(), ..Default::default() }),
            work: Condvar::new(),
            idle: Condvar::new(),
            backfills: AtomicU64::new(0),
            upload_dropped: AtomicU64::new(0),
            fetch_latency: Histogram::default(),
            upload_latency: Histogram::default(),
        });
        let mut threads = Vec::new();
        if config.mode == Mode::ReadWrite {
            for i in 0..UPLOADERS {
                let s = shared.clone();
                let t = std::thread::Builder::new()
                    .name(format!("nexxo-upload-{i}"))
                    .spawn(move || s.upload_loop(i))
                    .map_err(|e| Error::Io(format!("starting an upload thread: {e}")))?;
                threads.push(t);
            }
        }
        Ok(Some(Remote { shared, close_wait: Duration::from_millis(config.close_wait_ms.into()), threads }))
    }

    /// Whether `category` may be read from the remotes.
    pub fn serves(&self, category: &[u8]) -> bool {
        !self.shared.local_only.iter().any(|c| c.as_bytes() == category)
    }

    /// Asks each remote in turn; the first verified value wins.
    pub fn fetch(&self, category: &[u8], key: &[u8]) -> Option<Vec<u8>> {
        if !self.serves(category) {
            return None;
        }
        self.shared.fetch(category, key)
    }

    /// Whether some remote's breaker lets requests through now (or soon: a probe).
    pub fn reachable(&self) -> bool {
        self.shared.endpoints.iter().any(|e| e.breaker.state() != BreakerState::Open || e.breaker.probe_due())
    }

    pub fn note_backfill(&self) {
        bump(&self.shared.backfills, 1);
    }

    /// Queues a local write for upload (read-write mode only). Never blocks on the
    /// network: when the queue is full, the upload is dropped and counted.
    pub fn upload(&self, category: &[u8], key: &[u8], value: &[u8]) {
        let s = &self.shared;
        if s.mode != Mode::ReadWrite || !self.serves(category) {
            return;
        }
        let job = Job { category: category.to_vec(), key: key.to_vec(), value: value.to_vec() };
        let n = job.bytes();
        let mut h = DefaultHasher::new();
        (category, key).hash(&mut h);
        let shard = (h.finish() % UPLOADERS as u64) as usize;
        let mut q = s.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.closing || q.bytes + n > s.queue_limit {
            drop(q);
            bump(&s.upload_dropped, 1);
            return;
        }
        q.shards[shard].push_back(job);
        q.bytes += n;
        drop(q);
        s.work.notify_all();
    }

    /// Waits until every queued upload has been sent (or has failed), at most `timeout`.
    /// Returns whether the queue drained.
    pub fn sync(&self, timeout: Duration) -> bool {
        let s = &self.shared;
        let deadline = Instant::now() + timeout;
        let mut q = s.queue.lock().unwrap_or_else(|p| p.into_inner());
        while q.jobs() > 0 || q.in_flight > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            q = s.idle.wait_timeout(q, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        true
    }

    /// The latency of fetches that asked a remote and of uploads (each whole, every
    /// endpoint it tried), since this tier started.
    pub fn latency(&self) -> (Snapshot, Snapshot) {
        (self.shared.fetch_latency.snapshot(), self.shared.upload_latency.snapshot())
    }

    pub fn stats(&self) -> RemoteStats {
        let s = &self.shared;
        let mut totals = RemoteCounts::default();
        let endpoints: Vec<RemoteEndpointStats> = s
            .endpoints
            .iter()
            .map(|e| {
                let counts = e.counts.snapshot();
                totals.add(&counts);
                RemoteEndpointStats {
                    url: e.addr.to_string(),
                    kind: e.addr.kind,
                    state: e.breaker.state(),
                    trips: e.breaker.trips(),
                    counts,
                    last_error: e.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                }
            })
            .collect();
        let q = s.queue.lock().unwrap_or_else(|p| p.into_inner());
        RemoteStats {
            mode: s.mode,
            totals,
            backfills: s.backfills.load(Ordering::Relaxed),
            queued: q.jobs() as u64,
            queued_bytes: q.bytes,
            upload_dropped: s.upload_dropped.load(Ordering::Relaxed),
            endpoints,
        }
    }
}

impl Drop for Remote {
    /// Waits up to the close wait for queued uploads, then drops what is left.
    fn drop(&mut self) {
        let drained = self.sync(self.close_wait);
        {
            let mut q = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.closing = true;
            q.abandon = !drained;
        }
        self.shared.work.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Shared {
    /// Runs one request against `e` with its retries, under its breaker. `None` when
    /// the breaker kept the request from going out.
    fn call<T>(&self, e: &Endpoint, op: impl Fn(Instant) -> Outcome<T>) -> Option<Outcome<T>> {
        if !e.breaker.allow() {
            bump(&e.counts.skipped, 1);
            return None;
        }
        let deadline = Instant::now() + self.timeout;
        let mut attempt = 0;
        loop {
            match op(deadline) {
                Ok(v) => {
                    e.breaker.success();
                    return Some(Ok(v));
                }
                Err(f) => {
                    let now = Instant::now();
                    if f.retryable() && attempt < self.retries && now < deadline {
                        attempt += 1;
                        let backoff = Duration::from_millis(10 << attempt).min(deadline - now);
                        std::thread::sleep(backoff);
                        continue;
                    }
                    // A refusal is an answer: the server is up, the breaker stays closed.
                    if matches!(f, Failure::Refused(_)) {
                        e.breaker.success();
                    } else {
                        e.breaker.failure();
                    }
                    bump(&e.counts.errors, 1);
                    *e.last_error.lock().unwrap_or_else(|p| p.into_inner()) = format!("{}: {f}", e.addr);
                    return Some(Err(f));
                }
            }
        }
    }

    fn fetch(&self, category: &[u8], key: &[u8]) -> Option<Vec<u8>> {
        let start = Instant::now();
        let mut asked = false;
        let got = self.fetch_from_endpoints(category, key, &mut asked);
        if asked {
            self.fetch_latency.record_since(start);
        }
        got
    }

    fn fetch_from_endpoints(&self, category: &[u8], key: &[u8], asked: &mut bool) -> Option<Vec<u8>> {
        let name = envelope::entry_name(&self.name, category, key);
        for e in &self.endpoints {
            let entry = e.entry(&self.name, category, name.clone());
            let start = Instant::now();
            let got = self.call(e, |d| e.get(&entry, d));
            if got.is_some() {
                *asked = true;
                let us = start.elapsed().as_micros() as u64;
                bump(&e.counts.gets, 1);
                bump(&e.counts.get_micros, us);
                e.counts.get_micros_max.fetch_max(us, Ordering::Relaxed);
            }
            match got {
                Some(Ok(Some(data))) => {
                    bump(&e.counts.bytes_down, data.len() as u64);
                    match envelope::open(self.secret.as_deref(), &self.name, category, key, &data) {
                        Ok(v) => {
                            bump(&e.counts.hits, 1);
                            return Some(v);
                        }
                        Err(r) => {
                            bump(&e.counts.rejected, 1);
                            *e.last_error.lock().unwrap_or_else(|p| p.into_inner()) = format!("{}: a value was rejected ({r:?})", e.addr);
                        }
                    }
                }
                Some(Ok(None)) => bump(&e.counts.misses, 1),
                Some(Err(_)) | None => {}
            }
        }
        None
    }

    fn upload_loop(&self, shard: usize) {
        loop {
            let job = {
                let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    if q.abandon {
                        let left: usize = q.shards[shard].len();
                        q.shards[shard].clear();
                        bump(&self.upload_dropped, left as u64);
                        self.idle.notify_all();
                        return;
                    }
                    if let Some(j) = q.shards[shard].pop_front() {
                        q.in_flight += 1;
                        break j;
                    }
                    if q.closing {
                        return;
                    }
                    q = self.work.wait(q).unwrap_or_else(|p| p.into_inner());
                }
            };
            self.send(&job);
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.in_flight -= 1;
            q.bytes -= job.bytes();
            if q.in_flight == 0 && q.jobs() == 0 {
                self.idle.notify_all();
            }
        }
    }

    fn send(&self, job: &Job) {
        let start = Instant::now();
        self.send_to_endpoints(job);
        self.upload_latency.record_since(start);
    }

    fn send_to_endpoints(&self, job: &Job) {
        let sealed = envelope::seal(self.secret.as_deref(), &self.name, &job.category, &job.key, &job.value, self.compression);
        let name = envelope::entry_name(&self.name, &job.category, &job.key);
        for e in &self.endpoints {
            let entry = e.entry(&self.name, &job.category, name.clone());
            // Last write wins, as on a local store, unless the opener asked to check first
            // (for keys that name their content, where a present entry is the same value).
            if self.check_exists {
                match self.call(e, |d| e.exists(&entry, d)) {
                    Some(Ok(true)) => {
                        bump(&e.counts.already_there, 1);
                        continue;
                    }
                    Some(Ok(false)) => {}
                    Some(Err(_)) => {
                        bump(&e.counts.upload_errors, 1);
                        continue;
                    }
                    None => continue,
                }
            }
            match self.call(e, |d| e.put(&entry, &sealed, d)) {
                Some(Ok(())) => {
                    bump(&e.counts.uploads, 1);
                    bump(&e.counts.bytes_up, sealed.len() as u64);
                }
                Some(Err(_)) => bump(&e.counts.upload_errors, 1),
                None => {}
            }
        }
    }
}
