//! Maintenance and statistics: compaction, flushes, file sizes, counters and recounts.

use std::sync::atomic::Ordering;

use rocksdb::ColumnFamily;

use super::layout::{entry_size, lru_prefix, LRU_CF, META_CF};
use super::Store;
use crate::error::Result;
use crate::stats::{disk_usage, Counters, Stats};

/// A table smaller than this counts as small for [`Store::merge_small_tables`].
const SMALL_TABLE: usize = 64 << 10;
/// The small tables a column family holds when a close merges them.
const SMALL_TABLES_MERGED: usize = 16;
/// The most a close's merge reads (about 0.1-0.3 s of compaction here).
const MERGE_INPUT_MAX: usize = 32 << 20;

/// A compaction asked for: it rewrites the last level too (by default RocksDB leaves the
/// last level as it is when no compaction filter is set), beside other compactions.
fn manual_compaction() -> rocksdb::CompactOptions {
    let mut o = rocksdb::CompactOptions::default();
    o.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
    o.set_exclusive_manual_compaction(false);
    o
}

impl Store {
    pub(crate) fn compact_cf(&self, cf_name: &str) -> Result<()> {
        self.db.compact_range_cf_opt(self.cf(cf_name), None::<&[u8]>, None::<&[u8]>, &manual_compaction());
        Ok(())
    }

    /// Compacts one category (or all, with the internal column families) so that the
    /// space of deleted and overwritten entries is returned to the file system.
    pub fn compact(&self, category: Option<&[u8]>) -> Result<()> {
        self.check_writable()?;
        match category {
            Some(c) => {
                let ci = self.category_index(c)?;
                self.compact_cf(&self.cats[ci].cf_name)
            }
            None => {
                self.db.flush_cfs_opt(&self.all_cfs(), &rocksdb::FlushOptions::default())?;
                for c in &self.cats {
                    self.compact_cf(&c.cf_name)?;
                }
                self.compact_cf(LRU_CF)?;
                self.compact_cf(META_CF)?;
                // A log file stays until every column family has flushed what it holds, and
                // the evictor's writes meanwhile (counters, recency) can keep a small family
                // holding logs of many MiB: flushed again, they are all obsolete. RocksDB
                // deletes obsolete files from a background job, maybe after a flush returns;
                // turning deletions off and on purges them in this thread, so the disk use a
                // caller reads next is the compacted one.
                self.db.flush_cfs_opt(&self.all_cfs(), &rocksdb::FlushOptions::default())?;
                self.db.disable_file_deletions()?;
                Ok(self.db.enable_file_deletions()?)
            }
        }
    }

    /// Merges a column family's small tables when it holds many: what a run of short
    /// processes that each write an entry or two leaves behind. Each of their closes
    /// flushes a table of its few entries, and RocksDB moves a table that overlaps no
    /// table below it down as it is, never merging it: tables of one key each never
    /// overlap, so they only accumulated (500 processes of `open, set, close` one after
    /// another on a new cache left 815 tables, and an open went from 5 to 70-90 ms: it
    /// loads every table). Called by a writable close after its flush; one compaction
    /// of the key range the small tables span, when that reads at most MERGE_INPUT_MAX.
    /// Once merged, the next such tables overlap the merged one and RocksDB's own
    /// compactions take them in.
    pub(super) fn merge_small_tables(&self) {
        let Ok(files) = self.db.live_files() else { return };
        let mut names: Vec<&str> = self.cats.iter().map(|c| c.cf_name.as_str()).collect();
        names.extend([LRU_CF, META_CF]);
        for name in names {
            let small: Vec<&rocksdb::LiveFile> = files.iter().filter(|f| f.column_family_name == name && f.size < SMALL_TABLE).collect();
            if small.len() < SMALL_TABLES_MERGED {
                continue;
            }
            let (Some(lo), Some(hi)) = (small.iter().filter_map(|f| f.start_key.as_deref()).min(), small.iter().filter_map(|f| f.end_key.as_deref()).max()) else { continue };
            // What the compaction reads: every table of the family the range overlaps.
            // Above the bound (small tables among large ones), RocksDB's own compactions
            // are left to it, as before, rather than holding up this close.
            let overlaps = |f: &&rocksdb::LiveFile| f.column_family_name == name && f.start_key.as_deref().is_none_or(|s| s <= hi) && f.end_key.as_deref().is_none_or(|e| e >= lo);
            if files.iter().filter(overlaps).map(|f| f.size).sum::<usize>() > MERGE_INPUT_MAX {
                continue;
            }
            self.db.compact_range_cf_opt(self.cf(name), Some(lo), Some(hi), &manual_compaction());
        }
    }

