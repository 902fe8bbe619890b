//! Packed batches: one buffer of length-prefixed records instead of arrays of pointers,
//! for bindings (JavaScript, Go) where building pointer arrays costs a copy per field.
//! The wire format is this module's alone: the core only leaves a gap of
//! [`ANSWER_HEADER`] bytes before each value it decodes into the caller's buffer.
//!
//! A key record is `u8 category_len, category, u32 key_len, key`; an entry record adds
//! `u32 value_len, value`. An answer record is `u32 status, u32 value_len, value`.
//! Integers are little-endian.

use crate::args;
use crate::cache::nexxo_cache;
use crate::status::nexxo_status::{self, *};
use nexxo_core::store::PackedRead;

/// The header of each answer record: `u32 status, u32 value_len`.
const ANSWER_HEADER: usize = 8;

/// Reads records from a packed buffer.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], nexxo_status> {
        if n > self.buf.len() {
            return Err(NEXXO_INVALID_ARGUMENT);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<usize, nexxo_status> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()) as usize)
    }

    /// A category and a key. Their limits are checked by the core, per key.
    fn key(&mut self) -> Result<(&'a [u8], &'a [u8]), nexxo_status> {
        let n = self.take(1)?[0] as usize;
        let category = self.take(n)?;
        let k = self.u32()?;
        Ok((category, self.take(k)?))
    }

    fn entry(&mut self) -> Result<(&'a [u8], &'a [u8], &'a [u8]), nexxo_status> {
        let (category, key) = self.key()?;
        let v = self.u32()?;
        Ok((category, key, self.take(v)?))
    }

    fn finish(&self) -> Result<(), nexxo_status> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(NEXXO_INVALID_ARGUMENT)
        }
    }
}

/// Like `nexxo_cache_batch_set`, with the `count` entries packed in `packed` (`len`
/// bytes) as records of `u8 category_len, category, u32 key_len, key, u32 value_len,
/// value` (little-endian). Atomic, and validated whole before anything is written; a
/// buffer whose records run past `len` or leave bytes over is `NEXXO_INVALID_ARGUMENT`.
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn nexxo_cache_batch_set_packed(c: *mut nexxo_cache, packed: *const u8, len: usize, count: usize) -> nexxo_status {
    ffi_boundary!({
        let c = try_ffi!(args::non_null(c));
        let mut r = Reader { buf: try_ffi!(args::array(packed, len)) };
        let mut entries = Vec::with_capacity(count.min(len / 9 + 1));
        for _ in 0..count {
            entries.push(try_ffi!(r.entry()));
        }
        try_ffi!(r.finish());
        match c.cache.batch_set(&entries) {
            Ok(()) => NEXXO_OK,
            Err(e) => e.into(),
        }
    })
}

/// Like `nexxo_cache_batch_get`, with the `count` keys packed in `packed` (`len` bytes)
/// as records of `u8 category_len, category, u32 key_len, key`, and the results written
/// to the caller's buffer `out` (`cap` bytes) as records of `u32 status, u32 value_len,
/// value` in key order (`value_len` is 0 unless the status is `NEXXO_OK`); `*out_len` is
/// the bytes written.
///
/// `NEXXO_BUFFER_TOO_SMALL`: `*out_len` is the size needed and `out` is unspecified;
/// retry with a larger buffer (the reads are done again). Such a call counts no hits or
/// misses, except while a remote tier is reachable: then reads count on every try.
/// Values are decoded straight into `out`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn nexxo_cache_batch_get_packed(
    c: *const nexxo_cache,
    packed: *const u8,
    len: usize,
    count: usize,
    out: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> nexxo_status {
    ffi_boundary!({
        let c = try_ffi!(args::non_null(c));
        let out_len = try_ffi!(args::out(out_len));
        let out = try_ffi!(args::array_mut(out, cap));
        let mut r = Reader { buf: try_ffi!(args::array(packed, len)) };
        let mut keys = Vec::with_capacity(count.min(len / 5 + 1));
        for _ in 0..count {
            keys.push(try_ffi!(r.key()));
        }
        try_ffi!(r.finish());
        let (outcomes, written) = match c.cache.batch_get_into(&keys, out, ANSWER_HEADER) {
            PackedRead::TooSmall(needed) => {
                *out_len = needed;
                return NEXXO_BUFFER_TOO_SMALL;
            }
            PackedRead::Written(outcomes, written) => (outcomes, written),
        };
        let at = write_answer_headers(out, &outcomes);
        debug_assert_eq!(at, written);
        *out_len = at;
        NEXXO_OK
    })
}

