//! Eviction: a size-bounded, approximately least-recently-used cache with per-category
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

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use rocksdb::{ColumnFamily, WriteBatch};

use crate::codec;
use crate::config::Config;
use crate::error::Result;
use crate::stats::Counters;
use crate::store::{decode_size, lru_key, lru_prefix, Db, Store, WriteState, LRU_CF, META_CF};

/// Seconds since the Unix epoch, or a test's clock.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

/// An entry is promoted when read more than this many generations after its last use.
pub const PROMOTE_LAG: u32 = 2;
/// Eviction stops at this percentage of the limit it enforces.
pub const LOW_WATER_PERCENT: u64 = 90;
/// Most entries one eviction step removes.
pub const STEP_ENTRIES: usize = 512;
/// Most stored bytes one eviction step removes.
pub const STEP_BYTES: u64 = 8 << 20;
/// Most promotions waiting to be applied; further ones are dropped.
pub const TOUCH_QUEUE_CAP: usize = 16_384;
/// Promotions applied by one write.
pub(crate) const TOUCHES_PER_WRITE: usize = 64;

const GENERATION_KEY: &[u8] = b"generation";
const GEN_START_PREFIX: &[u8] = b"genstart/";

fn gen_start_key(g: u32) -> Vec<u8> {
    [GEN_START_PREFIX, &g.to_be_bytes()[..]].concat()
}

/// The recency clock.
pub(crate) struct Generations {
    pub current: u32,
    started_at: u64,
    bytes: u64,
    span_bytes: u64,
    span_secs: u64,
}

/// A generation change, written in the same batch as the write that caused it.
pub(crate) struct Advance {
    pub generation: u32,
    started_at: u64,
}

impl Advance {
    pub fn write_into(&self, batch: &mut WriteBatch, meta: &ColumnFamily) {
        let mut v = [0u8; 12];
        v[..4].copy_from_slice(&self.generation.to_le_bytes());
        v[4..].copy_from_slice(&self.started_at.to_le_bytes());
        batch.put_cf(meta, GENERATION_KEY, v);
        batch.put_cf(meta, gen_start_key(self.generation), self.started_at.to_le_bytes());
    }
}

impl Generations {
    fn spans(config: &Config) -> (u64, u64) {
        let smallest = std::iter::once(config.max_size)
            .chain(config.category_max_size.iter().map(|(_, b)| *b))
            .filter(|&b| b > 0)
            .min();
        let span_bytes = smallest.map_or(64 << 20, |b| (b / 64).max(64 << 10));
        let span_secs = if config.max_age_secs > 0 { (config.max_age_secs / 16).max(1) } else { 3600 };
        (span_bytes, span_secs)
    }

    pub fn fresh(config: &Config, now: u64) -> Generations {
        let (span_bytes, span_secs) = Self::spans(config);
        Generations { current: 1, started_at: now, bytes: 0, span_bytes, span_secs }
    }

    pub fn load(db: &Db, meta: &ColumnFamily, config: &Config, now: u64) -> Result<Generations> {
        let mut g = Self::fresh(config, now);
        if let Some(v) = db.get_pinned_cf(meta, GENERATION_KEY)? {
            if v.len() == 12 {
                g.current = u32::from_le_bytes(v[..4].try_into().unwrap());
                g.started_at = u64::from_le_bytes(v[4..].try_into().unwrap());
            }
        }
        Ok(g)
    }

    /// Counts `added` stored bytes; returns the change to write when the generation ends.
    pub fn account(&mut self, added: u64, now: u64) -> Option<Advance> {
        self.bytes = self.bytes.saturating_add(added);
        self.due(now)
    }

    fn due(&self, now: u64) -> Option<Advance> {
        let ended = self.bytes >= self.span_bytes || now >= self.started_at.saturating_add(self.span_secs);
        ended.then(|| Advance { generation: self.current.wrapping_add(1).max(1), started_at: now })
    }