    pub(super) fn all_cfs(&self) -> Vec<&ColumnFamily> {
        let mut v: Vec<&ColumnFamily> = self.cats.iter().map(|c| self.cf(&c.cf_name)).collect();
        v.push(self.cf(LRU_CF));
        v.push(self.cf(META_CF));
        v
    }

    /// Makes everything acknowledged so far durable (syncs the write-ahead log).
    pub fn flush(&self) -> Result<()> {
        self.check_writable()?;
        Ok(self.db.flush_wal(true)?)
    }

    /// Bytes of the categories' SST and blob files.
    pub(crate) fn category_file_bytes(&self) -> u64 {
        self.cats.iter().map(|c| self.cf_file_bytes(&c.cf_name)).sum()
    }

    /// Bytes of SST and blob files RocksDB holds for one column family.
    pub(crate) fn cf_file_bytes(&self, cf_name: &str) -> u64 {
        let cf = self.cf(cf_name);
        let p = |name: &str| self.db.property_int_value_cf(cf, name).ok().flatten().unwrap_or(0);
        p("rocksdb.total-sst-files-size") + p("rocksdb.total-blob-file-size")
    }

    pub(super) fn handle_stats(&self, ci: usize, s: &mut Stats) {
        let c = &self.cats[ci];
        s.hits += c.hits.load(Ordering::Relaxed);
        s.misses += c.misses.load(Ordering::Relaxed);
        s.writes += c.writes.load(Ordering::Relaxed);
        s.deletes += c.deletes.load(Ordering::Relaxed);
    }

    /// Statistics of the whole store. `disk_bytes` is the directory's size on disk.
    pub fn stats(&self) -> Stats {
        let st = self.lock_state();
        let mut s = Stats { read_only: self.read_only, recovered: self.recovered, ..Default::default() };
        for (ci, c) in st.counters.iter().enumerate() {
            s.add_counters(c);
            self.handle_stats(ci, &mut s);
        }
        drop(st);
        s.corrupt_dropped += self.corrupt_seen.load(Ordering::Relaxed);
        s.disk_bytes = disk_usage(&self.path);
        s
    }

    /// Statistics of one category. Its `disk_bytes` counts the category's SST and blob
    /// files; the write-ahead log and shared files are counted only in [`Store::stats`].
    pub fn category_stats(&self, category: &[u8]) -> Result<Stats> {
        let ci = self.category_index(category)?;
        let mut s = Stats { read_only: self.read_only, recovered: self.recovered, ..Default::default() };
        s.add_counters(&self.lock_state().counters[ci]);
        self.handle_stats(ci, &mut s);
        s.disk_bytes = self.cf_file_bytes(&self.cats[ci].cf_name);
        Ok(s)
    }

    /// Recounts every category from its data, for checks that the counters are exact.
    /// Returns, per category, the counters a full scan finds (evictions and
    /// corrupt_dropped, which a scan cannot see, are copied) and the number of index
    /// records.
    pub fn recount(&self) -> Result<Vec<(String, Counters, u64)>> {
        let st = self.lock_state();
        let mut out = Vec::new();
        for (ci, c) in self.cats.iter().enumerate() {
            let mut counters = st.counters[ci].emptied();
            let mut it = self.db.raw_iterator_cf(self.cf(&c.cf_name));
            it.seek_to_first();
            while let (Some(k), Some(v)) = (it.key(), it.value()) {
                counters.add(entry_size(k, v));
                it.next();
            }
            it.status()?;
            let p = lru_prefix(&c.name);
            let mut index = 0u64;
            let mut it = self.index_iter(&p, &p);
            while it.key().is_some() {
                index += 1;
                it.next();
            }
            it.status()?;
            out.push((c.name.clone(), counters, index));
        }
        Ok(out)
    }

    /// Per-category counters as the store keeps them, in the order of [`Store::recount`].
    pub fn counters(&self) -> Vec<(String, Counters)> {
        let st = self.lock_state();
        self.cats.iter().zip(st.counters.iter()).map(|(c, k)| (c.name.clone(), *k)).collect()
    }
}
