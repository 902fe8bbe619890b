//! `nexxo_cache`: open, read, write, stats and maintenance.

use std::ffi::{c_char, CStr, OsStr};
use std::os::unix::ffi::OsStrExt;

use crate::args;
use crate::bytes::nexxo_bytes;
use crate::options::nexxo_options;
use crate::status::{nexxo_status, nexxo_status::*};
use nexxo_core::cache::Cache;
use nexxo_core::config::Config;
use nexxo_core::error::Error;
use nexxo_core::clock::system_clock;
use nexxo_core::evict::PolicyReport;
use nexxo_core::stats::Stats;

/// An open cache. Create with `nexxo_cache_open`, free with `nexxo_cache_close`.
pub struct nexxo_cache {
    pub(crate) cache: Cache,
}

/// One entry of `nexxo_cache_batch_set`. The library does not keep the pointers.
#[repr(C)]
pub struct nexxo_entry {
    /// NUL-terminated category name.
    pub category: *const c_char,
    pub key: *const u8,
    pub key_len: usize,
    /// May be NULL when `value_len` is 0.
    pub value: *const u8,
    pub value_len: usize,
}

/// One key of `nexxo_cache_batch_get`. The library does not keep the pointers.
#[repr(C)]
pub struct nexxo_key {
    /// NUL-terminated category name.
    pub category: *const c_char,
    pub key: *const u8,
    pub key_len: usize,
}

/// Statistics of a cache or of one category.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nexxo_stats {
    /// Gets that found a value, since this handle was opened.
    pub hits: u64,
    /// Gets that found nothing, since this handle was opened.
    pub misses: u64,
    /// Entries written (set and batch_set), since this handle was opened.
    pub writes: u64,
    /// Entries removed by delete, since this handle was opened.
    pub deletes: u64,
    /// Live entries, exact.
    pub entries: u64,
    /// Keys + values as given by callers, exact.
    pub logical_bytes: u64,
    /// Keys + values as stored (framed, after compression), exact.
    pub stored_bytes: u64,
    /// The cache directory's size on disk (for a category: its SST and blob files).
    pub disk_bytes: u64,
    /// Entries removed by the eviction policy, lifetime.
    pub evictions: u64,
    /// Entries dropped for a failed checksum, lifetime.
    pub corrupt_dropped: u64,
    /// hits / (hits + misses), 0 when both are 0.
    pub hit_rate: f64,
    pub read_only: bool,
    pub disabled: bool,
    /// `NEXXO_OK` unless disabled; then the status that caused it.
    pub disabled_reason: nexxo_status,
    /// Open found damaged files and repaired them or set them aside.
    pub recovered: bool,
}

/// What `nexxo_cache_enforce_policy` did.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct nexxo_policy_report {
    pub evicted_entries: u64,
    /// Stored bytes removed.
    pub evicted_bytes: u64,
    pub stored_bytes_before: u64,
    pub stored_bytes_after: u64,
    /// A compaction ran to return deleted data's space to the file system.
    pub compacted: bool,
}

impl From<&Stats> for nexxo_stats {
    fn from(s: &Stats) -> Self {
        nexxo_stats {
            hits: s.hits,
            misses: s.misses,
            writes: s.writes,
            deletes: s.deletes,
            entries: s.entries,
            logical_bytes: s.logical_bytes,
            stored_bytes: s.stored_bytes,
            disk_bytes: s.disk_bytes,
            evictions: s.evictions,
            corrupt_dropped: s.corrupt_dropped,
            hit_rate: s.hit_rate(),
            read_only: s.read_only,
            disabled: s.disabled.is_some(),
            disabled_reason: s.disabled.as_ref().map_or(NEXXO_OK, nexxo_status::from),
            recovered: s.recovered,
        }
    }
}

impl From<PolicyReport> for nexxo_policy_report {
    fn from(r: PolicyReport) -> Self {
        nexxo_policy_report {
            evicted_entries: r.evicted_entries,
            evicted_bytes: r.evicted_bytes,
            stored_bytes_before: r.stored_bytes_before,
            stored_bytes_after: r.stored_bytes_after,
            compacted: r.compacted,
        }
    }
}

