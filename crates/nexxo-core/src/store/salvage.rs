//! Salvage: the entries of a damaged store, read from its files themselves.
//!
//! RocksDB's own repair rebuilds a MANIFEST from the table files, but it reads every
//! table with one table format (so it cannot read this store's PlainTable category tables
//! and its block-based index tables at once), it drops a whole table at the first bad
//! record, and it does not know blob files. A cache needs less: its entries. Every
//! category table (PlainTable with `KeyEncodingType::Plain`: records one after another
//! from the start of the file), blob file and write-ahead log of the damaged store is
//! read record by record, and a record is kept only when its frame's checksum holds for
//! its key under one of the store's categories (which also names the category). So
//! nothing damaged is ever kept, and a damaged stretch costs only the records in it: the
//! reader steps forward byte by byte until frames check again. Among the records of one
//! entry the newest (highest sequence number) wins, a deletion included. Counters and
//! the recency index are not salvaged: they are rebuilt from what was.
//!
//! Known limit: a table that a crash left behind after a compaction had replaced it
//! (RocksDB deletes such files at the next open, so only a crash between a compaction
//! and that open leaves one) can bring back a value that was overwritten or deleted
//! later, if the newer record's sequence number was zeroed by a compaction.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::codec;
use crate::limits::MAX_KEY_LEN;

/// The directory (inside the cache directory, so the sharing files and their locks stay
/// where they are) that a damaged store's files are moved into while they are salvaged.
pub(crate) const SALVAGE_DIR: &str = "salvage";

/// A PlainTable's footer ends with one of these (RocksDB writes the legacy one for the
/// footer's format version 0, which PlainTable uses).
const PLAIN_TABLE_MAGICS: [u64; 2] = [0x8242_2296_63bf_9564, 0x4f34_18eb_7a8f_13b8];
const TYPE_DELETION: u8 = 0x0;
const TYPE_VALUE: u8 = 0x1;
const TYPE_SINGLE_DELETION: u8 = 0x7;
const TYPE_BLOB_INDEX: u8 = 0x11;
/// PlainTable's mark, in place of the 8-byte sequence-and-type, of a value whose
/// sequence number is 0.
const SEQ0_VALUE: u8 = 0xFF;
const BLOB_FILE_HEADER: usize = 30;
const BLOB_RECORD_HEADER: usize = 32;

/// Where a kept value's frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc {
    file: usize,
    offset: u64,
    len: u64,
}

/// Where a kept frame is: in a file, or held in memory (a write-ahead log's batches
/// can span its blocks; the logs are bounded by the store's `max_total_wal_size`).
#[derive(Debug, Clone, Copy)]
enum Src {
    At(Loc),
    Held(usize),
}

#[derive(Debug, Clone, Copy)]
struct Record {
    /// Which record of a key wins: a table's or a log's record ranks its sequence
    /// number + 1; a value found only by scanning a blob file ranks 0, below every
    /// record that names a sequence number (a table's record of sequence number 0
    /// included: a compaction's output), and among blob files the newest file wins.
    rank: u64,
    /// None: a deletion.
    value: Option<Src>,
}

/// The rank of a record with sequence number `seq` (see [`Record::rank`]).
fn ranked(seq: u64) -> u64 {
    seq.saturating_add(1)
}

/// What a salvage found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SalvageReport {
    /// Files read (tables, blob files, logs).
    pub files: u64,
    /// Bytes of those files in stretches where no record could be read.
    pub unreadable_bytes: u64,
    /// Entries kept.
    pub entries: u64,
}

/// The records of a damaged store's files, by category and key.
#[derive(Default)]
pub(super) struct Salvage {
    categories: Vec<String>,
    /// The files read, open (kept values are read again from them at the end).
    files: Vec<File>,
    newest: HashMap<(usize, Vec<u8>), Record>,
    held: Vec<Vec<u8>>,
    pub(super) report: SalvageReport,
}

