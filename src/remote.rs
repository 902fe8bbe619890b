//! The remote tier's options, statistics and upload barrier (added in 1.1).

use std::ffi::c_char;
use std::time::Duration;

use crate::args;
use crate::cache::nexxo_cache;
use crate::options::{with, nexxo_options};
use crate::status::nexxo_status::{self, *};
use nexxo_core::remote::{Mode, RemoteCounts};

/// What a cache does with its remotes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nexxo_remote_mode {
    /// Remotes are configured but not used.
    NEXXO_REMOTE_OFF = 0,
    /// Read from the remotes, never write to them (developer machines).
    NEXXO_REMOTE_READ_ONLY = 1,
    /// Read from the remotes and upload every local write (CI). The default.
    NEXXO_REMOTE_READ_WRITE = 2,
}

/// A remote mode received from C as a plain integer; shown as `nexxo_remote_mode`.
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct RemoteModeArg(pub u32);

/// The remote tier's statistics since the handle was opened, every remote added up.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct nexxo_remote_stats {
    /// Remote gets that found a verified value.
    pub hits: u64,
    /// Remote gets the server answered with "not there".
    pub misses: u64,
    /// Requests that failed after their retries (timeouts, refused connections, errors).
    pub errors: u64,
    /// Values found but not used: damaged, unsigned or wrongly signed.
    pub rejected: u64,
    /// Requests not sent because a remote's circuit breaker was open.
    pub skipped: u64,
    /// Remote hits written into the local store.
    pub backfills: u64,
    /// Values uploaded.
    pub uploads: u64,
    pub upload_errors: u64,
    /// Uploads dropped because the queue was full, or left when the cache closed.
    pub upload_dropped: u64,
    /// Uploads waiting now.
    pub queued: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Remote gets sent, their mean and longest time in microseconds.
    pub gets: u64,
    pub get_mean_us: f64,
    pub get_max_us: u64,
    /// Remotes whose circuit breaker is open (or probing) now.
    pub open_breakers: u64,
    /// Configured remotes in use: 0 when there are none or the mode is off.
    pub remotes: u64,
}

unsafe fn text<'a>(p: *const c_char) -> Result<&'a str, nexxo_status> {
    std::str::from_utf8(args::category(p)?).map_err(|_| NEXXO_INVALID_ARGUMENT)
}

/// Adds a remote cache server behind the local store, at most 8, tried in the order
/// added. A local miss asks them; a verified hit is written back locally. In read-write
/// mode every write is also uploaded by background threads. The library contacts no
/// server during open, and no remote failure ever fails a call: see
/// `nexxo_cache_remote_stats`.
///
/// - `http://[user:password@]host[:port][/base]`: a server in the Bazel HTTP cache layout;
///   entries are `GET` and `PUT` at `<base>/ac/<64 hex digits>`. bazel-remote (with
///   `--disable_http_ac_validation`) and nginx with WebDAV `PUT` work.
/// - `redis://[[user]:password@]host[:port][/db]`: entries are keys
///   `nexxo:<name>:<category>:<64 hex digits>` with the TTL of `nexxo_options_set_remote_ttl`.
///
/// `https://` and `rediss://` (since 1.5) speak TLS: the server's certificate chain and
/// host name are verified against Mozilla's roots, the system's CA bundle
/// (`SSL_CERT_FILE`/`SSL_CERT_DIR` are honoured) and `nexxo_options_set_remote_ca_file`;
/// verification cannot be turned off. Adding an address twice is a no-op.
///
/// `NEXXO_INVALID_ARGUMENT` when `o` or `url` is NULL, the address is malformed or
/// unsupported, or 8 remotes are configured already.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_add_remote(o: *mut nexxo_options, url: *const c_char) -> nexxo_status {
    with(o, |c| {
        let url = text(url)?;
        c.remote.add_remote(url).map_err(Into::into)
    })
}