fn status_of(r: Result<(), Error>) -> nexxo_status {
    match r {
        Ok(()) => NEXXO_OK,
        Err(e) => e.into(),
    }
}

/// Opens the cache in directory `path` (created with its parents, mode 0700 unless
/// `nexxo_options_set_dir_mode` says otherwise, when missing) and writes the handle to
/// `*out`. Category names and keys never become file names.
///
/// `opts` may be NULL for the defaults; the library keeps no pointer to it. `path` is
/// NUL-terminated, any bytes the file system accepts.
///
/// Every open of the same directory shares one store: handles in one process share it
/// directly (a handle's close leaves the others working), and the processes of the same
/// user reach it through the first one to open it, which serves the others over a Unix
/// socket in the cache directory; when that process exits or dies another takes over
/// within a fraction of a second (62 ms at most in 40 kills measured), with no reopen.
/// A write acknowledged to any handle is durable and readable by every handle at once.
/// Hits, misses, writes and deletes in `nexxo_stats` count what this handle did;
/// entries and bytes are the cache's.
///
/// Statuses: `NEXXO_INVALID_ARGUMENT` (NULL `path` or `out`, empty path);
/// `NEXXO_LOCKED` when the directory is held by a process that does not share it (a
/// nexxo-cache before 1.2), after waiting up to 2 s; `NEXXO_IO_ERROR` (cannot create or read it, or a read-only open
/// of a directory holding no cache); `NEXXO_INCOMPATIBLE` (a newer on-disk format, or a
/// non-empty directory that is not a nexxo cache: it is left untouched);
/// `NEXXO_CORRUPTION` (damage that could neither be repaired nor set aside);
/// `NEXXO_INSECURE` (an existing directory owned by another user, writable by group or
/// others beyond the directory mode, or reached through another user's symlink, or a
/// process of another user serving it). `NEXXO_INCOMPATIBLE` also when `opts` names a
/// category the store, as another handle or process opened it, does not have.
///
/// Damaged store files are repaired; what cannot be repaired is moved aside to the
/// sibling `<path>.corrupt-<unix seconds>` and an empty cache is started; then
/// `nexxo_stats.recovered` is true.
///
/// With `nexxo_options_set_fallback_disabled`, failures for I/O, lock, corruption or
/// format reasons return `NEXXO_OK` and a disabled handle: gets miss, writes are dropped
/// and return `NEXXO_OK`, and `nexxo_stats.disabled_reason` holds the cause.
#[no_mangle]
pub unsafe extern "C" fn nexxo_cache_open(path: *const c_char, opts: *const nexxo_options, out: *mut *mut nexxo_cache) -> nexxo_status {
    ffi_boundary!({
        if path.is_null() {
            return NEXXO_INVALID_ARGUMENT;
        }
        let out = try_ffi!(args::out(out));
        let path = OsStr::from_bytes(CStr::from_ptr(path).to_bytes());
        let default_config;
        let (config, clock) = match opts.as_ref() {
            Some(o) => (&o.config, o.clock.clone()),
            None => {
                default_config = Config::default();
                (&default_config, None)
            }
        };
        match Cache::open_with_clock(path, config, clock.unwrap_or_else(system_clock)) {
            Ok(cache) => {
                *out = Box::into_raw(Box::new(nexxo_cache { cache }));
                NEXXO_OK
            }
            Err(e) => e.into(),
        }
    })
}

/// Closes a cache: stops its background work, persists what was acknowledged and
/// flushes memory tables so the next open is fast (merging small tables when many
/// piled up, since 1.10.2), then frees the handle.
///
/// NULL is a no-op. Must not race with any other call on the same handle.
#[no_mangle]
pub unsafe extern "C" fn nexxo_cache_close(c: *mut nexxo_cache) {
    ffi_boundary!({
        if !c.is_null() {
            drop(Box::from_raw(c));
        }
    })
}

