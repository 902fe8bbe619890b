//! Framing of stored values; see the `nexxo-codec` crate (crates/nexxo-codec), kept apart
//! so that it can be fuzzed without building RocksDB.
pub use nexxo_codec::*;
