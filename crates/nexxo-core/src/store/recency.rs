//! Recency: generations (the clock of the recency index) and promotions of entries read
//! long after their last use. Part of the store because every write keeps the index
//! equal to the frames' generations. The policy built on it is described in `evict.rs`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Condvar, Mutex};

use rocksdb::{ColumnFamily, WriteBatch};

use super::layout::{lru_key, GENERATION_KEY, GEN_START_PREFIX, gen_start_key, LRU_CF, META_CF};
use super::{Db, Store, WriteState};
use crate::codec;
use crate::config::Config;
use crate::error::Result;

/// An entry is promoted when read more than this many generations after its last use.
pub const PROMOTE_LAG: u32 = 2;

/// Most promotions waiting to be applied; further ones are dropped.
pub const TOUCH_QUEUE_CAP: usize = 16_384;

/// Promotions applied by one write.
pub(crate) const TOUCHES_PER_WRITE: usize = 64;

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

    pub(crate) fn stop(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.1 = true;
        self.cv.notify_one();
    }

    /// Waits for work; false once stopped.
    pub(crate) fn wait(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while !s.0 && !s.1 {
            s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.0 = false;
        !s.1
    }
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
        if (self.read_only && !self.interim) || generation.saturating_add(PROMOTE_LAG) >= self.current_generation_hint() {
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

    /// Whether promotions are queued.
    pub(crate) fn has_touches(&self) -> bool {
        !self.touches.pending.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    /// The promotions queued and not applied, by category name (an interim reader's,
    /// handed to the store that replaces it).
    pub(crate) fn take_touches(&self) -> Vec<(String, Box<[u8]>)> {
        let mut q = self.touches.pending.lock().unwrap_or_else(|p| p.into_inner());
        q.drain(..).map(|(ci, key)| (self.cats[ci].name.clone(), key)).collect()
    }

    /// Queues promotions taken from another instance of this store (see
    /// [`Store::take_touches`]); categories this store lacks are skipped.
    pub(crate) fn queue_touches(&self, touches: Vec<(String, Box<[u8]>)>) {
        if self.read_only || touches.is_empty() {
            return;
        }
        let mut q = self.touches.pending.lock().unwrap_or_else(|p| p.into_inner());
        for (name, key) in touches {
            if q.len() >= TOUCH_QUEUE_CAP {
                break;
            }
            if let Some(ci) = self.cats.iter().position(|c| c.name == name) {
                q.push((ci, key));
            }
        }
        let wake = q.len() >= TOUCHES_PER_WRITE;
        drop(q);
        if wake {
            self.signal.wake();
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

    /// Ends the current generation when its time span has passed, so that its entries
    /// get an end time that `max_age` can be measured against.
    pub(crate) fn advance_generation_by_time(&self, now: u64) -> Result<()> {
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
    pub(crate) fn age_cutoff(&self, now: u64) -> Result<Option<u32>> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