/// Reads the value of `key` in `category` into a new buffer at `*out`, which the caller
/// frees with `nexxo_bytes_free`.
///
/// `NEXXO_OK` with the value (an empty value is `{NULL, 0}`); `NEXXO_NOT_FOUND` on a miss,
/// with `*out` set to `{NULL, 0}`. A stored value whose checksum fails is a miss: the
/// entry is deleted and counted in `corrupt_dropped`. Errors: `NEXXO_INVALID_ARGUMENT`
/// (NULL `c`, `category`, `out`, or `key` with `key_len > 0`; `key_len == 0`),
/// `NEXXO_TOO_LARGE` (`key_len > NEXXO_MAX_KEY_LEN`), `NEXXO_UNKNOWN_CATEGORY`,
/// `NEXXO_IO_ERROR`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn nexxo_cache_get(c: *const nexxo_cache, category: *const c_char, key: *const u8, key_len: usize, out: *mut nexxo_bytes) -> nexxo_status {
    ffi_boundary!({
        let c = try_ffi!(args::non_null(c));
        let category = try_ffi!(args::category(category));
        let key = try_ffi!(args::key(key, key_len));
        let out = try_ffi!(args::out(out));
        match c.cache.get(category, key) {
            Ok(Some(v)) => {
                *out = nexxo_bytes::from_vec(v);
                NEXXO_OK
            }
            Ok(None) => {
                *out = nexxo_bytes::EMPTY;
                NEXXO_NOT_FOUND
            }
            Err(e) => e.into(),
        }
    })
}

/// Reads a value into the caller's buffer `buf` of `cap` bytes; on `NEXXO_OK`,
/// `*out_len` is the value's length.
///
/// `NEXXO_BUFFER_TOO_SMALL` when the value is longer than `cap`: `*out_len` is the size
/// needed (retry with a larger buffer; the entry may have changed meanwhile).
/// `NEXXO_NOT_FOUND` on a miss. On any status but `NEXXO_OK` the contents of `buf` are
/// unspecified. `buf` may be NULL only when `cap` is 0. `NEXXO_INVALID_ARGUMENT` also
/// when `out_len` is NULL or `cap` exceeds `PTRDIFF_MAX`. Otherwise as `nexxo_cache_get`.
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn nexxo_cache_get_into(
    c: *const nexxo_cache,
    category: *const c_char,
    key: *const u8,
    key_len: usize,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> nexxo_status {
    ffi_boundary!({
        let c = try_ffi!(args::non_null(c));
        let category = try_ffi!(args::category(category));
        let key = try_ffi!(args::key(key, key_len));
        let out_len = try_ffi!(args::out(out_len));
        let buf = try_ffi!(args::array_mut(buf, cap));
        match c.cache.get_into(category, key, buf) {
            Ok(Some(n)) => {
                *out_len = n;
                NEXXO_OK
            }
            Ok(None) => NEXXO_NOT_FOUND,
            Err(Error::BufferTooSmall(n)) => {
                *out_len = n;
                NEXXO_BUFFER_TOO_SMALL
            }
            Err(e) => e.into(),
        }
    })
}

/// Stores `value` under `key` in `category`, replacing any value there.
///
/// An acknowledged write survives the process being killed right after; with
/// `nexxo_options_set_sync_writes` also power loss. `value` may be NULL when `value_len`
/// is 0. Errors: `NEXXO_INVALID_ARGUMENT`, `NEXXO_TOO_LARGE` (key or value over its
/// limit), `NEXXO_UNKNOWN_CATEGORY`, `NEXXO_READ_ONLY`, `NEXXO_NO_SPACE`,
/// `NEXXO_IO_ERROR`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn nexxo_cache_set(c: *mut nexxo_cache, category: *const c_char, key: *const u8, key_len: usize, value: *const u8, value_len: usize) -> nexxo_status {
    ffi_boundary!({
        let c = try_ffi!(args::non_null(c));
        let category = try_ffi!(args::category(category));
        let key = try_ffi!(args::key(key, key_len));
        let value = try_ffi!(args::value(value, value_len));
        status_of(c.cache.set(category, key, value))
    })
}

/// Removes `key` from `category`; `NEXXO_OK` also when it was absent. Errors as for
/// `nexxo_cache_set`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn nexxo_cache_delete(c: *mut nexxo_cache, category: *const c_char, key: *const u8, key_len: usize) -> nexxo_status {
    ffi_boundary!({
        let c = try_ffi!(args::non_null(c));
        let category = try_ffi!(args::category(category));
        let key = try_ffi!(args::key(key, key_len));
        status_of(c.cache.delete(category, key))
    })
}

