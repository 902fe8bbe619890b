//! The warm table's image: what the table held at a clean close, in a file of the cache
//! directory (`NEXXO_WARM`), which the next run's fill maps into memory instead of
//! scanning RocksDB's tables.
//!
//! A new process reading a 100,000-entry cache from C filled its table in 55-97 ms of CPU
//! (`perf` of the fill thread: a third RocksDB's iterator, two fifths page faults of the
//! new chunks and of the tables' mapping, the rest the index), and its reads meanwhile
//! went to RocksDB; from Node the first 20,000-30,000 gets of such a process took 4-6 µs
//! each where the later ones took 1.7-2. The image is the table's frames laid out as its
//! chunks held them (in the order they were written or scanned), so loading it is one
//! `mmap`, a checksum over the file and an index insert per entry: no copy, and no page
//! of it in anonymous memory (its pages are the page cache's, shared and reclaimable).
//!
//! Never a stale frame: an image is used only for the very store state it was taken
//! from. It records RocksDB's identity (the `IDENTITY` file, new for every database) and
//! last sequence number, and each category's exact counters (entries, stored bytes); the
//! fill uses it only when all of them are the store's at the fill's start (taken under
//! the writers' lock, after the fill began keeping overwritten keys, as a scan's iterator
//! is), and when its checksum over the whole file holds. Every write to the store,
//! from this library's version or any other, moves the sequence number; a store a crash
//! rolled back cannot come back to the same number with other contents, because the image
//! is written after the close flushed every write of that number to the tables. It is
//! written by the process that holds the store open for writing, at its clean close, from
//! a table that holds every entry of the store (its entries and bytes per category equal
//! the counters: a held frame is always its key's current frame) or at least half its
//! budget's worth of them (an image of part of the store); a close after which the image
//! would not match, and that has no table worth an image, removes it. A kill -9 leaves an
//! image whose number the next writes move past.
//!
//! The file is replaced by a rename, never written in place, so a mapped image never
//! changes under its readers. (A file cut short by another program of the same user while
//! mapped would fault its readers, as RocksDB's memory-mapped tables would.)
//!
//! Layout (little-endian): magic (8 bytes), a checksum (8: XXH3-64 of the bytes from the
//! sequence number to the header's end, then each record's XXH3-64 seeded with the
//! checksum so far), the sequence number (8), the header's length (4), the header (the identity's
//! length (4) and bytes; the category count (4), then per category its name's length (4),
//! name, entries (8) and stored bytes (8)), then one record per entry: category (4), key
//! length (4), frame length (4), key, frame.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

pub(in crate::store) const IMAGE_FILE: &str = "NEXXO_WARM";
const MAGIC: &[u8; 8] = b"NXWARM\0\x01";
/// Magic, checksum, sequence number, header length.
const FIXED: usize = 28;
const RECORD_HEAD: usize = 12;
/// Most bytes a header may take (see [`taken_from`]).
const MAX_HEADER: usize = 1 << 20;

/// A file mapped read-only into memory, unmapped when dropped.
pub(in crate::store) struct Mapped {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is read-only and owned: shared references to its bytes are as safe
// across threads as a `Box<[u8]>`'s.
unsafe impl Send for Mapped {}
unsafe impl Sync for Mapped {}

impl Mapped {
    /// Maps `path` whole, its pages faulted in at once (one call instead of a fault per
    /// 64 KiB). None when the file is missing, empty, over 4 GiB (the table's offsets are
    /// 32 bits) or cannot be mapped.
    fn open(path: &Path) -> Option<Mapped> {
        use std::os::unix::io::AsRawFd;
        let f = std::fs::File::open(path).ok()?;
        let len = usize::try_from(f.metadata().ok()?.len()).ok()?;
        if len < FIXED || u32::try_from(len).is_err() {
            return None;
        }
        // SAFETY: a new private read-only mapping of an open file; checked below.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_PRIVATE | libc::MAP_POPULATE, f.as_raw_fd(), 0) };
        (ptr != libc::MAP_FAILED).then_some(Mapped { ptr, len })
    }