impl Salvage {
    /// Reads every table, blob file and write-ahead log in `dir`, trying `categories`
    /// (their names) for every frame.
    pub(super) fn read(dir: &Path, categories: Vec<String>) -> std::io::Result<Salvage> {
        let mut s = Salvage { categories, files: Vec::new(), newest: HashMap::new(), held: Vec::new(), report: SalvageReport::default() };
        let mut names: Vec<(u64, String)> = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let name = e?.file_name().to_string_lossy().into_owned();
            if let Some(n) = name.split('.').next().and_then(|n| n.parse::<u64>().ok()) {
                names.push((n, name));
            }
        }
        // Blob files first: table records that point into them are checked against them.
        names.sort_by_key(|(n, name)| (!name.ends_with(".blob"), *n));
        let mut blobs: HashMap<u64, usize> = HashMap::new();
        for (n, name) in &names {
            let path = dir.join(name);
            let Ok(mut f) = File::open(&path) else { continue };
            let mut bytes = Vec::new();
            if std::io::Read::read_to_end(&mut f, &mut bytes).is_err() {
                continue;
            }
            let file = s.files.len();
            s.files.push(f);
            s.report.files += 1;
            if name.ends_with(".blob") {
                blobs.insert(*n, file);
                s.read_blob_file(file, &bytes);
            } else if name.ends_with(".sst") {
                s.read_table(file, &bytes, &blobs);
            } else if name.ends_with(".log") {
                s.read_log(&bytes);
            }
        }
        Ok(s)
    }

    /// The category names, for [`codec::find_category`] (a copy: the readers add
    /// records while they use it).
    fn names(&self) -> Vec<Vec<u8>> {
        self.categories.iter().map(|c| c.as_bytes().to_vec()).collect()
    }

    fn offer(&mut self, cat: usize, key: &[u8], rec: Record) {
        match self.newest.get_mut(&(cat, key.to_vec())) {
            Some(old) if old.rank > rec.rank => {}
            // An equal rank is the same version again, or a newer blob file's copy.
            Some(old) => *old = rec,
            None => {
                self.newest.insert((cat, key.to_vec()), rec);
            }
        }
    }

    /// A category table: PlainTable records from offset 0 to its index and properties.
    /// A file of another kind (the block-based index tables) yields no frames and is
    /// passed over by the same walk.
    fn read_table(&mut self, file: usize, bytes: &[u8], blobs: &HashMap<u64, usize>) {
        let names = self.names();
        let cats: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
        let is_plain = bytes.len() >= 8 && PLAIN_TABLE_MAGICS.contains(&u64::from_le_bytes(bytes[bytes.len() - 8..].try_into().unwrap()));
        let mut category: Option<usize> = None;
        let mut deletions: Vec<(Vec<u8>, u64)> = Vec::new();
        let mut found = Vec::new();
        let mut pos = 0usize;
        let mut in_step = true; // the walk is at a record boundary it trusts
        let mut skipped = 0u64; // bytes stepped over since the last record found
        while pos < bytes.len() {
            let rec = parse_table_record(bytes, pos);
            let mut next = None;
            if let Some(r) = &rec {
                match r.kind {
                    TYPE_VALUE => {
                        let frame = &bytes[r.value.0..r.value.1];
                        if let Some(ci) = codec::find_category(&cats, r.key, frame) {
                            if category.is_none_or(|c| c == ci) {
                                category = Some(ci);
                                let loc = Loc { file, offset: r.value.0 as u64, len: frame.len() as u64 };
                                found.push((ci, r.key.to_vec(), Record { rank: ranked(r.seq), value: Some(Src::At(loc)) }));
                                next = Some(r.end);
                            }
                        }
                    }
                    TYPE_BLOB_INDEX => {
                        if let Some(loc) = parse_blob_index(&bytes[r.value.0..r.value.1], blobs) {
                            if let Some(ci) = self.check_frame_at(loc, r.key, &cats) {
                                if category.is_none_or(|c| c == ci) {
                                    category = Some(ci);
                                    found.push((ci, r.key.to_vec(), Record { rank: ranked(r.seq), value: Some(Src::At(loc)) }));
                                    next = Some(r.end);
                                }
                            } else if in_step {
                                next = Some(r.end); // the blob is damaged; the walk is not
                            }
                        }
                    }
                    TYPE_DELETION | TYPE_SINGLE_DELETION if in_step && r.value.0 == r.value.1 => {
                        deletions.push((r.key.to_vec(), r.seq));
                        next = Some(r.end);
                    }
                    _ => {}
                }
            }
            match next {
                Some(end) => {
                    // Bytes stepped over between two records were damaged. (Those after
                    // the last record are a PlainTable's index, filter and properties,
                    // or a cut-off tail: not counted.)
                    if is_plain || category.is_some() {
                        self.report.unreadable_bytes += skipped;
                    }
                    skipped = 0;
                    pos = end;
                    in_step = true;
                }
                None => {
                    pos += 1;
                    in_step = false;
                    skipped += 1;
                }
            }
        }
        for (ci, key, rec) in found {
            self.offer(ci, &key, rec);
        }
        // A deletion names no category; a table holds one column family: the one whose
        // frames were found in it. A table of deletions alone is passed over.
        if let Some(ci) = category {
            for (key, seq) in deletions {
                self.offer(ci, &key, Record { rank: ranked(seq), value: None });
            }
        }
    }

    /// The category whose checksum holds for the frame at `loc`, read from its file.
    fn check_frame_at(&self, loc: Loc, key: &[u8], cats: &[&[u8]]) -> Option<usize> {
        let frame = self.read_at(loc).ok()?;
        codec::find_category(cats, key, &frame)
    }

    fn read_at(&self, loc: Loc) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; loc.len as usize];
        self.files[loc.file].read_exact_at(&mut buf, loc.offset)?;
        Ok(buf)
    }

    /// A blob file: a 30-byte header, then records of a 32-byte header (key length,
    /// value length, expiration, two CRCs), key and value. Its values rank below every
    /// table's or log's record of their keys (see [`Record::rank`]).
    fn read_blob_file(&mut self, file: usize, bytes: &[u8]) {
        let names = self.names();
        let cats: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
        let mut pos = BLOB_FILE_HEADER;
        let mut found = Vec::new();
        while pos + BLOB_RECORD_HEADER <= bytes.len() {
            let key_len = u64::from_le_bytes(bytes[pos..pos + 8].try_into().unwrap());
            let value_len = u64::from_le_bytes(bytes[pos + 8..pos + 16].try_into().unwrap());
            let start = pos + BLOB_RECORD_HEADER;
            let fits = (1..=MAX_KEY_LEN as u64).contains(&key_len) && value_len <= (bytes.len() - start) as u64 && key_len + value_len <= (bytes.len() - start) as u64;
            if fits {
                let key = &bytes[start..start + key_len as usize];
                let v0 = start + key_len as usize;
                let frame = &bytes[v0..v0 + value_len as usize];
                if let Some(ci) = codec::find_category(&cats, key, frame) {
                    found.push((ci, key.to_vec(), Loc { file, offset: v0 as u64, len: value_len }));
                    pos = v0 + value_len as usize;
                    continue;
                }
            }
            pos += 1;
        }
        for (ci, key, loc) in found {
            self.offer(ci, &key, Record { rank: 0, value: Some(Src::At(loc)) });
        }
    }

    /// A write-ahead log: 32 KiB blocks of records (CRC, length, type) carrying write
    /// batches (sequence number, count, then tagged puts and deletions with column
    /// family ids). A column family id is known by the category of the frames written
    /// to it; deletions in one never seen with a frame are passed over.
    fn read_log(&mut self, bytes: &[u8]) {
        let names = self.names();
        let cats: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
        let mut cf_category: HashMap<u32, usize> = HashMap::new();
        let mut batches: Vec<(usize, Vec<u8>)> = Vec::new(); // (offset, payload)
        let mut pending: Option<(usize, Vec<u8>)> = None;
        let mut pos = 0usize;
        const BLOCK: usize = 32 * 1024;
        while pos + 7 <= bytes.len() {
            let left_in_block = BLOCK - pos % BLOCK;
            if left_in_block < 7 {
                pos += left_in_block; // the block's trailer
                continue;
            }
            let len = u16::from_le_bytes([bytes[pos + 4], bytes[pos + 5]]) as usize;
            let kind = bytes[pos + 6];
            let start = pos + 7;
            if kind == 0 || start + len > bytes.len() || len > left_in_block - 7 {
                // Preallocated zeros or damage: go on at the next block.
                pending = None;
                pos += left_in_block;
                continue;
            }
            let payload = &bytes[start..start + len];
            match kind {
                1 => batches.push((start, payload.to_vec())),
                2 => pending = Some((start, payload.to_vec())),
                3 => {
                    if let Some((_, p)) = pending.as_mut() {
                        p.extend_from_slice(payload);
                    }
                }
                4 => {
                    if let Some((o, mut p)) = pending.take() {
                        p.extend_from_slice(payload);
                        batches.push((o, p));
                    }
                }
                _ => {} // compression, timestamps, WAL verification: no entries
            }
            pos = start + len;
        }
        let mut found: Vec<(u32, Vec<u8>, u64, Option<Vec<u8>>)> = Vec::new();
        for (_, batch) in &batches {
            parse_batch(batch, |cf, key, seq, value| {
                let frame = value.map(|(a, b)| &batch[a..b]);
                match frame {
                    Some(frame) => {
                        if let Some(ci) = codec::find_category(&cats, key, frame) {
                            cf_category.insert(cf, ci);
                            found.push((cf, key.to_vec(), seq, Some(frame.to_vec())));
                        }
                    }
                    None => found.push((cf, key.to_vec(), seq, None)),
                }
            });
        }
        for (cf, key, seq, frame) in found {
            let Some(&ci) = cf_category.get(&cf) else { continue };
            let value = frame.map(|f| {
                self.held.push(f);
                Src::Held(self.held.len() - 1)
            });
            // A frame was checked against the category of its column family when found;
            // one that checked under another category belongs to another entry.
            if let Some(Src::Held(h)) = value {
                if codec::find_category(&cats[ci..=ci], &key, &self.held[h]) != Some(0) {
                    continue;
                }
            }
            self.offer(ci, &key, Record { rank: ranked(seq), value });
        }
    }

    /// The kept entries: (category, key, frame); a frame that no longer checks (a
    /// file changed since it was read) is left out.
    /// In category and key order: written so, a new store's memtables take them in order
    /// (in hash order the memtable's inserts were the largest cost of a salvage).
    pub(super) fn entries(&self) -> impl Iterator<Item = (&str, &[u8], Vec<u8>)> + '_ {
        let mut sorted: Vec<(&(usize, Vec<u8>), &Record)> = self.newest.iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        sorted.into_iter().filter_map(move |((ci, key), rec)| {
            let frame = match rec.value? {
                Src::At(loc) => self.read_at(loc).ok()?,
                Src::Held(h) => self.held[h].clone(),
            };
            let name = self.categories[*ci].as_str();
            (codec::find_category(&[name.as_bytes()], key, &frame) == Some(0)).then_some((name, key.as_slice(), frame))
        })
    }
}

