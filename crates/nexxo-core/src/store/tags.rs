//! Tags: short byte strings a write may carry to say what the artifact depends on (a
//! config file's path and hash, `package@version`, a compiler id). `invalidate(tag)`
//! removes every entry carrying the tag, in every category, in one atomic write with
//! exact counters.
//!
//! Kept in the meta column family (so a cache that never used tags is what it was, and
//! older builds still open one that did), in the same atomic write as the data:
//! - `tagT/<u16 BE tag length><tag><u8 category length><category><key>` → empty: the
//!   index `invalidate` walks, O(entries holding the tag);
//! - `tagE/<u8 category length><category><key>` → the entry's tags (`u8` count, then
//!   `u16 BE length` + bytes each): what an overwrite, delete, eviction or clear removes
//!   with the entry.
//!
//! Overwriting or deleting an entry drops its old tags; eviction and clear drop the
//! evicted and cleared entries' tags. A store that has never held a tag pays nothing:
//! `NEXXO_TAGGED` in the cache directory, written (synced) before the first tagged
//! write, turns the bookkeeping on. A salvage (a damaged store) cannot read these
//! records back with the entries, so a damaged store that used tags is emptied instead of
//! salvaged: an entry whose tags were lost could never be invalidated.
//!
//! Limits: a tag is 1 to [`MAX_TAG_LEN`] bytes (any bytes), an entry carries at most
//! [`MAX_TAGS`].

use std::sync::atomic::Ordering;

use rocksdb::WriteBatch;

use super::layout::META_CF;
use super::Store;
use crate::error::{Error, Result};

pub const MAX_TAG_LEN: usize = 256;
pub const MAX_TAGS: usize = 32;
/// Written before the first tagged write; its presence turns tag bookkeeping on.
pub(crate) const TAGGED_FILE: &str = "NEXXO_TAGGED";

const TAG_PREFIX: &[u8] = b"tagT/";
const ENTRY_PREFIX: &[u8] = b"tagE/";

/// The tags a write carries, judged before anything is written.
pub fn check_tags(tags: &[&[u8]]) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(Error::InvalidArgument(format!("{} tags on one entry (at most {MAX_TAGS})", tags.len())));
    }
    for t in tags {
        check_tag(t)?;
    }
    Ok(())
}

pub fn check_tag(tag: &[u8]) -> Result<()> {
    match tag.len() {
        0 => Err(Error::InvalidArgument("an empty tag".into())),
        n if n > MAX_TAG_LEN => Err(Error::TooLarge(format!("tag of {n} bytes exceeds the limit of {MAX_TAG_LEN}"))),
        _ => Ok(()),
    }
}

fn tag_prefix(tag: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(TAG_PREFIX.len() + 2 + tag.len());
    k.extend_from_slice(TAG_PREFIX);
    k.extend_from_slice(&(tag.len() as u16).to_be_bytes());
    k.extend_from_slice(tag);
    k
}

fn push_entry(out: &mut Vec<u8>, category: &str, key: &[u8]) {
    out.push(category.len() as u8);
    out.extend_from_slice(category.as_bytes());
    out.extend_from_slice(key);
}

fn tag_key(tag: &[u8], category: &str, key: &[u8]) -> Vec<u8> {
    let mut k = tag_prefix(tag);
    push_entry(&mut k, category, key);
    k
}

fn entry_key(category: &str, key: &[u8]) -> Vec<u8> {
    let mut k = ENTRY_PREFIX.to_vec();
    push_entry(&mut k, category, key);
    k
}

/// The category prefix of the entry records (for clear).
fn entry_category_prefix(category: &str) -> Vec<u8> {
    let mut k = ENTRY_PREFIX.to_vec();
    k.push(category.len() as u8);
    k.extend_from_slice(category.as_bytes());
    k
}

/// (category, key) of an entry record's or a tag record's tail.
fn split_entry(rest: &[u8]) -> Option<(&str, &[u8])> {
    let (&n, rest) = rest.split_first()?;
    let n = n as usize;
    if rest.len() < n {
        return None;
    }
    let (cat, key) = rest.split_at(n);
    Some((std::str::from_utf8(cat).ok()?, key))
}

fn encode_tags(tags: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + tags.iter().map(|t| 2 + t.len()).sum::<usize>());
    v.push(tags.len() as u8);
    for t in tags {
        v.extend_from_slice(&(t.len() as u16).to_be_bytes());
        v.extend_from_slice(t);
    }
    v
}