/// HTTP remotes send `Authorization: Bearer <token>` (instead of the address's
/// `user:password`). The token is copied, never printed (not in stats, errors or logs).
/// NULL or `""` removes it. `NEXXO_CACHE_REMOTE_TOKEN` sets it for an opener that did not.
///
/// `NEXXO_INVALID_ARGUMENT` when `o` is NULL or the token is not 1 to 8192 visible ASCII
/// characters. Since 1.5.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_remote_token(o: *mut nexxo_options, token: *const c_char) -> nexxo_status {
    with(o, |c| {
        let t = if token.is_null() { &[][..] } else { args::category(token)? };
        c.remote.set_token(t).map_err(Into::into)
    })
}

/// Adds a header to every request to HTTP remotes (for example a proxy's or a cache
/// service's own authentication), replacing one of the same name; at most 32. Values are
/// copied and never printed. A header named `Authorization` replaces the token and the
/// address's `user:password`. The client's own headers (`Host`, `Content-Length`,
/// `Content-Type`, `Transfer-Encoding`, `Connection`, `User-Agent`) cannot be set.
///
/// `NEXXO_INVALID_ARGUMENT` when `o`, `name` or `value` is NULL, the name is not an HTTP
/// token or is the client's own, the value holds characters other than visible ASCII,
/// spaces and tabs or is longer than 8192 bytes, or 32 headers are set. Since 1.5.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_add_remote_header(o: *mut nexxo_options, name: *const c_char, value: *const c_char) -> nexxo_status {
    with(o, |c| {
        let name = text(name)?;
        let value = args::category(value)?;
        c.remote.add_header(name, value).map_err(Into::into)
    })
}

/// Trusts the CA certificates in the PEM file at `path` for `https://` and `rediss://`
/// remotes, beside Mozilla's roots and the system's (a company CA, or a test CA). The
/// file is read by this call. NULL removes it. `NEXXO_CACHE_REMOTE_CA_FILE` sets it for an
/// opener that did not.
///
/// `NEXXO_INVALID_ARGUMENT` when `o` is NULL, or the file cannot be read or holds no
/// usable PEM certificate. Since 1.5.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_remote_ca_file(o: *mut nexxo_options, path: *const c_char) -> nexxo_status {
    with(o, |c| {
        if path.is_null() {
            c.remote.ca_file = None;
            return Ok(());
        }
        use std::os::unix::ffi::OsStrExt;
        let p = std::path::Path::new(std::ffi::OsStr::from_bytes(args::category(path)?));
        c.remote.set_ca_file(p).map_err(Into::into)
    })
}

/// The HTTP proxy of HTTP remotes: `http://[user:password@]host[:port]` (an `https://`
/// remote goes through a `CONNECT` tunnel, TLS end to end; an `http://` one sends its
/// requests in absolute form). `""`: no proxy, whatever the environment says. NULL (the
/// default): the environment's `https_proxy`/`HTTPS_PROXY`, `http_proxy`/`HTTP_PROXY` and
/// `no_proxy`/`NO_PROXY` (host names, `.domain` suffixes, IPs, `*`), read at open. Redis
/// remotes never use a proxy.
///
/// `NEXXO_INVALID_ARGUMENT` when `o` is NULL or the address is not an `http://` proxy
/// (HTTPS and SOCKS proxies are not supported). Since 1.6.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_remote_proxy(o: *mut nexxo_options, url: *const c_char) -> nexxo_status {
    with(o, |c| {
        if url.is_null() {
            c.remote.proxy = Default::default();
            return Ok(());
        }
        c.remote.set_proxy(text(url)?).map_err(Into::into)
    })
}

