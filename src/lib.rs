//! The C ABI (`include/nexxo_cache.h`, generated from this module by cbindgen).
//!
//! This layer only converts: C arguments are checked and turned into Rust values, the
//! core is called, and its result becomes a `nexxo_status` and out-parameters. Every
//! exported body runs inside [`ffi_boundary!`], which turns a panic into `NEXXO_PANIC`.

#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

/// Runs an exported function's body, catching panics so none unwinds into C: the
/// function then returns its type's [`OnPanic`] value. Every exported function's body
/// runs inside it, whatever it returns, except `nexxo_version` and `nexxo_status_str`,
/// which only return static strings.
macro_rules! ffi_boundary {
    ($body:block) => {{
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| $body)) {
            Ok(v) => v,
            Err(_) => crate::OnPanic::on_panic(),
        }
    }};
}

/// What an exported function returns when its body panicked.
pub(crate) trait OnPanic {
    fn on_panic() -> Self;
}

impl OnPanic for status::nexxo_status {
    fn on_panic() -> Self {
        status::nexxo_status::NEXXO_PANIC
    }
}

/// Functions that return a new object return NULL, as they do when out of memory.
impl<T> OnPanic for *mut T {
    fn on_panic() -> Self {
        std::ptr::null_mut()
    }
}

/// Functions that return nothing (the frees) return: what was to be freed leaks.
impl OnPanic for () {
    fn on_panic() -> Self {}
}

/// Evaluates a `Result<T, nexxo_status>`, returning the status from the function on error.
macro_rules! try_ffi {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(s) => return s,
        }
    };
}

pub mod args;
pub mod bytes;
pub mod cache;
#[cfg(unix)]
mod node;
pub mod options;
pub mod packed;
pub mod remote;
pub mod status;
pub mod tags;
pub mod version;
