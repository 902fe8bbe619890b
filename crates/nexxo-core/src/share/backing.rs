//! The store as the process that owns a cache holds it: opened for writing at once, or
//! *on demand*, with a read-only instance answering reads until then.
//!
//! RocksDB's writable open costs about 10 ms here (most of it writing and re-parsing its
//! OPTIONS file), its read-only open about 2. A build's second run mostly reads, and a
//! compiler process in a `make -j` (the ccache shape) may read one key and exit. So an
//! elected owner that finds the store closed cleanly opens a read-only instance and
//! serves the other processes at once; the store opens for writing when something needs
//! it: a write, a delete, maintenance, a read the read-only instance could not answer, or
//! promotions its reads queued, at close.
//!
//! Why the read-only instance is never stale: it is opened under the election lock after
//! finding that no process serves the store, that the store was closed cleanly and that no
//! process holds RocksDB's lock; from then on this process serves the store (other
//! processes connect to it), and every request that writes goes through
//! [`Backing::writable`], which publishes the writable store before the first write.
//! Reads look for the writable store first, so a read that starts after a write was
//! acknowledged finds it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use super::changes::Changes;
use super::journal::Intake;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::evict::Background;
use crate::stats::Stats;
use crate::store::{Store, Warmer};

/// What runs beside a writable store: its evictor and its warm-table filler.
struct Workers {
    _background: Option<Background>,
    /// Declared after the evictor: both stop before the store is dropped.
    _warmer: Option<Warmer>,
}

pub(crate) struct Backing {
    dir: PathBuf,
    config: Config,
    clock: Clock,
    /// Declared before `store`: stopped before it is dropped.
    workers: Mutex<Option<Workers>>,
    /// The store once open for writing (or as opened, when opened at once).
    store: OnceLock<Arc<Store>>,
    /// Until `store` is set: the read-only instance answering reads, and the thread
    /// filling its warm table (first: stopped before the instance closes).
    reader: RwLock<Option<(Option<Warmer>, Arc<Store>)>>,
    /// Held while the store opens for writing.
    opening: Mutex<()>,
    /// Requests the read-only instance answered.
    reads: AtomicU64,
    /// Takes the clients' journals in, when other processes are served.
    intake: Option<Intake>,
}

impl Backing {
    /// A store opened already (writable, or read-only for a private read-only handle).
    /// `changes` is set when other processes are served.
    pub fn opened(dir: &Path, config: &Config, clock: &Clock, store: Store, changes: Option<Changes>, intake: Option<Intake>) -> Backing {
        let b = Backing::new(dir, config, clock, None, intake);
        b.publish(store, changes);
        b
    }

    /// A store to open for writing on demand; `reader` answers reads until then.
    pub fn on_demand(dir: &Path, config: &Config, clock: &Clock, reader: Store, intake: Intake) -> Backing {
        let reader = Arc::new(reader);
        Backing::new(dir, config, clock, Some((Warmer::start(reader.clone()), reader)), Some(intake))
    }

    fn new(dir: &Path, config: &Config, clock: &Clock, reader: Option<(Option<Warmer>, Arc<Store>)>, intake: Option<Intake>) -> Backing {
        Backing {
            dir: dir.to_owned(),
            config: config.clone(),
            clock: clock.clone(),
            workers: Mutex::new(None),
            store: OnceLock::new(),
            reader: RwLock::new(reader),
            opening: Mutex::new(()),
            reads: AtomicU64::new(0),
            intake,
        }
    }

