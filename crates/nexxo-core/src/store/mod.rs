//! The store: a RocksDB database with one column family per category, exact counters
//! and a recency index, all updated together in atomic write batches.
//!
//! Column families and their keys are in [`layout`]; the directory around them (format
//! marker, trust, moving a damaged store aside) in [`dir`].
//!
//! Invariant, kept by every write under `state`'s lock: each entry of a category has
//! exactly one index entry, under the generation its frame carries, holding the entry's
//! sizes; each category's counters equal the sum of its entries' sizes.
//!
//! `Store` is one type whose methods are split by idea over this module's files: opening
//! ([`open`]), reading ([`read`], with the in-memory [`warm`] table), writing ([`write`]),
//! damage ([`damage`]), maintenance and statistics ([`maint`]), recency ([`recency`]) and
//! eviction steps ([`evict`]). They keep one invariant over the same private fields,
//! which is why they are children of this module and why nothing outside `store/` sees
//! those fields.

mod damage;
pub(crate) mod dir;
mod evict;
mod fork;
pub(crate) mod layout;
pub mod limits_file;
mod maint;
mod open;
mod options;
mod pool;
mod read;
pub(crate) mod recency;
mod salvage;
mod space;
mod tags;
pub use tags::{check_tag, check_tags, MAX_TAGS, MAX_TAG_LEN};
mod warm;
mod write;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use rocksdb::{ColumnFamily, DBWithThreadMode, ReadOptions, SingleThreaded, WriteOptions};

use crate::clock::Clock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::stats::Counters;

pub use crate::limits::{MAX_KEY_LEN, MAX_VALUE_LEN};
pub use damage::VerifyReport;
pub use dir::{FORMAT_FILE, REPAIR_MARKER, STORE_FORMAT};
pub(crate) use dir::{closed_cleanly, create_dir, is_trusted, judge_dir, store_lock_held};
pub use evict::{LOW_WATER_PERCENT, STEP_BYTES, STEP_ENTRIES};
pub(crate) use evict::{low_water, total_stored, Target};
pub use read::PackedRead;
pub use recency::{PROMOTE_LAG, TOUCH_QUEUE_CAP};
pub(crate) use warm::Warmer;
use layout::{prefix_end, LRU_CF};
use recency::{Generations, Signal, TouchQueue};
use space::SpaceGuard;

pub(crate) type Db = DBWithThreadMode<SingleThreaded>;

/// One category of an open store.
pub(crate) struct Category {
    pub name: String,
    pub cf_name: String,
    pub limit: u64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub writes: AtomicU64,
    pub deletes: AtomicU64,
}

/// What only writers touch, behind one lock.
pub(crate) struct WriteState {
    pub counters: Vec<Counters>,
    pub gens: Generations,
    pub space: SpaceGuard,
    /// Per category, a generation below which the recency index holds no records: the
    /// eviction cursor. Seeking from it skips the tombstones that eviction leaves at the
    /// front of the index, which would otherwise be walked again by every step.
    pub evict_floor: Vec<u32>,
}

/// An open cache store. All methods take `&self` and may run on many threads at once.
pub struct Store {
    pub(crate) db: Db,
    pub(crate) path: PathBuf,
    pub(crate) cats: Vec<Category>,
    pub(crate) state: Mutex<WriteState>,
    pub(crate) config: Config,
    pub(crate) read_only: bool,
    pub(crate) recovered: bool,
    pub(crate) clock: Clock,
    pub(crate) touches: TouchQueue,
    pub(crate) signal: Signal,
    /// Damaged frames seen by a read-only handle, which cannot drop them.
    corrupt_seen: AtomicU64,
    /// A read found a damaged table; the marker file is written once.
    damaged: AtomicBool,
    write_opts: WriteOptions,
    read_opts: ReadOptions,
    closed_cleanly: AtomicBool,
    /// Called after every write, with whether it overwrote or removed entries (see
    /// [`Store::write_removing`]); set by the process that serves the store to others.
    pub(crate) on_write: std::sync::OnceLock<Box<dyn Fn(bool) + Send + Sync>>,
    /// Frames held in memory for the reads to come (see `warm.rs`).
    warm: warm::WarmTable,
    /// Tag bookkeeping is on: the cache has held a tag (see `tags.rs`).
    tagged: AtomicBool,
    /// A read-only instance standing in for the writable store until that opens (see
    /// `share/backing.rs` and [`Store::make_interim`]): its reads queue promotions,
    /// handed over by [`Store::take_touches`].
    pub(crate) interim: bool,
    /// Declared last: dropped after `db` (see `dir::WritableMark`).
    _writable: Option<dir::WritableMark>,
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Store {
    pub(crate) fn lock_state(&self) -> MutexGuard<'_, WriteState> {
        // A panic while holding the lock leaves no half-done write behind (RocksDB batches
        // are atomic and counters are only replaced after a successful write).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An iterator over the recency index restricted to one category's prefix (it never
    /// walks into the next category's records, or its tombstones), positioned at `from`.
    pub(crate) fn index_iter(&self, prefix: &[u8], from: &[u8]) -> rocksdb::DBRawIteratorWithThreadMode<'_, Db> {
        let mut o = ReadOptions::default();
        o.set_iterate_upper_bound(prefix_end(prefix));
        let mut it = self.db.raw_iterator_cf_opt(self.cf(LRU_CF), o);
        it.seek(from);
        it
    }

    pub(crate) fn cf(&self, name: &str) -> &ColumnFamily {
        self.db.cf_handle(name).expect("column family opened with the store")
    }

    /// The index of a category by name.
    pub fn category_index(&self, name: &[u8]) -> Result<usize> {
        self.cats
            .iter()
            .position(|c| c.name.as_bytes() == name)
            .ok_or_else(|| Error::UnknownCategory(String::from_utf8_lossy(name).into_owned()))
    }

    /// The names of this store's categories.
    pub fn category_names(&self) -> impl Iterator<Item = &str> {
        self.cats.iter().map(|c| c.name.as_str())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options the store was opened with, its limits as they apply (see
    /// [`limits_file`]).
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.read_only {
            Err(Error::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// Persists pending recency updates and flushes memtables, so that the next open
    /// does not replay the write-ahead log, merges small tables if they piled up
    /// ([`Store::merge_small_tables`]) and leaves the warm table's image for the next run
    /// (`warm/image.rs`). Called when the store is dropped.
    pub(crate) fn shutdown(&self) {
        if self.read_only || self.closed_cleanly.swap(true, Ordering::SeqCst) {
            return;
        }
        {
            let mut st = self.lock_state();
            let _ = self.apply_touches(&mut st, usize::MAX);
        }
        let flushed = self.db.flush_cfs_opt(&self.all_cfs(), &rocksdb::FlushOptions::default()).is_ok();
        self.merge_small_tables();
        // Every write is in the tables now: no crash can take the store back before this
        // sequence number, which the image names.
        if flushed {
            self.write_warm_image();
        }
        dir::write_close_record(&self.path);
    }
}

/// Indices grouped by category index, in order of first appearance. Batches name few
/// categories: a list beats a hash map.
fn by_category(cats: impl Iterator<Item = (usize, usize)>) -> Vec<(usize, Vec<usize>)> {
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for (i, ci) in cats {
        match groups.iter_mut().find(|(c, _)| *c == ci) {
            Some((_, idxs)) => idxs.push(i),
            None => groups.push((ci, vec![i])),
        }
    }
    groups
}