    pub fn commit(&mut self, a: Advance) {
        self.current = a.generation;
        self.started_at = a.started_at;
        self.bytes = 0;
    }
}

/// Promotions waiting to be applied.
#[derive(Default)]
pub(crate) struct TouchQueue {
    pending: Mutex<Vec<(usize, Box<[u8]>)>>,
    /// A copy of the current generation, readable without the writers' lock.
    current: AtomicU32,
}

/// Wakes the background evictor.
#[derive(Default)]
pub(crate) struct Signal {
    state: Mutex<(bool, bool)>, // (work to do, stop)
    cv: Condvar,
}

impl Signal {
    pub fn wake(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.0 = true;
        self.cv.notify_one();
    }

    fn stop(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.1 = true;
        self.cv.notify_one();
    }

    /// Waits for work; false once stopped.
    fn wait(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while !s.0 && !s.1 {
            s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.0 = false;
        !s.1
    }
}

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
                    let _ = s.background_pass();
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

/// Which entries one eviction pass removes.
#[derive(Clone, Copy)]
enum Target {
    /// Oldest first from one category until its stored bytes reach `to`.
    Category { ci: usize, to: u64 },
    /// Oldest first across all categories until the total reaches `to`.
    Total { to: u64 },
    /// Every entry of a generation at or before `through`.
    Age { through: u32 },
}

fn low_water(limit: u64) -> u64 {
    limit / 100 * LOW_WATER_PERCENT + limit % 100 * LOW_WATER_PERCENT / 100
}

fn total_stored(counters: &[Counters]) -> u64 {
    counters.iter().map(|c| c.stored_bytes).sum()
}

impl Store {
    pub(crate) fn current_generation_hint(&self) -> u32 {
        self.touches.current.load(Ordering::Relaxed)
    }

    pub(crate) fn publish_generation(&self, g: u32) {
        self.touches.current.store(g, Ordering::Relaxed);
    }

    /// Called on every hit: queues a promotion for an entry read long after its last use.
    pub(crate) fn note_use(&self, ci: usize, key: &[u8], generation: u32) {
        if self.read_only || generation.saturating_add(PROMOTE_LAG) >= self.current_generation_hint() {
            return;
        }
        let mut q = self.touches.pending.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() < TOUCH_QUEUE_CAP {
            q.push((ci, key.into()));
            if q.len() == TOUCHES_PER_WRITE * 16 {
                self.signal.wake();
            }
        }
    }

    /// Applies up to `max` queued promotions in one atomic write.
    pub(crate) fn apply_touches(&self, st: &mut WriteState, max: usize) -> Result<usize> {
        let taken: Vec<(usize, Box<[u8]>)> = {
            let mut q = self.touches.pending.lock().unwrap_or_else(|p| p.into_inner());
            let n = q.len().min(max);
            q.drain(..n).collect()
        };
        if taken.is_empty() {
            return Ok(0);
        }
        let current = st.gens.current;
        let mut batch = WriteBatch::default();
        let mut done = std::collections::HashSet::new();
        let mut promoted = 0;
        for (ci, key) in &taken {
            if !done.insert((*ci, key.clone())) {
                continue;
            }
            let c = &self.cats[*ci];
            let cf = self.cf(&c.cf_name);
            let Some(frame) = self.db.get_pinned_cf(cf, key)? else { continue };
            let Ok(h) = codec::Header::parse(&frame) else { continue };
            if h.generation == current {
                continue;
            }
            let mut moved = frame.to_vec();
            codec::set_generation(&mut moved, current);
            let lru = self.cf(LRU_CF);
            let old_index = lru_key(&c.name, h.generation, key);
            let Some(size) = self.db.get_pinned_cf(lru, &old_index)? else { continue };
            batch.delete_cf(lru, &old_index);
            batch.put_cf(lru, lru_key(&c.name, current, key), &*size);
            batch.put_cf(cf, key, &moved);
            promoted += 1;
        }
        if promoted > 0 {
            self.write(batch)?;
        }
        Ok(promoted)
    }

