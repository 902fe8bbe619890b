//! Helpers shared by the integration tests.
#![allow(dead_code)]

use nexxo_core::Store;

pub mod closed_store;

/// A small xorshift generator: deterministic, no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `len` bytes of JavaScript-like text for module `i`, compressible as artifacts are.
pub fn artifact(i: usize, len: usize) -> Vec<u8> {
    let mut s = String::new();
    while s.len() < len {
        s.push_str(&format!("export const v{i}_{} = require('./m{}').default;\n", s.len(), i % 97));
    }
    s.truncate(len);
    s.into_bytes()
}

/// `len` incompressible bytes, different for each seed.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    (0..len).map(|_| r.next() as u8).collect()
}

/// The store's counters equal a recount of its data, and every entry has exactly one
/// recency-index record.
pub fn assert_exact(store: &Store) {
    let kept = store.counters();
    let counted = store.recount().unwrap();
    for ((name, k), (name2, c, index)) in kept.iter().zip(counted.iter()) {
        assert_eq!(name, name2);
        assert_eq!(k, c, "counters of {name} differ from a recount");
        assert_eq!(*index, c.entries, "index records of {name} differ from its entries");
    }
}