fn decode_tags(mut v: &[u8]) -> Option<Vec<Vec<u8>>> {
    let (&n, rest) = v.split_first()?;
    v = rest;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let (len, rest) = v.split_first_chunk::<2>()?;
        let len = u16::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return None;
        }
        out.push(rest[..len].to_vec());
        v = &rest[len..];
    }
    v.is_empty().then_some(out)
}

impl Store {
    /// Whether tag bookkeeping is on (this cache has held a tag).
    pub(crate) fn tags_in_use(&self) -> bool {
        self.tagged.load(Ordering::Acquire)
    }

    /// Turns tag bookkeeping on, for good: the marker is on disk before the first
    /// tagged write (a crash in between leaves bookkeeping on and nothing tagged).
    pub(super) fn start_tagging(&self) -> Result<()> {
        if self.tags_in_use() {
            return Ok(());
        }
        super::dir::replace_file(&self.path, TAGGED_FILE, b"nexxo-cache tags 1\n", true).map_err(|e| Error::Io(format!("{}: {e}", self.path.join(TAGGED_FILE).display())))?;
        self.tagged.store(true, Ordering::Release);
        Ok(())
    }

    /// The tags an entry carries (none when it carries none or bookkeeping is off).
    pub(super) fn entry_tags(&self, ci: usize, key: &[u8]) -> Result<Vec<Vec<u8>>> {
        if !self.tags_in_use() {
            return Ok(Vec::new());
        }
        let v = self.db.get_pinned_cf(self.cf(META_CF), entry_key(&self.cats[ci].name, key))?;
        Ok(v.and_then(|v| decode_tags(&v)).unwrap_or_default())
    }

    /// Adds to `batch` the removal of an entry's tag records (`tags`: what it carries).
    pub(super) fn untag_into(&self, batch: &mut WriteBatch, ci: usize, key: &[u8], tags: &[Vec<u8>]) {
        if tags.is_empty() {
            return;
        }
        let meta = self.cf(META_CF);
        let name = &self.cats[ci].name;
        for t in tags {
            batch.delete_cf(meta, tag_key(t, name, key));
        }
        batch.delete_cf(meta, entry_key(name, key));
    }

    /// Adds to `batch` an entry's tag records (a tag given twice counts once).
    pub(super) fn tag_into(&self, batch: &mut WriteBatch, ci: usize, key: &[u8], tags: &[&[u8]]) {
        if tags.is_empty() {
            return;
        }
        let mut unique = tags.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let tags = &unique[..];
        let meta = self.cf(META_CF);
        let name = &self.cats[ci].name;
        for t in tags {
            batch.put_cf(meta, tag_key(t, name, key), b"");
        }
        batch.put_cf(meta, entry_key(name, key), encode_tags(tags));
    }

