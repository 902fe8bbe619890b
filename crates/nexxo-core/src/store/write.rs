//! Writes: sets, batches, fills, deletes and clears, each one atomic RocksDB write that
//! carries the data, its recency-index records and the category counters together.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use rocksdb::{ColumnFamily, WriteBatch};

use super::layout::{counters_key, journal_key, JOURNAL_PREFIX, decode_size, encode_size, entry_size, lru_key, lru_key_into, lru_prefix, parse_lru_key, prefix_end, LRU_CF, META_CF};
use super::{by_category, Store};
use crate::codec::{self, Header};
use crate::error::{Error, Result};
use crate::limits::{check_key, check_value};
use crate::stats::{Counters, EntrySize};

/// An entry as found in the store before a write replaces or removes it.
#[derive(Clone, Copy)]
pub(crate) struct Existing {
    pub generation: Option<u32>,
    pub size: EntrySize,
}

/// The hasher of a write batch's map of its own keys (which finds a key written twice in
/// one batch): multiply-rotate over 8 bytes at a time, several times faster than the
/// default SipHash on short keys. The map lives for one call, over the caller's keys.
#[derive(Clone, Copy, Default)]
pub(super) struct BatchHash;

impl std::hash::BuildHasher for BatchHash {
    type Hasher = BatchHasher;
    fn build_hasher(&self) -> BatchHasher {
        BatchHasher(0)
    }
}

pub(super) struct BatchHasher(u64);

impl std::hash::Hasher for BatchHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl BatchHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// Column family handles for one batch of writes, each looked up (by name, in RocksDB's
/// map) at its first use rather than three or four times per entry.
pub(super) struct WriteCfs<'a> {
    store: &'a Store,
    cats: Vec<std::cell::OnceCell<&'a ColumnFamily>>,
    lru: std::cell::OnceCell<&'a ColumnFamily>,
    /// Where index keys are built: RocksDB copies each into the batch.
    lru_key: std::cell::RefCell<Vec<u8>>,
}

impl<'a> WriteCfs<'a> {
    fn cat(&self, ci: usize) -> &'a ColumnFamily {
        self.cats[ci].get_or_init(|| self.store.cf(&self.store.cats[ci].cf_name))
    }

    fn lru(&self) -> &'a ColumnFamily {
        self.lru.get_or_init(|| self.store.cf(LRU_CF))
    }

    /// Puts (`Some(value)`) or deletes the index record of `key` in `batch`.
    fn index(&self, batch: &mut WriteBatch, ci: usize, generation: u32, key: &[u8], value: Option<&[u8]>) {
        let mut k = self.lru_key.borrow_mut();
        lru_key_into(&mut k, &self.store.cats[ci].name, generation, key);
        match value {
            Some(v) => batch.put_cf(self.lru(), &*k, v),
            None => batch.delete_cf(self.lru(), &*k),
        }
    }
}

impl Store {
    /// An entry as its recency-index record describes it, for when its frame cannot be read.
    pub(super) fn existing_from_index(&self, ci: usize, key: &[u8]) -> Result<Option<Existing>> {
        let Some(g) = self.find_index_generation(ci, key)? else { return Ok(None) };
        let record = self.db.get_pinned_cf(self.cf(LRU_CF), lru_key(&self.cats[ci].name, g, key))?;
        Ok(record.and_then(|r| decode_size(&r)).map(|size| Existing { generation: Some(g), size }))
    }

    /// What the store holds under a key now, for a writer holding the state lock.
    pub(crate) fn existing(&self, ci: usize, key: &[u8]) -> Result<Option<Existing>> {
        self.existing_in(&self.write_cfs(), ci, key)
    }

