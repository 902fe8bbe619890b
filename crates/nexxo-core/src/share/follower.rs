//! A client's direct reader of the store: a RocksDB secondary instance over the owner's
//! files (memory-mapped tables, and its own replay of the write-ahead log), so that a
//! read that finds its key costs what it costs the owner, with no round trip.
//!
//! Freshness: before each read, if the owner's replacement counter ([`Changes::load`])
//! moved since the last catch-up, the reader catches up first (a write that overwrote or
//! removed an entry is never hidden from a read that starts after it was acknowledged). A
//! key not found here is asked of the owner (it may have been written since the last
//! catch-up). To keep that rare and the replay off the read path, a thread catches the
//! reader up whenever the owner's write counter moved, checking every [`POLL`], but only
//! while this process reads (1.10): a catch-up replays every write of every process
//! still in the owner's write-ahead log, and in processes that only write (a build's
//! write phase) those replays, which no read used, were 9% of the CPU samples and cost a
//! third of the write rate (4 Node processes: 107k sets/s with them, 150-173k without).
//! The first read after a pause finds the reader behind; one that misses catches it up
//! on its own thread after a pause of [`STALE`] or more, else wakes the thread at once
//! ([`Follower::missed`]). Freshness does not depend on it (a miss is asked of the
//! owner; a replacement is caught up before the read), only how many reads go to the
//! owner.
//!
//! Warm table (1.9): as the owner's store does, the reader fills a warm table from the
//! store at open (the last build's entries first), so that a client's reads of what
//! earlier builds wrote are memory reads too. A catch-up after the owner replaced or
//! removed entries empties it (before the read that needed the catch-up goes on), and
//! a fill that read the store before that is refused by the table's epoch.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::changes::Changes;
use crate::config::Config;
use crate::clock::Clock;
use crate::store::Store;

/// How often the background thread looks at the owner's write counter.
const POLL: Duration = Duration::from_millis(20);

/// A reader whose last catch-up is this old when a read misses catches up on the read's
/// thread (see [`Follower::missed`]).
const STALE: Duration = Duration::from_millis(100);

struct Reader {
    store: Arc<Store>,
    changes: Changes,
    /// The replacement count read before the last catch-up.
    seen: AtomicU64,
    /// The write count read before the last catch-up.
    caught: AtomicU64,
    /// Held while a catch-up runs.
    catching: Mutex<()>,
    /// A read came since the background thread last looked.
    asked: AtomicBool,
    /// The background thread was woken and has not looked yet.
    woken: AtomicBool,
    /// When the last catch-up started, in milliseconds since `epoch`.
    caught_at: AtomicU64,
    epoch: Instant,
}

impl Reader {
    /// Catches up; `seen` and `caught` become the counts read before it.
    fn catch_up(&self) -> bool {
        self.caught_at.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        let writes = self.changes.writes();
        let now = self.changes.load();
        if self.store.catch_up(now != self.seen.load(Ordering::SeqCst)).is_err() {
            return false;
        }
        self.seen.store(now, Ordering::SeqCst);
        self.caught.store(writes, Ordering::SeqCst);
        true
    }

    /// The time since the last catch-up started (zero when one started after this call
    /// read the clock).
    fn since_catch_up(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.caught_at.load(Ordering::Relaxed)))
    }

    /// Whether the owner wrote since the last catch-up.
    fn behind(&self) -> bool {
        self.changes.writes() != self.caught.load(Ordering::SeqCst)
    }

    /// Notes a read (one store per catch-up cycle, not one per read).
    fn note_read(&self) {
        if !self.asked.load(Ordering::Relaxed) {
            self.asked.store(true, Ordering::Relaxed);
        }
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
}

