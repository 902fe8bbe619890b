//! The warm table: the frames a build is about to read, in memory, so that a `get`
//! becomes a hash lookup and a decode instead of a RocksDB point lookup.
//!
//! Builds repeat themselves: the next build reads nearly every key the last one wrote or
//! read. A writable store that serves the cache fills the table at open, on a thread of
//! its own, up to a bound of memory: a store that fits is scanned whole (a scan costs a
//! fraction of a point lookup per entry, and runs on the other core while the build
//! starts); a larger one gives its newest entries, the last build's, found newest first
//! in the recency index and read with multi-gets. The frames a process writes go in as
//! they are written, within the same bound.
//!
//! Never a stale value: the table only ever holds the frame a key has in the store.
//! - A write that overwrites or removes anything (set of an existing key, delete, clear,
//!   eviction, a dropped damaged frame) empties the table before it is acknowledged,
//!   and bumps its epoch. A write of new keys only cannot make an entry stale.
//! - The fill thread reads the epoch before it opens its iterator, and inserts only while
//!   the epoch is unchanged (checked under the table's lock), so a frame it read before
//!   an overwrite is never inserted after it.
//! - Written frames are inserted by the writer, under the writers' lock, after RocksDB
//!   took the write.
//!
//! Frames are kept encoded (compressed, checksummed): reads decode and verify them as
//! they do frames from RocksDB.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use super::layout::{decode_size, lru_prefix, parse_lru_key};
use super::Store;

/// Bytes one entry costs besides its key and frame: two allocations and a map slot.
const ENTRY_OVERHEAD: usize = 64;
/// Entries the fill thread inserts per lock taken.
const FILL_CHUNK: usize = 256;

pub(crate) struct WarmTable {
    inner: RwLock<Inner>,
    /// Most bytes held (keys, frames and [`ENTRY_OVERHEAD`] each); 0 disables the table.
    budget: usize,
}

struct Inner {
    epoch: u64,
    cats: Vec<HashMap<Box<[u8]>, Box<[u8]>>>,
    bytes: usize,
}

impl WarmTable {
    pub(super) fn new(categories: usize, budget: usize) -> WarmTable {
        WarmTable { inner: RwLock::new(Inner { epoch: 0, cats: (0..categories).map(|_| HashMap::new()).collect(), bytes: 0 }), budget }
    }

    pub(super) fn enabled(&self) -> bool {
        self.budget > 0
    }

    /// `f` of the frame held for `key` in category `ci`, if one is held.
    #[inline]
    pub(super) fn with<R>(&self, ci: usize, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        if self.budget == 0 {
            return None;
        }
        let t = self.inner.read().unwrap_or_else(|p| p.into_inner());
        t.cats[ci].get(key).map(|frame| f(frame))
    }

    /// Forgets everything: called after a write that overwrote or removed entries.
    pub(super) fn clear(&self) {
        if self.budget == 0 {
            return;
        }
        let mut t = self.inner.write().unwrap_or_else(|p| p.into_inner());
        t.epoch += 1;
        if t.bytes > 0 {
            t.cats.iter_mut().for_each(HashMap::clear);
            t.bytes = 0;
        }
    }

    fn epoch(&self) -> u64 {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).epoch
    }

    /// Inserts frames (category, key, frame) while the budget allows; with `epoch`, only
    /// if the table's epoch is still that one. Returns false once nothing more fits or
    /// the epoch moved.
    pub(super) fn insert<'a>(&self, epoch: Option<u64>, frames: impl IntoIterator<Item = (usize, &'a [u8], &'a [u8])>) -> bool {
        if self.budget == 0 {
            return false;
        }
        let mut t = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if epoch.is_some_and(|e| e != t.epoch) {
            return false;
        }
        for (ci, key, frame) in frames {
            let cost = key.len() + frame.len() + ENTRY_OVERHEAD;
            let old = t.cats[ci].get(key).map_or(0, |f| key.len() + f.len() + ENTRY_OVERHEAD);
            if t.bytes - old + cost > self.budget {
                // Full: an older frame of this key must not outlive the new one.
                if old > 0 {
                    t.cats[ci].remove(key);
                    t.bytes -= old;
                }
                return false;
            }
            t.cats[ci].insert(key.into(), frame.into());
            t.bytes = t.bytes - old + cost;
        }
        true
    }
}

/// The thread that fills a store's warm table at open; stopped and joined on drop,
/// before the store is closed.
pub(crate) struct Warmer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Warmer {
    /// Starts filling `store`'s table, when it has one.
    pub(crate) fn start(store: Arc<Store>) -> Option<Warmer> {
        if !store.warm.enabled() {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new().name("nexxo-warm".into()).spawn(move || store.fill_warm_table(&s)).ok()?;
        Some(Warmer { stop, thread: Some(thread) })
    }
}

impl Drop for Warmer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Store {
    /// Fills the warm table until it is full, the epoch moves (a write replaced
    /// something) or `stop` is set. Errors end the fill: the table is an optimisation,
    /// and reads find what it lacks in RocksDB.
    fn fill_warm_table(&self, stop: &AtomicBool) {
        let epoch = self.warm.epoch();
        let (stored, entries) = {
            let st = self.lock_state();
            st.counters.iter().fold((0u64, 0u64), |(b, n), c| (b + c.stored_bytes, n + c.entries))
        };
        if stored.saturating_add(entries.saturating_mul(ENTRY_OVERHEAD as u64)) <= self.warm.budget as u64 {
            self.scan_into_warm(epoch, stop);
        } else {
            self.newest_into_warm(epoch, stop);
        }
    }