    /// True when the cache or a category is above its limit.
    pub(crate) fn over_limits(&self, st: &WriteState) -> bool {
        let total = total_stored(&st.counters);
        (self.config.max_size > 0 && total > self.config.max_size)
            || self.cats.iter().zip(&st.counters).any(|(c, k)| c.limit > 0 && k.stored_bytes > c.limit)
    }

    /// After a write that left a limit exceeded: wake the evictor, and run one step here
    /// when it has fallen far behind.
    pub(crate) fn on_over_limit(&self) -> Result<()> {
        self.signal.wake();
        let mut st = self.lock_state();
        let total = total_stored(&st.counters);
        let far = |stored: u64, limit: u64| limit > 0 && stored > limit.saturating_add(limit / 4);
        if far(total, self.config.max_size) {
            self.evict_step(&mut st, Target::Total { to: low_water(self.config.max_size) })?;
        } else if let Some(ci) = (0..self.cats.len()).find(|&ci| far(st.counters[ci].stored_bytes, self.cats[ci].limit)) {
            let to = low_water(self.cats[ci].limit);
            self.evict_step(&mut st, Target::Category { ci, to })?;
        }
        Ok(())
    }

    /// The background evictor's work: apply promotions, then evict to the low-water marks.
    pub(crate) fn background_pass(&self) -> Result<()> {
        loop {
            let mut st = self.lock_state();
            if self.apply_touches(&mut st, STEP_ENTRIES)? == 0 {
                break;
            }
        }
        self.evict_to_limits()?;
        Ok(())
    }

    /// Evicts, step by step, until every limit is at or under its low-water mark.
    fn evict_to_limits(&self) -> Result<(u64, u64)> {
        let mut total = (0u64, 0u64);
        for ci in 0..self.cats.len() {
            let limit = self.cats[ci].limit;
            if limit == 0 {
                continue;
            }
            if self.lock_state().counters[ci].stored_bytes > limit {
                let r = self.evict_all(Target::Category { ci, to: low_water(limit) })?;
                total = (total.0 + r.0, total.1 + r.1);
            }
        }
        let max = self.config.max_size;
        if max > 0 && total_stored(&self.lock_state().counters) > max {
            let r = self.evict_all(Target::Total { to: low_water(max) })?;
            total = (total.0 + r.0, total.1 + r.1);
        }
        Ok(total)
    }

    /// Runs steps for one target until it is met or nothing is left to evict, releasing
    /// the writers' lock between steps.
    fn evict_all(&self, target: Target) -> Result<(u64, u64)> {
        let (mut entries, mut bytes) = (0, 0);
        loop {
            let mut st = self.lock_state();
            let (n, b) = self.evict_step(&mut st, target)?;
            entries += n;
            bytes += b;
            if n == 0 {
                return Ok((entries, bytes));
            }
        }
    }

    /// The generation of a category's oldest index record, seeking from `floor`.
    fn oldest_in(&self, ci: usize, floor: u32) -> Result<Option<u32>> {
        let p = lru_prefix(&self.cats[ci].name);
        let it = self.index_iter(&p, &lru_key(&self.cats[ci].name, floor, &[]));
        let g = match it.key() {
            Some(k) if k.starts_with(&p) && k.len() >= p.len() + 4 => {
                Some(u32::from_be_bytes(k[p.len()..p.len() + 4].try_into().unwrap()))
            }
            _ => None,
        };
        it.status()?;
        Ok(g)
    }

