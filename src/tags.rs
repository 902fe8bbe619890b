//! Tags (1.7): writes that say what they depend on, and `nexxo_cache_invalidate`.

use std::ffi::c_char;

use crate::args;
use crate::cache::nexxo_cache;
use crate::cache::nexxo_entry;
use crate::status::{nexxo_status, nexxo_status::*};

/// One tag: 1 to `NEXXO_MAX_TAG_LEN` bytes, any bytes (a config file's path and hash, a
/// `package@version`, a compiler id). The library does not keep the pointer.
#[repr(C)]
pub struct nexxo_tag {
    pub data: *const u8,
    pub len: usize,
}

/// The tags of one entry of `nexxo_cache_batch_set_tagged`: `count` tags at `tags`
/// (NULL when `count` is 0).
#[repr(C)]
pub struct nexxo_tags {
    pub tags: *const nexxo_tag,
    pub count: usize,
}

unsafe fn tag_list<'a>(tags: *const nexxo_tag, count: usize) -> Result<Vec<&'a [u8]>, nexxo_status> {
    let list = args::array(tags, count)?;
    if list.len() > nexxo_core::store::MAX_TAGS {
        return Err(NEXXO_INVALID_ARGUMENT);
    }
    list.iter().map(|t| args::tag(t.data, t.len)).collect()
}

/// `nexxo_cache_set` with tags: `tag_count` tags at `tags` (at most `NEXXO_MAX_TAGS`; a
/// tag given twice counts once; NULL when `tag_count` is 0). `nexxo_cache_invalidate` of
/// any of them removes the entry. Overwriting the key (tagged or not) replaces its tags;
/// deleting, evicting or clearing it drops them; all in the same atomic write as the
/// value. Errors as for `nexxo_cache_set`, and `NEXXO_INVALID_ARGUMENT` for an empty tag
/// or more than `NEXXO_MAX_TAGS`, `NEXXO_TOO_LARGE` for a tag over `NEXXO_MAX_TAG_LEN`.
/// Thread-safe. (Added in 1.7.)
#[no_mangle]
pub unsafe extern "C" fn nexxo_cache_set_tagged(
    c: *mut nexxo_cache,
    category: *const c_char,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    tags: *const nexxo_tag,
    tag_count: usize,
) -> nexxo_status {
    ffi_boundary!({
        let c = try_ffi!(args::non_null(c));
        let category = try_ffi!(args::category(category));
        let key = try_ffi!(args::key(key, key_len));
        let value = try_ffi!(args::value(value, value_len));
        let tags = try_ffi!(tag_list(tags, tag_count));
        match c.cache.set_tagged(category, key, value, &tags) {
            Ok(()) => NEXXO_OK,
            Err(e) => e.into(),
        }
    })
}

/// `nexxo_cache_batch_set` with each entry's tags: `tags[i]` for `entries[i]` (`tags` may
/// be NULL only when `count` is 0). Atomic, validated whole before anything is written,
/// as `nexxo_cache_batch_set`. Thread-safe. (Added in 1.7.)
#[no_mangle]
pub unsafe extern "C" fn nexxo_cache_batch_set_tagged(c: *mut nexxo_cache, entries: *const nexxo_entry, tags: *const nexxo_tags, count: usize) -> nexxo_status {
    ffi_boundary!({
        let c = try_ffi!(args::non_null(c));
        let entries = try_ffi!(args::array(entries, count));
        let tags = try_ffi!(args::array(tags, count));
        let mut converted = Vec::with_capacity(entries.len());
        let mut lists = Vec::with_capacity(entries.len());
        for (e, t) in entries.iter().zip(tags) {
            let category = try_ffi!(args::category(e.category));
            let key = try_ffi!(args::key(e.key, e.key_len));
            let value = try_ffi!(args::value(e.value, e.value_len));
            converted.push((category, key, value));
            lists.push(try_ffi!(tag_list(t.tags, t.count)));
        }
        let refs: Vec<&[&[u8]]> = lists.iter().map(Vec::as_slice).collect();
        match c.cache.batch_set_tagged(&converted, &refs) {
            Ok(()) => NEXXO_OK,
            Err(e) => e.into(),
        }
    })
}

/// Removes every entry that carries `tag` (`tag_len` bytes), in every category, in one
/// atomic write with exact statistics; writes how many entries went to `*out_entries`
/// and their stored bytes to `*out_bytes` (either may be NULL). O(entries carrying the
/// tag); a cache that never held a tag answers 0 at once. Local: a remote tier keeps its
/// copies, and a read through the remote may bring an invalidated key back until it is
/// written again. Errors: `NEXXO_INVALID_ARGUMENT` (NULL `c`, empty tag),
/// `NEXXO_TOO_LARGE` (tag over `NEXXO_MAX_TAG_LEN`), `NEXXO_READ_ONLY`, `NEXXO_IO_ERROR`.
/// A disabled cache answers `NEXXO_OK` and 0. Thread-safe. (Added in 1.7.)
#[no_mangle]
pub unsafe extern "C" fn nexxo_cache_invalidate(c: *mut nexxo_cache, tag: *const u8, tag_len: usize, out_entries: *mut u64, out_bytes: *mut u64) -> nexxo_status {
    ffi_boundary!({
        let c = try_ffi!(args::non_null(c));
        let tag = try_ffi!(args::tag(tag, tag_len));
        match c.cache.invalidate(tag) {
            Ok((n, bytes)) => {
                if !out_entries.is_null() {
                    *out_entries = n;
                }
                if !out_bytes.is_null() {
                    *out_bytes = bytes;
                }
                NEXXO_OK
            }
            Err(e) => e.into(),
        }
    })
}
