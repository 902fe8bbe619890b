//! The public handle: a view of the directory's shared store (see [`crate::share`])
//! with its own remote tier and its own hit/miss counts, or a disabled cache that a
//! build can use as if nothing had failed.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::clock::{system_clock, Clock};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::evict::PolicyReport;
use crate::history::History;
use crate::latency::{Histogram, Op, Sampler, Snapshot};
use crate::json::json_string;
use crate::limits::{check_key, check_value};
use crate::remote::{Remote, RemoteStats};
use crate::share::Shared;
use crate::stats::Stats;
use crate::store::{PackedRead, Store, VerifyReport};

/// A cache handle. Every method takes `&self` and may be called from many threads.
pub struct Cache {
    inner: Inner,
}

enum Inner {
    Open(Handle),
    Disabled(Disabled),
}

impl Drop for Cache {
    /// A handle that fork() copied into a child is leaked there, never closed: its
    /// threads (the store's, the reader's, the uploads') stayed in the parent, so closing
    /// it would wait for them forever, and its connections, reader files and store are
    /// the parent's, still in use.
    fn drop(&mut self) {
        if let Inner::Open(h) = &self.inner {
            if !h.shared.opened_before_fork() {
                h.keep_history();
            }
        }
        if matches!(&self.inner, Inner::Open(h) if h.shared.opened_before_fork()) {
            let copied = std::mem::replace(
                &mut self.inner,
                Inner::Disabled(Disabled { reason: Error::ReadOnly, categories: Vec::new(), read_only: true, misses: AtomicU64::new(0) }),
            );
            std::mem::forget(copied);
        }
    }
}

/// An open handle. Handles of one directory in one process share the store; each keeps
/// its own counts of what it did, so that its statistics say what this handle saw.
struct Handle {
    // Dropped first: queued uploads drain (within the close wait), then the shared store
    // is released (closed when this was its last handle).
    remote: Option<Remote>,
    shared: Arc<Shared>,
    read_only: bool,
    names: Vec<String>,
    counts: Box<[Counts]>,
    /// Latency histograms by operation and category (`names.len()` + 1 slots per
    /// operation, the last for batches); `None` when recording is off.
    latency: Option<Box<[Histogram]>>,
}

/// The operations a handle times itself (the remote tier times its own).
const HANDLE_OPS: [Op; 4] = [Op::Get, Op::Set, Op::BatchGet, Op::BatchSet];

/// One category's counts of one handle.
#[derive(Default)]
struct Counts {
    hits: AtomicU64,
    misses: AtomicU64,
    writes: AtomicU64,
    deletes: AtomicU64,
}

impl Handle {
    /// The histogram of `op` for `category` (`None`: the batch slot), when recording.
    fn histogram(&self, op: Op, category: Option<&[u8]>) -> Option<&Histogram> {
        let l = self.latency.as_ref()?;
        let slots = self.names.len() + 1;
        let slot = category.and_then(|c| self.names.iter().position(|n| n.as_bytes() == c)).unwrap_or(slots - 1);
        let op = HANDLE_OPS.iter().position(|o| *o == op)?;
        l.get(op * slots + slot)
    }

    /// A start time when this call is to be timed: per-key gets one in
    /// [`crate::latency::GET_SAMPLE`], everything else always.
    #[inline]
    fn start(&self, op: Op) -> Option<std::time::Instant> {
        self.latency.as_ref()?;
        if op == Op::Get {
            Sampler::get()
        } else {
            Some(std::time::Instant::now())
        }
    }

    #[inline]
    fn timed(&self, op: Op, category: Option<&[u8]>, start: Option<std::time::Instant>) {
        if let (Some(t), Some(h)) = (start, self.histogram(op, category)) {
            h.record_since(t);
        }
    }