/// With `check` true, an upload first asks each server whether it has the entry (`HEAD`
/// over HTTP, `EXISTS` on Redis) and skips it when it does, counted as `already_there` in
/// `nexxo_cache_stats_json`'s `"remote"`: for keys that name their content (a hash of
/// the inputs), where a present entry holds the same value, this saves sending it again
/// from every CI job. Off by default: a key written again with another value must reach
/// the server (last write wins).
///
/// `NEXXO_INVALID_ARGUMENT` when `o` is NULL. Since 1.6.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_remote_check_exists(o: *mut nexxo_options, check: bool) -> nexxo_status {
    with(o, |c| {
        c.remote.check_exists = check;
        Ok(())
    })
}

/// Chooses how remotes are used; default `NEXXO_REMOTE_READ_WRITE`.
///
/// `NEXXO_INVALID_ARGUMENT` when `o` is NULL or `mode` is not a `nexxo_remote_mode`.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_remote_mode(o: *mut nexxo_options, mode: RemoteModeArg) -> nexxo_status {
    with(o, |c| {
        c.remote.mode = match mode.0 {
            0 => Mode::Off,
            1 => Mode::ReadOnly,
            2 => Mode::ReadWrite,
            _ => return Err(NEXXO_INVALID_ARGUMENT),
        };
        Ok(())
    })
}

/// The namespace of this cache on its remotes (default `"default"`): caches with the
/// same name share entries. 1 to 64 characters of `A-Z a-z 0-9 _ - .`.
///
/// `NEXXO_INVALID_ARGUMENT` when `o` or `name` is NULL or the name is malformed.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_remote_name(o: *mut nexxo_options, name: *const c_char) -> nexxo_status {
    with(o, |c| {
        let name = args::category(name)?;
        c.remote.set_name(name).map_err(Into::into)
    })
}

/// With `local_only` true, the category never goes to or comes from a remote (for
/// example `meta`). The category must be built in or added before.
///
/// `NEXXO_INVALID_ARGUMENT` when `o` or `category` is NULL; `NEXXO_UNKNOWN_CATEGORY` for a
/// category these options do not have.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_remote_local_only(o: *mut nexxo_options, category: *const c_char, local_only: bool) -> nexxo_status {
    with(o, |c| {
        let name = args::category(category)?;
        c.set_remote_local_only(name, local_only).map_err(Into::into)
    })
}

/// Signs uploaded values with HMAC-SHA256 under this shared key (at least 16 bytes; the
/// library copies it) and accepts from remotes only values signed with it: a value
/// that is unsigned or tampered with is a miss, never served. `key_len == 0` removes
/// the key. Without a key, values are still checked against their checksum.
///
/// `NEXXO_INVALID_ARGUMENT` when `o` is NULL, `key` is NULL with a length, or the key is
/// shorter than 16 bytes.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_remote_hmac_key(o: *mut nexxo_options, key: *const u8, key_len: usize) -> nexxo_status {
    with(o, |c| {
        let key = args::array(key, key_len)?;
        c.remote.set_hmac_key(key).map_err(Into::into)
    })
}

/// The most one remote request may take, retries included, in milliseconds: 1 to
/// 600000, default 3000. A request that times out opens the remote's circuit breaker, so
/// a dead or slow remote costs a build this long once per cooldown.
///
/// `NEXXO_INVALID_ARGUMENT` when `o` is NULL or `ms` is out of range.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_remote_timeout(o: *mut nexxo_options, ms: u32) -> nexxo_status {
    with(o, |c| c.remote.set_timeout_ms(ms).map_err(Into::into))
}

/// Retries of a request that failed for a temporary reason (refused or broken
/// connection, HTTP 5xx, Redis LOADING), with backoff, within the timeout: at most 10,
/// default 2. Timeouts are never retried.
///
/// `NEXXO_INVALID_ARGUMENT` when `o` is NULL or `n` is over 10.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_remote_retries(o: *mut nexxo_options, n: u32) -> nexxo_status {
    with(o, |c| c.remote.set_retries(n).map_err(Into::into))
}

