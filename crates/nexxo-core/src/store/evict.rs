//! Eviction steps: remove the oldest entries for a target (a category's or the cache's
//! size limit, or an age), one bounded atomic write at a time. These are store
//! operations, not policy: a writer that finds the cache far over a limit runs a step
//! itself, under the writers' lock (see `crate::evict` for the policy and its thread).

use rocksdb::WriteBatch;

use super::layout::{decode_size, lru_key, lru_prefix, parse_lru_key, LRU_CF};
use super::{Store, WriteState};
use crate::error::Result;
use crate::stats::Counters;

/// Eviction stops at this percentage of the limit it enforces.
pub const LOW_WATER_PERCENT: u64 = 90;

/// Most entries one eviction step removes.
pub const STEP_ENTRIES: usize = 512;

/// Most stored bytes one eviction step removes.
pub const STEP_BYTES: u64 = 8 << 20;

/// Which entries one eviction pass removes.
#[derive(Clone, Copy)]
pub(crate) enum Target {
    /// Oldest first from one category until its stored bytes reach `to`.
    Category { ci: usize, to: u64 },
    /// Oldest first across all categories until the total reaches `to`.
    Total { to: u64 },
    /// Every entry of a generation at or before `through`.
    Age { through: u32 },
}

pub(crate) fn low_water(limit: u64) -> u64 {
    limit / 100 * LOW_WATER_PERCENT + limit % 100 * LOW_WATER_PERCENT / 100
}

pub(crate) fn total_stored(counters: &[Counters]) -> u64 {
    counters.iter().map(|c| c.stored_bytes).sum()
}

impl Store {
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

    /// Runs steps for one target until it is met or nothing is left to evict, releasing
    /// the writers' lock between steps.
    pub(crate) fn evict_all(&self, target: Target) -> Result<(u64, u64)> {
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
    pub(super) fn oldest_in(&self, ci: usize, floor: u32) -> Result<Option<u32>> {
        let p = lru_prefix(&self.cats[ci].name);
        let it = self.index_iter(&p, &lru_key(&self.cats[ci].name, floor, &[]));
        let g = it.key().and_then(|k| parse_lru_key(&p, k)).map(|(g, _)| g);
        it.status()?;
        Ok(g)
    }

    /// Removes at most one step's worth of entries for `target` in one atomic write.
    /// Returns (entries, stored bytes) removed; (0, 0) when the target is met.
    pub(super) fn evict_step(&self, st: &mut WriteState, target: Target) -> Result<(u64, u64)> {
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
            let Some((g, key)) = parse_lru_key(&p, k) else { break };
            let first = n == 0;
            // Take at least one entry per step so that progress is guaranteed; past it,
            // stop at the generation bound, the step bounds, or once the target is met.
            if !first && (g > through || n as usize >= STEP_ENTRIES || bytes >= STEP_BYTES) {
                break;
            }
            if first && matches!(target, Target::Age { .. }) && g > through {
                break;
            }
            let size = decode_size(v).unwrap_or_default();
            batch.delete_cf(cf, key);
            batch.delete_cf(lru, k);
            let tags = self.entry_tags(ci, key)?;
            self.untag_into(&mut batch, ci, key, &tags);
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

    /// Index records of one category, oldest first: (generation, key). For tests.
    #[doc(hidden)]
    pub fn debug_index(&self, category: &[u8]) -> Result<Vec<(u32, Vec<u8>)>> {
        let ci = self.category_index(category)?;
        let p = lru_prefix(&self.cats[ci].name);
        let mut out = Vec::new();
        let mut it = self.index_iter(&p, &p);
        while let Some(k) = it.key() {
            if let Some((g, key)) = parse_lru_key(&p, k) {
                out.push((g, key.to_vec()));
            }
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
}