    /// Removes at most one step's worth of entries for `target` in one atomic write.
    /// Returns (entries, stored bytes) removed; (0, 0) when the target is met.
    fn evict_step(&self, st: &mut WriteState, target: Target) -> Result<(u64, u64)> {
        let met = |st: &WriteState| match target {
            Target::Category { ci, to } => st.counters[ci].stored_bytes <= to,
            Target::Total { to } => total_stored(&st.counters) <= to,
            Target::Age { .. } => false,
        };
        if met(st) {
            return Ok((0, 0));
        }
        // Which category to take from, and up to which generation.
        let (ci, through) = match target {
            Target::Category { ci, .. } => (ci, u32::MAX),
            Target::Age { through } => {
                let mut pick = None;
                for ci in 0..self.cats.len() {
                    if matches!(self.oldest_in(ci, st.evict_floor[ci])?, Some(g) if g <= through) {
                        pick = Some(ci);
                        break;
                    }
                }
                match pick {
                    Some(ci) => (ci, through),
                    None => return Ok((0, 0)),
                }
            }
            Target::Total { .. } => {
                let mut firsts = Vec::new();
                for ci in 0..self.cats.len() {
                    if let Some(g) = self.oldest_in(ci, st.evict_floor[ci])? {
                        firsts.push((g, ci));
                    }
                }
                firsts.sort_unstable();
                match firsts.first() {
                    Some(&(_, ci)) => (ci, firsts.get(1).map_or(u32::MAX, |&(g, _)| g)),
                    None => return Ok((0, 0)),
                }
            }
        };
        let c = &self.cats[ci];
        let cf = self.cf(&c.cf_name);
        let lru = self.cf(LRU_CF);
        let p = lru_prefix(&c.name);
        let mut counters = st.counters.clone();
        let mut batch = WriteBatch::default();
        let (mut n, mut bytes) = (0u64, 0u64);
        let mut last_gen = st.evict_floor[ci];
        let mut it = self.index_iter(&p, &lru_key(&c.name, last_gen, &[]));
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !k.starts_with(&p) || k.len() < p.len() + 4 {
                break;
            }
            let g = u32::from_be_bytes(k[p.len()..p.len() + 4].try_into().unwrap());
            let first = n == 0;
            // Take at least one entry per step so that progress is guaranteed; past it,
            // stop at the generation bound, the step bounds, or once the target is met.
            if !first && (g > through || n as usize >= STEP_ENTRIES || bytes >= STEP_BYTES) {
                break;
            }
            if first && matches!(target, Target::Age { .. }) && g > through {
                break;
            }
            let key = &k[p.len() + 4..];
            let size = decode_size(v).unwrap_or_default();
            batch.delete_cf(cf, key);
            batch.delete_cf(lru, k);
            counters[ci].remove(size);
            counters[ci].evictions += 1;
            last_gen = g;
            n += 1;
            bytes += size.stored;
            let done = match target {
                Target::Category { to, .. } => counters[ci].stored_bytes <= to,
                Target::Total { to } => total_stored(&counters) <= to,
                Target::Age { .. } => false,
            };
            if done {
                break;
            }
            it.next();
        }
        it.status()?;
        drop(it);
        if n == 0 {
            return Ok((0, 0));
        }
        self.put_counters(&mut batch, ci, &counters[ci]);
        self.write_removing(batch)?;
        st.counters = counters;
        // Nothing older than the last evicted record is left, and nothing is ever
        // indexed under a generation older than the current one.
        st.evict_floor[ci] = last_gen;
        Ok((n, bytes))
    }

    /// Evicts now: queued promotions, entries older than `max_age`, then the size
    /// limits; compacts when deleted data is worth reclaiming. See the module docs.
    pub fn enforce_policy(&self) -> Result<PolicyReport> {
        self.check_writable()?;
        let before = total_stored(&self.lock_state().counters);
        {
            let mut st = self.lock_state();
            while self.apply_touches(&mut st, STEP_ENTRIES)? > 0 {}
        }
        let (mut entries, mut bytes) = (0u64, 0u64);
        if self.config.max_age_secs > 0 {
            let now = (self.clock)();
            self.advance_generation_by_time(now)?;
            if let Some(through) = self.age_cutoff(now)? {
                let r = self.evict_all(Target::Age { through })?;
                entries += r.0;
                bytes += r.1;
            }
        }
        let r = self.evict_to_limits()?;
        entries += r.0;
        bytes += r.1;
        let after = total_stored(&self.lock_state().counters);
        let compacted = self.compact_if_worthwhile(after)?;
        Ok(PolicyReport { evicted_entries: entries, evicted_bytes: bytes, stored_bytes_before: before, stored_bytes_after: after, compacted })
    }