/// Stores `count` entries atomically: after a crash either all of them are there or
/// none. An invalid entry fails the whole batch, with that entry's status, before
/// anything is written. A key given twice keeps the later value. `entries` may be NULL
/// when `count` is 0. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn nexxo_cache_batch_set(c: *mut nexxo_cache, entries: *const nexxo_entry, count: usize) -> nexxo_status {
    ffi_boundary!({
        let c = try_ffi!(args::non_null(c));
        let entries = try_ffi!(args::array(entries, count));
        let mut converted = Vec::with_capacity(entries.len());
        for e in entries {
            let category = try_ffi!(args::category(e.category));
            let key = try_ffi!(args::key(e.key, e.key_len));
            let value = try_ffi!(args::value(e.value, e.value_len));
            converted.push((category, key, value));
        }
        status_of(c.cache.batch_set(&converted))
    })
}

/// Reads `count` keys at once (RocksDB's batched multi-get). For each `i`,
/// `out_statuses[i]` is `NEXXO_OK` (then `out_values[i]` holds the value, to be freed
/// with `nexxo_bytes_free`), `NEXXO_NOT_FOUND`, or that key's error; `out_values[i]` is
/// `{NULL, 0}` whenever `out_statuses[i]` is not `NEXXO_OK`.
///
/// Returns `NEXXO_OK` when the call ran; `NEXXO_INVALID_ARGUMENT` when `c` is NULL, or
/// an array is NULL with `count > 0` (then nothing is written). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn nexxo_cache_batch_get(
    c: *const nexxo_cache,
    keys: *const nexxo_key,
    count: usize,
    out_values: *mut nexxo_bytes,
    out_statuses: *mut nexxo_status,
) -> nexxo_status {
    ffi_boundary!({
        let c = try_ffi!(args::non_null(c));
        let keys = try_ffi!(args::array(keys, count));
        let values = try_ffi!(args::array_mut(out_values, count));
        let statuses = try_ffi!(args::array_mut(out_statuses, count));
        let mut valid = Vec::with_capacity(count);
        let mut slots = Vec::with_capacity(count);
        for (i, k) in keys.iter().enumerate() {
            values[i] = nexxo_bytes::EMPTY;
            match args::category(k.category).and_then(|cat| args::key(k.key, k.key_len).map(|key| (cat, key))) {
                Ok(pair) => {
                    valid.push(pair);
                    slots.push(i);
                    statuses[i] = NEXXO_OK;
                }
                Err(s) => statuses[i] = s,
            }
        }
        for (i, r) in slots.into_iter().zip(c.cache.batch_get(&valid)) {
            statuses[i] = match r {
                Ok(Some(v)) => {
                    values[i] = nexxo_bytes::from_vec(v);
                    NEXXO_OK
                }
                Ok(None) => NEXXO_NOT_FOUND,
                Err(e) => e.into(),
            };
        }
        NEXXO_OK
    })
}

/// Writes the whole cache's statistics to `*out`. `entries`, `logical_bytes` and
/// `stored_bytes` are exact; `disk_bytes` is measured on disk now. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn nexxo_cache_stats(c: *const nexxo_cache, out: *mut nexxo_stats) -> nexxo_status {
    ffi_boundary!({
        let c = try_ffi!(args::non_null(c));
        let out = try_ffi!(args::out(out));
        *out = (&c.cache.stats()).into();
        NEXXO_OK
    })
}

/// Writes one category's statistics to `*out`; its `disk_bytes` counts that category's
/// SST and blob files only. `NEXXO_UNKNOWN_CATEGORY` for an unknown one. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn nexxo_cache_category_stats(c: *const nexxo_cache, category: *const c_char, out: *mut nexxo_stats) -> nexxo_status {
    ffi_boundary!({
        let c = try_ffi!(args::non_null(c));
        let category = try_ffi!(args::category(category));
        let out = try_ffi!(args::out(out));
        match c.cache.category_stats(category) {
            Ok(s) => {
                *out = (&s).into();
                NEXXO_OK
            }
            Err(e) => e.into(),
        }
    })
}

