//! The benchmark data shared by the examples (bench_worker, remote_bench).
#![allow(dead_code)]

/// `len` bytes of JavaScript-like text for artifact `i`: compressible the way build
/// artifacts are.
pub fn value(i: usize, len: usize) -> Vec<u8> {
    let mut s = String::with_capacity(len + 128);
    while s.len() < len {
        s.push_str(&format!("export function C{i}_{}(p) {{ return h('ul', p.items.map((x) => h('li', x))); }}\n", s.len()));
    }
    s.truncate(len);
    s.into_bytes()
}

pub fn key(i: usize) -> Vec<u8> {
    format!("src/components/module{i}.tsx").into_bytes()
}

/// A fixed order unrelated to key order.
pub fn order(n: usize) -> Vec<usize> {
    let mut o: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (i.wrapping_mul(2_654_435_761)) % (i + 1);
        o.swap(i, j);
    }
    o
}
