//! `nexxo_status` and its text.

use std::ffi::c_char;

use nexxo_core::error::Error;

/// The outcome of a call. `NEXXO_OK` is 0; the numeric values are fixed by the ABI.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nexxo_status {
    /// Success.
    NEXXO_OK = 0,
    /// A miss: the key holds no value. Not an error.
    NEXXO_NOT_FOUND = 1,
    /// NULL where a pointer is required, a bad length or a bad option value.
    NEXXO_INVALID_ARGUMENT = 2,
    /// The category is neither built in nor added with `nexxo_options_add_category`.
    NEXXO_UNKNOWN_CATEGORY = 3,
    /// A key or value over its limit (`NEXXO_MAX_KEY_LEN`, `NEXXO_MAX_VALUE_LEN`).
    NEXXO_TOO_LARGE = 4,
    /// `nexxo_cache_get_into`: the buffer is too small; `*out_len` holds the size needed.
    NEXXO_BUFFER_TOO_SMALL = 5,
    /// Another process (or another open handle) holds the cache directory for writing.
    NEXXO_LOCKED = 6,
    /// A file system or storage error.
    NEXXO_IO_ERROR = 7,
    /// The disk is full; nothing acknowledged is lost.
    NEXXO_NO_SPACE = 8,
    /// Damage that could not be repaired or set aside.
    NEXXO_CORRUPTION = 9,
    /// A write through a read-only handle.
    NEXXO_READ_ONLY = 10,
    /// The directory holds a newer on-disk format, or something that is not a cache.
    NEXXO_INCOMPATIBLE = 11,
    /// An internal bug, caught at the boundary.
    NEXXO_PANIC = 12,
    /// The cache directory is not trusted: owned by another user, writable by group or
    /// others beyond the configured directory mode, or reached through another user's
    /// symlink. `nexxo_options_set_allow_untrusted_dir` opens it read-only instead.
    /// (Added in 1.0; bindings map it as INSECURE.)
    NEXXO_INSECURE = 13,
    /// `nexxo_cache_remote_sync`: queued uploads were still pending when its timeout
    /// passed. (Added in 1.1; bindings map it as TIMED_OUT.)
    NEXXO_TIMED_OUT = 14,
}

impl From<&Error> for nexxo_status {
    fn from(e: &Error) -> Self {
        use nexxo_status::*;
        match e {
            Error::InvalidArgument(_) => NEXXO_INVALID_ARGUMENT,
            Error::UnknownCategory(_) => NEXXO_UNKNOWN_CATEGORY,
            Error::TooLarge(_) => NEXXO_TOO_LARGE,
            Error::BufferTooSmall(_) => NEXXO_BUFFER_TOO_SMALL,
            Error::Locked(_) => NEXXO_LOCKED,
            Error::Io(_) => NEXXO_IO_ERROR,
            Error::NoSpace(_) => NEXXO_NO_SPACE,
            Error::Corruption(_) => NEXXO_CORRUPTION,
            Error::ReadOnly => NEXXO_READ_ONLY,
            Error::Incompatible(_) => NEXXO_INCOMPATIBLE,
            Error::Insecure(_) => NEXXO_INSECURE,
            // A disabled cache's reason only (NEXXO_CACHE_DISABLE): no error.
            Error::DisabledOnRequest(_) => NEXXO_OK,
        }
    }
}

impl nexxo_status {
    /// The enumerator's name, `"NEXXO_LOCKED"`: what the statistics JSON and the bindings
    /// call a status. Taken from the enum itself (its `Debug`), so names are written once.
    pub fn name(self) -> String {
        format!("{self:?}")
    }
}

impl From<Error> for nexxo_status {
    fn from(e: Error) -> Self {
        (&e).into()
    }
}

/// A status received from C as a plain integer, so that any value a caller passes is
/// defined behaviour. The header shows it as `nexxo_status`.
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct StatusArg(pub u32);

/// Describes a status in a few words: "ok", "not found", "locked", ...
///
/// Returns static storage, never NULL; values outside the enum give "unknown status".
/// Safe to call from any thread.
#[no_mangle]
pub extern "C" fn nexxo_status_str(s: StatusArg) -> *const c_char {
    let text: &'static [u8] = match s.0 {
        0 => b"ok\0",
        1 => b"not found\0",
        2 => b"invalid argument\0",
        3 => b"unknown category\0",
        4 => b"key or value too large\0",
        5 => b"buffer too small\0",
        6 => b"cache directory locked by another writer\0",
        7 => b"I/O error\0",
        8 => b"no space left on device\0",
        9 => b"corruption that could not be repaired\0",
        10 => b"cache opened read-only\0",
        11 => b"incompatible on-disk format\0",
        12 => b"internal error (panic)\0",
        13 => b"cache directory not trusted (another owner, or writable by others)\0",
        14 => b"timed out\0",
        _ => b"unknown status\0",
    };
    text.as_ptr().cast()
}