/// Writes the statistics as UTF-8 JSON to a new buffer at `*out` (free it with
/// `nexxo_bytes_free`): `{"version", "path", "totals": {...}, "categories": {"parse":
/// {...}, ...}}`, each object with the fields of `nexxo_stats` (`disabled_reason` as the
/// status's enumerator name). Since 1.4 also `"limits"`; with remotes `"remote"`. Since
/// 1.7, for an open cache: `"latency"`, this handle's latency since its open
/// (`{"enabled", "get_sample", "ops": {"get"|"set"|"batch_get"|"batch_set"|"remote_get"|
/// "upload": {"count", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "mean_us",
/// "categories": {NAME: {same fields}}}}}`; per-key gets are timed one in `get_sample`,
/// so their `count` is of timed calls), and `"history"`, what the cache's closed
/// writable handles of every process recorded since `since` (`{"since", "handles",
/// "counts": {NAME: {"hits", "misses", "writes", "deletes"}}, "latency": {as "ops"}}`;
/// absent when the kept file cannot be read). Percentiles are within 6.25% of the true
/// value. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn nexxo_cache_stats_json(c: *const nexxo_cache, out: *mut nexxo_bytes) -> nexxo_status {
    ffi_boundary!({
        let c = try_ffi!(args::non_null(c));
        let out = try_ffi!(args::out(out));
        let reason = c.cache.disabled_reason().map(|e| nexxo_status::from(e).name()).unwrap_or_default();
        *out = nexxo_bytes::from_vec(c.cache.stats_json(&reason).into_bytes());
        NEXXO_OK
    })
}

/// Applies the eviction policy now: entries older than the max age, then the size
/// limits (down to 90% of each), then a compaction when deleted data makes it
/// worthwhile. Writes what it did to `*out` unless `out` is NULL. Writes trigger
/// eviction on their own; this call is for doing it at a chosen time.
/// `NEXXO_READ_ONLY` on a read-only handle. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn nexxo_cache_enforce_policy(c: *mut nexxo_cache, out: *mut nexxo_policy_report) -> nexxo_status {
    ffi_boundary!({
        let c = try_ffi!(args::non_null(c));
        match c.cache.enforce_policy() {
            Ok(r) => {
                if let Some(out) = out.as_mut() {
                    *out = r.into();
                }
                NEXXO_OK
            }
            Err(e) => e.into(),
        }
    })
}

/// Compacts one category, or all when `category` is NULL, returning the disk space of
/// deleted and overwritten entries. Runs in the calling thread; other calls proceed
/// meanwhile. `NEXXO_READ_ONLY` on a read-only handle. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn nexxo_cache_compact(c: *mut nexxo_cache, category: *const c_char) -> nexxo_status {
    ffi_boundary!({
        let c = try_ffi!(args::non_null(c));
        let category = if category.is_null() { None } else { Some(CStr::from_ptr(category).to_bytes()) };
        status_of(c.cache.compact(category))
    })
}

/// Removes every entry of the `count` categories named in `categories`, in one atomic
/// write, then compacts them. `count == 0` clears every category (`categories` may then
/// be NULL). An unknown or NULL name fails the call before anything is removed.
/// Lifetime counters (`evictions`, `corrupt_dropped`) are kept. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn nexxo_cache_clear(c: *mut nexxo_cache, categories: *const *const c_char, count: usize) -> nexxo_status {
    ffi_boundary!({
        let c = try_ffi!(args::non_null(c));
        let names = try_ffi!(args::array(categories, count));
        let mut cats = Vec::with_capacity(count);
        for &n in names {
            cats.push(try_ffi!(args::category(n)));
        }
        status_of(c.cache.clear(&cats))
    })
}

/// Makes everything acknowledged so far durable on stable storage (syncs the log).
/// `NEXXO_READ_ONLY` on a read-only handle. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn nexxo_cache_flush(c: *mut nexxo_cache) -> nexxo_status {
    ffi_boundary!({
        let c = try_ffi!(args::non_null(c));
        status_of(c.cache.flush())
    })
}
