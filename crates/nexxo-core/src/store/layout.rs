//! Where the store keeps what: column-family names and the encoding of every key and
//! value that is not a frame, each with its decoder next to its encoder.
//!
//! - `c.<category>`: key → frame (see the codec crate);
//! - `nexxo.meta`: `counters/<category>` → [`Counters`], `generation` → the recency clock,
//!   `genstart/<generation BE>` → when that generation started, `journal/<id BE>` → the
//!   last record of that client journal the store holds (see `share/journal.rs`);
//! - `nexxo.lru`: `<len><category><generation BE><key>` → [`encode_size`] of that entry,
//!   the recency index eviction walks oldest first.

use crate::codec;
use crate::stats::EntrySize;

pub(crate) const META_CF: &str = "nexxo.meta";

pub(crate) const LRU_CF: &str = "nexxo.lru";

pub(super) const CATEGORY_CF_PREFIX: &str = "c.";

pub(super) const COUNTERS_PREFIX: &[u8] = b"counters/";

pub(super) fn entry_size(key: &[u8], frame: &[u8]) -> EntrySize {
    EntrySize {
        logical: key.len() as u64 + codec::accounted_value_len(frame),
        stored: (key.len() + frame.len()) as u64,
    }
}

pub(super) fn counters_key(category: &str) -> Vec<u8> {
    [COUNTERS_PREFIX, category.as_bytes()].concat()
}

/// The prefix of a category's keys in the recency index.
pub(crate) fn lru_prefix(category: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + category.len());
    push_lru_prefix(&mut k, category);
    k
}

pub(super) fn push_lru_prefix(out: &mut Vec<u8>, category: &str) {
    out.push(category.len() as u8);
    out.extend_from_slice(category.as_bytes());
}

pub(crate) fn lru_key(category: &str, generation: u32, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + category.len() + 4 + key.len());
    lru_key_into(&mut k, category, generation, key);
    k
}

/// Writes `lru_key(category, generation, key)` over `out`'s contents.
pub(super) fn lru_key_into(out: &mut Vec<u8>, category: &str, generation: u32, key: &[u8]) {
    out.clear();
    push_lru_prefix(out, category);
    out.extend_from_slice(&generation.to_be_bytes());
    out.extend_from_slice(key);
}

/// The inverse of [`lru_key`] for a record under `prefix` (a category's
/// [`lru_prefix`]): (generation, key). None for a record of another category or one too
/// short to hold a generation.
pub(crate) fn parse_lru_key<'k>(prefix: &[u8], record: &'k [u8]) -> Option<(u32, &'k [u8])> {
    let (generation, key) = record.strip_prefix(prefix)?.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*generation), key))
}

pub(crate) fn encode_size(s: EntrySize) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&s.stored.to_le_bytes());
    b[8..].copy_from_slice(&s.logical.to_le_bytes());
    b
}

pub(crate) fn decode_size(b: &[u8]) -> Option<EntrySize> {
    (b.len() == 16).then(|| EntrySize {
        stored: u64::from_le_bytes(b[..8].try_into().unwrap()),
        logical: u64::from_le_bytes(b[8..].try_into().unwrap()),
    })
}

/// The exclusive upper end of a category prefix in the index: names end in a byte < 0xFF.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut e = prefix.to_vec();
    *e.last_mut().expect("non-empty prefix") += 1;
    e
}



pub(super) const GENERATION_KEY: &[u8] = b"generation";

pub(super) const JOURNAL_PREFIX: &[u8] = b"journal/";

/// Where the last applied record of client journal `id` is kept (a `u64` LE sequence).
pub(super) fn journal_key(id: u64) -> Vec<u8> {
    [JOURNAL_PREFIX, &id.to_be_bytes()[..]].concat()
}

pub(super) const GEN_START_PREFIX: &[u8] = b"genstart/";

pub(super) fn gen_start_key(g: u32) -> Vec<u8> {
    [GEN_START_PREFIX, &g.to_be_bytes()[..]].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keys_round_trip_and_stay_in_their_category() {
        for (cat, g, key) in [("parse", 0u32, &b"k"[..]), ("transform", 7, b"src/a.ts"), ("a", u32::MAX, b""), ("meta", 1 << 24, &[0xFF; 300][..])] {
            let p = lru_prefix(cat);
            let k = lru_key(cat, g, key);
            assert!(k.starts_with(&p) && k < prefix_end(&p));
            assert_eq!(parse_lru_key(&p, &k), Some((g, key)));
            let mut reused = b"garbage".to_vec();
            lru_key_into(&mut reused, cat, g, key);
            assert_eq!(reused, k);
        }
        // Another category's record, and records too short for a generation.
        assert_eq!(parse_lru_key(&lru_prefix("parse"), &lru_key("parsed", 1, b"k")), None);
        assert_eq!(parse_lru_key(&lru_prefix("parse"), &lru_prefix("parse")), None);
        assert_eq!(parse_lru_key(&lru_prefix("parse"), &[&lru_prefix("parse")[..], &[0, 0, 1]].concat()), None);
        // Generations sort numerically within a category.
        assert!(lru_key("c", 255, b"z") < lru_key("c", 256, b"a"));
    }

    #[test]
    fn sizes_and_counters_keys_round_trip() {
        let s = EntrySize { logical: 12345, stored: u64::MAX };
        assert_eq!(decode_size(&encode_size(s)), Some(s));
        assert_eq!(decode_size(&[0; 15]), None);
        assert_eq!(decode_size(&[0; 17]), None);
        assert_eq!(counters_key("parse"), b"counters/parse");
        assert_eq!(gen_start_key(0x0102_0304), b"genstart/\x01\x02\x03\x04");
    }
}
