//! The eviction policy: a size-bounded, approximately least-recently-used cache with per-category
//! limits and a maximum age.
//!
//! ## Recency by generations
//! Time is cut into *generations*. The current generation ends, and the next begins,
//! when [`Generations::span_bytes`] of stored bytes have been written in it (1/64 of the
//! smallest size limit, at least 64 KiB; 64 MiB when nothing is bounded) or when
//! [`Generations::span_secs`] have passed (1/16 of `max_age`, at least one second; an
//! hour without `max_age`). Every frame carries the generation of its last use, and the
//! recency index (`nexxo.lru`) lists entries by category, then generation, then key.
//!
//! A set puts the entry in the current generation. A get of an entry more than
//! [`PROMOTE_LAG`] generations old queues a *promotion*; promotions are applied in
//! bounded numbers by the next writes, by the background evictor, by
//! `enforce_policy` and on close. Reads therefore never write, and an entry is rewritten
//! at most once per `PROMOTE_LAG + 1` generations however often it is read. The order is
//! exact between generations and arbitrary (key order) within one; recency is known to
//! within `PROMOTE_LAG + 1` generations, and a promotion dropped because its queue was
//! full ([`TOUCH_QUEUE_CAP`]) or because the process died leaves the entry in its older
//! generation.
//!
//! ## Size limits
//! When a write leaves the cache's stored bytes (or a category's, for a category with its
//! own limit) above the limit, eviction removes the oldest generations' entries until
//! they are at or under the low-water mark, [`LOW_WATER_PERCENT`] of the limit.
//! Eviction runs on a background thread in steps of at most [`STEP_ENTRIES`] entries
//! and [`STEP_BYTES`] bytes, each its own atomic write, so writers wait at most one step.
//! A writer that finds the cache more than 25% over a limit (the background thread
//! falling behind) runs one step itself, which bounds growth without stalling a build.
//!
//! ## Maximum age
//! `enforce_policy` evicts every entry whose generation ended more than `max_age`
//! seconds ago, less the `PROMOTE_LAG` slack: an entry is evicted for age only when its
//! last use is known to be older than `max_age`.
//!
//! ## Where the parts live
//! The recency clock and promotions are the store's (`store/recency.rs`), and so are the
//! eviction steps and their targets (`store/evict.rs`), because a writer far over a limit
//! runs a step itself under the writers' lock. This module is the policy above them: the
//! background thread and `enforce_policy` (age, limits, compaction).

use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::Result;
use crate::store::{low_water, total_stored, Store, Target, STEP_ENTRIES};

/// The background evictor of one store: started by `Cache::open`, stopped and joined
/// when the cache is closed, before the store itself is closed.
pub(crate) struct Background {
    thread: Option<JoinHandle<()>>,
    store: Arc<Store>,
}

impl Background {
    pub fn start(store: Arc<Store>) -> Background {
        let s = store.clone();
        let thread = std::thread::Builder::new()
            .name("nexxo-evict".into())
            .spawn(move || {
                while s.signal.wait() {
                    // Errors here are not lost: the next write or enforce_policy retries
                    // and reports them.
                    let _ = background_pass(&s);
                }
            })
            .ok();
        Background { thread, store }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.store.signal.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What `enforce_policy` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyReport {
    pub evicted_entries: u64,
    /// Stored bytes removed.
    pub evicted_bytes: u64,
    pub stored_bytes_before: u64,
    pub stored_bytes_after: u64,
    pub compacted: bool,
}

/// The background evictor's work: apply promotions, then evict to the low-water marks.
pub(crate) fn background_pass(store: &Store) -> Result<()> {
    loop {
        let mut st = store.lock_state();
        if store.apply_touches(&mut st, STEP_ENTRIES)? == 0 {
            break;
        }
    }
    evict_to_limits(store)?;
    Ok(())
}

/// Evicts, step by step, until every limit is at or under its low-water mark.
pub(crate) fn evict_to_limits(store: &Store) -> Result<(u64, u64)> {
    let mut total = (0u64, 0u64);
    for ci in 0..store.cats.len() {
        let limit = store.cats[ci].limit;
        if limit == 0 {
            continue;
        }
        if store.lock_state().counters[ci].stored_bytes > limit {
            let r = store.evict_all(Target::Category { ci, to: low_water(limit) })?;
            total = (total.0 + r.0, total.1 + r.1);
        }
    }
    let max = store.config.max_size;
    if max > 0 && total_stored(&store.lock_state().counters) > max {
        let r = store.evict_all(Target::Total { to: low_water(max) })?;
        total = (total.0 + r.0, total.1 + r.1);
    }
    Ok(total)
}

/// Evicts now: queued promotions, entries older than `max_age`, then the size
/// limits; compacts when deleted data is worth reclaiming. See the module docs.
pub(crate) fn enforce_policy(store: &Store) -> Result<PolicyReport> {
    store.check_writable()?;
    let before = total_stored(&store.lock_state().counters);
    {
        let mut st = store.lock_state();
        while store.apply_touches(&mut st, STEP_ENTRIES)? > 0 {}
    }
    let (mut entries, mut bytes) = (0u64, 0u64);
    if store.config.max_age_secs > 0 {
        let now = (store.clock)();
        store.advance_generation_by_time(now)?;
        if let Some(through) = store.age_cutoff(now)? {
            let r = store.evict_all(Target::Age { through })?;
            entries += r.0;
            bytes += r.1;
        }
    }
    let r = evict_to_limits(store)?;
    entries += r.0;
    bytes += r.1;
    let after = total_stored(&store.lock_state().counters);
    let compacted = compact_if_worthwhile(store, after)?;
    Ok(PolicyReport { evicted_entries: entries, evicted_bytes: bytes, stored_bytes_before: before, stored_bytes_after: after, compacted })
}

/// Compacts when the categories' files hold much more than their live stored bytes.
pub(crate) fn compact_if_worthwhile(store: &Store, stored: u64) -> Result<bool> {
    let files = store.category_file_bytes();
    if files > stored + stored / 2 + (4 << 20) {
        store.compact(None)?;
        Ok(true)
    } else {
        Ok(false)
    }
}
