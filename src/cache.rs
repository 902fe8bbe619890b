//! The public handle: an open store with its background evictor, or a disabled cache
//! that a build can use as if nothing had failed.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::policy::{system_clock, Background, Clock, PolicyReport};
use crate::remote::{Remote, RemoteStats};
use crate::stats::Stats;
use crate::store::{check_key, check_value, PackedRead, Store};

/// A cache handle. Every method takes `&self` and may be called from many threads.
pub struct Cache {
    inner: Inner,
}

enum Inner {
    Open {
        // Dropped first: queued uploads drain (within the close wait), then the evictor
        // stops, then the store closes.
        remote: Option<Remote>,
        _background: Background,
        store: Arc<Store>,
    },
    Disabled(Disabled),
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
    /// Opens the cache at `path` (created with its parents when missing).
    pub fn open(path: impl AsRef<Path>, config: &Config) -> Result<Cache> {
        Self::open_with_clock(path, config, system_clock())
    }

    /// Like [`Cache::open`] with a clock for `max_age` (seconds since the epoch).
    pub fn open_with_clock(path: impl AsRef<Path>, config: &Config, clock: Clock) -> Result<Cache> {
        match Store::open(path.as_ref(), config, clock) {
            Ok(store) => {
                let remote = Remote::start(&config.remote, config.compression)?;
                let store = Arc::new(store);
                let background = Background::start(store.clone());
                Ok(Cache { inner: Inner::Open { remote, _background: background, store } })
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
            Inner::Open { .. } => None,
        }
    }

    /// The open store, `None` for a disabled cache.
    pub fn store(&self) -> Option<&Store> {
        match &self.inner {
            Inner::Open { store, .. } => Some(store),
            Inner::Disabled(_) => None,
        }
    }

    /// The remote tier, when remotes are configured and not off.
    pub fn remote(&self) -> Option<&Remote> {
        match &self.inner {
            Inner::Open { remote, .. } => remote.as_ref(),
            Inner::Disabled(_) => None,
        }
    }

    /// After a local miss: the value from a remote, written back locally when the store
    /// is writable and the key is still empty. A failed backfill is not an error: the
    /// value was verified and is returned all the same.
    fn from_remote(store: &Store, remote: &Option<Remote>, category: &[u8], key: &[u8]) -> Option<Vec<u8>> {
        let remote = remote.as_ref()?;
        let value = remote.fetch(category, key)?;
        if !store.is_read_only() && matches!(store.fill(category, key, &value), Ok(true)) {
            remote.note_backfill();
        }
        Some(value)
    }

    /// The remote values of `misses` (indices into `keys`), fetched by up to
    /// `REMOTE_FETCHERS` threads at once: a remote hit costs a network round trip, and a
    /// cold cache warming from a remote is bound by those, not by CPU.
    fn fetch_many(store: &Store, remote: &Option<Remote>, keys: &[(&[u8], &[u8])], misses: &[usize]) -> Vec<(usize, Option<Vec<u8>>)> {
        const REMOTE_FETCHERS: usize = 8;
        let threads = misses.len().min(REMOTE_FETCHERS);
        if threads <= 1 {
            return misses.iter().map(|&i| (i, Self::from_remote(store, remote, keys[i].0, keys[i].1))).collect();
        }
        let next = AtomicU64::new(0);
        let worker = || {
            let mut got = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(&i) = misses.get(n) else { break got };
                got.push((i, Self::from_remote(store, remote, keys[i].0, keys[i].1)));
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
            Inner::Open { store, remote, .. } => match store.get(category, key)? {
                Some(v) => Ok(Some(v)),
                None => Ok(Self::from_remote(store, remote, category, key)),
            },
            Inner::Disabled(d) => d.check(category, key).and_then(|_| d.miss()),
        }
    }

    pub fn get_into(&self, category: &[u8], key: &[u8], buf: &mut [u8]) -> Result<Option<usize>> {
        match &self.inner {
            Inner::Open { store, remote, .. } => match store.get_into(category, key, buf)? {
                Some(n) => Ok(Some(n)),
                None => match Self::from_remote(store, remote, category, key) {
                    // Backfilled (when writable): a retry with a larger buffer is a local hit.
                    Some(v) if v.len() > buf.len() => Err(Error::BufferTooSmall(v.len())),
                    Some(v) => {
                        buf[..v.len()].copy_from_slice(&v);
                        Ok(Some(v.len()))
                    }
                    None => Ok(None),
                },
            },
            Inner::Disabled(d) => d.check(category, key).and_then(|_| d.miss()).map(|_| None),
        }
    }

    /// Stores a value; with a read-write remote it is also queued for upload.
    pub fn set(&self, category: &[u8], key: &[u8], value: &[u8]) -> Result<()> {
        match &self.inner {
            Inner::Open { store, remote, .. } => {
                store.set(category, key, value)?;
                if let Some(r) = remote {
                    r.upload(category, key, value);
                }
                Ok(())
            }
            Inner::Disabled(d) => d.check(category, key).and_then(|_| check_value(value)),
        }
    }

    pub fn delete(&self, category: &[u8], key: &[u8]) -> Result<()> {
        match &self.inner {
            Inner::Open { store, .. } => store.delete(category, key),
            Inner::Disabled(d) => d.check(category, key),
        }
    }

    pub fn batch_set(&self, entries: &[(&[u8], &[u8], &[u8])]) -> Result<()> {
        match &self.inner {
            Inner::Open { store, remote, .. } => {
                store.batch_set(entries)?;
                if let Some(r) = remote {
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
            Inner::Open { store, remote, .. } => {
                let mut out = store.batch_get(keys);
                if remote.as_ref().is_some_and(Remote::reachable) {
                    let misses: Vec<usize> = (0..keys.len()).filter(|&i| matches!(out[i], Ok(None))).collect();
                    for (i, v) in Self::fetch_many(store, remote, keys, &misses) {
                        out[i] = Ok(v);
                    }
                }
                out
            }
            Inner::Disabled(d) => keys.iter().map(|(c, k)| d.check(c, k).and_then(|_| d.miss())).collect(),
        }
    }

    /// Like [`Cache::batch_get`], with the answer laid out in `out` as
    /// [`Store::batch_get_into`] does: for each key, `gap` bytes left for the caller, then
    /// its value if found. Without a reachable remote the values are decoded straight
    /// into `out`; with one, misses are fetched first and everything is copied in.
    pub fn batch_get_into(&self, keys: &[(&[u8], &[u8])], out: &mut [u8], gap: usize) -> PackedRead {
        if let Inner::Open { store, remote, .. } = &self.inner {
            if !remote.as_ref().is_some_and(Remote::reachable) {
                return store.batch_get_into(keys, out, gap);
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
            Inner::Open { store, .. } => store.stats(),
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
            Inner::Open { store, .. } => store.category_stats(category),
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
            Inner::Open { store, .. } => store.category_names().map(str::to_owned).collect(),
            Inner::Disabled(d) => d.categories.clone(),
        }
    }

    pub fn enforce_policy(&self) -> Result<PolicyReport> {
        match &self.inner {
            Inner::Open { store, .. } => store.enforce_policy(),
            Inner::Disabled(_) => Ok(PolicyReport::default()),
        }
    }

    pub fn compact(&self, category: Option<&[u8]>) -> Result<()> {
        match &self.inner {
            Inner::Open { store, .. } => store.compact(category),
            Inner::Disabled(d) => category.map_or(Ok(()), |c| d.check_categories(&[c])),
        }
    }

    pub fn clear(&self, categories: &[&[u8]]) -> Result<()> {
        match &self.inner {
            Inner::Open { store, .. } => store.clear(categories),
            Inner::Disabled(d) => d.check_categories(categories),
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
            Inner::Open { store, .. } => store.flush(),
            Inner::Disabled(_) => Ok(()),
        }
    }

    /// Totals and every category as one JSON object:
    /// `{"version":..,"path":..,"totals":{..},"categories":{"parse":{..},..}}`.
    /// `disabled_reason` is the C status name (`"NEXXO_LOCKED"`), empty when enabled.
    pub fn stats_json(&self) -> String {
        let totals = self.stats();
        let reason = totals.disabled.as_ref().map_or("", Error::code);
        let mut out = format!("{{\"version\":\"{}\",", env!("CARGO_PKG_VERSION"));
        if let Some(store) = self.store() {
            out.push_str(&format!("\"path\":{},", json_string(&store.path().to_string_lossy())));
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
        if let Some(r) = self.remote_stats() {
            out.push_str(&format!(",\"remote\":{}", r.to_json()));
        }
        out.push('}');
        out
    }
}

/// A JSON string literal.
pub(crate) fn json_string(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}
