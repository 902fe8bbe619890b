//! A client's direct reader of the store: a RocksDB secondary instance over the owner's
//! files (memory-mapped tables, and its own replay of the write-ahead log), so that a
//! read that finds its key costs what it costs the owner, with no round trip.
//!
//! Freshness: before each read, if the owner's replacement counter ([`Changes::load`])
//! moved since the last catch-up, the reader catches up first (a write that overwrote or
//! removed an entry is never hidden from a read that starts after it was acknowledged). A
//! key not found here is asked of the owner (it may have been written since the last
//! catch-up). To keep that rare and the replay off the read path, a thread catches the
//! reader up whenever the owner's write counter moved, checking every [`POLL`].
//!
//! Warm table (1.9): as the owner's store does, the reader fills a warm table from the
//! store at open (the last build's entries first), so that a client's reads of what
//! earlier builds wrote are memory reads too. A catch-up after the owner replaced or
//! removed entries empties it (before the read that needed the catch-up goes on), and
//! a fill that read the store before that is refused by the table's epoch.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::changes::Changes;
use crate::config::Config;
use crate::clock::Clock;
use crate::store::Store;

/// How often the background thread looks at the owner's write counter.
const POLL: Duration = Duration::from_millis(20);

struct Reader {
    store: Arc<Store>,
    changes: Changes,
    /// The replacement count read before the last catch-up.
    seen: AtomicU64,
    /// Held while a catch-up runs.
    catching: Mutex<()>,
}

impl Reader {
    /// Catches up; `seen` becomes the replacement count read before it.
    fn catch_up(&self) -> bool {
        let now = self.changes.load();
        if self.store.catch_up(now != self.seen.load(Ordering::SeqCst)).is_err() {
            return false;
        }
        self.seen.store(now, Ordering::SeqCst);
        true
    }

    /// Catches up when the owner replaced or removed entries since the last catch-up.
    /// False when that failed: the caller then asks the owner.
    fn fresh(&self) -> bool {
        if self.changes.load() == self.seen.load(Ordering::SeqCst) {
            return true;
        }
        let _g = self.catching.lock().unwrap_or_else(|p| p.into_inner());
        self.changes.load() == self.seen.load(Ordering::SeqCst) || self.catch_up()
    }
}

pub(crate) struct Follower {
    /// Fills the reader's warm table from the store (the last build's entries first);
    /// stopped before the reader closes.
    warmer: Option<crate::store::Warmer>,
    reader: Option<Arc<Reader>>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
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
        let store = match Store::open_follower(dir, &scratch, config, clock) {
            Ok(s) => s,
            Err(_) => {
                let _ = std::fs::remove_dir_all(&scratch);
                return None;
            }
        };
        let store = Arc::new(store);
        let warmer = crate::store::Warmer::start(store.clone());
        let reader = Arc::new(Reader { store, changes, seen: AtomicU64::new(seen), catching: Mutex::new(()) });
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = {
            let (reader, stop) = (reader.clone(), stop.clone());
            std::thread::Builder::new().name("nexxo-follow".into()).spawn(move || follow(&reader, &stop)).ok()
        };
        Some(Follower { warmer, reader: Some(reader), stop, thread, scratch })
    }

    fn reader(&self) -> &Reader {
        self.reader.as_ref().expect("the reader lives until drop")
    }

    /// The value if this reader has it; `None` to ask the owner.
    pub fn get(&self, cat: &[u8], key: &[u8]) -> Option<Vec<u8>> {
        let r = self.reader();
        if !r.fresh() {
            return None;
        }
        r.store.get(cat, key).ok().flatten()
    }

    /// Each key's value if this reader has it (`None` entries are asked of the owner).
    pub fn batch_get(&self, keys: &[(&[u8], &[u8])]) -> Option<Vec<Option<Vec<u8>>>> {
        let r = self.reader();
        if !r.fresh() {
            return None;
        }
        Some(r.store.batch_get(keys).into_iter().map(|r| r.ok().flatten()).collect())
    }
}

/// The background thread: catches the reader up whenever the owner wrote, until stopped.
fn follow(reader: &Reader, stop: &(Mutex<bool>, Condvar)) {
    let mut writes = reader.changes.writes();
    let mut stopped = stop.0.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        stopped = stop.1.wait_timeout(stopped, POLL).unwrap_or_else(|p| p.into_inner()).0;
        if *stopped {
            return;
        }
        let now = reader.changes.writes();
        if now != writes {
            drop(stopped);
            if let Ok(_g) = reader.catching.try_lock() {
                if reader.catch_up() {
                    writes = now;
                }
            }
            stopped = stop.0.lock().unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        *self.stop.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.stop.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // The store closes before its scratch directory goes.
        drop(self.warmer.take());
        drop(self.reader.take());
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}
