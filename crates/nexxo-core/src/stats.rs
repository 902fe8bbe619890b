//! Counters kept in the store and the statistics reported to callers.

use crate::error::Error;
use crate::json::json_f64;

/// Persistent per-category counters, rewritten in the same atomic write as the data
/// they describe, so they are exact after any crash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub entries: u64,
    pub logical_bytes: u64,
    pub stored_bytes: u64,
    pub evictions: u64,
    pub corrupt_dropped: u64,
}

/// The accounted size of one entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntrySize {
    /// Key plus value as given by the caller.
    pub logical: u64,
    /// Key plus frame as stored.
    pub stored: u64,
}

impl Counters {
    pub(crate) const ENCODED_LEN: usize = 40;

    pub fn add(&mut self, s: EntrySize) {
        self.entries += 1;
        self.logical_bytes += s.logical;
        self.stored_bytes += s.stored;
    }

    /// Removes an entry. Saturates rather than wraps, so damage can never make a
    /// counter absurd; in a consistent store it never needs to.
    pub fn remove(&mut self, s: EntrySize) {
        self.entries = self.entries.saturating_sub(1);
        self.logical_bytes = self.logical_bytes.saturating_sub(s.logical);
        self.stored_bytes = self.stored_bytes.saturating_sub(s.stored);
    }

    /// No entries left, lifetime counts kept: what clearing or recounting starts from.
    pub fn emptied(&self) -> Counters {
        Counters { evictions: self.evictions, corrupt_dropped: self.corrupt_dropped, ..Default::default() }
    }

    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut b = [0u8; Self::ENCODED_LEN];
        for (i, v) in [self.entries, self.logical_bytes, self.stored_bytes, self.evictions, self.corrupt_dropped]
            .into_iter()
            .enumerate()
        {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    pub fn decode(b: &[u8]) -> Option<Counters> {
        if b.len() != Self::ENCODED_LEN {
            return None;
        }
        let f = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
        Some(Counters { entries: f(0), logical_bytes: f(1), stored_bytes: f(2), evictions: f(3), corrupt_dropped: f(4) })
    }
}

/// A snapshot of a cache's (or one category's) statistics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Gets that found a value, since this handle was opened.
    pub hits: u64,
    /// Gets that found nothing (or a damaged value), since this handle was opened.
    pub misses: u64,
    /// Entries written by `set` and `batch_set`, since this handle was opened.
    pub writes: u64,
    /// Entries removed by `delete`, since this handle was opened.
    pub deletes: u64,
    pub entries: u64,
    pub logical_bytes: u64,
    pub stored_bytes: u64,
    pub disk_bytes: u64,
    pub evictions: u64,
    pub corrupt_dropped: u64,
    pub read_only: bool,
    /// Why the cache is disabled, `None` when it works.
    pub disabled: Option<Error>,
    /// Open found damaged files and repaired them or set them aside.
    pub recovered: bool,
}

impl Stats {
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }

    pub(crate) fn add_counters(&mut self, c: &Counters) {
        self.entries += c.entries;
        self.logical_bytes += c.logical_bytes;
        self.stored_bytes += c.stored_bytes;
        self.evictions += c.evictions;
        self.corrupt_dropped += c.corrupt_dropped;
    }

    /// The fields as a JSON object (no surrounding braces' trailing newline).
    pub fn to_json_object(&self, disabled_reason: &str) -> String {
        format!(
            concat!(
                "{{\"hits\":{},\"misses\":{},\"writes\":{},\"deletes\":{},\"entries\":{},",
                "\"logical_bytes\":{},\"stored_bytes\":{},\"disk_bytes\":{},\"evictions\":{},",
                "\"corrupt_dropped\":{},\"hit_rate\":{},\"read_only\":{},\"disabled\":{},",
                "\"disabled_reason\":\"{}\",\"recovered\":{}}}"
            ),
            self.hits,
            self.misses,
            self.writes,
            self.deletes,
            self.entries,
            self.logical_bytes,
            self.stored_bytes,
            self.disk_bytes,
            self.evictions,
            self.corrupt_dropped,
            json_f64(self.hit_rate()),
            self.read_only,
            self.disabled.is_some(),
            disabled_reason,
            self.recovered
        )
    }
}

/// Bytes for people: "187.49 KiB" (1 KiB = 1024 bytes), exact below 1 KiB.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// Bytes the files below `dir` occupy on disk (allocated blocks, as `du` counts them).
pub fn disk_usage(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    for e in rd.flatten() {
        let Ok(md) = e.metadata() else { continue };
        if md.is_dir() {
            total += disk_usage(&e.path());
        } else {
            total += md.blocks() * 512;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_round_trip() {
        let c = Counters { entries: 1, logical_bytes: 2, stored_bytes: 3, evictions: 4, corrupt_dropped: u64::MAX };
        assert_eq!(Counters::decode(&c.encode()), Some(c));
        assert_eq!(Counters::decode(&[0u8; 39]), None);
    }

    #[test]
    fn hit_rate_is_zero_without_gets() {
        assert_eq!(Stats::default().hit_rate(), 0.0);
        let s = Stats { hits: 3, misses: 1, ..Default::default() };
        assert_eq!(s.hit_rate(), 0.75);
    }
}
