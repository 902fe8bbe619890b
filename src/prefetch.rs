//! Values read ahead by `prefetch`, served once by the next get of each key.
//!
//! Consistency: `Store::prefetch` fills the buffer while holding the store's write lock,
//! and every write path (put, remove, clear, eviction) forgets the keys it touches while
//! holding that same lock, so a buffered value is always the key's current value.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// A buffered value: its frame's generation (for the recency index) and its bytes.
pub(crate) type Buffered = (u32, Vec<u8>);

pub(crate) struct PrefetchBuffer {
    inner: Mutex<Vec<HashMap<Box<[u8]>, Buffered>>>,
    /// Entries buffered, read without the lock so that gets skip it when there are none.
    len: AtomicUsize,
}

/// What [`PrefetchBuffer::take_if_fits`] found.
pub(crate) enum Take {
    Absent,
    TooLarge(usize),
    Taken(Buffered),
}

impl PrefetchBuffer {
    pub fn new(categories: usize) -> PrefetchBuffer {
        PrefetchBuffer { inner: Mutex::new((0..categories).map(|_| HashMap::new()).collect()), len: AtomicUsize::new(0) }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<HashMap<Box<[u8]>, Buffered>>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn recount(&self, maps: &[HashMap<Box<[u8]>, Buffered>]) {
        self.len.store(maps.iter().map(HashMap::len).sum(), Ordering::Release);
    }

    /// Replaces the whole buffer (a prefetch discards what an earlier one left unread).
    /// Call with the store's write lock held.
    pub fn replace(&self, entries: Vec<(usize, Box<[u8]>, Buffered)>) {
        let mut maps = self.lock();
        for m in maps.iter_mut() {
            m.clear();
        }
        for (ci, key, v) in entries {
            maps[ci].insert(key, v);
        }
        self.recount(&maps);
    }

    /// Removes and returns the value of `key` when it fits in `cap` bytes; a value that
    /// does not fit stays buffered and its length is returned.
    pub fn take_if_fits(&self, ci: usize, key: &[u8], cap: usize) -> Take {
        if self.len.load(Ordering::Acquire) == 0 {
            return Take::Absent;
        }
        let mut maps = self.lock();
        let fits = match maps[ci].get(key) {
            None => return Take::Absent,
            Some((_, v)) => v.len() <= cap,
        };
        if !fits {
            return Take::TooLarge(maps[ci][key].1.len());
        }
        let v = maps[ci].remove(key).expect("present");
        self.len.fetch_sub(1, Ordering::AcqRel);
        Take::Taken(v)
    }

    /// Forgets `key` (it is being written or removed). Call with the write lock held.
    pub fn forget(&self, ci: usize, key: &[u8]) {
        if self.len.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut maps = self.lock();
        if maps[ci].remove(key).is_some() {
            self.len.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Forgets a whole category. Call with the write lock held.
    pub fn forget_category(&self, ci: usize) {
        if self.len.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut maps = self.lock();
        maps[ci].clear();
        self.recount(&maps);
    }
}