    /// Ends the current generation when its time span has passed, so that its entries
    /// get an end time that `max_age` can be measured against.
    fn advance_generation_by_time(&self, now: u64) -> Result<()> {
        let mut st = self.lock_state();
        if let Some(a) = st.gens.account(0, now) {
            let mut batch = WriteBatch::default();
            a.write_into(&mut batch, self.cf(META_CF));
            self.write(batch)?;
            self.publish_generation(a.generation);
            st.gens.commit(a);
        }
        Ok(())
    }

    /// The newest generation all of whose entries are unused for longer than `max_age`.
    fn age_cutoff(&self, now: u64) -> Result<Option<u32>> {
        let horizon = now.saturating_sub(self.config.max_age_secs);
        let meta = self.cf(META_CF);
        let mut it = self.db.raw_iterator_cf(meta);
        it.seek(GEN_START_PREFIX);
        let mut newest_old_start = None;
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !k.starts_with(GEN_START_PREFIX) || k.len() != GEN_START_PREFIX.len() + 4 || v.len() != 8 {
                break;
            }
            let g = u32::from_be_bytes(k[GEN_START_PREFIX.len()..].try_into().unwrap());
            let started = u64::from_le_bytes(v.try_into().unwrap());
            if started <= horizon {
                newest_old_start = Some(g);
            }
            it.next();
        }
        it.status()?;
        // Generation h started before the horizon, so every generation before h ended
        // before it; PROMOTE_LAG more are spared for promotions that were not yet due.
        Ok(newest_old_start.and_then(|h| h.checked_sub(1 + PROMOTE_LAG)).filter(|&g| g > 0))
    }

    /// Compacts when the categories' files hold much more than their live stored bytes.
    fn compact_if_worthwhile(&self, stored: u64) -> Result<bool> {
        let files = self.category_file_bytes();
        if files > stored + stored / 2 + (4 << 20) {
            self.compact(None)?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Index records of one category, oldest first: (generation, key). For tests.
    #[doc(hidden)]
    pub fn debug_index(&self, category: &[u8]) -> Result<Vec<(u32, Vec<u8>)>> {
        let ci = self.category_index(category)?;
        let p = lru_prefix(&self.cats[ci].name);
        let mut out = Vec::new();
        let mut it = self.index_iter(&p, &p);
        while let Some(k) = it.key() {
            out.push((u32::from_be_bytes(k[p.len()..p.len() + 4].try_into().unwrap()), k[p.len() + 4..].to_vec()));
            it.next();
        }
        it.status()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_water_is_ninety_percent() {
        assert_eq!(low_water(1000), 900);
        assert_eq!(low_water(8 << 20), (8u64 << 20) * 9 / 10);
        assert_eq!(low_water(u64::MAX), u64::MAX / 100 * 90 + 15 * 90 / 100);
    }

    #[test]
    fn generations_advance_by_bytes_and_time() {
        let mut c = Config::default();
        c.max_size = 64 << 20;
        c.max_age_secs = 160;
        let mut g = Generations::fresh(&c, 1000);
        assert_eq!((g.span_bytes, g.span_secs), (1 << 20, 10));
        assert!(g.account(1000, 1001).is_none());
        let a = g.account(1 << 20, 1002).expect("a full generation ends");
        g.commit(a);
        assert_eq!(g.current, 2);
        assert!(g.account(0, 1011).is_none());
        assert!(g.account(0, 1012).is_some());
    }
}
