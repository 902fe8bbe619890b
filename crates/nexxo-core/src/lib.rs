//! nexxo-core: the core of nexxo-cache, a persistent build-artifact cache on RocksDB.
//!
//! [`Cache`], [`Config`] and [`Stats`] are the API; the C ABI (the `nexxo_cache` crate at
//! the repository's root, `include/nexxo_cache.h`) and the command (`crates/nexxo-cli`)
//! are built on it. Nothing here knows C: no C types, no status codes or names.
//! `docs/architecture.md` shows the modules and which way their dependencies go.

// Leaves: depend on nothing of this crate but `error`.
pub mod clock;
pub mod codec;
pub mod error;
pub mod fork;
pub mod json;
pub mod limits;
pub mod latency;
pub mod history;
// Built on the leaves, each using only what is listed above it.
pub mod stats;
pub mod remote;
pub mod config;
pub mod environment;
pub mod store;
pub mod evict;
mod share;
pub mod cache;

pub use cache::Cache;
pub use codec::Compression;
pub use config::{Config, BUILTIN_CATEGORIES};
pub use error::{Error, Result};
pub use clock::Clock;
pub use evict::PolicyReport;
pub use remote::{RemoteConfig, RemoteStats};
pub use stats::{human_size, Stats};
pub use limits::{MAX_KEY_LEN, MAX_VALUE_LEN};
pub use store::{Store, VerifyReport};