struct TableRecord<'a> {
    key: &'a [u8],
    seq: u64,
    kind: u8,
    /// The value's byte range in the file.
    value: (usize, usize),
    end: usize,
}

/// A PlainTable record at `pos`: varint32 key length, the user key, either 0xFF (a
/// value with sequence number 0) or 8 bytes of sequence number and type, varint32 value
/// length, the value. None when the bytes there cannot be one.
fn parse_table_record(bytes: &[u8], pos: usize) -> Option<TableRecord<'_>> {
    let (key_len, p) = varint(bytes, pos)?;
    if key_len == 0 || key_len > MAX_KEY_LEN as u64 {
        return None;
    }
    let key_end = p.checked_add(key_len as usize).filter(|&e| e < bytes.len())?;
    let key = &bytes[p..key_end];
    let (seq, kind, p) = if bytes[key_end] == SEQ0_VALUE {
        (0, TYPE_VALUE, key_end + 1)
    } else {
        let t = bytes.get(key_end..key_end + 8)?;
        let packed = u64::from_le_bytes(t.try_into().unwrap());
        (packed >> 8, (packed & 0xFF) as u8, key_end + 8)
    };
    let (value_len, v0) = varint(bytes, p)?;
    let end = v0.checked_add(usize::try_from(value_len).ok()?).filter(|&e| e <= bytes.len())?;
    Some(TableRecord { key, seq, kind, value: (v0, end), end })
}