    /// What this handle recorded: its counts and histograms, its remote tier's too.
    fn history(&self) -> History {
        let mut h = History { handles: 1, since: crate::clock::system_clock()(), ..Default::default() };
        for (n, c) in self.names.iter().zip(self.counts.iter()) {
            let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
            h.counts.insert(n.clone(), crate::history::Counts { hits: load(&c.hits), misses: load(&c.misses), writes: load(&c.writes), deletes: load(&c.deletes) });
        }
        for op in HANDLE_OPS {
            for n in &self.names {
                if let Some(s) = self.histogram(op, Some(n.as_bytes())).map(Histogram::snapshot).filter(|s| s.count() > 0) {
                    h.latency.insert((op.name().into(), n.clone()), s);
                }
            }
            if let Some(s) = self.histogram(op, None).map(Histogram::snapshot).filter(|s| s.count() > 0) {
                h.latency.insert((op.name().into(), "*".into()), s);
            }
        }
        if let (Some(r), true) = (&self.remote, self.latency.is_some()) {
            let (fetch, upload) = r.latency();
            for (op, s) in [(Op::RemoteGet, fetch), (Op::Upload, upload)] {
                if s.count() > 0 {
                    h.latency.insert((op.name().into(), "*".into()), s);
                }
            }
        }
        h
    }

    /// Adds what this handle recorded to the cache's kept history (see
    /// [`crate::history`]), at close; read-only handles leave the directory alone.
    fn keep_history(&self) {
        if self.read_only {
            return;
        }
        let h = self.history();
        if h.is_empty() {
            return;
        }
        if let Ok(Some(note)) = h.add_to(self.shared.path()) {
            eprintln!("nexxo-cache: {note}");
        }
    }

    fn counts(&self, category: &[u8]) -> Option<&Counts> {
        self.names.iter().position(|n| n.as_bytes() == category).map(|i| &self.counts[i])
    }

