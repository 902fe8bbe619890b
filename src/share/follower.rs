//! A client's direct reader of the store: a RocksDB secondary instance over the owner's
//! files (memory-mapped tables, and its own replay of the write-ahead log), so that a
//! read that finds its key costs what it costs the owner, with no round trip.
//!
//! Freshness: before each read, if the owner's change counter ([`Changes`]) moved since
//! the last catch-up, the reader catches up first (a write that overwrote or removed an
//! entry is never hidden from a read that starts after it was acknowledged). A key not
//! found here is asked of the owner (it may have been written since the last catch-up);
//! misses also catch up, at most every [`CATCH_UP_EVERY`], so that keys written by other
//! processes become local reads.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::changes::Changes;
use crate::config::Config;
use crate::policy::Clock;
use crate::store::Store;

const CATCH_UP_EVERY: Duration = Duration::from_millis(100);

pub(crate) struct Follower {
    // Closed in `drop` before its scratch directory is removed.
    store: std::mem::ManuallyDrop<Store>,
    changes: Changes,
    /// The change count read before the last catch-up.
    seen: AtomicU64,
    /// When the last catch-up ran; held while one runs.
    last: Mutex<Instant>,
    scratch: PathBuf,
}

impl Follower {
    /// Opens a reader of `dir`; `None` when it cannot (reads then go to the owner).
    pub fn open(dir: &Path, config: &Config, clock: Clock) -> Option<Follower> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let changes = Changes::open(dir).ok()?;
        let scratch = std::env::temp_dir().join(format!("nexxo-follower-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
        crate::store::create_dir(&scratch, 0o700).ok()?;
        let seen = changes.load();
        match Store::open_follower(dir, &scratch, config, clock) {
            Ok(store) => Some(Follower { store: std::mem::ManuallyDrop::new(store), changes, seen: AtomicU64::new(seen), last: Mutex::new(Instant::now()), scratch }),
            Err(_) => {
                let _ = std::fs::remove_dir_all(&scratch);
                None
            }
        }
    }

    /// Catches up when the owner replaced or removed entries since the last catch-up.
    /// False when that failed: the caller then asks the owner.
    fn fresh(&self) -> bool {
        let now = self.changes.load();
        if now == self.seen.load(Ordering::SeqCst) {
            return true;
        }
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.changes.load();
        if now != self.seen.load(Ordering::SeqCst) {
            if self.store.catch_up().is_err() {
                return false;
            }
            self.seen.store(now, Ordering::SeqCst);
            *last = Instant::now();
        }
        true
    }

    /// After a miss: catch up if the last catch-up is old, unless another thread is at it.
    fn after_miss(&self) {
        let Ok(mut last) = self.last.try_lock() else { return };
        if last.elapsed() >= CATCH_UP_EVERY {
            let now = self.changes.load();
            if self.store.catch_up().is_ok() {
                self.seen.store(now, Ordering::SeqCst);
            }
            *last = Instant::now();
        }
    }

    /// The value if this reader has it; `None` to ask the owner.
    pub fn get(&self, cat: &[u8], key: &[u8]) -> Option<Vec<u8>> {
        if !self.fresh() {
            return None;
        }
        match self.store.get(cat, key) {
            Ok(Some(v)) => Some(v),
            _ => {
                self.after_miss();
                None
            }
        }
    }

    /// Each key's value if this reader has it (`None` entries are asked of the owner).
    pub fn batch_get(&self, keys: &[(&[u8], &[u8])]) -> Option<Vec<Option<Vec<u8>>>> {
        if !self.fresh() {
            return None;
        }
        let got: Vec<Option<Vec<u8>>> = self.store.batch_get(keys).into_iter().map(|r| r.ok().flatten()).collect();
        if got.iter().any(Option::is_none) {
            self.after_miss();
        }
        Some(got)
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        // SAFETY: dropped once, here, and never used after.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.store) };
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}