    /// Puts `store` in place with its evictor (when it takes writes) and its warm-table
    /// filler; the reader's queued promotions move to it and the reader is closed.
    fn publish(&self, mut store: Store, changes: Option<Changes>) {
        // The read-only instance's warm table goes to the store that replaces it, its fill
        // stopped first (the reads it answers meanwhile go to its RocksDB instance): a
        // build that writes a changed file's entry after reading others goes on reading
        // from memory, and the new fill skips what it holds.
        let taken = self.reader.write().unwrap_or_else(|p| p.into_inner()).as_mut().map(|(w, r)| (w.take(), r.clone()));
        if let Some((warmer, r)) = taken {
            drop(warmer); // joins the fill thread, outside the reader's lock
            store.adopt_warm(&r);
        }
        if let Some(changes) = changes {
            let _ = store.on_write.set(Box::new(move |replaced| changes.note_write(replaced)));
        }
        let store = Arc::new(store);
        let background = (!store.is_read_only()).then(|| Background::start(store.clone()));
        let warmer = Warmer::start(store.clone());
        *self.workers.lock().unwrap_or_else(|p| p.into_inner()) = Some(Workers { _background: background, _warmer: warmer });
        let _ = self.store.set(store.clone());
        // Readers that still hold the reader finish first; later ones find `store`.
        if let Some((warmer, r)) = self.reader.write().unwrap_or_else(|p| p.into_inner()).take() {
            drop(warmer);
            store.queue_touches(r.take_touches());
        }
    }

    /// The store, opened for writing now if it was not (the one call that may open it),
    /// with what clients journaled taken in first: every request that writes gets the
    /// store here, so it is applied after every set acknowledged before it. A take-in that
    /// fails leaves the records in their journals for the next one (the request goes on:
    /// a delete or a clear may be what frees the space the take-in lacked).
    pub fn writable(&self) -> Result<&Store> {
        let s = self.open_writable()?;
        if self.moved() {
            let _ = self.take_in(s);
        }
        Ok(s)
    }

    /// Whether clients journaled sets since the last take-in.
    pub fn moved(&self) -> bool {
        self.intake.as_ref().is_some_and(Intake::moved)
    }

    fn take_in(&self, s: &Store) -> Result<()> {
        match &self.intake {
            Some(i) => i.take_in(s),
            None => Ok(()),
        }
    }

    /// Takes the journals in when they moved (opening the store for writing for it).
    pub fn fresh(&self) -> Result<()> {
        if self.moved() {
            self.writable()?;
        }
        Ok(())
    }

    /// Applies and removes the journals of client processes that are gone (see
    /// `journal.rs`); opens the store for writing only when there are some.
    pub fn reap(&self) -> Result<()> {
        match &self.intake {
            Some(i) if i.any() => i.reap(|| self.open_writable()),
            _ => Ok(()),
        }
    }

    fn open_writable(&self) -> Result<&Store> {
        if let Some(s) = self.store.get() {
            return Ok(s);
        }
        let _g = self.opening.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = self.store.get() {
            return Ok(s);
        }
        let store = Store::open(&self.dir, &self.config, self.clock.clone())?;
        let changes = Changes::open(&self.dir)?;
        self.publish(store, Some(changes));
        Ok(self.store.get().expect("published above"))
    }

    /// The store if it is open (never opens it).
    pub fn store_if_open(&self) -> Option<&Store> {
        self.store.get().map(|s| &**s)
    }

    /// Runs a read on the store, or on the read-only instance until the store is open.
    /// An I/O error or damage met by the read-only instance is not answered: the read
    /// goes to the store, opened for it (which recovers what it can). The caller's
    /// errors (a bad key, an unknown category, a small buffer) are answers.
    pub fn read<T>(&self, read: impl Fn(&Store) -> Result<T>) -> Result<T> {
        if let Some(s) = self.store.get() {
            return read(s);
        }
        {
            let g = self.reader.read().unwrap_or_else(|p| p.into_inner());
            if let Some((_, r)) = g.as_ref() {
                match read(r) {
                    Err(Error::Io(_) | Error::Corruption(_)) => {}
                    answer => {
                        self.reads.fetch_add(1, Ordering::Relaxed);
                        return answer;
                    }
                }
            }
        }
        read(self.writable()?)
    }