    fn count(&self, category: &[u8], found: Option<bool>) {
        if let (Some(c), Some(found)) = (self.counts(category), found) {
            let n = if found { &c.hits } else { &c.misses };
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn count_writes(&self, category: &[u8], n: u64) {
        if let Some(c) = self.counts(category) {
            c.writes.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Overwrites the per-handle fields of `s` with this handle's counts (of one
    /// category, or of all).
    fn own_counts(&self, s: &mut Stats, category: Option<&[u8]>) {
        s.hits = 0;
        s.misses = 0;
        s.writes = 0;
        s.deletes = 0;
        for (n, c) in self.names.iter().zip(self.counts.iter()) {
            if category.is_none_or(|cat| cat == n.as_bytes()) {
                s.hits += c.hits.load(Ordering::Relaxed);
                s.misses += c.misses.load(Ordering::Relaxed);
                s.writes += c.writes.load(Ordering::Relaxed);
                s.deletes += c.deletes.load(Ordering::Relaxed);
            }
        }
        s.read_only |= self.read_only;
    }

    fn check_writable(&self) -> Result<()> {
        if self.read_only {
            Err(Error::ReadOnly)
        } else {
            Ok(())
        }
    }
}

/// A cache that could not be opened: gets miss, writes are dropped.
struct Disabled {
    reason: Error,
    categories: Vec<String>,
    read_only: bool,
    misses: AtomicU64,
}

impl Disabled {
    fn check(&self, category: &[u8], key: &[u8]) -> Result<()> {
        self.check_categories(&[category])?;
        check_key(key)
    }

    fn check_categories(&self, cats: &[&[u8]]) -> Result<()> {
        for c in cats {
            if !self.categories.iter().any(|n| n.as_bytes() == *c) {
                return Err(Error::UnknownCategory(String::from_utf8_lossy(c).into_owned()));
            }
        }
        Ok(())
    }

    fn miss(&self) -> Result<Option<Vec<u8>>> {
        self.misses.fetch_add(1, Ordering::Relaxed);
        Ok(None)
    }
}

/// Whether `fallback_disabled` turns this open error into a disabled cache.
fn falls_back(e: &Error) -> bool {
    matches!(e, Error::Io(_) | Error::NoSpace(_) | Error::Locked(_) | Error::Corruption(_) | Error::Incompatible(_) | Error::Insecure(_))
}

impl Cache {
    /// Opens the cache at `path` (created with its parents when missing). Every open of
    /// the same directory, from this process or another of the same user, shares one
    /// store (see [`crate::share`]).
    pub fn open(path: impl AsRef<Path>, config: &Config) -> Result<Cache> {
        Self::open_with_clock(path, config, system_clock())
    }

    /// Like [`Cache::open`] with a clock for `max_age` (seconds since the epoch).
    pub fn open_with_clock(path: impl AsRef<Path>, config: &Config, clock: Clock) -> Result<Cache> {
        // The NEXXO_CACHE_* variables (see crate::environment). A bad value is the
        // opener's error, or with the fallback a disabled cache that says why.
        let config = &match crate::environment::apply(config) {
            Ok(a) if a.disable => return Ok(Self::disabled(&a.config, Error::DisabledOnRequest(format!("{} is set", crate::environment::DISABLE)))),
            Ok(a) => a.config,
            Err(e) => {
                // A status cannot name the variable: one line on stderr does, once per open.
                eprintln!("nexxo-cache: {e}");
                if config.fallback_disabled {
                    return Ok(Self::disabled(config, e));
                }
                return Err(e);
            }
        };
        match Shared::open(path.as_ref(), config, clock) {
            Ok(shared) => {
                let remote = Remote::start(&config.remote, config.compression)?;
                let names = shared.categories();
                let counts = names.iter().map(|_| Counts::default()).collect();
                let read_only = config.read_only || shared.is_read_only();
                let latency = config.latency.then(|| (0..HANDLE_OPS.len() * (names.len() + 1)).map(|_| Histogram::default()).collect());
                Ok(Cache { inner: Inner::Open(Handle { remote, shared, read_only, names, counts, latency }) })
            }
            Err(e) if config.fallback_disabled && falls_back(&e) => Ok(Self::disabled(config, e)),
            Err(e) => Err(e),
        }
    }

    /// A disabled cache for `config`'s categories.
    pub fn disabled(config: &Config, reason: Error) -> Cache {
        Cache {
            inner: Inner::Disabled(Disabled {
                reason,
                categories: config.categories().map(str::to_owned).collect(),
                read_only: config.read_only,
                misses: AtomicU64::new(0),
            }),
        }
    }

    /// Why the cache is disabled, if it is.
    pub fn disabled_reason(&self) -> Option<&Error> {
        match &self.inner {
            Inner::Disabled(d) => Some(&d.reason),
            Inner::Open(_) => None,
        }
    }

    /// The store, when this process holds it (`None` for a disabled cache, and while
    /// another process serves the cache to this one).
    pub fn store(&self) -> Option<&Store> {
        match &self.inner {
            Inner::Open(h) => h.shared.store(),
            Inner::Disabled(_) => None,
        }
    }

    /// Requests a read-only instance answered before this process opened the store for
    /// writing (see `share/backing.rs`, "opening on demand"); for tests and benchmarks.
    pub fn interim_reads(&self) -> u64 {
        match &self.inner {
            Inner::Open(h) => h.shared.interim_reads(),
            Inner::Disabled(_) => 0,
        }
    }

    /// Entries the read-only instance's warm table holds, before this process opened the
    /// store for writing; for tests.
    #[doc(hidden)]
    pub fn debug_interim_warm_entries(&self) -> usize {
        match &self.inner {
            Inner::Open(h) => h.shared.interim_warm_entries(),
            Inner::Disabled(_) => 0,
        }
    }

    /// The id of the process serving the cache to this one; `None` when this process
    /// holds the store itself (or the cache is disabled).
    pub fn owner_pid(&self) -> Option<u32> {
        match &self.inner {
            Inner::Open(h) => h.shared.owner_pid(),
            Inner::Disabled(_) => None,
        }
    }

    /// The remote tier, when remotes are configured and not off.
    pub fn remote(&self) -> Option<&Remote> {
        match &self.inner {
            Inner::Open(h) => h.remote.as_ref(),
            Inner::Disabled(_) => None,
        }
    }

    /// After a local miss: the value from a remote, written back locally when the handle
    /// is writable and the key is still empty. A failed backfill is not an error: the
    /// value was verified and is returned all the same.
    fn from_remote(h: &Handle, category: &[u8], key: &[u8]) -> Option<Vec<u8>> {
        let remote = h.remote.as_ref()?;
        let value = remote.fetch(category, key)?;
        if !h.read_only && matches!(h.shared.fill(category, key, &value), Ok(true)) {
            h.count_writes(category, 1);
            remote.note_backfill();
        }
        Some(value)
    }

    /// The remote values of `misses` (indices into `keys`), fetched by up to
    /// `REMOTE_FETCHERS` threads at once: a remote hit costs a network round trip, and a
    /// cold cache warming from a remote is bound by those, not by CPU.
    fn fetch_many(h: &Handle, keys: &[(&[u8], &[u8])], misses: &[usize]) -> Vec<(usize, Option<Vec<u8>>)> {
        const REMOTE_FETCHERS: usize = 8;
        let threads = misses.len().min(REMOTE_FETCHERS);
        if threads <= 1 {
            return misses.iter().map(|&i| (i, Self::from_remote(h, keys[i].0, keys[i].1))).collect();
        }
        let next = AtomicU64::new(0);
        let worker = || {
            let mut got = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(&i) = misses.get(n) else { break got };
                got.push((i, Self::from_remote(h, keys[i].0, keys[i].1)));
            }
        };
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads).map(|_| s.spawn(worker)).collect();
            handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
        })
    }

