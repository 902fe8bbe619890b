//! Damage: frames that fail their checksum, tables a read cannot decode, and the
//! `verify` walk that finds and removes what damage left.

use std::sync::atomic::Ordering;

use rocksdb::WriteBatch;

use super::dir::REPAIR_MARKER;
use super::layout::{counters_key, lru_prefix, parse_lru_key, LRU_CF, META_CF};
use super::Store;
use crate::codec;
use crate::error::Result;

/// What [`Store::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries read.
    pub checked: u64,
    /// Entries whose frame failed to decode or failed its checksum.
    pub bad: u64,
    /// Bad entries removed (with `drop_bad`).
    pub dropped: u64,
    /// Recency-index records without an entry removed (with `drop_bad`): left by a
    /// damaged key.
    pub dropped_index_records: u64,
    /// Bytes of the values that decoded.
    pub value_bytes: u64,
    /// The first 1000 bad entries: (category, key).
    pub bad_keys: Vec<(String, Vec<u8>)>,
    /// Categories whose table could not be read to its end (category, RocksDB's error):
    /// what lies past the damage cannot be reached through RocksDB. The store is marked
    /// so that its next writable open salvages it (keeping every intact entry).
    pub damaged_tables: Vec<(String, String)>,
}

impl Store {
    /// A read of `key` failed RocksDB's own checks (a damaged table or blob file): the
    /// read is a miss, it is counted as damage seen, and the store is marked so that its
    /// next writable open salvages it, keeping every intact entry (see `salvage.rs`).
    /// Nothing is deleted here: a PlainTable read walks from an index point to its key,
    /// so keys whose own bytes are intact fail too when a damaged stretch lies between
    /// (measured: 4 KiB zeroed in a table of 1 KiB entries failed 47 keys; a salvage
    /// loses 4). A key written again reads from the new write.
    pub(super) fn drop_unreadable(&self, _ci: usize, _key: &[u8]) {
        self.mark_damaged();
        self.corrupt_seen.fetch_add(1, Ordering::Relaxed);
    }

    /// Marks the store for repair at the next open (once).
    pub(super) fn mark_damaged(&self) {
        if !self.damaged.swap(true, Ordering::SeqCst) {
            let _ = std::fs::write(self.path.join(REPAIR_MARKER), "a read found a damaged table; the next open repairs the store\n");
        }
    }

    /// Removes a frame that failed its checksum, if it is still the one that was read.
    pub(super) fn drop_corrupt(&self, ci: usize, key: &[u8], seen: &[u8]) -> Result<()> {
        if self.read_only {
            self.corrupt_seen.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let mut st = self.lock_state();
        let c = &self.cats[ci];
        let cf = self.cf(&c.cf_name);
        let current = self.db.get_pinned_cf(cf, key)?;
        if current.as_deref() != Some(seen) {
            return Ok(()); // replaced meanwhile
        }
        drop(current);
        let existing = self.existing_from_frame(ci, key, seen)?;
        let mut counters = st.counters[ci];
        let mut batch = WriteBatch::default();
        self.remove_into(&mut batch, ci, key, &existing, &mut counters)?;
        counters.corrupt_dropped += 1;
        batch.put_cf(self.cf(META_CF), counters_key(&c.name), counters.encode());
        self.write_removing(batch)?;
        st.counters[ci] = counters;
        Ok(())
    }

    /// Reads every entry and checks its checksum. With `drop_bad`, entries that fail are
    /// removed (and counted in `corrupt_dropped`) as a read would. `progress` is called
    /// with (entries checked, entries in all) every 4096 entries and at the end.
    pub fn verify(&self, drop_bad: bool, progress: &mut dyn FnMut(u64, u64)) -> Result<VerifyReport> {
        if drop_bad {
            self.check_writable()?;
        }
        let total: u64 = self.lock_state().counters.iter().map(|c| c.entries).sum();
        let mut report = VerifyReport::default();
        for (ci, c) in self.cats.iter().enumerate() {
            let mut bad_here: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            let mut it = self.db.raw_iterator_cf(self.cf(&c.cf_name));
            it.seek_to_first();
            while let (Some(k), Some(v)) = (it.key(), it.value()) {
                report.checked += 1;
                match codec::decode(c.name.as_bytes(), k, v) {
                    Ok(value) => report.value_bytes += value.len() as u64,
                    Err(_) => {
                        report.bad += 1;
                        if report.bad_keys.len() < 1000 {
                            report.bad_keys.push((c.name.clone(), k.to_vec()));
                        }
                        if drop_bad {
                            bad_here.push((k.to_vec(), v.to_vec()));
                        }
                    }
                }
                if report.checked % 4096 == 0 {
                    progress(report.checked, total.max(report.checked));
                }
                it.next();
            }
            if let Err(e) = it.status() {
                // A table (or blob file) RocksDB cannot read on: damage, not a failure of
                // verify. Salvage at the next open reads past it.
                let e = crate::error::Error::from(e);
                if !matches!(e, crate::error::Error::Corruption(_)) {
                    return Err(e);
                }
                self.mark_damaged();
                report.damaged_tables.push((c.name.clone(), e.to_string()));
            }
            drop(it);
            for (k, v) in bad_here {
                self.drop_corrupt(ci, &k, &v)?;
                report.dropped += 1;
            }
            // (A damaged table is salvaged whole at the next open, index included.)
            if drop_bad && !report.damaged_tables.iter().any(|(n, _)| *n == c.name) {
                report.dropped_index_records += self.drop_orphan_index_records(ci)?;
            }
        }
        progress(report.checked, total.max(report.checked));
        Ok(report)
    }

    /// Removes recency-index records whose entry has no data: what a damaged key in a
    /// table leaves behind (its entry's bytes now sit under another, garbled key, which
    /// fails its checksum and is dropped). Returns how many were removed.
    pub(super) fn drop_orphan_index_records(&self, ci: usize) -> Result<u64> {
        let c = &self.cats[ci];
        let prefix = lru_prefix(&c.name);
        let _st = self.lock_state(); // no write may add an entry between check and delete
        let mut batch = WriteBatch::default();
        let mut n = 0;
        let mut it = self.index_iter(&prefix, &prefix);
        while let Some(k) = it.key() {
            if let Some((_, key)) = parse_lru_key(&prefix, k).filter(|(_, key)| !key.is_empty()) {
                if self.db.get_pinned_cf_opt(self.cf(&c.cf_name), key, &self.read_opts)?.is_none() {
                    batch.delete_cf(self.cf(LRU_CF), k);
                    let tags = self.entry_tags(ci, key)?;
                    self.untag_into(&mut batch, ci, key, &tags);
                    n += 1;
                }
            }
            it.next();
        }
        it.status()?;
        drop(it);
        if n > 0 {
            self.write(batch)?;
        }
        Ok(n)
    }

    /// Writes a raw frame under a key, bypassing the codec, for tests of damage handling.
    #[doc(hidden)]
    pub fn debug_put_raw(&self, category: &[u8], key: &[u8], frame: &[u8]) -> Result<()> {
        let ci = self.category_index(category)?;
        let mut st = self.lock_state();
        let mut counters = st.counters[ci];
        let mut batch = WriteBatch::default();
        if let Some(old) = self.existing(ci, key)? {
            self.remove_into(&mut batch, ci, key, &old, &mut counters)?;
        }
        let generation = st.gens.current;
        self.put_into(&mut batch, ci, key, frame, generation, &mut counters);
        self.put_counters(&mut batch, ci, &counters);
        self.write_removing(batch)?;
        st.counters[ci] = counters;
        Ok(())
    }
}