    pub(super) fn write_cfs(&self) -> WriteCfs<'_> {
        WriteCfs {
            store: self,
            cats: vec![std::cell::OnceCell::new(); self.cats.len()],
            lru: std::cell::OnceCell::new(),
            lru_key: std::cell::RefCell::new(Vec::with_capacity(64)),
        }
    }

    pub(super) fn existing_in(&self, cfs: &WriteCfs<'_>, ci: usize, key: &[u8]) -> Result<Option<Existing>> {
        self.existing_from_read(ci, key, self.db.get_pinned_cf_opt(cfs.cat(ci), key, &self.read_opts))
    }

    /// What a read of `key` (a get or one key of a multi-get) says the store holds.
    pub(super) fn existing_from_read(&self, ci: usize, key: &[u8], read: std::result::Result<Option<rocksdb::DBPinnableSlice<'_>>, rocksdb::Error>) -> Result<Option<Existing>> {
        match read {
            Ok(None) => Ok(None),
            Ok(Some(frame)) => self.existing_from_frame(ci, key, &frame).map(Some),
            // A damaged table: the index record still describes the entry.
            Err(e) if e.kind() == rocksdb::ErrorKind::Corruption => {
                self.mark_damaged();
                self.existing_from_index(ci, key)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// [`Store::existing_in`] for each of a batch's entries, with one multi-get per
    /// category (cheaper than a get per key once a batch has more than a few).
    pub(super) fn existing_many(&self, cfs: &WriteCfs<'_>, entries: &[(usize, &[u8], &[u8])]) -> Result<Vec<Option<Existing>>> {
        if entries.len() < 8 {
            return entries.iter().map(|(ci, key, _)| self.existing_in(cfs, *ci, key)).collect();
        }
        let mut out = vec![None; entries.len()];
        for (ci, idxs) in by_category(entries.iter().enumerate().map(|(i, (ci, _, _))| (i, *ci))) {
            // `entries` are sorted by key within a category (`store_entries`).
            debug_assert!(idxs.windows(2).all(|w| entries[w[0]].1 <= entries[w[1]].1));
            let results = self.db.batched_multi_get_cf_opt(cfs.cat(ci), idxs.iter().map(|&i| entries[i].1), true, &self.read_opts);
            for (&i, r) in idxs.iter().zip(results) {
                out[i] = self.existing_from_read(ci, entries[i].1, r)?;
            }
        }
        Ok(out)
    }

    pub(super) fn existing_from_frame(&self, ci: usize, key: &[u8], frame: &[u8]) -> Result<Existing> {
        let size = entry_size(key, frame);
        let generation = match Header::parse(frame) {
            Ok(h) => Some(h.generation),
            // A damaged header: find the entry's index record by its key instead.
            Err(_) => self.find_index_generation(ci, key)?,
        };
        Ok(Existing { generation, size })
    }

    /// Scans one category's index for a key (only for frames whose header is damaged).
    pub(super) fn find_index_generation(&self, ci: usize, key: &[u8]) -> Result<Option<u32>> {
        let prefix = lru_prefix(&self.cats[ci].name);
        let mut it = self.index_iter(&prefix, &prefix);
        while let Some(k) = it.key() {
            if let Some((g, _)) = parse_lru_key(&prefix, k).filter(|(_, k)| *k == key) {
                return Ok(Some(g));
            }
            it.next();
        }
        it.status()?;
        Ok(None)
    }

    /// Adds the removal of an existing entry (data, index and tags) to `batch`.
    pub(crate) fn remove_into(&self, batch: &mut WriteBatch, ci: usize, key: &[u8], e: &Existing, counters: &mut Counters) -> Result<()> {
        self.remove_into_cfs(&self.write_cfs(), batch, ci, key, e, counters);
        let tags = self.entry_tags(ci, key)?;
        self.untag_into(batch, ci, key, &tags);
        Ok(())
    }

    /// The removal of data and index only (a caller that handles the tags itself).
    pub(super) fn remove_into_cfs(&self, cfs: &WriteCfs<'_>, batch: &mut WriteBatch, ci: usize, key: &[u8], e: &Existing, counters: &mut Counters) {
        batch.delete_cf(cfs.cat(ci), key);
        if let Some(g) = e.generation {
            cfs.index(batch, ci, g, key, None);
        }
        counters.remove(e.size);
    }

    /// Adds the storing of a frame (data and index) to `batch`.
    pub(crate) fn put_into(&self, batch: &mut WriteBatch, ci: usize, key: &[u8], frame: &[u8], generation: u32, counters: &mut Counters) -> EntrySize {
        self.put_into_cfs(&self.write_cfs(), batch, ci, key, frame, generation, counters)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn put_into_cfs(&self, cfs: &WriteCfs<'_>, batch: &mut WriteBatch, ci: usize, key: &[u8], frame: &[u8], generation: u32, counters: &mut Counters) -> EntrySize {
        let size = entry_size(key, frame);
        batch.put_cf(cfs.cat(ci), key, frame);
        cfs.index(batch, ci, generation, key, Some(&encode_size(size)));
        counters.add(size);
        size
    }

    pub(crate) fn put_counters(&self, batch: &mut WriteBatch, ci: usize, counters: &Counters) {
        batch.put_cf(self.cf(META_CF), counters_key(&self.cats[ci].name), counters.encode());
    }

    pub(crate) fn write(&self, batch: WriteBatch) -> Result<()> {
        self.write_noting(batch, Replaced::Nothing)
    }

    /// Writes `batch`; then, before the write is acknowledged, no frame it replaced may be
    /// served: the warm table lets go of what `replaced` says, and the readers that follow
    /// this store from other processes are told to catch up before their next read.
    fn write_noting(&self, batch: WriteBatch, replaced: Replaced<'_>) -> Result<()> {
        self.db.write_opt(batch, &self.write_opts)?;
        match replaced {
            Replaced::Nothing => {}
            Replaced::Keys(keys) => self.warm.forget(keys.iter().copied()),
            Replaced::Any => self.warm.clear(),
        }
        if let Some(notify) = self.on_write.get() {
            notify(!matches!(replaced, Replaced::Nothing));
        }
        Ok(())
    }

    /// [`Store::write`] of a batch that overwrites or removes entries (see
    /// [`Store::write_noting`]).
    pub(crate) fn write_removing(&self, batch: WriteBatch) -> Result<()> {
        self.write_noting(batch, Replaced::Any)
    }

    /// Stores one value, replacing what the key held.
    pub fn set(&self, category: &[u8], key: &[u8], value: &[u8]) -> Result<()> {
        self.batch_set(&[(category, key, value)])
    }

    /// Stores several values atomically: after a crash either all are there or none.
    /// Every entry is validated before anything is written.
    pub fn batch_set(&self, entries: &[(&[u8], &[u8], &[u8])]) -> Result<()> {
        self.store_entries(entries, None, false, &[]).map(|_| ())
    }

    /// [`Store::batch_set`] that also records, in the same atomic write, the last record
    /// applied of each client journal in `marks` (`(journal id, sequence)`; see
    /// `share/journal.rs`): after a crash either the entries and the marks are there or
    /// neither is, so no journal record is applied twice.
    pub(crate) fn batch_set_marked(&self, entries: &[(&[u8], &[u8], &[u8])], marks: &[(u64, u64)]) -> Result<()> {
        self.store_entries(entries, None, false, marks).map(|_| ())
    }

    /// The last record of client journal `id` this store applied.
    pub(crate) fn journal_mark(&self, id: u64) -> Result<Option<u64>> {
        let v = self.db.get_pinned_cf(self.cf(META_CF), journal_key(id))?;
        Ok(v.and_then(|v| <[u8; 8]>::try_from(&v[..]).ok()).map(u64::from_le_bytes))
    }

    /// Forgets the mark of a journal that is gone (applied whole and removed).
    pub(crate) fn forget_journal(&self, id: u64) -> Result<()> {
        self.check_writable()?;
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.cf(META_CF), journal_key(id));
        self.db.write_opt(batch, &self.write_opts)?;
        Ok(())
    }

    /// The journals this store holds a mark of.
    pub(crate) fn journal_marks(&self) -> Result<Vec<u64>> {
        let mut it = self.db.raw_iterator_cf(self.cf(META_CF));
        it.seek(JOURNAL_PREFIX);
        let mut ids = Vec::new();
        while let Some(k) = it.key() {
            let Some(id) = k.strip_prefix(JOURNAL_PREFIX).and_then(|b| <[u8; 8]>::try_from(b).ok()) else { break };
            ids.push(u64::from_be_bytes(id));
            it.next();
        }
        it.status()?;
        Ok(ids)
    }

    /// [`Store::batch_set`] with each entry's tags (`tags[i]` for `entries[i]`; see
    /// `tags.rs`): an overwritten entry's old tags are dropped, in the same atomic write.
    pub fn batch_set_tagged(&self, entries: &[(&[u8], &[u8], &[u8])], tags: &[&[&[u8]]]) -> Result<()> {
        if tags.len() != entries.len() {
            return Err(Error::InvalidArgument(format!("{} tag lists for {} entries", tags.len(), entries.len())));
        }
        self.store_entries(entries, Some(tags), false, &[]).map(|_| ())
    }

    /// Stores a value only when the key holds none (a value fetched from a remote tier
    /// never overwrites one written here meanwhile). Returns whether it was stored.
    pub fn fill(&self, category: &[u8], key: &[u8], value: &[u8]) -> Result<bool> {
        self.store_entries(&[(category, key, value)], None, true, &[]).map(|n| n == 1)
    }

    /// `batch_set`, or with `only_absent` a batch that skips keys holding a value; `marks`
    /// as [`Store::batch_set_marked`]. Returns the number of entries written.
    pub(super) fn store_entries(&self, entries: &[(&[u8], &[u8], &[u8])], tags: Option<&[&[&[u8]]]>, only_absent: bool, marks: &[(u64, u64)]) -> Result<usize> {
        let mut prepared = Vec::with_capacity(entries.len());
        for (cat, key, value) in entries {
            let ci = self.category_index(cat)?;
            check_key(key)?;
            check_value(value)?;
            prepared.push((ci, *key, *value));
        }
        // The entries in key order, category by category (stable: a key given twice keeps
        // its two entries in the caller's order, so the later value still wins). RocksDB
        // inserts each write into a memtable skiplist starting from where its previous
        // insert ended, and a multi-get sorts its keys: in key order both are cheaper than
        // in the caller's (hashes of contents, for a build: random). `order`, when they
        // moved, gives the caller's index of `prepared[i]` (for its tags).
        let order = sort_by_key_order(&mut prepared);
        let tagging = tags.is_some_and(|t| t.iter().any(|t| !t.is_empty()));
        if let Some(tags) = tags {
            for t in tags {
                super::tags::check_tags(t)?;
            }
        }
        self.check_writable()?;
        if prepared.is_empty() && marks.is_empty() {
            return Ok(0);
        }
        if tagging {
            self.start_tagging()?;
        }
        // Compress and checksum outside the lock, the frames one after another in one
        // buffer sized for the worst case (raw frames): no allocation per value. The
        // generation is patched in below. (On two threads, large batches were 8-15% slower
        // on 2 cores: RocksDB's flushes want the other core.)
        let mut arena = Vec::with_capacity(prepared.iter().map(|(_, _, v)| codec::HEADER_LEN + v.len()).sum());
        let mut scratch = Vec::new();
        let mut at = 0;
        let ends: Vec<usize> = prepared
            .iter()
            .map(|(ci, key, value)| {
                at += codec::encode_append(self.cats[*ci].name.as_bytes(), key, value, 0, self.config.compression, &mut scratch, &mut arena);
                at
            })
            .collect();
        let mut frames: Vec<&mut [u8]> = Vec::with_capacity(prepared.len());
        let mut rest = &mut arena[..];
        let mut start = 0;
        for &end in &ends {
            let (frame, tail) = std::mem::take(&mut rest).split_at_mut(end - start);
            frames.push(frame);
            rest = tail;
            start = end;
        }

        let mut st = self.lock_state();
        let incoming: u64 = prepared.iter().zip(&frames).map(|((_, k, _), f)| (k.len() + f.len()) as u64).sum();
        st.space.admit(&self.path, incoming, self.config.memory_budget / 4, || {
            self.category_file_bytes() + self.cf_file_bytes(LRU_CF)
        })?;
        self.apply_touches(&mut st, super::recency::TOUCHES_PER_WRITE)?;
        let generation = st.gens.current;
        let mut counters = st.counters.clone();
        // Sized up front: each record's frame and key, its index record (category, key,
        // generation, size) and RocksDB's per-record overhead; growing it by doubling
        // copied the batch a dozen times.
        let reserve: usize = prepared.iter().zip(&frames).map(|((ci, k, _), f)| f.len() + 2 * k.len() + self.cats[*ci].name.len() + 48).sum();
        let mut batch = WriteBatch::with_capacity_bytes(reserve + 256);
        // Earlier entries of this batch shadow the store for later ones with the same key.
        let mut shadow: HashMap<(usize, &[u8]), Existing, BatchHash> = HashMap::with_capacity_and_hasher(prepared.len(), BatchHash);
        let mut added = 0u64;
        let mut written = vec![false; prepared.len()];
        let mut replaced: Vec<(usize, &[u8])> = Vec::new();
        let cfs = self.write_cfs();
        let stored = self.existing_many(&cfs, &prepared)?;
        // With tag bookkeeping on: the tags each key holds as this batch goes (an earlier
        // entry of the batch shadows the store, as for the entries themselves).
        let tracking = self.tags_in_use();
        let mut shadow_tags: HashMap<(usize, &[u8]), Vec<Vec<u8>>, BatchHash> = HashMap::with_hasher(BatchHash);
        for (i, ((((ci, key, _), frame), written), stored)) in prepared.iter().zip(frames.iter_mut()).zip(written.iter_mut()).zip(stored).enumerate() {
            codec::set_generation(frame, generation);
            let old = match shadow.get(&(*ci, *key)) {
                Some(e) => Some(*e),
                None => stored,
            };
            if only_absent && old.is_some() {
                continue;
            }
            *written = true;
            if let Some(old) = old {
                replaced.push((*ci, *key));
                // A repeated key in one batch deletes and re-puts the same index record;
                // a WriteBatch applies its operations in order, so the last put wins.
                self.remove_into_cfs(&cfs, &mut batch, *ci, key, &old, &mut counters[*ci]);
            }
            if tracking {
                let old_tags = match shadow_tags.remove(&(*ci, *key)) {
                    Some(t) => t,
                    None if old.is_some() => self.entry_tags(*ci, key)?,
                    None => Vec::new(),
                };
                self.untag_into(&mut batch, *ci, key, &old_tags);
                let new_tags: &[&[u8]] = tags.map_or(&[], |t| t[order.as_ref().map_or(i, |o| o[i])]);
                self.tag_into(&mut batch, *ci, key, new_tags);
                shadow_tags.insert((*ci, *key), new_tags.iter().map(|t| t.to_vec()).collect());
            }
            let size = self.put_into_cfs(&cfs, &mut batch, *ci, key, frame, generation, &mut counters[*ci]);
            shadow.insert((*ci, *key), Existing { generation: Some(generation), size });
            added += size.stored;
        }
        if !written.contains(&true) && marks.is_empty() {
            return Ok(0);
        }
        for (id, seq) in marks {
            batch.put_cf(self.cf(META_CF), journal_key(*id), seq.to_le_bytes());
        }
        let mut touched: Vec<usize> = prepared.iter().zip(&written).filter(|(_, w)| **w).map(|(p, _)| p.0).collect();
        touched.sort_unstable();
        touched.dedup();
        for &ci in &touched {
            self.put_counters(&mut batch, ci, &counters[ci]);
        }
        let advanced = st.gens.account(added, (self.clock)());
        if let Some(g) = &advanced {
            g.write_into(&mut batch, self.cf(META_CF));
        }
        // A batch of sets removes nothing: only the keys it overwrote leave the warm table.
        self.write_noting(batch, if replaced.is_empty() { Replaced::Nothing } else { Replaced::Keys(&replaced) })?;
        // The frames just written are the next reads of this build (still under the
        // writers' lock: no later write of these keys can be overtaken).
        let warm: Vec<(usize, &[u8], &[u8])> = prepared.iter().zip(&frames).zip(&written).filter(|(_, w)| **w).map(|(((ci, key, _), frame), _)| (*ci, *key, &frame[..])).collect();
        self.warm.insert(&warm);
        st.counters = counters;
        if let Some(g) = advanced {
            self.publish_generation(g.generation);
            st.gens.commit(g);
        }
        let over = self.over_limits(&st);
        drop(st);
        for ((ci, _, _), _) in prepared.iter().zip(&written).filter(|(_, w)| **w) {
            self.cats[*ci].writes.fetch_add(1, Ordering::Relaxed);
        }
        if over {
            self.on_over_limit()?;
        }
        Ok(written.iter().filter(|w| **w).count())
    }

    /// Removes a key. Removing a key that is absent is not an error.
    pub fn delete(&self, category: &[u8], key: &[u8]) -> Result<()> {
        self.remove(category, key).map(|_| ())
    }

    /// [`Store::delete`], returning whether the key held an entry.
    pub fn remove(&self, category: &[u8], key: &[u8]) -> Result<bool> {
        let ci = self.category_index(category)?;
        check_key(key)?;
        self.check_writable()?;
        let mut st = self.lock_state();
        let Some(old) = self.existing(ci, key)? else { return Ok(false) };
        let mut counters = st.counters[ci];
        let mut batch = WriteBatch::default();
        self.remove_into(&mut batch, ci, key, &old, &mut counters)?;
        self.put_counters(&mut batch, ci, &counters);
        self.write_removing(batch)?;
        st.counters[ci] = counters;
        drop(st);
        self.cats[ci].deletes.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    /// Removes every entry of the given categories (all of them when `categories` is
    /// empty) in one atomic write, then compacts them to return the disk space.
    pub fn clear(&self, categories: &[&[u8]]) -> Result<()> {
        let mut idx = Vec::new();
        for c in categories {
            idx.push(self.category_index(c)?);
        }
        if categories.is_empty() {
            idx = (0..self.cats.len()).collect();
        }
        idx.sort_unstable();
        idx.dedup();
        self.check_writable()?;
        let mut st = self.lock_state();
        let mut counters = st.counters.clone();
        let mut batch = WriteBatch::default();
        for &ci in &idx {
            let c = &self.cats[ci];
            // Point deletes of every key: category tables (PlainTable) have no DeleteRange.
            let cf = self.cf(&c.cf_name);
            let mut it = self.db.raw_iterator_cf(cf);
            it.seek_to_first();
            while let Some(k) = it.key() {
                batch.delete_cf(cf, k);
                it.next();
            }
            it.status()?;
            let p = lru_prefix(&c.name);
            batch.delete_range_cf(self.cf(LRU_CF), p.clone(), prefix_end(&p));
            self.untag_category_into(&mut batch, ci)?;
            counters[ci] = counters[ci].emptied();
            self.put_counters(&mut batch, ci, &counters[ci]);
        }
        self.write_removing(batch)?;
        st.counters = counters;
        drop(st);
        for &ci in &idx {
            self.compact_cf(&self.cats[ci].cf_name)?;
        }
        self.compact_cf(LRU_CF)?;
        Ok(())
    }
}

/// Sorts a batch's entries by (category, key), stably. Returns each one's index in the
/// caller's order, or None when the batch was in order already (a single set: no
/// allocation).
fn sort_by_key_order(prepared: &mut Vec<(usize, &[u8], &[u8])>) -> Option<Vec<usize>> {
    if prepared.windows(2).all(|w| (w[0].0, w[0].1) <= (w[1].0, w[1].1)) {
        return None;
    }
    let mut order: Vec<usize> = (0..prepared.len()).collect();
    order.sort_by_key(|&i| (prepared[i].0, prepared[i].1));
    *prepared = order.iter().map(|&i| prepared[i]).collect();
    Some(order)
}

/// What a write did to the entries stored before it.
#[derive(Clone, Copy)]
enum Replaced<'a> {
    /// Only new keys.
    Nothing,
    /// Overwrote these keys (category, key), removed nothing.
    Keys(&'a [(usize, &'a [u8])]),
    /// Overwrote or removed entries, which ones not said.
    Any,
}