    /// Reads a value: the local store first, then the remotes (see [`crate::remote`]).
    pub fn get(&self, category: &[u8], key: &[u8]) -> Result<Option<Vec<u8>>> {
        match &self.inner {
            Inner::Open(h) => {
                let t = h.start(Op::Get);
                let local = h.shared.get(category, key)?;
                h.count(category, Some(local.is_some()));
                let v = match local {
                    Some(v) => Some(v),
                    None => Self::from_remote(h, category, key),
                };
                h.timed(Op::Get, Some(category), t);
                Ok(v)
            }
            Inner::Disabled(d) => d.check(category, key).and_then(|_| d.miss()),
        }
    }

    pub fn get_into(&self, category: &[u8], key: &[u8], buf: &mut [u8]) -> Result<Option<usize>> {
        match &self.inner {
            Inner::Open(h) => {
                let t = h.start(Op::Get);
                let local = h.shared.get_into(category, key, buf)?;
                h.count(category, Some(local.is_some()));
                let r = match local {
                    Some(n) => Ok(Some(n)),
                    None => match Self::from_remote(h, category, key) {
                        // Backfilled (when writable): a retry with a larger buffer is a local hit.
                        Some(v) if v.len() > buf.len() => Err(Error::BufferTooSmall(v.len())),
                        Some(v) => {
                            buf[..v.len()].copy_from_slice(&v);
                            Ok(Some(v.len()))
                        }
                        None => Ok(None),
                    },
                };
                h.timed(Op::Get, Some(category), t);
                r
            }
            Inner::Disabled(d) => d.check(category, key).and_then(|_| d.miss()).map(|_| None),
        }
    }

    /// Stores a value; with a read-write remote it is also queued for upload.
    pub fn set(&self, category: &[u8], key: &[u8], value: &[u8]) -> Result<()> {
        self.store_batch(&[(category, key, value)], None, Op::Set)
    }

    /// [`Cache::set`] with tags: what the value depends on, for [`Cache::invalidate`]
    /// (see `store/tags.rs`; at most 32 tags of 1 to 256 bytes). An overwrite replaces
    /// the key's tags.
    pub fn set_tagged(&self, category: &[u8], key: &[u8], value: &[u8], tags: &[&[u8]]) -> Result<()> {
        self.store_batch(&[(category, key, value)], Some(&[tags]), Op::Set)
    }

    /// [`Cache::batch_set`] with each entry's tags (`tags[i]` for `entries[i]`).
    pub fn batch_set_tagged(&self, entries: &[(&[u8], &[u8], &[u8])], tags: &[&[&[u8]]]) -> Result<()> {
        if tags.len() != entries.len() {
            return Err(Error::InvalidArgument(format!("{} tag lists for {} entries", tags.len(), entries.len())));
        }
        self.store_batch(entries, Some(tags), Op::BatchSet)
    }

