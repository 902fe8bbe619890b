//! nexxo-cache: a persistent build-artifact cache on RocksDB, with a C ABI.
//!
//! The safe core ([`Cache`], [`Config`], [`Stats`]) is usable from Rust directly; the C
//! ABI in [`ffi`] only converts arguments and results (see `include/nexxo_cache.h`).

pub mod cache;
pub mod codec;
pub mod config;
pub mod error;
pub mod ffi;
pub mod policy;
pub mod remote;
pub mod stats;
pub mod store;
mod share;

pub use cache::Cache;
pub use codec::Compression;
pub use config::{Config, BUILTIN_CATEGORIES};
pub use error::{Error, Result};
pub use policy::{Clock, PolicyReport};
pub use remote::{RemoteConfig, RemoteStats};
pub use stats::{human_size, Stats};
pub use store::{Store, VerifyReport, MAX_KEY_LEN, MAX_VALUE_LEN};
