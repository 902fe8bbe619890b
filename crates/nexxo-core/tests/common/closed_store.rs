//! A closed cache to damage: for the damage tests and the README's damage table
//! (`examples/damage_table.rs` includes `tests/common`).

use std::path::{Path, PathBuf};

use nexxo_core::{Cache, Config};

/// Entries in a closed store.
pub const CLASS_N: usize = 10_000;

/// The value of module `m{i}`: a few hundred bytes of JavaScript-like text.
pub fn module_text(i: usize) -> Vec<u8> {
    format!("export default function m{i}() {{ return {i}; }}\n").repeat(8 + i % 20).into_bytes()
}

/// The value of `m{i}` in a closed store: every 1000th is 80 KiB that do not compress
/// (it goes to a blob file), the others [`module_text`].
pub fn class_value(i: usize) -> Vec<u8> {
    if i % 1000 == 7 {
        super::noise(i as u64, 80 * 1024)
    } else {
        module_text(i)
    }
}

/// A closed store of [`CLASS_N`] entries at `dir/name`, compacted (one table per
/// category, blob files for the big values).
pub fn closed_store(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let c = Cache::open(&path, &Config::default()).unwrap();
    for chunk in (0..CLASS_N).collect::<Vec<_>>().chunks(500) {
        let items: Vec<(Vec<u8>, Vec<u8>)> = chunk.iter().map(|&i| (format!("m{i}").into_bytes(), class_value(i))).collect();
        let batch: Vec<(&[u8], &[u8], &[u8])> = items.iter().map(|(k, v)| (&b"transform"[..], &k[..], &v[..])).collect();
        c.batch_set(&batch).unwrap();
    }
    c.compact(None).unwrap();
    path
}

/// The files of `path` ending in `.ext`, largest first.
pub fn files_with(path: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(path).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == ext)).collect();
    v.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).unwrap().len()));
    v
}

/// Zeroes `len` bytes of `file` from `at(file's length)`.
pub fn zero(file: &Path, at: impl Fn(usize) -> usize, len: usize) {
    let mut b = std::fs::read(file).unwrap();
    let a = at(b.len());
    b[a..a + len].fill(0);
    std::fs::write(file, b).unwrap();
}

/// Cuts `file` to `keep(its length)` bytes.
pub fn cut(file: &Path, keep: impl Fn(u64) -> u64) {
    let len = std::fs::metadata(file).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(file).unwrap().set_len(keep(len)).unwrap();
}
