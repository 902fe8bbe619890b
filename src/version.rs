//! Version macros and `nexxo_version`. The numbers are written out for cbindgen, and a
//! compile-time check ties them to Cargo.toml, the one place the version is set.

use std::ffi::c_char;

/// Major version; a change means an incompatible ABI.
pub const NEXXO_CACHE_VERSION_MAJOR: u32 = 1;
/// Minor version; a change adds to the ABI without breaking it.
pub const NEXXO_CACHE_VERSION_MINOR: u32 = 11;
/// Patch version.
pub const NEXXO_CACHE_VERSION_PATCH: u32 = 0;
/// Longest key in bytes. Keys are 1 to `NEXXO_MAX_KEY_LEN` bytes.
pub const NEXXO_MAX_KEY_LEN: usize = 4096;
/// Longest value in bytes (256 MiB). Values are 0 to `NEXXO_MAX_VALUE_LEN` bytes.
pub const NEXXO_MAX_VALUE_LEN: usize = 268435456;
/// Longest tag in bytes (1.7). Tags are 1 to `NEXXO_MAX_TAG_LEN` bytes.
pub const NEXXO_MAX_TAG_LEN: usize = 256;
/// Most tags one entry carries (1.7).
pub const NEXXO_MAX_TAGS: usize = 32;

/// The default bound on the cache's stored bytes (2 GiB); see `nexxo_options_set_max_size`.
pub const NEXXO_DEFAULT_MAX_SIZE: u64 = 2147483648;
/// The default memory budget (64 MiB); see `nexxo_options_set_memory_budget`.
pub const NEXXO_DEFAULT_MEMORY_BUDGET: u64 = 67108864;
/// The smallest memory budget accepted (4 MiB).
pub const NEXXO_MIN_MEMORY_BUDGET: u64 = 4194304;
/// The most remotes one cache may have; see `nexxo_options_add_remote`. (Added in 1.1.)
pub const NEXXO_MAX_REMOTES: usize = 8;
/// The shortest HMAC key accepted, in bytes; see `nexxo_options_set_remote_hmac_key`.
pub const NEXXO_MIN_HMAC_KEY_LEN: usize = 16;
/// The default remote timeout in milliseconds; see `nexxo_options_set_remote_timeout`.
pub const NEXXO_DEFAULT_REMOTE_TIMEOUT_MS: u32 = 3000;

const fn parse_u32(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut v = 0u32;
    while i < b.len() {
        v = v * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    v
}

const _: () = assert!(NEXXO_CACHE_VERSION_MAJOR == parse_u32(env!("CARGO_PKG_VERSION_MAJOR")), "update src/version.rs to Cargo.toml's version");
const _: () = assert!(NEXXO_CACHE_VERSION_MINOR == parse_u32(env!("CARGO_PKG_VERSION_MINOR")), "update src/version.rs to Cargo.toml's version");
const _: () = assert!(NEXXO_CACHE_VERSION_PATCH == parse_u32(env!("CARGO_PKG_VERSION_PATCH")), "update src/version.rs to Cargo.toml's version");
const _: () = assert!(NEXXO_MAX_KEY_LEN == nexxo_core::store::MAX_KEY_LEN);
const _: () = assert!(NEXXO_MAX_VALUE_LEN == nexxo_core::store::MAX_VALUE_LEN);
const _: () = assert!(NEXXO_MAX_TAG_LEN == nexxo_core::store::MAX_TAG_LEN);
const _: () = assert!(NEXXO_MAX_TAGS == nexxo_core::store::MAX_TAGS);
const _: () = assert!(NEXXO_DEFAULT_MAX_SIZE == nexxo_core::config::DEFAULT_MAX_SIZE);
const _: () = assert!(NEXXO_DEFAULT_MEMORY_BUDGET == nexxo_core::config::DEFAULT_MEMORY_BUDGET);
const _: () = assert!(NEXXO_MIN_MEMORY_BUDGET == nexxo_core::config::MIN_MEMORY_BUDGET);
const _: () = assert!(NEXXO_MAX_REMOTES == nexxo_core::remote::MAX_REMOTES);
const _: () = assert!(NEXXO_MIN_HMAC_KEY_LEN == nexxo_core::remote::MIN_HMAC_KEY_LEN);
const _: () = assert!(NEXXO_DEFAULT_REMOTE_TIMEOUT_MS == nexxo_core::remote::DEFAULT_TIMEOUT_MS);

/// The library's version, "MAJOR.MINOR.PATCH", from Cargo.toml.
///
/// Returns static storage, never NULL. Safe to call from any thread.
#[no_mangle]
pub extern "C" fn nexxo_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