    pub(in crate::store) fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes mapped readable at `ptr` until drop; the file is replaced by
        // rename, never written in place (see the module's comment).
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`, unmapped once.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// What an image says it was taken from.
#[derive(Debug, PartialEq)]
pub(in crate::store) struct Taken<'a> {
    pub sequence: u64,
    pub identity: &'a [u8],
    /// Per category: name, entries, stored bytes.
    pub categories: Vec<(&'a [u8], u64, u64)>,
}

/// A loaded image: its mapping, what it was taken from, and its records as (category,
/// the key's hash, offset of the key, key length, frame length).
pub(in crate::store) struct Loaded {
    pub map: Mapped,
    pub sequence: u64,
    pub identity: Vec<u8>,
    pub categories: Vec<(Vec<u8>, u64, u64)>,
    pub records: Vec<(usize, u64, u32, u32, u32)>,
    /// Per category, the entries and key and frame bytes of the records: at most the
    /// header's counts (all of them when the image holds the whole store).
    pub held: Vec<(u64, u64)>,
}

/// Reads little-endian fields off a byte slice, failing past its end.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// What the image in `bytes` was taken from, and where its records start; None when it
/// is not an image of this format.
fn header(bytes: &[u8]) -> Option<(Taken<'_>, usize)> {
    let mut c = Cursor { b: bytes, at: 0 };
    if c.take(8)? != MAGIC {
        return None;
    }
    c.u64()?;
    let sequence = c.u64()?;
    let len = c.u32()? as usize;
    let end = FIXED.checked_add(len)?;
    let mut h = Cursor { b: bytes.get(..end)?, at: FIXED };
    let id_len = h.u32()? as usize;
    let identity = h.take(id_len)?;
    let n = h.u32()? as usize;
    let mut categories = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let l = h.u32()? as usize;
        categories.push((h.take(l)?, h.u64()?, h.u64()?));
    }
    (h.at == end).then_some((Taken { sequence, identity, categories }, end))
}

/// What the image at `path` was taken from (its header only: not checked further), if
/// there is one of this format.
pub(in crate::store) fn taken_from(path: &Path) -> Option<(u64, Vec<u8>)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut fixed = [0u8; FIXED];
    f.read_exact(&mut fixed).ok()?;
    let len = u32::from_le_bytes(fixed[24..28].try_into().ok()?) as usize;
    // A header names an identity and the categories: far less than this. (A damaged length
    // must not become an allocation of gigabytes.)
    if len > MAX_HEADER || FIXED + len > usize::try_from(f.metadata().ok()?.len()).ok()? {
        return None;
    }
    let mut all = fixed.to_vec();
    all.resize(FIXED.checked_add(len)?, 0);
    f.read_exact(&mut all[FIXED..]).ok()?;
    let (t, _) = header(&all)?;
    Some((t.sequence, t.identity.to_vec()))
}

/// Maps and checks the image at `path`, each key hashed with `hash`: None when there is
/// none, or it is not whole (its checksum fails, a record runs past its end or names a
/// category the header lacks, the records are more entries or bytes than the header
/// counts in the store). One pass over the file: each record is checksummed and its key hashed while
/// its bytes are in the processor's cache (a checksum of the whole file first, then the
/// records, read tens of megabytes from memory twice).
pub(in crate::store) fn load(path: &Path, hash: impl Fn(&[u8]) -> u64) -> Option<Loaded> {
    let map = Mapped::open(path)?;
    let bytes = map.bytes();
    let (taken, start) = header(bytes)?;
    let mut sum = xxh3_64(&bytes[16..start]);
    let entries: u64 = taken.categories.iter().map(|c| c.1).sum();
    let mut records = Vec::with_capacity(usize::try_from(entries).ok()?.min(bytes.len() / RECORD_HEAD));
    // Per category: entries and key and frame bytes, as the header must count them.
    let mut held = vec![(0u64, 0u64); taken.categories.len()];
    let mut c = Cursor { b: bytes, at: start };
    while c.at < bytes.len() {
        let from = c.at;
        let ci = c.u32()? as usize;
        let (klen, flen) = (c.u32()?, c.u32()?);
        let at = c.at;
        let key = c.take(klen as usize)?;
        c.take(flen as usize)?;
        sum = xxh3_64_with_seed(&bytes[from..c.at], sum);
        let h = held.get_mut(ci)?;
        h.0 += 1;
        h.1 += u64::from(klen) + u64::from(flen);
        records.push((ci, hash(key), at as u32, klen, flen));
    }
    if u64::from_le_bytes(bytes[8..16].try_into().ok()?) != sum || held.iter().zip(&taken.categories).any(|(h, c)| h.0 > c.1 || h.1 > c.2) {
        return None;
    }
    let (sequence, identity) = (taken.sequence, taken.identity.to_vec());
    let categories = taken.categories.iter().map(|&(n, e, b)| (n.to_vec(), e, b)).collect();
    Some(Loaded { map, sequence, identity, categories, records, held })
}

/// Writes an image of `records` (category, key, frame) taken at `taken` to `dir`: into a
/// temporary file, then renamed over the last one (never written in place).
pub(in crate::store) fn write(dir: &Path, taken: &Taken<'_>, records: &[(usize, &[u8], &[u8])]) -> std::io::Result<()> {
    remove_leftovers(dir);
    crate::store::dir::replace_file_with(dir, IMAGE_FILE, 0o600, false, |f| write_to(f, taken, records))
}

/// Removes temporary files of images whose writer was killed before its rename (each as
/// large as an image; named as `replace_file_with` names them). Only the process holding the store open for writing writes an
/// image, at its close, so no other writer's file is in progress.
pub(in crate::store) fn remove_leftovers(dir: &Path) {
    let prefix = format!("{IMAGE_FILE}.tmp.");
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_name().to_str().is_some_and(|n| n.starts_with(&prefix)) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn write_to(f: &mut std::fs::File, taken: &Taken<'_>, records: &[(usize, &[u8], &[u8])]) -> std::io::Result<()> {
    let too_large = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "a warm image over 4 GiB");
    let mut head = Vec::new();
    let len32 = |n: usize| u32::try_from(n).map(u32::to_le_bytes).map_err(|_| too_large());
    head.extend_from_slice(&len32(taken.identity.len())?);
    head.extend_from_slice(taken.identity);
    head.extend_from_slice(&len32(taken.categories.len())?);
    for &(name, entries, bytes) in &taken.categories {
        head.extend_from_slice(&len32(name.len())?);
        head.extend_from_slice(name);
        head.extend_from_slice(&entries.to_le_bytes());
        head.extend_from_slice(&bytes.to_le_bytes());
    }
    let total = records.iter().fold(FIXED + head.len(), |n, r| n.saturating_add(RECORD_HEAD + r.1.len() + r.2.len()));
    if u32::try_from(total).is_err() {
        return Err(too_large());
    }
    let mut w = std::io::BufWriter::with_capacity(1 << 20, &mut *f);
    w.write_all(MAGIC)?;
    w.write_all(&[0u8; 8])?;
    let mut first = taken.sequence.to_le_bytes().to_vec();
    first.extend_from_slice(&len32(head.len())?);
    first.extend_from_slice(&head);
    w.write_all(&first)?;
    let mut sum = xxh3_64(&first);
    let mut rec = Vec::new();
    for &(ci, key, frame) in records {
        rec.clear();
        rec.extend_from_slice(&len32(ci)?);
        rec.extend_from_slice(&len32(key.len())?);
        rec.extend_from_slice(&len32(frame.len())?);
        rec.extend_from_slice(key);
        rec.extend_from_slice(frame);
        sum = xxh3_64_with_seed(&rec, sum);
        w.write_all(&rec)?;
    }
    w.flush()?;
    drop(w);
    f.seek(SeekFrom::Start(8))?;
    f.write_all(&sum.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) -> Vec<u8> {
        let taken = Taken { sequence: 42, identity: b"id-1", categories: vec![(&b"parse"[..], 1, 5), (&b"transform"[..], 2, 9)] };
        write(dir, &taken, &[(1, &b"k1"[..], &b"f1"[..]), (0, b"a", b"bcde"), (1, b"k2", b"fff")]).unwrap();
        std::fs::read(dir.join(IMAGE_FILE)).unwrap()
    }

    #[test]
    fn an_image_reads_back_as_written() {
        let d = tempfile::tempdir().unwrap();
        let bytes = sample(d.path());
        let l = load(&d.path().join(IMAGE_FILE), |k| k.len() as u64).expect("loads");
        assert_eq!((l.sequence, &l.identity[..]), (42, &b"id-1"[..]));
        assert_eq!(l.categories, vec![(b"parse".to_vec(), 1, 5), (b"transform".to_vec(), 2, 9)]);
        let got: Vec<(usize, &[u8], &[u8])> = l
            .records
            .iter()
            .map(|&(ci, h, off, k, f)| {
                assert_eq!(h, u64::from(k), "each key hashed");
                (ci, &bytes[off as usize..(off + k) as usize], &bytes[(off + k) as usize..(off + k + f) as usize])
            })
            .collect();
        assert_eq!(got, vec![(1, &b"k1"[..], &b"f1"[..]), (0, b"a", b"bcde"), (1, b"k2", b"fff")]);
        assert_eq!(taken_from(&d.path().join(IMAGE_FILE)), Some((42, b"id-1".to_vec())));
        // No temporary file is left behind, nor one a killed writer left.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        std::fs::write(d.path().join(format!("{IMAGE_FILE}.tmp.1")), b"cut short").unwrap();
        sample(d.path());
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    /// Any byte changed, the file cut anywhere or lengthened: not loaded.
    #[test]
    fn a_damaged_image_is_not_loaded() {
        let d = tempfile::tempdir().unwrap();
        let good = sample(d.path());
        let p = d.path().join(IMAGE_FILE);
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x10;
            std::fs::write(&p, &b).unwrap();
            assert!(load(&p, |_| 0).is_none(), "byte {i} flipped");
        }
        for n in 0..good.len() {
            std::fs::write(&p, &good[..n]).unwrap();
            assert!(load(&p, |_| 0).is_none(), "cut to {n} bytes");
        }
        std::fs::write(&p, [&good[..], &[0u8]].concat()).unwrap();
        assert!(load(&p, |_| 0).is_none(), "a byte added");
        std::fs::write(&p, &good).unwrap();
        assert!(load(&p, |_| 0).is_some());
        // A header length past the file: refused (the bound itself, no allocation of
        // gigabytes, is not observable here).
        let mut b = good.clone();
        b[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&p, &b).unwrap();
        assert_eq!(taken_from(&p), None);
    }
}