impl Follower {
    /// Opens a reader of `dir`; `None` when it cannot (reads then go to the owner).
    pub fn open(dir: &Path, config: &Config, clock: Clock) -> Option<Follower> {
        let changes = Changes::open(dir).ok()?;
        let seen = changes.load();
        // (The write count is read after the open below: a write made during it may be
        // missing from the reader, and the first read's miss then wakes the catch-up.)
        let store = Arc::new(Store::open_follower(dir, config, clock).ok()?);
        let warmer = crate::store::Warmer::start(store.clone());
        let caught = AtomicU64::new(changes.writes());
        let reader = Arc::new(Reader { store, changes, seen: AtomicU64::new(seen), caught, catching: Mutex::new(()), asked: AtomicBool::new(false), woken: AtomicBool::new(false), caught_at: AtomicU64::new(0), epoch: Instant::now() });
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = {
            let (reader, stop) = (reader.clone(), stop.clone());
            std::thread::Builder::new().name("nexxo-follow".into()).spawn(move || follow(&reader, &stop)).ok()
        };
        Some(Follower { warmer, reader: Some(reader), stop, thread })
    }

    fn reader(&self) -> &Reader {
        self.reader.as_ref().expect("the reader lives until drop")
    }

    /// The value if this reader has it; `None` to ask the owner.
    pub fn get(&self, cat: &[u8], key: &[u8]) -> Option<Vec<u8>> {
        let r = self.reader();
        r.note_read();
        if !r.fresh() {
            return None;
        }
        let v = r.store.get(cat, key).ok().flatten();
        if v.is_none() && self.missed() {
            return r.store.get(cat, key).ok().flatten();
        }
        v
    }

    /// Whether this reader has the key, as far as it has caught up: not a read (the
    /// journal's check before a set), so it does not keep the reader catching up.
    pub fn has(&self, cat: &[u8], key: &[u8]) -> bool {
        let r = self.reader();
        r.fresh() && r.store.get(cat, key).ok().flatten().is_some()
    }

    /// Each key's value if this reader has it (`None` entries are asked of the owner).
    pub fn batch_get(&self, keys: &[(&[u8], &[u8])]) -> Option<Vec<Option<Vec<u8>>>> {
        let r = self.reader();
        r.note_read();
        if !r.fresh() {
            return None;
        }
        let mut got: Vec<Option<Vec<u8>>> = r.store.batch_get(keys).into_iter().map(|r| r.ok().flatten()).collect();
        if got.iter().any(Option::is_none) && self.missed() {
            // Caught up: the keys that missed are read again.
            let missing: Vec<(&[u8], &[u8])> = keys.iter().zip(&got).filter(|(_, v)| v.is_none()).map(|(k, _)| *k).collect();
            let mut again = r.store.batch_get(&missing).into_iter().map(|r| r.ok().flatten());
            for v in got.iter_mut().filter(|v| v.is_none()) {
                *v = again.next().flatten();
            }
        }
        Some(got)
    }

    /// A read missed and the owner wrote since the last catch-up. When that catch-up is
    /// older than [`STALE`] (this process did not read for a while: the background thread
    /// left the reader behind), the reader catches up here, or waits for the thread that
    /// does, and the caller reads again (true): the reads after a write phase then go on
    /// here instead of each going to the owner while a replay runs. Otherwise the
    /// background thread is woken (once until it looks) instead of waiting out its poll.
    fn missed(&self) -> bool {
        let r = self.reader();
        if !r.behind() {
            return false;
        }
        if r.since_catch_up() >= STALE {
            let _g = r.catching.lock().unwrap_or_else(|p| p.into_inner());
            // Caught up by another thread meanwhile: read again.
            return r.since_catch_up() < STALE || r.catch_up();
        }
        if !r.woken.swap(true, Ordering::AcqRel) {
            self.stop.1.notify_one();
        }
        false
    }
}

/// The background thread: catches the reader up whenever the owner wrote and this
/// process read since the last look, until stopped.
fn follow(reader: &Reader, stop: &(Mutex<bool>, Condvar)) {
    let mut stopped = stop.0.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        stopped = stop.1.wait_timeout(stopped, POLL).unwrap_or_else(|p| p.into_inner()).0;
        if *stopped {
            return;
        }
        reader.woken.store(false, Ordering::Release);
        if reader.behind() && reader.asked.swap(false, Ordering::Relaxed) {
            drop(stopped);
            if let Ok(_g) = reader.catching.try_lock() {
                reader.catch_up();
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
        drop(self.warmer.take());
        drop(self.reader.take());
    }
}