    /// The whole store, category by category, in key order.
    fn scan_into_warm(&self, epoch: u64, stop: &AtomicBool) {
        for ci in 0..self.cats.len() {
            let mut it = self.db.raw_iterator_cf(self.cf(&self.cats[ci].cf_name));
            it.seek_to_first();
            let mut chunk: Vec<(Box<[u8]>, Box<[u8]>)> = Vec::with_capacity(FILL_CHUNK);
            loop {
                if let (Some(k), Some(v)) = (it.key(), it.value()) {
                    chunk.push((k.into(), v.into()));
                    it.next();
                    if chunk.len() < FILL_CHUNK {
                        continue;
                    }
                }
                if stop.load(Ordering::Relaxed) || !self.warm.insert(Some(epoch), chunk.iter().map(|(k, f)| (ci, &k[..], &f[..]))) {
                    return;
                }
                if !it.valid() {
                    break;
                }
                chunk.clear();
            }
            if it.status().is_err() {
                return;
            }
        }
    }

    /// The newest entries across categories, up to the budget: each category's recency
    /// index read backwards (newest generation first) for keys and stored sizes, the
    /// candidates chosen by generation, their frames read in key order with one
    /// multi-get per category and chunk.
    fn newest_into_warm(&self, epoch: u64, stop: &AtomicBool) {
        let budget = self.warm.budget;
        // (generation, category, key, bytes in the table)
        let mut picked: Vec<(u32, usize, Box<[u8]>, usize)> = Vec::new();
        for ci in 0..self.cats.len() {
            let p = lru_prefix(&self.cats[ci].name);
            let mut it = self.index_iter(&p, &p);
            it.seek_to_last();
            let mut bytes = 0usize;
            while let (Some(k), Some(v)) = (it.key(), it.value()) {
                let Some((generation, key)) = parse_lru_key(&p, k) else { break };
                // Stored bytes are the key's and the frame's: what the table holds of it.
                let cost = decode_size(v).map_or(key.len(), |s| s.stored as usize) + ENTRY_OVERHEAD;
                bytes += cost;
                if bytes > budget || stop.load(Ordering::Relaxed) {
                    break;
                }
                picked.push((generation, ci, key.into(), cost));
                it.prev();
            }
            if it.status().is_err() {
                return;
            }
        }
        picked.sort_by(|a, b| b.0.cmp(&a.0));
        let mut total = 0usize;
        picked.retain(|e| {
            total += e.3;
            total <= budget
        });
        // Read in key order: the tables are sorted by key, so the frames come off the
        // memory map in runs, not one random page at a time.
        picked.sort_by(|a, b| (a.1, &a.2).cmp(&(b.1, &b.2)));
        for chunk in picked.chunks(FILL_CHUNK) {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let mut frames: Vec<(usize, &[u8], Vec<u8>)> = Vec::with_capacity(chunk.len());
            for ci in 0..self.cats.len() {
                let keys: Vec<&[u8]> = chunk.iter().filter(|e| e.1 == ci).map(|e| &e.2[..]).collect();
                if keys.is_empty() {
                    continue;
                }
                let cf = self.cf(&self.cats[ci].cf_name);
                for (key, r) in keys.iter().zip(self.db.batched_multi_get_cf_opt(cf, keys.iter(), true, &self.read_opts)) {
                    match r {
                        Ok(Some(frame)) => frames.push((ci, key, frame.to_vec())),
                        Ok(None) => {}
                        Err(_) => return,
                    }
                }
            }
            if !self.warm.insert(Some(epoch), frames.iter().map(|(ci, k, f)| (*ci, *k, &f[..]))) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_epoch_and_clear() {
        let t = WarmTable::new(2, 3 * (1 + 10 + ENTRY_OVERHEAD));
        let f = [7u8; 10];
        assert!(t.insert(None, [(0, &b"a"[..], &f[..]), (1, b"b", &f)]));
        assert_eq!(t.with(0, b"a", |v| v.len()), Some(10));
        assert_eq!(t.with(1, b"a", |v| v.len()), None, "categories are separate");
        // Replacing a key costs nothing more; a third key fits, a fourth does not.
        assert!(t.insert(None, [(0, &b"a"[..], &[1u8; 10][..])]));
        assert_eq!(t.with(0, b"a", |v| v[0]), Some(1));
        assert!(t.insert(None, [(0, &b"c"[..], &f[..])]));
        assert!(!t.insert(None, [(0, &b"d"[..], &f[..])]));
        assert_eq!(t.with(0, b"d", |_| ()), None);
        // A larger frame for a held key that does not fit removes the old one.
        assert!(!t.insert(None, [(0, &b"a"[..], &[2u8; 100][..])]));
        assert_eq!(t.with(0, b"a", |_| ()), None);
        // An insert made for an older epoch is refused.
        let e = t.epoch();
        t.clear();
        assert_eq!(t.with(1, b"b", |_| ()), None);
        assert!(!t.insert(Some(e), [(0, &b"x"[..], &f[..])]));
        assert!(t.insert(Some(t.epoch()), [(0, &b"x"[..], &f[..])]));
        // A table with no budget holds nothing.
        let off = WarmTable::new(1, 0);
        assert!(!off.insert(None, [(0, &b"a"[..], &f[..])]));
        assert_eq!(off.with(0, b"a", |_| ()), None);
    }
}
