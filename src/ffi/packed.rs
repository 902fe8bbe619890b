//! Packed batches: one buffer of length-prefixed records instead of arrays of pointers,
//! for bindings (JavaScript, Go) where building pointer arrays costs a copy per field.
//!
//! A key record is `u8 category_len, category, u32 key_len, key`; an entry record adds
//! `u32 value_len, value`. Integers are little-endian.

use super::args;
use super::cache::nexxo_cache;
use super::status::nexxo_status::{self, *};
use crate::store::PackedRead;

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
        let (outcomes, written) = match c.cache.batch_get_into(&keys, out, 8) {
            PackedRead::TooSmall(needed) => {
                *out_len = needed;
                return NEXXO_BUFFER_TOO_SMALL;
            }
            PackedRead::Written(outcomes, written) => (outcomes, written),
        };
        // The values are in place; each record's header goes in the gap before it.
        let mut at = 0;
        for r in &outcomes {
            let (status, len) = match r {
                Ok(Some(n)) => (NEXXO_OK, *n),
                Ok(None) => (NEXXO_NOT_FOUND, 0),
                Err(e) => (e.into(), 0),
            };
            out[at..at + 4].copy_from_slice(&(status as u32).to_le_bytes());
            out[at + 4..at + 8].copy_from_slice(&(len as u32).to_le_bytes());
            at += 8 + len;
        }
        debug_assert_eq!(at, written);
        *out_len = at;
        NEXXO_OK
    })
}
