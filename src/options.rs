//! `nexxo_options`: the opaque builder of open options.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use crate::args;
use crate::status::nexxo_status::{self, *};
use nexxo_core::codec::Compression;
use nexxo_core::config::Config;

/// Options for `nexxo_cache_open`, built with the `nexxo_options_*` calls.
///
/// Not thread-safe: build it on one thread. It may be freed right after the open.
pub struct nexxo_options {
    pub(crate) config: Config,
    pub(crate) clock: Option<nexxo_core::clock::Clock>,
}

/// A caller's clock: the function and its context, called from any thread.
struct CClock {
    now: unsafe extern "C" fn(*mut c_void) -> u64,
    ctx: *mut c_void,
}

// The caller promises, by `nexxo_options_set_clock`'s contract, that `now(ctx)` may be
// called from any thread at any time until the cache is closed.
unsafe impl Send for CClock {}
unsafe impl Sync for CClock {}

impl CClock {
    fn now(&self) -> u64 {
        unsafe { (self.now)(self.ctx) }
    }
}

/// How values are compressed.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nexxo_compression {
    /// Values are stored as given.
    NEXXO_COMPRESSION_NONE = 0,
    /// LZ4 (block format), used for a value only when it saves at least 1/16 of its size.
    NEXXO_COMPRESSION_LZ4 = 1,
}

/// A compression received from C as a plain integer; shown as `nexxo_compression`.
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct CompressionArg(pub u32);

/// Options with the defaults: max size 2 GiB, no per-category limits, no max age, LZ4,
/// no fsync per write, read-write, no fallback, memory budget 64 MiB, and the categories
/// `parse`, `transform`, `bundle`, `optimize`, `meta`.
///
/// Returns NULL only when out of memory. Free with `nexxo_options_free`.
#[no_mangle]
pub extern "C" fn nexxo_options_new() -> *mut nexxo_options {
    ffi_boundary!({ Box::into_raw(Box::new(nexxo_options { config: Config::default(), clock: None })) })
}

/// Frees options. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_free(o: *mut nexxo_options) {
    ffi_boundary!({
        if !o.is_null() {
            drop(Box::from_raw(o));
        }
    })
}

/// Replaces the clock that `max_age` is measured with (seconds since the Unix epoch) by
/// `now(ctx)`; `now == NULL` restores the system clock. For tests and tools that need
/// deterministic time.
///
/// The one exception to "the library keeps no caller pointer": `now` and `ctx` are kept
/// by every cache opened with these options until it is closed, and `now(ctx)` may be
/// called from any thread of the library at any time until then, so it must be
/// thread-safe and must not call back into the library.
///
/// `NEXXO_INVALID_ARGUMENT` when `o` is NULL.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_clock(o: *mut nexxo_options, now: Option<unsafe extern "C" fn(*mut c_void) -> u64>, ctx: *mut c_void) -> nexxo_status {
    ffi_boundary!({
        let o = try_ffi!(args::out(o));
        o.clock = now.map(|now| {
            let c = CClock { now, ctx };
            Arc::new(move || c.now()) as nexxo_core::clock::Clock
        });
        NEXXO_OK
    })
}

pub(crate) unsafe fn with(o: *mut nexxo_options, f: impl FnOnce(&mut Config) -> Result<(), nexxo_status>) -> nexxo_status {
    ffi_boundary!({
        let o = try_ffi!(args::out(o));
        match f(&mut o.config) {
            Ok(()) => NEXXO_OK,
            Err(s) => s,
        }
    })
}

/// Bounds the stored bytes of the whole cache; 0 means unbounded. Past the bound, least
/// recently used entries are evicted down to 90% of it. The cache keeps its limits
/// (`NEXXO_LIMITS` in its directory, since 1.4): a writable open that sets this stores
/// it, and an open that does not set it uses the stored bound, or 2 GiB
/// (`NEXXO_DEFAULT_MAX_SIZE`) when none is stored.
///
/// `NEXXO_INVALID_ARGUMENT` when `o` is NULL.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_max_size(o: *mut nexxo_options, bytes: u64) -> nexxo_status {
    with(o, |c| {
        c.set_max_size(bytes);
        Ok(())
    })
}