/// A blob reference (type 1: varint64 file number, offset, size, then the compression)
/// into a blob file read already.
fn parse_blob_index(v: &[u8], blobs: &HashMap<u64, usize>) -> Option<Loc> {
    if v.first() != Some(&1) {
        return None;
    }
    let (number, p) = varint(v, 1)?;
    let (offset, p) = varint(v, p)?;
    let (len, p) = varint(v, p)?;
    if v.get(p) != Some(&0) || p + 1 != v.len() {
        return None; // compressed by RocksDB (never configured here), or not an index
    }
    Some(Loc { file: *blobs.get(&number)?, offset, len })
}

/// A LEB128 varint (at most 10 bytes) at `pos`: its value and the position after it.
fn varint(bytes: &[u8], pos: usize) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for i in 0..10 {
        let b = *bytes.get(pos + i)?;
        v |= u64::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, pos + i + 1));
        }
    }
    None
}

/// Calls `f(cf, key, seq, value range)` for each put (`Some`) and deletion (`None`) of a
/// write batch (8-byte sequence number, 4-byte count, tagged records). Stops at the first
/// tag it does not know.
fn parse_batch(b: &[u8], mut f: impl FnMut(u32, &[u8], u64, Option<(usize, usize)>)) {
    if b.len() < 12 {
        return;
    }
    let mut seq = u64::from_le_bytes(b[..8].try_into().unwrap());
    let mut p = 12;
    let slice = |p: usize| -> Option<(usize, usize, usize)> {
        let (len, q) = varint(b, p)?;
        let end = q.checked_add(usize::try_from(len).ok()?).filter(|&e| e <= b.len())?;
        Some((q, end, end))
    };
    while p < b.len() {
        let tag = b[p];
        p += 1;
        let cf = if matches!(tag, 0x4 | 0x5 | 0x8 | 0xE | 0x10) {
            match varint(b, p) {
                Some((cf, q)) => {
                    p = q;
                    cf as u32
                }
                None => return,
            }
        } else {
            0
        };
        match tag {
            0x1 | 0x5 => {
                let Some((k0, k1, q)) = slice(p) else { return };
                let Some((v0, v1, q)) = slice(q) else { return };
                f(cf, &b[k0..k1], seq, Some((v0, v1)));
                p = q;
                seq += 1;
            }
            0x0 | 0x4 | 0x7 | 0x8 => {
                let Some((k0, k1, q)) = slice(p) else { return };
                f(cf, &b[k0..k1], seq, None);
                p = q;
                seq += 1;
            }
            0xF | 0xE => {
                // A range deletion (the recency index's): no entry of a category.
                let Some((_, _, q)) = slice(p) else { return };
                let Some((_, _, q)) = slice(q) else { return };
                p = q;
                seq += 1;
            }
            0x3 => {
                let Some((_, _, q)) = slice(p) else { return };
                p = q; // log data: no sequence number
            }
            0xD => {} // no-op
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(file: usize) -> Option<Src> {
        Some(Src::At(Loc { file, offset: 0, len: 1 }))
    }

    fn winner(offers: &[Record]) -> Option<Src> {
        let mut s = Salvage { categories: vec!["transform".into()], files: Vec::new(), newest: HashMap::new(), held: Vec::new(), report: SalvageReport::default() };
        for r in offers {
            s.offer(0, b"k", *r);
        }
        s.newest[&(0, b"k".to_vec())].value
    }

    fn file_of(v: Option<Src>) -> Option<usize> {
        match v {
            Some(Src::At(l)) => Some(l.file),
            _ => None,
        }
    }

    /// A table's record of sequence number 0 (a compaction's output) beats every value
    /// found only by scanning blob files, whichever came first; among blob files the
    /// later (newer) one wins; a higher sequence number wins, a deletion included.
    #[test]
    fn the_newest_record_wins() {
        let blob_old = Record { rank: 0, value: at(1) };
        let blob_new = Record { rank: 0, value: at(2) };
        let table_seq0 = Record { rank: ranked(0), value: at(3) };
        let log = Record { rank: ranked(500), value: at(4) };
        let deleted = Record { rank: ranked(600), value: None };
        assert_eq!(file_of(winner(&[blob_old, blob_new, table_seq0])), Some(3));
        assert_eq!(file_of(winner(&[table_seq0, blob_old, blob_new])), Some(3));
        assert_eq!(file_of(winner(&[blob_old, blob_new])), Some(2));
        assert_eq!(file_of(winner(&[log, table_seq0, blob_new])), Some(4));
        assert!(winner(&[blob_old, log, deleted, table_seq0]).is_none());
    }
}