    /// Adds to `batch` the removal of every tag record of the category `ci` (clear).
    pub(super) fn untag_category_into(&self, batch: &mut WriteBatch, ci: usize) -> Result<()> {
        if !self.tags_in_use() {
            return Ok(());
        }
        let meta = self.cf(META_CF);
        let prefix = entry_category_prefix(&self.cats[ci].name);
        let mut it = self.db.raw_iterator_cf(meta);
        it.seek(&prefix);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !k.starts_with(&prefix) {
                break;
            }
            let key = &k[prefix.len()..];
            for t in decode_tags(v).unwrap_or_default() {
                batch.delete_cf(meta, tag_key(&t, &self.cats[ci].name, key));
            }
            batch.delete_cf(meta, k);
            it.next();
        }
        it.status()?;
        Ok(())
    }

    /// Removes every entry carrying `tag`, in every category, in one atomic write with
    /// their counters. Returns (entries, stored bytes) removed.
    pub fn invalidate(&self, tag: &[u8]) -> Result<(u64, u64)> {
        check_tag(tag)?;
        self.check_writable()?;
        let mut st = self.lock_state();
        if !self.tags_in_use() {
            return Ok((0, 0));
        }
        let meta = self.cf(META_CF);
        let prefix = tag_prefix(tag);
        let mut holders = Vec::new();
        let mut batch = WriteBatch::default();
        let mut it = self.db.raw_iterator_cf(meta);
        it.seek(&prefix);
        while let Some(k) = it.key() {
            if !k.starts_with(&prefix) {
                break;
            }
            match split_entry(&k[prefix.len()..]).and_then(|(cat, key)| Some((self.cats.iter().position(|c| c.name == cat)?, key.to_vec()))) {
                Some(h) => holders.push(h),
                // A record of a category this store does not have: dropped.
                None => batch.delete_cf(meta, k),
            }
            it.next();
        }
        it.status()?;
        drop(it);
        let mut counters = st.counters.clone();
        let (mut n, mut bytes) = (0u64, 0u64);
        let mut touched = Vec::new();
        for (ci, key) in &holders {
            match self.existing(*ci, key)? {
                Some(old) => {
                    self.remove_into(&mut batch, *ci, key, &old, &mut counters[*ci])?;
                    n += 1;
                    bytes += old.size.stored;
                    touched.push(*ci);
                }
                // No entry (an older build deleted it without its tags): the records go.
                None => {
                    let tags = self.entry_tags(*ci, key)?;
                    self.untag_into(&mut batch, *ci, key, &tags);
                    batch.delete_cf(meta, tag_key(tag, &self.cats[*ci].name, key));
                }
            }
        }
        if holders.is_empty() && batch.is_empty() {
            return Ok((0, 0));
        }
        touched.sort_unstable();
        touched.dedup();
        for &ci in &touched {
            self.put_counters(&mut batch, ci, &counters[ci]);
        }
        self.write_removing(batch)?;
        st.counters = counters;
        Ok((n, bytes))
    }

    /// Checks the tag records against the entries: every tag record names an entry that
    /// exists and lists the tag; every entry record's tags have their tag records. For
    /// tests (crash and model tests).
    #[doc(hidden)]
    pub fn debug_check_tags(&self) -> Result<Vec<(String, Vec<u8>, Vec<Vec<u8>>)>> {
        let meta = self.cf(META_CF);
        let mut entries = Vec::new();
        let mut it = self.db.raw_iterator_cf(meta);
        it.seek(ENTRY_PREFIX);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !k.starts_with(ENTRY_PREFIX) {
                break;
            }
            let (cat, key) = split_entry(&k[ENTRY_PREFIX.len()..]).ok_or_else(|| Error::Corruption("a malformed tag entry record".into()))?;
            let tags = decode_tags(v).ok_or_else(|| Error::Corruption("malformed tags".into()))?;
            let ci = self.cats.iter().position(|c| c.name == cat).ok_or_else(|| Error::Corruption(format!("tags of an unknown category {cat}")))?;
            if self.existing(ci, key)?.is_none() {
                return Err(Error::Corruption(format!("tags of a missing entry {cat}/{}", String::from_utf8_lossy(key))));
            }
            for t in &tags {
                if self.db.get_pinned_cf(meta, tag_key(t, cat, key))?.is_none() {
                    return Err(Error::Corruption(format!("{cat}/{} lacks the record of one of its tags", String::from_utf8_lossy(key))));
                }
            }
            entries.push((cat.to_owned(), key.to_vec(), tags));
            it.next();
        }
        it.status()?;
        let mut it = self.db.raw_iterator_cf(meta);
        it.seek(TAG_PREFIX);
        let mut tag_records = 0usize;
        while let Some(k) = it.key() {
            if !k.starts_with(TAG_PREFIX) {
                break;
            }
            tag_records += 1;
            it.next();
        }
        it.status()?;
        let listed: usize = entries.iter().map(|e| e.2.len()).sum();
        if tag_records != listed {
            return Err(Error::Corruption(format!("{tag_records} tag records for {listed} listed tags")));
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let tags: [&[u8]; 3] = [b"tsconfig.json@1a2b", b"\x00\xff", &[7u8; MAX_TAG_LEN]];
        let v = encode_tags(&tags);
        assert_eq!(decode_tags(&v).unwrap(), tags.iter().map(|t| t.to_vec()).collect::<Vec<_>>());
        assert!(decode_tags(&v[..v.len() - 1]).is_none());
        assert!(decode_tags(&[v.as_slice(), b"x"].concat()).is_none());
        let k = tag_key(b"a b", "transform", b"src/x.ts");
        let rest = k.strip_prefix(tag_prefix(b"a b").as_slice()).unwrap();
        assert_eq!(split_entry(rest), Some(("transform", &b"src/x.ts"[..])));
        // A tag that is a prefix of another does not share its records' prefix.
        assert!(!tag_key(b"ab", "c", b"k").starts_with(&tag_prefix(b"a")));
        assert!(check_tags(&[b""]).is_err() && check_tags(&[&[0u8; MAX_TAG_LEN + 1]]).is_err());
        assert!(check_tags(&vec![&b"t"[..]; MAX_TAGS + 1]).is_err() && check_tags(&vec![&b"t"[..]; MAX_TAGS]).is_ok());
    }
}
