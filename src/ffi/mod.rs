//! The C ABI (`include/nexxo_cache.h`, generated from this module by cbindgen).
//!
//! This layer only converts: C arguments are checked and turned into Rust values, the
//! core is called, and its result becomes a `nexxo_status` and out-parameters. Every
//! exported body runs inside [`ffi_boundary!`], which turns a panic into `NEXXO_PANIC`.

#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

/// Runs an exported function's body, catching panics so none unwinds into C.
macro_rules! ffi_boundary {
    ($body:block) => {{
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> crate::ffi::status::nexxo_status { $body })) {
            Ok(s) => s,
            Err(_) => crate::ffi::status::nexxo_status::NEXXO_PANIC,
        }
    }};
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
pub mod options;
pub mod packed;
pub mod remote;
pub mod status;
pub mod version;