/// Bounds one category's stored bytes; 0 removes its bound. The category must be built
/// in or added before with `nexxo_options_add_category`. Stored like
/// `nexxo_options_set_max_size`; the categories' bounds are stored as one set, so
/// setting any replaces the set the cache kept.
///
/// `NEXXO_INVALID_ARGUMENT` when `o` or `category` is NULL; `NEXXO_UNKNOWN_CATEGORY`
/// for a category these options do not have.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_category_max_size(o: *mut nexxo_options, category: *const c_char, bytes: u64) -> nexxo_status {
    with(o, |c| {
        let name = args::category(category)?;
        c.set_category_max_size(name, bytes).map_err(Into::into)
    })
}

/// Entries unused for longer than `seconds` are evicted by `nexxo_cache_enforce_policy`;
/// 0 means never. Stored like `nexxo_options_set_max_size` (default: never).
///
/// `NEXXO_INVALID_ARGUMENT` when `o` is NULL.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_max_age(o: *mut nexxo_options, seconds: u64) -> nexxo_status {
    with(o, |c| {
        c.set_max_age(seconds);
        Ok(())
    })
}

/// Adds a category, `[a-z0-9_-]{1,32}`; at most 64 categories in all. Adding one that
/// exists is a no-op. Categories a cache was created with stay available on later opens.
///
/// `NEXXO_INVALID_ARGUMENT` when `o` or `name` is NULL, the name is malformed, or there
/// are too many categories.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_add_category(o: *mut nexxo_options, name: *const c_char) -> nexxo_status {
    with(o, |c| {
        let name = args::category(name)?;
        c.add_category(name).map_err(Into::into)
    })
}

/// Chooses compression; default `NEXXO_COMPRESSION_LZ4`.
///
/// `NEXXO_INVALID_ARGUMENT` when `o` is NULL or `c` is not a `nexxo_compression` value.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_compression(o: *mut nexxo_options, c: CompressionArg) -> nexxo_status {
    with(o, |cfg| {
        cfg.compression = match c.0 {
            0 => Compression::None,
            1 => Compression::Lz4,
            _ => return Err(NEXXO_INVALID_ARGUMENT),
        };
        Ok(())
    })
}

/// With `sync` true, every write is fsynced before it returns, and survives power loss.
/// Default false: a write survives the process being killed, not the machine failing.
///
/// `NEXXO_INVALID_ARGUMENT` when `o` is NULL.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_sync_writes(o: *mut nexxo_options, sync: bool) -> nexxo_status {
    with(o, |c| {
        c.sync_writes = sync;
        Ok(())
    })
}

/// Opens read-only: allowed beside another process's writer; writes return
/// `NEXXO_READ_ONLY`. The cache must exist. In a process that has the cache open for
/// writing, a read-only handle shares that store and sees every write; otherwise it is a
/// snapshot of the store as it was at the open: writes of other processes made later are
/// not seen until it is reopened.
///
/// `NEXXO_INVALID_ARGUMENT` when `o` is NULL.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_read_only(o: *mut nexxo_options, read_only: bool) -> nexxo_status {
    with(o, |c| {
        c.read_only = read_only;
        Ok(())
    })
}

/// With `fallback` true, `nexxo_cache_open` does not fail for I/O, lock, corruption or
/// format reasons: it returns `NEXXO_OK` and a disabled handle (see `nexxo_cache_open`).
///
/// `NEXXO_INVALID_ARGUMENT` when `o` is NULL.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_fallback_disabled(o: *mut nexxo_options, fallback: bool) -> nexxo_status {
    with(o, |c| {
        c.fallback_disabled = fallback;
        Ok(())
    })
}