/// The values are in place; writes each record's header into the gap before it.
/// Returns the bytes of `out` the answer fills.
fn write_answer_headers(out: &mut [u8], outcomes: &[nexxo_core::Result<Option<usize>>]) -> usize {
    let mut at = 0;
    for r in outcomes {
        let (status, len) = match r {
            Ok(Some(n)) => (NEXXO_OK, *n),
            Ok(None) => (NEXXO_NOT_FOUND, 0),
            Err(e) => (e.into(), 0),
        };
        out[at..at + 4].copy_from_slice(&(status as u32).to_le_bytes());
        out[at + 4..at + ANSWER_HEADER].copy_from_slice(&(len as u32).to_le_bytes());
        at += ANSWER_HEADER + len;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(cat: &[u8], key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut b = vec![cat.len() as u8];
        b.extend_from_slice(cat);
        b.extend_from_slice(&(key.len() as u32).to_le_bytes());
        b.extend_from_slice(key);
        b.extend_from_slice(&(value.len() as u32).to_le_bytes());
        b.extend_from_slice(value);
        b
    }

    fn entries(buf: &[u8], count: usize) -> Result<Vec<(&[u8], &[u8], &[u8])>, nexxo_status> {
        let mut r = Reader { buf };
        let out = (0..count).map(|_| r.entry()).collect::<Result<Vec<_>, _>>()?;
        r.finish()?;
        Ok(out)
    }

    #[test]
    fn records_parse_back() {
        let mut b = entry(b"parse", b"k1", b"v1");
        b.extend(entry(b"meta", b"", b""));
        let e = entries(&b, 2).unwrap();
        assert_eq!(e, vec![(&b"parse"[..], &b"k1"[..], &b"v1"[..]), (&b"meta"[..], &b""[..], &b""[..])]);
    }

    #[test]
    fn hostile_buffers_are_invalid_arguments() {
        let good = entry(b"parse", b"key", b"value");
        // Every truncation, one byte over, too many and too few records.
        for cut in 0..good.len() {
            assert_eq!(entries(&good[..cut], 1), Err(NEXXO_INVALID_ARGUMENT), "cut at {cut}");
        }
        assert_eq!(entries(&[&good[..], &[0]].concat(), 1), Err(NEXXO_INVALID_ARGUMENT));
        assert_eq!(entries(&good, 2), Err(NEXXO_INVALID_ARGUMENT));
        assert_eq!(entries(&good, 0), Err(NEXXO_INVALID_ARGUMENT));
        // Lengths that claim more than the buffer holds, up to u32::MAX.
        for len in [6u32, 1 << 20, u32::MAX] {
            let mut b = good.clone();
            b[1 + 5..1 + 5 + 4].copy_from_slice(&len.to_le_bytes());
            assert_eq!(entries(&b, 1), Err(NEXXO_INVALID_ARGUMENT), "key_len {len}");
            let mut b = good.clone();
            let at = b.len() - 5 - 4;
            b[at..at + 4].copy_from_slice(&len.to_le_bytes());
            assert_eq!(entries(&b, 1), Err(NEXXO_INVALID_ARGUMENT), "value_len {len}");
        }
        let mut b = good.clone();
        b[0] = 255;
        assert_eq!(entries(&b, 1), Err(NEXXO_INVALID_ARGUMENT), "category_len 255");
    }

    #[test]
    fn answers_fill_the_gaps() {
        let mut out = vec![0u8; 2 * ANSWER_HEADER + 3];
        out[ANSWER_HEADER..ANSWER_HEADER + 3].copy_from_slice(b"abc");
        let n = write_answer_headers(&mut out, &[Ok(Some(3)), Ok(None)]);
        assert_eq!(n, out.len());
        assert_eq!(&out[..8], &[0, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(&out[8..11], b"abc");
        assert_eq!(&out[11..], &[1, 0, 0, 0, 0, 0, 0, 0]);
    }
}