    /// Removes every entry that carries `tag`, in every category, in one atomic write
    /// with exact statistics: (entries, stored bytes) removed. Local only: a remote tier
    /// keeps its copies (see the README). `NEXXO_READ_ONLY` on a read-only handle.
    pub fn invalidate(&self, tag: &[u8]) -> Result<(u64, u64)> {
        crate::store::check_tag(tag)?;
        match &self.inner {
            Inner::Open(h) if h.read_only => Err(Error::ReadOnly),
            Inner::Open(h) => h.shared.invalidate(tag),
            Inner::Disabled(_) => Ok((0, 0)),
        }
    }

    pub fn delete(&self, category: &[u8], key: &[u8]) -> Result<()> {
        match &self.inner {
            Inner::Open(h) => {
                if h.read_only {
                    // Arguments are judged first, as a writable handle does.
                    h.counts(category).ok_or_else(|| Error::UnknownCategory(String::from_utf8_lossy(category).into_owned()))?;
                    check_key(key)?;
                    return Err(Error::ReadOnly);
                }
                if h.shared.remove(category, key)? {
                    if let Some(c) = h.counts(category) {
                        c.deletes.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(())
            }
            Inner::Disabled(d) => d.check(category, key),
        }
    }

    pub fn batch_set(&self, entries: &[(&[u8], &[u8], &[u8])]) -> Result<()> {
        self.store_batch(entries, None, Op::BatchSet)
    }

    /// `batch_set` (tagged when `tags` is given), timed as `op` (a set is timed under
    /// its category).
    fn store_batch(&self, entries: &[(&[u8], &[u8], &[u8])], tags: Option<&[&[&[u8]]]>, op: Op) -> Result<()> {
        if let Some(tags) = tags {
            for t in tags {
                crate::store::check_tags(t)?;
            }
        }
        match &self.inner {
            Inner::Open(h) => {
                if h.read_only {
                    // Validated as the store would, then refused.
                    for (c, k, v) in entries {
                        h.counts(c).ok_or_else(|| Error::UnknownCategory(String::from_utf8_lossy(c).into_owned()))?;
                        check_key(k)?;
                        check_value(v)?;
                    }
                    return Err(Error::ReadOnly);
                }
                let t = h.start(op);
                match tags {
                    Some(tags) => h.shared.batch_set_tagged(entries, tags)?,
                    None => h.shared.batch_set(entries)?,
                }
                h.timed(op, if op == Op::Set { entries.first().map(|e| e.0) } else { None }, t);
                for (c, _, _) in entries {
                    h.count_writes(c, 1);
                }
                if let Some(r) = &h.remote {
                    for (c, k, v) in entries {
                        r.upload(c, k, v);
                    }
                }
                Ok(())
            }
            Inner::Disabled(d) => entries.iter().try_for_each(|(c, k, v)| d.check(c, k).and_then(|_| check_value(v))),
        }
    }

    pub fn batch_get(&self, keys: &[(&[u8], &[u8])]) -> Vec<Result<Option<Vec<u8>>>> {
        match &self.inner {
            Inner::Open(h) => {
                let t = h.start(Op::BatchGet);
                let mut out = h.shared.batch_get(keys);
                for ((c, _), r) in keys.iter().zip(&out) {
                    h.count(c, r.as_ref().ok().map(Option::is_some));
                }
                if h.remote.as_ref().is_some_and(Remote::reachable) {
                    let misses: Vec<usize> = (0..keys.len()).filter(|&i| matches!(out[i], Ok(None))).collect();
                    for (i, v) in Self::fetch_many(h, keys, &misses) {
                        out[i] = Ok(v);
                    }
                }
                h.timed(Op::BatchGet, None, t);
                out
            }
            Inner::Disabled(d) => keys.iter().map(|(c, k)| d.check(c, k).and_then(|_| d.miss())).collect(),
        }
    }

    /// Like [`Cache::batch_get`], with the answer laid out in `out` as
    /// [`Store::batch_get_into`] does: for each key, `gap` bytes left for the caller, then
    /// its value if found. When this process holds the store and no remote is reachable,
    /// the values are decoded straight into `out`; otherwise they are read first and
    /// copied in.
    pub fn batch_get_into(&self, keys: &[(&[u8], &[u8])], out: &mut [u8], gap: usize) -> PackedRead {
        if let Inner::Open(h) = &self.inner {
            if let Some(store) = h.shared.store_if_open().filter(|_| !h.remote.as_ref().is_some_and(Remote::reachable)) {
                let t = h.start(Op::BatchGet);
                let r = store.batch_get_into(keys, out, gap);
                h.timed(Op::BatchGet, None, t);
                if let PackedRead::Written(outcomes, _) = &r {
                    for ((c, _), o) in keys.iter().zip(outcomes) {
                        h.count(c, o.as_ref().ok().map(Option::is_some));
                    }
                }
                return r;
            }
        }
        let results = self.batch_get(keys);
        let need = results.iter().map(|r| gap + r.as_ref().ok().and_then(|v| v.as_ref()).map_or(0, Vec::len)).sum();
        if need > out.len() {
            return PackedRead::TooSmall(need);
        }
        let mut at = 0;
        let outcomes = results
            .into_iter()
            .map(|r| {
                at += gap;
                r.map(|found| {
                    found.map(|v| {
                        out[at..at + v.len()].copy_from_slice(&v);
                        at += v.len();
                        v.len()
                    })
                })
            })
            .collect();
        PackedRead::Written(outcomes, at)
    }

    pub fn stats(&self) -> Stats {
        match &self.inner {
            Inner::Open(h) => {
                let mut s = h.shared.stats().unwrap_or_else(|e| Stats { disabled: Some(e), ..Default::default() });
                h.own_counts(&mut s, None);
                s
            }
            Inner::Disabled(d) => Stats {
                misses: d.misses.load(Ordering::Relaxed),
                read_only: d.read_only,
                disabled: Some(d.reason.clone()),
                ..Default::default()
            },
        }
    }

    pub fn category_stats(&self, category: &[u8]) -> Result<Stats> {
        match &self.inner {
            Inner::Open(h) => {
                let mut s = h.shared.category_stats(category)?;
                h.own_counts(&mut s, Some(category));
                Ok(s)
            }
            Inner::Disabled(d) => d.check_categories(&[category]).map(|_| Stats {
                read_only: d.read_only,
                disabled: Some(d.reason.clone()),
                ..Default::default()
            }),
        }
    }

    /// The category names, built-in ones first.
    pub fn categories(&self) -> Vec<String> {
        match &self.inner {
            Inner::Open(h) => h.names.clone(),
            Inner::Disabled(d) => d.categories.clone(),
        }
    }

    pub fn enforce_policy(&self) -> Result<PolicyReport> {
        match &self.inner {
            Inner::Open(h) => h.check_writable().and_then(|_| h.shared.enforce_policy()),
            Inner::Disabled(_) => Ok(PolicyReport::default()),
        }
    }

    pub fn compact(&self, category: Option<&[u8]>) -> Result<()> {
        match &self.inner {
            Inner::Open(h) => {
                if let Some(c) = category {
                    h.counts(c).ok_or_else(|| Error::UnknownCategory(String::from_utf8_lossy(c).into_owned()))?;
                }
                h.check_writable().and_then(|_| h.shared.compact(category))
            }
            Inner::Disabled(d) => category.map_or(Ok(()), |c| d.check_categories(&[c])),
        }
    }

    pub fn clear(&self, categories: &[&[u8]]) -> Result<()> {
        match &self.inner {
            Inner::Open(h) => {
                for c in categories {
                    h.counts(c).ok_or_else(|| Error::UnknownCategory(String::from_utf8_lossy(c).into_owned()))?;
                }
                h.check_writable().and_then(|_| h.shared.clear(categories))
            }
            Inner::Disabled(d) => d.check_categories(categories),
        }
    }

    /// Reads every entry and checks its checksum (see [`Store::verify`]); with `drop_bad`
    /// damaged entries are removed. `progress` is called only when this process holds
    /// the store.
    pub fn verify(&self, drop_bad: bool, progress: &mut dyn FnMut(u64, u64)) -> Result<VerifyReport> {
        match &self.inner {
            Inner::Open(h) => {
                if drop_bad {
                    h.check_writable()?;
                }
                h.shared.verify(drop_bad, progress)
            }
            Inner::Disabled(d) => Err(d.reason.clone()),
        }
    }

    /// The remote tier's statistics; `None` without remotes (or with them off).
    pub fn remote_stats(&self) -> Option<RemoteStats> {
        self.remote().map(Remote::stats)
    }

    /// Waits until queued uploads have been sent (or have failed), at most `timeout`.
    /// `true` when the queue drained; also `true` when there is nothing to upload to.
    pub fn remote_sync(&self, timeout: std::time::Duration) -> bool {
        self.remote().is_none_or(|r| r.sync(timeout))
    }

    pub fn flush(&self) -> Result<()> {
        match &self.inner {
            Inner::Open(h) => h.check_writable().and_then(|_| h.shared.flush()),
            Inner::Disabled(_) => Ok(()),
        }
    }

    /// The cache directory.
    pub fn path(&self) -> Option<&Path> {
        match &self.inner {
            Inner::Open(h) => Some(h.shared.path()),
            Inner::Disabled(_) => None,
        }
    }

    /// Totals and every category as one JSON object:
    /// `{"version":..,"path":..,"totals":{..},"categories":{"parse":{..},..}}`.
    /// `disabled_reason` names, for a disabled cache, what disabled it: the C ABI gives its
    /// status name (`"NEXXO_LOCKED"`) for `self.disabled_reason()`. Written empty when the
    /// cache is enabled.
    /// The limits this handle's open resolved, with their sources (see
    /// [`Config::limits_json`]); `None` for a disabled cache. A process that is not the
    /// one holding the store ([`Cache::owner_pid`]) resolves them against the cache's
    /// stored limits when asked; the holder evicts by the limits it opened with.
    pub fn limits(&self) -> Option<Config> {
        match &self.inner {
            Inner::Open(h) => Some(h.shared.limits()),
            Inner::Disabled(_) => None,
        }
    }

    pub fn stats_json(&self, disabled_reason: &str) -> String {
        let totals = self.stats();
        let reason = if totals.disabled.is_some() { disabled_reason } else { "" };
        let mut out = format!("{{\"version\":\"{}\",", env!("CARGO_PKG_VERSION"));
        if let Some(path) = self.path() {
            out.push_str(&format!("\"path\":{},", json_string(&path.to_string_lossy())));
        }
        out.push_str(&format!("\"totals\":{},\"categories\":{{", totals.to_json_object(reason)));
        for (i, name) in self.categories().iter().enumerate() {
            if let Ok(s) = self.category_stats(name.as_bytes()) {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&format!("\"{name}\":{}", s.to_json_object(reason)));
            }
        }
        out.push('}');
        if let Some(l) = self.limits() {
            out.push_str(&format!(",\"limits\":{}", l.limits_json()));
        }
        if let Some(r) = self.remote_stats() {
            out.push_str(&format!(",\"remote\":{}", r.to_json()));
        }
        if let Inner::Open(h) = &self.inner {
            // This handle's latency since its open, then what closed handles kept.
            match h.latency.is_some() {
                true => out.push_str(&format!(
                    ",\"latency\":{{\"enabled\":true,\"get_sample\":{},\"ops\":{}}}",
                    crate::latency::GET_SAMPLE,
                    crate::history::latency_json(&h.history().latency)
                )),
                false => out.push_str(",\"latency\":{\"enabled\":false}"),
            }
            if let Ok(kept) = History::read(h.shared.path()) {
                out.push_str(&format!(",\"history\":{}", kept.to_json()));
            }
        }
        out.push('}');
        out
    }

    /// What the cache's closed handles recorded (see [`crate::history`]); `None` for a
    /// disabled cache, `Err` when the kept file cannot be read.
    pub fn history(&self) -> Option<std::result::Result<History, String>> {
        match &self.inner {
            Inner::Open(h) => Some(History::read(h.shared.path())),
            Inner::Disabled(_) => None,
        }
    }

    /// This handle's latency histograms since its open, by operation name and category
    /// (`*` for batches and the remote tier); empty when recording is off.
    pub fn latency(&self) -> std::collections::BTreeMap<(String, String), Snapshot> {
        match &self.inner {
            Inner::Open(h) => h.history().latency,
            Inner::Disabled(_) => Default::default(),
        }
    }
}