/// Permissions of the directories the cache creates (default 0700), and the most an
/// existing cache directory may grant: write bits for group or others beyond `mode`
/// make it untrusted (`NEXXO_INSECURE`).
///
/// `NEXXO_INVALID_ARGUMENT` when `o` is NULL, `mode` exceeds 0777 or lacks 0700.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_dir_mode(o: *mut nexxo_options, mode: u32) -> nexxo_status {
    with(o, |c| c.set_dir_mode(mode).map_err(Into::into))
}

/// With `allow` true, a cache directory that is not trusted (owned by another user,
/// writable by others, reached through another user's symlink) is opened read-only
/// instead of being refused with `NEXXO_INSECURE`. Default false.
///
/// `NEXXO_INVALID_ARGUMENT` when `o` is NULL.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_allow_untrusted_dir(o: *mut nexxo_options, allow: bool) -> nexxo_status {
    with(o, |c| {
        c.allow_untrusted_dir = allow;
        Ok(())
    })
}

/// With `ignore` true, the open leaves the `NEXXO_CACHE_*` environment variables out
/// (`NEXXO_CACHE_MAX_SIZE`, `NEXXO_CACHE_MAX_AGE`, `NEXXO_CACHE_MEMORY_BUDGET`,
/// `NEXXO_CACHE_READ_ONLY`, `NEXXO_CACHE_DISABLE`, `NEXXO_CACHE_REMOTE` and its
/// companions; README "Environment"). Default false: an open reads them, a limit, budget
/// or remote the options set winning over the environment's, and a malformed value fails
/// the open with `NEXXO_INVALID_ARGUMENT` naming the variable (with
/// `nexxo_options_set_fallback_disabled`, a disabled cache whose reason says so). With
/// `NEXXO_CACHE_DISABLE` set, the open gives a disabled cache whose `disabled_reason` is
/// `NEXXO_OK`. (Added in 1.4.)
///
/// `NEXXO_INVALID_ARGUMENT` when `o` is NULL.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_ignore_environment(o: *mut nexxo_options, ignore: bool) -> nexxo_status {
    with(o, |c| {
        c.ignore_environment = ignore;
        Ok(())
    })
}

/// With `record` false, the cache records no latency histograms (see
/// `nexxo_cache_stats_json`'s `"latency"`). Default true: every get, set, batch and
/// remote call is timed (per-key gets one in 16 per thread, so that timing costs about
/// 6 ns of a 0.5-1 µs get), into log-bucketed histograms of relaxed atomic counters; a writable
/// handle adds what it recorded to the cache's kept history (`"history"`,
/// `nexxo-cache stats`) when it is closed. `NEXXO_CACHE_LATENCY=0` in the environment
/// also turns recording off. (Added in 1.7.)
///
/// `NEXXO_INVALID_ARGUMENT` when `o` is NULL.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_latency(o: *mut nexxo_options, record: bool) -> nexxo_status {
    with(o, |c| {
        c.latency = record;
        Ok(())
    })
}

/// Memory for the warm table (5/8: recently written and stored values kept in memory for
/// the reads of a build, in a writable cache), RocksDB's write buffers (1/4) and its block
/// cache (1/8); default 64 MiB, at least 4 MiB. Without this call an open takes
/// `NEXXO_CACHE_MEMORY_BUDGET` from the environment when it is set (since 1.11): a cache
/// of N entries of S stored bytes stays whole in the warm table with a budget of at
/// least 1.6 x (S + 64 N), 2.7 x in a process that reaches the cache through another
/// (README "Reads: the warm table").
///
/// `NEXXO_INVALID_ARGUMENT` when `o` is NULL or `bytes` is under 4 MiB.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_memory_budget(o: *mut nexxo_options, bytes: u64) -> nexxo_status {
    with(o, |c| c.set_memory_budget(bytes).map_err(Into::into))
}