/// How long a remote whose breaker opened is skipped before one request probes it, in
/// milliseconds; default 30000. 0 never skips a failing remote (each request pays its
/// timeout again).
///
/// `NEXXO_INVALID_ARGUMENT` when `o` is NULL.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_remote_cooldown(o: *mut nexxo_options, ms: u32) -> nexxo_status {
    with(o, |c| {
        c.remote.cooldown_ms = ms;
        Ok(())
    })
}

/// Redis: seconds an uploaded value lives on the server (`SET ... EX`); 0 keeps it until
/// Redis evicts it. Default 7 days. HTTP servers apply their own retention.
///
/// `NEXXO_INVALID_ARGUMENT` when `o` is NULL.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_remote_ttl(o: *mut nexxo_options, seconds: u64) -> nexxo_status {
    with(o, |c| {
        c.remote.ttl_secs = seconds;
        Ok(())
    })
}

/// Bounds the upload queue (bytes of keys and values waiting; default 64 MiB) and how
/// long `nexxo_cache_close` waits for it to drain (milliseconds; default 10000). A write
/// that finds the queue full is stored locally and its upload dropped (counted).
///
/// `NEXXO_INVALID_ARGUMENT` when `o` is NULL.
#[no_mangle]
pub unsafe extern "C" fn nexxo_options_set_remote_queue(o: *mut nexxo_options, max_bytes: u64, close_wait_ms: u32) -> nexxo_status {
    with(o, |c| {
        c.remote.queue_bytes = max_bytes;
        c.remote.close_wait_ms = close_wait_ms;
        Ok(())
    })
}

/// Writes the remote tier's statistics to `*out` (all zero when the cache has no
/// remotes, they are off, or it is disabled). Per-remote figures, with each remote's
/// breaker state and last error, are in `nexxo_cache_stats_json` under `"remote"`.
/// Thread-safe.
///
/// `NEXXO_INVALID_ARGUMENT` when `c` or `out` is NULL.
#[no_mangle]
pub unsafe extern "C" fn nexxo_cache_remote_stats(c: *const nexxo_cache, out: *mut nexxo_remote_stats) -> nexxo_status {
    ffi_boundary!({
        let c = try_ffi!(args::non_null(c));
        let out = try_ffi!(args::out(out));
        *out = match c.cache.remote_stats() {
            None => nexxo_remote_stats::default(),
            Some(r) => {
                let t: &RemoteCounts = &r.totals;
                nexxo_remote_stats {
                    hits: t.hits,
                    misses: t.misses,
                    errors: t.errors,
                    rejected: t.rejected,
                    skipped: t.skipped,
                    backfills: r.backfills,
                    uploads: t.uploads,
                    upload_errors: t.upload_errors,
                    upload_dropped: r.upload_dropped,
                    queued: r.queued,
                    bytes_up: t.bytes_up,
                    bytes_down: t.bytes_down,
                    gets: t.gets,
                    get_mean_us: t.mean_get_micros(),
                    get_max_us: t.get_micros_max,
                    open_breakers: r.open_breakers(),
                    remotes: r.endpoints.len() as u64,
                }
            }
        };
        NEXXO_OK
    })
}

/// Waits until every queued upload has been sent (or has failed), at most `timeout_ms`
/// milliseconds: `NEXXO_OK` when the queue drained (also when there is nothing to
/// upload to), `NEXXO_TIMED_OUT` when uploads were still pending. For the end of a CI
/// job; `nexxo_cache_close` does the same within its close wait. Thread-safe.
///
/// `NEXXO_INVALID_ARGUMENT` when `c` is NULL.
#[no_mangle]
pub unsafe extern "C" fn nexxo_cache_remote_sync(c: *const nexxo_cache, timeout_ms: u32) -> nexxo_status {
    ffi_boundary!({
        let c = try_ffi!(args::non_null(c));
        if c.cache.remote_sync(Duration::from_millis(timeout_ms.into())) {
            NEXXO_OK
        } else {
            NEXXO_TIMED_OUT
        }
    })
}