    /// [`Backing::read`] of one key: when it finds nothing and clients journaled sets
    /// since the last take-in, they are taken in and the key is read again.
    pub fn read_key<T>(&self, read: impl Fn(&Store) -> Result<Option<T>>) -> Result<Option<T>> {
        match self.read(&read)? {
            None if self.moved() => {
                self.writable()?;
                self.read(read)
            }
            found => Ok(found),
        }
    }

    /// [`Store::batch_get`], as [`Backing::read`] does reads (and as
    /// [`Backing::read_key`] when a key is not found).
    pub fn batch_get(&self, keys: &[(&[u8], &[u8])]) -> Vec<Result<Option<Vec<u8>>>> {
        let got = self.batch_get_once(keys);
        if got.iter().any(|r| matches!(r, Ok(None))) && self.moved() && self.writable().is_ok() {
            return self.batch_get_once(keys);
        }
        got
    }

    fn batch_get_once(&self, keys: &[(&[u8], &[u8])]) -> Vec<Result<Option<Vec<u8>>>> {
        let got = self.read(|s| {
            let got = s.batch_get(keys);
            // A key the read-only instance failed on: the whole batch goes to the store.
            match got.iter().find_map(|r| r.as_ref().err().filter(|e| matches!(e, Error::Io(_) | Error::Corruption(_)))) {
                Some(e) if self.store.get().is_none() => Err(e.clone()),
                _ => Ok(got),
            }
        });
        got.unwrap_or_else(|e| keys.iter().map(|_| Err(e.clone())).collect())
    }

    /// The store's statistics. The read-only instance's are exact: nothing has written
    /// the store since it opened. It says `read_only` false: the cache is writable.
    pub fn stats(&self) -> Result<Stats> {
        self.fresh()?;
        let on_reader = self.store.get().is_none();
        self.read(|s| Ok(s.stats())).map(|s| if on_reader { Stats { read_only: false, ..s } } else { s })
    }

    pub fn category_stats(&self, cat: &[u8]) -> Result<Stats> {
        self.fresh()?;
        let on_reader = self.store.get().is_none();
        self.read(|s| s.category_stats(cat)).map(|s| if on_reader { Stats { read_only: false, ..s } } else { s })
    }

    pub fn category_names(&self) -> Vec<String> {
        if let Some(s) = self.store.get() {
            return s.category_names().map(str::to_owned).collect();
        }
        match &*self.reader.read().unwrap_or_else(|p| p.into_inner()) {
            Some((_, r)) => r.category_names().map(str::to_owned).collect(),
            None => self.store.get().map(|s| s.category_names().map(str::to_owned).collect()).unwrap_or_default(),
        }
    }

    /// Read-only only when opened so (a store opened on demand opens writable).
    pub fn is_read_only(&self) -> bool {
        self.store.get().is_some_and(|s| s.is_read_only())
    }

    pub fn path(&self) -> &Path {
        self.store.get().map_or(&self.dir, |s| s.path())
    }

    /// Requests the read-only instance answered.
    pub fn interim_reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Entries the read-only instance's warm table holds (0 without one); for tests.
    pub fn interim_warm_entries(&self) -> usize {
        self.reader.read().unwrap_or_else(|p| p.into_inner()).as_ref().map_or(0, |(_, r)| r.debug_warm_entries())
    }

    /// Before closing: promotions the read-only instance queued are applied (opening the
    /// store for them), so that what a build read is kept as recently used.
    pub fn finish(&self) {
        if self.store.get().is_some() {
            return;
        }
        let pending = self.reader.read().unwrap_or_else(|p| p.into_inner()).as_ref().is_some_and(|(_, r)| r.has_touches());
        if pending {
            if let Err(e) = self.writable() {
                eprintln!("nexxo-cache: {}: the entries this process read could not be marked as used: {e}", self.dir.display());
            }
        }
    }
}
