//! The store: a RocksDB database with one column family per category, exact counters
//! and a recency index, all updated together in atomic write batches.
//!
//! Column families:
//! - `c.<category>`: key → frame (see `codec.rs`);
//! - `nexxo.meta`: `counters/<category>` → [`Counters`], `generation` → the recency clock;
//! - `nexxo.lru`: `<len><category><generation BE><key>` → sizes of that entry, the index
//!   eviction walks oldest first (see `policy.rs`).
//!
//! Invariant, kept by every write under `state`'s lock: each entry of a category has
//! exactly one index entry, under the generation its frame carries, holding the entry's
//! sizes; each category's counters equal the sum of its entries' sizes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use rocksdb::{
    BlockBasedOptions, Cache as BlockCache, ColumnFamily, ColumnFamilyDescriptor, DBWithThreadMode, Options, ReadOptions,
    SingleThreaded, WriteBatch, WriteOptions,
};

use crate::codec::{self, Header};
use crate::config::{validate_category_name, Config};
use crate::error::{Error, Result};
use crate::policy::{Clock, Generations, Signal, TouchQueue};
use crate::stats::{disk_usage, Counters, EntrySize, Stats};

pub(crate) type Db = DBWithThreadMode<SingleThreaded>;

/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 4096;
/// Longest value, in bytes: 256 MiB.
pub const MAX_VALUE_LEN: usize = 256 << 20;
/// The file that marks a directory as a nexxo cache and names its on-disk format.
pub const FORMAT_FILE: &str = "NEXXO_FORMAT";
/// Written when a read finds a damaged table; the next open repairs the store.
pub const REPAIR_MARKER: &str = "NEXXO_NEEDS_REPAIR";
/// The on-disk format (major) this build writes. Format 2 (1.1): category tables are
/// PlainTable, memory-mapped. Format 1 (1.0, block-based tables) is emptied at the first
/// writable open (see [`Store::open`]).
pub const STORE_FORMAT: u32 = 2;

pub(crate) const META_CF: &str = "nexxo.meta";
pub(crate) const LRU_CF: &str = "nexxo.lru";
const CATEGORY_CF_PREFIX: &str = "c.";
const COUNTERS_PREFIX: &[u8] = b"counters/";
/// Values from this size on go to blob files, out of the way of small values' SSTs.
const MIN_BLOB_SIZE: u64 = 64 << 10;

/// One category of an open store.
pub(crate) struct Category {
    pub name: String,
    pub cf_name: String,
    pub limit: u64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub writes: AtomicU64,
    pub deletes: AtomicU64,
}

/// What only writers touch, behind one lock.
pub(crate) struct WriteState {
    pub counters: Vec<Counters>,
    pub gens: Generations,
    pub space: SpaceGuard,
    /// Per category, a generation below which the recency index holds no records: the
    /// eviction cursor. Seeking from it skips the tombstones that eviction leaves at the
    /// front of the index, which would otherwise be walked again by every step.
    pub evict_floor: Vec<u32>,
}

/// Keeps RocksDB from running into a full disk, after which it stops writing until it
/// is reopened: new data is refused with `NoSpace` while the file system's free space
/// is under a reserve: 2% of the file system (at most 256 MiB), plus twice the write
/// buffers (flushes), plus the size of the store's tables (what a compaction may
/// rewrite). Free space is measured again
/// after a quarter of the margin has been written, and on every write while short, so
/// writing resumes by itself once space is freed.
#[derive(Default)]
pub(crate) struct SpaceGuard {
    written_since_check: u64,
    check_after: u64,
    short: bool,
}

impl SpaceGuard {
    /// `table_bytes` measures the store's tables: a compaction may need that much room.
    fn admit(&mut self, path: &Path, incoming: u64, write_buffers: u64, table_bytes: impl FnOnce() -> u64) -> Result<()> {
        self.written_since_check += incoming;
        if !self.short && self.written_since_check < self.check_after {
            return Ok(());
        }
        let Some((free, total)) = fs_space(path) else { return Ok(()) };
        let reserve = (total / 50).min(256 << 20) + 2 * write_buffers + table_bytes();
        self.written_since_check = 0;
        if free < reserve.saturating_add(incoming) {
            self.short = true;
            return Err(Error::NoSpace(format!(
                "{}: {free} bytes free, under the reserve of {reserve} kept for the store's own flushes and compactions",
                path.display()
            )));
        }
        self.short = false;
        self.check_after = (free - reserve) / 4;
        Ok(())
    }
}

/// Free and total bytes of the file system holding `path`.
fn fs_space(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let unit = st.f_frsize as u64;
    Some((st.f_bavail as u64 * unit, st.f_blocks as u64 * unit))
}

/// An open cache store. All methods take `&self` and may run on many threads at once.
pub struct Store {
    pub(crate) db: Db,
    pub(crate) path: PathBuf,
    pub(crate) cats: Vec<Category>,
    pub(crate) state: Mutex<WriteState>,
    pub(crate) config: Config,
    pub(crate) read_only: bool,
    pub(crate) recovered: bool,
    pub(crate) clock: Clock,
    pub(crate) touches: TouchQueue,
    pub(crate) signal: Signal,
    /// Damaged frames seen by a read-only handle, which cannot drop them.
    corrupt_seen: AtomicU64,
    /// A read found a damaged table; the marker file is written once.
    damaged: AtomicBool,
    write_opts: WriteOptions,
    read_opts: ReadOptions,
    closed_cleanly: AtomicBool,
    /// Called after every write, with whether it overwrote or removed entries (see
    /// [`Store::write_removing`]); set by the process that serves the store to others.
    pub(crate) on_write: std::sync::OnceLock<Box<dyn Fn(bool) + Send + Sync>>,
}

/// What [`Store::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries read.
    pub checked: u64,
    /// Entries whose frame failed to decode or failed its checksum.
    pub bad: u64,
    /// Bad entries removed (with `drop_bad`).
    pub dropped: u64,
    /// Recency-index records without an entry removed (with `drop_bad`): left by a
    /// damaged key.
    pub dropped_index_records: u64,
    /// Bytes of the values that decoded.
    pub value_bytes: u64,
    /// The first 1000 bad entries: (category, key).
    pub bad_keys: Vec<(String, Vec<u8>)>,
}

/// An entry as found in the store before a write replaces or removes it.
#[derive(Clone, Copy)]
pub(crate) struct Existing {
    pub generation: Option<u32>,
    pub size: EntrySize,
}

pub(crate) fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidArgument("a key must not be empty".into()));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(Error::TooLarge(format!("key of {} bytes exceeds the limit of {MAX_KEY_LEN}", key.len())));
    }
    Ok(())
}

pub(crate) fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::TooLarge(format!("value of {} bytes exceeds the limit of {MAX_VALUE_LEN}", value.len())));
    }
    Ok(())
}

/// Decodes a frame into a new vector: (its generation, the value).
fn decode_owned(category: &str, key: &[u8], frame: &[u8]) -> Result<(u32, Vec<u8>), codec::CodecError> {
    decode_owned_with(category, key, frame, &Header::parse(frame)?)
}

/// [`decode_owned`] with the frame's header already parsed.
fn decode_owned_with(category: &str, key: &[u8], frame: &[u8], h: &Header) -> Result<(u32, Vec<u8>), codec::CodecError> {
    let mut out = vec![0u8; h.value_len as usize];
    codec::decode_with_header(category.as_bytes(), key, frame, h, &mut out)?;
    Ok((h.generation, out))
}

/// Indices grouped by category index, in order of first appearance. Batches name few
/// categories: a list beats a hash map.
fn by_category(cats: impl Iterator<Item = (usize, usize)>) -> Vec<(usize, Vec<usize>)> {
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for (i, ci) in cats {
        match groups.iter_mut().find(|(c, _)| *c == ci) {
            Some((_, idxs)) => idxs.push(i),
            None => groups.push((ci, vec![i])),
        }
    }
    groups
}

/// What a batch read's lookup found for one key.
enum Looked<'a> {
    /// A frame to decode (category index, frame, its parsed header).
    Frame(usize, rocksdb::DBPinnableSlice<'a>, Header),
    /// Not there (or dropped as damaged): a miss of this category, not yet counted.
    Miss(usize),
    Failed(Error),
}

/// The bytes a packed answer needs: `gap` per key plus every found value.
fn packed_len(looked: &[Looked<'_>], gap: usize) -> usize {
    looked.iter().map(|l| gap + if let Looked::Frame(_, _, h) = l { h.value_len as usize } else { 0 }).sum()
}

/// A batch read is split across threads for every this many keys (see [`work_threads`]).
const READ_KEYS_PER_THREAD: usize = 256;

/// The threads for `units` units of batch work (lookups and decoding: CPU work, and a
/// batch is the caller saying "all of these, now"): one per unit, at most
/// one per core and at most four. The core count is read once (it reads cgroup files).
fn work_threads(units: usize) -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    cores.min(4).min(units)
}

/// The threads batch reads run their other parts on (the caller runs the first): made
/// at the first batch that splits, one fewer than the most a batch uses. None when they
/// could not be started (a thread limit): batches then run on the caller's thread alone.
fn read_pool() -> Option<&'static rayon_core::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon_core::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon_core::ThreadPoolBuilder::new()
            .num_threads(work_threads(usize::MAX).saturating_sub(1).max(1))
            .thread_name(|i| format!("nexxo-read-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}

/// `f` over `items` split into `threads` parts (the first on this thread, the others on
/// [`read_pool`]), the results in order. A panic in any part is resumed here.
fn in_parallel<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&[T]) -> Vec<R> + Sync) -> Vec<R> {
    let Some(pool) = (threads > 1).then(read_pool).flatten() else {
        return f(items);
    };
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    pool.in_place_scope(|s| {
        let parts: Vec<_> = items
            .chunks(chunk)
            .skip(1)
            .map(|part| {
                let (tx, rx) = std::sync::mpsc::channel();
                s.spawn(move |_| drop(tx.send(f(part))));
                rx
            })
            .collect();
        let mut out = f(&items[..chunk]);
        for p in parts {
            // A part that panicked sends nothing: the scope resumes its panic as it ends.
            if let Ok(r) = p.recv() {
                out.extend(r);
            }
        }
        out
    })
}

/// The hasher of a write batch's map of its own keys (which finds a key written twice in
/// one batch): multiply-rotate over 8 bytes at a time, several times faster than the
/// default SipHash on short keys. The map lives for one call, over the caller's keys.
#[derive(Clone, Copy, Default)]
struct BatchHash;

impl std::hash::BuildHasher for BatchHash {
    type Hasher = BatchHasher;
    fn build_hasher(&self) -> BatchHasher {
        BatchHasher(0)
    }
}

struct BatchHasher(u64);

impl std::hash::Hasher for BatchHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl BatchHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// The answer of [`Store::batch_get_into`].
pub enum PackedRead {
    /// Each key's outcome (its value's length, `None` for a miss, or its error) and the
    /// bytes of `out` written.
    Written(Vec<Result<Option<usize>>>, usize),
    /// `out` is too short: the bytes needed. Nothing was counted.
    TooSmall(usize),
}

fn entry_size(key: &[u8], frame: &[u8]) -> EntrySize {
    EntrySize {
        logical: key.len() as u64 + codec::accounted_value_len(frame),
        stored: (key.len() + frame.len()) as u64,
    }
}

fn counters_key(category: &str) -> Vec<u8> {
    [COUNTERS_PREFIX, category.as_bytes()].concat()
}

/// The prefix of a category's keys in the recency index.
pub(crate) fn lru_prefix(category: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + category.len());
    push_lru_prefix(&mut k, category);
    k
}

fn push_lru_prefix(out: &mut Vec<u8>, category: &str) {
    out.push(category.len() as u8);
    out.extend_from_slice(category.as_bytes());
}

pub(crate) fn lru_key(category: &str, generation: u32, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + category.len() + 4 + key.len());
    lru_key_into(&mut k, category, generation, key);
    k
}

/// Writes `lru_key(category, generation, key)` over `out`'s contents.
fn lru_key_into(out: &mut Vec<u8>, category: &str, generation: u32, key: &[u8]) {
    out.clear();
    push_lru_prefix(out, category);
    out.extend_from_slice(&generation.to_be_bytes());
    out.extend_from_slice(key);
}

pub(crate) fn encode_size(s: EntrySize) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&s.stored.to_le_bytes());
    b[8..].copy_from_slice(&s.logical.to_le_bytes());
    b
}

pub(crate) fn decode_size(b: &[u8]) -> Option<EntrySize> {
    (b.len() == 16).then(|| EntrySize {
        stored: u64::from_le_bytes(b[..8].try_into().unwrap()),
        logical: u64::from_le_bytes(b[8..].try_into().unwrap()),
    })
}

/// The exclusive upper end of a category prefix in the index: names end in a byte < 0xFF.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut e = prefix.to_vec();
    *e.last_mut().expect("non-empty prefix") += 1;
    e
}

/// What a directory holds, judged before RocksDB touches it.
enum DirState {
    /// Missing or empty: a new cache may be made here.
    New,
    /// A cache of an older format, which this build does not read.
    Older(u32),
    /// A cache of this format.
    Cache,
}

/// Refuses, before anything is written into it, a directory that is not a cache this
/// build may open (see [`Store::open`]'s errors).
pub(crate) fn judge_dir(path: &Path) -> Result<()> {
    read_dir_state(path).map(|_| ())
}

fn read_dir_state(path: &Path) -> Result<DirState> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DirState::New),
        Err(e) => return Err(Error::Io(format!("{}: {e}", path.display()))),
    };
    if md.file_type().is_symlink() {
        // Resolve once: a symlinked cache directory is allowed, its target is judged.
        let md = std::fs::metadata(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        if !md.is_dir() {
            return Err(Error::Io(format!("{} is not a directory", path.display())));
        }
    } else if !md.is_dir() {
        return Err(Error::Io(format!("{} is not a directory", path.display())));
    }
    let marker = path.join(FORMAT_FILE);
    match std::fs::read_to_string(&marker) {
        Ok(text) => {
            let version = text.trim().strip_prefix("nexxo-cache format ").and_then(|v| v.parse::<u32>().ok());
            match version {
                Some(STORE_FORMAT) => Ok(DirState::Cache),
                Some(v) if (1..STORE_FORMAT).contains(&v) => Ok(DirState::Older(v)),
                Some(v) if v > STORE_FORMAT => Err(Error::Incompatible(format!(
                    "{} holds on-disk format {v}; this library ({}) reads format {STORE_FORMAT}",
                    path.display(),
                    env!("CARGO_PKG_VERSION")
                ))),
                _ => Err(Error::Incompatible(format!("{} has an unreadable {FORMAT_FILE} file", marker.display()))),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let entries = std::fs::read_dir(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
            // The files of sharing (the election lock, a socket) and a format marker being
            // written are there before the marker: the directory is new all the same.
            let ours = |name: &std::ffi::OsStr| {
                name == crate::share::ELECTION_FILE || name == crate::share::SOCKET_FILE || name.to_string_lossy().starts_with(FORMAT_TMP_PREFIX)
            };
            if entries.filter_map(|e| e.ok()).all(|e| ours(&e.file_name())) {
                Ok(DirState::New)
            } else {
                Err(Error::Incompatible(format!(
                    "{} is not empty and is not a nexxo cache (no {FORMAT_FILE}); refusing to write into it",
                    path.display()
                )))
            }
        }
        Err(e) => Err(Error::Io(format!("{}: {e}", marker.display()))),
    }
}

pub(crate) fn create_dir(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| Error::from(e).with_context(&path.display().to_string()))
}

impl Error {
    pub(crate) fn with_context(self, ctx: &str) -> Error {
        match self {
            Error::Io(m) => Error::Io(format!("{ctx}: {m}")),
            Error::NoSpace(m) => Error::NoSpace(format!("{ctx}: {m}")),
            other => other,
        }
    }
}

const FORMAT_TMP_PREFIX: &str = "NEXXO_FORMAT.tmp";

fn write_format_file(path: &Path) -> Result<()> {
    let tmp = path.join(format!("{FORMAT_TMP_PREFIX}.{}", std::process::id()));
    std::fs::write(&tmp, format!("nexxo-cache format {STORE_FORMAT}\n"))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path.join(FORMAT_FILE))?;
    Ok(())
}

/// Whether `path` (an existing directory) may be used as a cache as it is.
pub(crate) fn is_trusted(path: &Path, dir_mode: u32) -> bool {
    distrust(path, dir_mode).is_none()
}

/// Why an existing cache directory is not to be trusted, if it is not: a value someone
/// else wrote into a cache becomes code in the build that reads it.
fn distrust(path: &Path, dir_mode: u32) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let me = unsafe { libc::geteuid() };
    let link = std::fs::symlink_metadata(path).ok()?;
    if link.file_type().is_symlink() && link.uid() != me && link.uid() != 0 {
        return Some(format!("{} is a symlink owned by uid {}", path.display(), link.uid()));
    }
    let md = std::fs::metadata(path).ok()?;
    if md.uid() != me {
        return Some(format!("{} is owned by uid {}, not by this user (uid {me})", path.display(), md.uid()));
    }
    let extra = md.mode() & 0o022 & !dir_mode;
    if extra != 0 {
        return Some(format!("{} is writable by {} (mode {:o})", path.display(), if extra & 0o002 != 0 { "others" } else { "its group" }, md.mode() & 0o777));
    }
    None
}

/// Column family handles for one batch of writes, each looked up (by name, in RocksDB's
/// map) at its first use rather than three or four times per entry.
struct WriteCfs<'a> {
    store: &'a Store,
    cats: Vec<std::cell::OnceCell<&'a ColumnFamily>>,
    lru: std::cell::OnceCell<&'a ColumnFamily>,
    /// Where index keys are built: RocksDB copies each into the batch.
    lru_key: std::cell::RefCell<Vec<u8>>,
}

impl<'a> WriteCfs<'a> {
    fn cat(&self, ci: usize) -> &'a ColumnFamily {
        self.cats[ci].get_or_init(|| self.store.cf(&self.store.cats[ci].cf_name))
    }

    fn lru(&self) -> &'a ColumnFamily {
        self.lru.get_or_init(|| self.store.cf(LRU_CF))
    }

    /// Puts (`Some(value)`) or deletes the index record of `key` in `batch`.
    fn index(&self, batch: &mut WriteBatch, ci: usize, generation: u32, key: &[u8], value: Option<&[u8]>) {
        let mut k = self.lru_key.borrow_mut();
        lru_key_into(&mut k, &self.store.cats[ci].name, generation, key);
        match value {
            Some(v) => batch.put_cf(self.lru(), &*k, v),
            None => batch.delete_cf(self.lru(), &*k),
        }
    }
}

/// The sibling a damaged store is moved to: `<path>.corrupt-<unix seconds>[-n]`.
fn aside_path(path: &Path, now: u64) -> PathBuf {
    let base = path.as_os_str().to_owned();
    for n in 0.. {
        let mut p = base.clone();
        if n == 0 {
            p.push(format!(".corrupt-{now}"));
        } else {
            p.push(format!(".corrupt-{now}-{n}"));
        }
        let p = PathBuf::from(p);
        if !p.exists() {
            return p;
        }
    }
    unreachable!()
}

/// RocksDB's log, kept to what someone debugging a store needs: warnings and errors,
/// appended to `<store>/LOG` (created at the first one, moved to `LOG.old` past 1 MiB
/// when a process first writes to it). RocksDB's own file logger writes ~1000 lines
/// (its options, file summary) at every open: measured, that was about a fifth of an
/// open's time.
fn warn_logger(path: &Path) -> rocksdb::InfoLogger {
    let log_path = path.join("LOG");
    let file: Mutex<Option<std::fs::File>> = Mutex::new(None);
    rocksdb::InfoLogger::new_callback_logger(rocksdb::LogLevel::Warn, move |level, msg| {
        if !matches!(level, rocksdb::LogLevel::Warn | rocksdb::LogLevel::Error | rocksdb::LogLevel::Fatal) {
            return;
        }
        let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            if std::fs::metadata(&log_path).is_ok_and(|m| m.len() > 1 << 20) {
                let _ = std::fs::rename(&log_path, log_path.with_file_name("LOG.old"));
            }
            *f = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).ok();
        }
        if let Some(f) = f.as_mut() {
            use std::io::Write;
            let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let _ = writeln!(f, "{secs} {level:?} {}", msg.trim_end());
        }
    })
}

fn db_options(config: &Config) -> Options {
    let budget = config.memory_budget as usize;
    let mut o = Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    o.set_max_background_jobs(2);
    // Write buffers take a quarter of the budget, the block cache the rest.
    o.set_db_write_buffer_size(budget / 4);
    o.set_max_total_wal_size((budget / 2) as u64);
    o.set_keep_log_file_num(2);
    o.set_max_log_file_size(1 << 20);
    o.set_log_level(rocksdb::LogLevel::Warn);
    o.set_skip_stats_update_on_db_open(true);
    o.set_wal_recovery_mode(rocksdb::DBRecoveryMode::PointInTime);
    // Disk that a live cache holds but does not use: RocksDB preallocates the log in
    // blocks of 1.1x the largest write buffer, and the unused `default` column family
    // would otherwise have the 64 MiB default; the MANIFEST grows slowly.
    o.set_write_buffer_size(1 << 20);
    o.set_manifest_preallocation_size(64 << 10);
    // PlainTable (the categories' tables) reads only through a memory map.
    o.set_allow_mmap_reads(true);
    // Open loads every table: by default with up to 16 threads per column family, which
    // here meant ~120 thread creations per open for a handful of files.
    o.set_max_file_opening_threads(1);
    o
}

/// Category tables: PlainTable, read through the memory map, with a hash index and a
/// bloom filter over whole keys (the no-op prefix extractor makes the whole key the
/// prefix). Point lookups are what a build cache does; measured on 100,000 x 1 KiB
/// artifacts (scripts/bench.sh, README "Measured"), they run 1.3-2x faster than on the
/// tuned block-based tables of format 1, and a new process reads 2x faster. Values carry
/// their own checksums (the frame), so the tables' lack of block checksums loses nothing
/// a reader relies on: a damaged value is a miss. PlainTable has no DeleteRange:
/// `clear` deletes key by key.
fn category_cf_options(config: &Config) -> Options {
    let budget = config.memory_budget as usize;
    let mut o = Options::default();
    o.set_plain_table_factory(&rocksdb::PlainTableFactoryOptions {
        user_key_length: 0,
        bloom_bits_per_key: 10,
        hash_table_ratio: 0.75,
        index_sparseness: 16,
        huge_page_tlb_size: 0,
        encoding_type: rocksdb::KeyEncodingType::Plain,
        full_scan_mode: false,
        store_index_in_file: true,
    });
    o.set_prefix_extractor(rocksdb::SliceTransform::create_noop());
    o.set_write_buffer_size((budget / 8).max(1 << 20));
    o.set_memtable_whole_key_filtering(true);
    // The memtable's bloom filter is allocated and zeroed whole when a memtable is made,
    // at every open for every category: 0.05 of an 8 MiB write buffer zeroed 2 MiB of new
    // memory per open (~1 ms of a new process's open). 0.01 still gives ~20 bits per
    // 1 KiB entry (more than 10 per 100 B one); reads and batch writes (whose existence
    // check probes the memtable) measured no slower.
    o.set_memtable_prefix_bloom_ratio(0.01);
    o.set_arena_block_size(ARENA_BLOCK);
    o.set_enable_blob_files(true);
    o.set_min_blob_size(MIN_BLOB_SIZE);
    o.set_enable_blob_gc(true);
    o
}

fn small_cf_options(config: &Config, cache: &BlockCache) -> Options {
    let mut t = BlockBasedOptions::default();
    t.set_block_cache(cache);
    t.set_bloom_filter(10.0, false);
    let mut o = Options::default();
    o.set_block_based_table_factory(&t);
    o.set_write_buffer_size(((config.memory_budget / 16) as usize).max(1 << 20));
    o
}

/// The blocks a category's memtables are carved from. RocksDB's default, an eighth of
/// the write buffer (1 MiB here), is above glibc's initial mmap threshold (128 KiB): a
/// block could come from a new mapping, faulted in page by page as the memtable filled
/// and unmapped at its flush. Blocks of 64 KiB come from the heap, whose freed blocks the
/// next memtable reuses. C batch writes of 1000 x 1 KiB, 5 interleaved runs of 3 stores:
/// 1.04-1.19 -> 0.98-1.11 µs per entry (the same for the index and meta column families
/// measured no better, so they keep the default).
const ARENA_BLOCK: usize = 64 << 10;

impl Store {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path, config: &Config, clock: Clock) -> Result<Store> {
        if path.as_os_str().is_empty() {
            return Err(Error::InvalidArgument("the cache path is empty".into()));
        }
        let state = read_dir_state(path)?;
        let mut config = std::borrow::Cow::Borrowed(config);
        if let Some(why) = distrust(path, config.dir_mode) {
            if !config.allow_untrusted_dir {
                return Err(Error::Insecure(format!("{why}; refusing to use it as a cache (allow untrusted directories to open it read-only)")));
            }
            config.to_mut().read_only = true;
        }
        let config = &*config;
        if let DirState::Older(v) = state {
            if config.read_only {
                return Err(Error::Incompatible(format!(
                    "{} holds on-disk format {v} of an earlier nexxo-cache; a writable open replaces it with an empty cache of format {STORE_FORMAT}",
                    path.display()
                )));
            }
            // A cache, not a store of record: the old tables are dropped (RocksDB's destroy
            // takes the directory's lock first, so a live 1.0 writer is never pulled from
            // under), and an empty cache of this format starts in the same place.
            Db::destroy(&db_options(config), path).map_err(|e| match Error::from(e) {
                Error::Io(m) if m.contains("lock") || m.contains("LOCK") => Error::Locked(m),
                other => other,
            })?;
            let _ = std::fs::remove_dir_all(path.join("lost"));
            write_format_file(path)?;
        }
        if matches!(state, DirState::New) {
            if config.read_only {
                return Err(Error::Io(format!("{}: no cache to open read-only", path.display())));
            }
            create_dir(path, config.dir_mode)?;
            write_format_file(path)?;
        }
        if !config.read_only && path.join(REPAIR_MARKER).exists() {
            return Self::recover(path, config, clock, "a read found a damaged table".into());
        }
        match Self::open_db(path, config, clock.clone()) {
            Err(Error::Corruption(msg)) if !config.read_only => Self::recover(path, config, clock, msg),
            other => other,
        }
    }

    /// Opens a reader that follows the store another process writes (a RocksDB secondary
    /// instance): reads go straight to the tables and what it has replayed of the
    /// write-ahead log; [`Store::catch_up`] replays what was written since. It never
    /// writes (a read-only handle); `scratch` is a directory of its own for RocksDB.
    pub fn open_follower(path: &Path, scratch: &Path, config: &Config, clock: Clock) -> Result<Store> {
        let config = Config { read_only: true, ..config.clone() };
        Self::open_db_as(path, &config, clock, Some(scratch))
    }

    /// Replays what the writing process wrote since the last catch-up (a follower only).
    pub fn catch_up(&self) -> Result<()> {
        Ok(self.db.try_catch_up_with_primary()?)
    }

    /// Repairs a damaged store, or moves it aside and starts empty.
    fn recover(path: &Path, config: &Config, clock: Clock, first_error: String) -> Result<Store> {
        let repaired = Db::repair(&db_options(config), path).is_ok();
        // Tables the repair could not read are archived under lost/: a cache has no use
        // for them.
        let _ = std::fs::remove_dir_all(path.join("lost"));
        if repaired {
            if let Ok(mut s) = Self::open_db(path, config, clock.clone()) {
                s.recovered = true;
                s.rebuild_derived_state()?;
                let _ = std::fs::remove_file(path.join(REPAIR_MARKER));
                return Ok(s);
            }
        }
        let aside = aside_path(path, clock());
        std::fs::rename(path, &aside).map_err(|e| {
            Error::Corruption(format!("{first_error}; moving {} aside to {} failed: {e}", path.display(), aside.display()))
        })?;
        create_dir(path, config.dir_mode)?;
        write_format_file(path)?;
        let mut s = Self::open_db(path, config, clock)?;
        s.recovered = true;
        Ok(s)
    }

    fn open_db(path: &Path, config: &Config, clock: Clock) -> Result<Store> {
        Self::open_db_as(path, config, clock, None)
    }

    /// Opens RocksDB: read-write, read-only (`config.read_only`), or as a follower of
    /// another process's store (`follower`: its scratch directory).
    fn open_db_as(path: &Path, config: &Config, clock: Clock, follower: Option<&Path>) -> Result<Store> {
        let budget = config.memory_budget as usize;
        let cache = BlockCache::new_lru_cache(budget - budget / 4);
        let mut opts = db_options(config);
        opts.set_info_logger(warn_logger(path));

        // Categories: the configured ones, then any the store already has.
        let mut names: Vec<String> = config.categories().map(str::to_owned).collect();
        let add_existing = |names: &mut Vec<String>, existing: &[String]| {
            for cf in existing {
                if let Some(name) = cf.strip_prefix(CATEGORY_CF_PREFIX) {
                    if validate_category_name(name.as_bytes()).is_ok() && !names.iter().any(|n| n == name) {
                        names.push(name.to_owned());
                    }
                }
            }
        };
        let descriptors = |names: &[String]| {
            let mut d = vec![
                ColumnFamilyDescriptor::new(META_CF, small_cf_options(config, &cache)),
                ColumnFamilyDescriptor::new(LRU_CF, small_cf_options(config, &cache)),
            ];
            for n in names {
                d.push(ColumnFamilyDescriptor::new(format!("{CATEGORY_CF_PREFIX}{n}"), category_cf_options(config)));
            }
            d
        };
        // Only a store that exists is asked for its column families: on a missing store
        // rust-rocksdb 0.25's list_cf leaks the array RocksDB returns with the error.
        let exists = path.join("CURRENT").exists();
        let db = if config.read_only {
            let existing = if exists { Db::list_cf(&opts, path)? } else { Vec::new() };
            add_existing(&mut names, &existing);
            // A category configured now but never created cannot be opened read-only.
            names.retain(|n| existing.iter().any(|e| *e == format!("{CATEGORY_CF_PREFIX}{n}")));
            let mut d = descriptors(&names);
            d.retain(|d| existing.iter().any(|e| e == d.name()));
            match follower {
                Some(scratch) => Db::open_cf_descriptors_as_secondary(&opts, path, scratch, d)?,
                None => Db::open_cf_descriptors_read_only(&opts, path, d, false)?,
            }
        } else {
            // A writable open names the configured categories (missing ones are created);
            // only a store holding others is asked for its list (which reads the MANIFEST
            // a second time) and opened again with them.
            match Db::open_cf_descriptors(&opts, path, descriptors(&names)) {
                Err(e) if exists && e.kind() == rocksdb::ErrorKind::InvalidArgument && e.as_ref().contains("Column families not opened") => {
                    add_existing(&mut names, &Db::list_cf(&opts, path)?);
                    Db::open_cf_descriptors(&opts, path, descriptors(&names))?
                }
                other => other?,
            }
        };

        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(config.sync_writes);
        let read_opts = ReadOptions::default();

        let cats: Vec<Category> = names
            .into_iter()
            .map(|name| Category {
                cf_name: format!("{CATEGORY_CF_PREFIX}{name}"),
                limit: config.category_limit(&name),
                name,
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                writes: AtomicU64::new(0),
                deletes: AtomicU64::new(0),
            })
            .collect();

        let Some(meta) = db.cf_handle(META_CF).filter(|_| db.cf_handle(LRU_CF).is_some()) else {
            return Err(Error::Incompatible(format!("{} lacks nexxo-cache's internal column families", path.display())));
        };
        let mut counters = Vec::with_capacity(cats.len());
        for c in &cats {
            let value = db.get_pinned_cf(meta, counters_key(&c.name))?;
            counters.push(value.and_then(|v| Counters::decode(&v)).unwrap_or_default());
        }
        let gens = Generations::load(&db, meta, config, clock())?;
        let touches = TouchQueue::default();

        let store = Store {
            db,
            path: path.to_owned(),
            cats,
            state: Mutex::new(WriteState { evict_floor: vec![0; counters.len()], counters, gens, space: SpaceGuard::default() }),
            config: config.clone(),
            read_only: config.read_only,
            recovered: false,
            clock,
            touches,
            signal: Signal::default(),
            corrupt_seen: AtomicU64::new(0),
            damaged: AtomicBool::new(false),
            write_opts,
            read_opts,
            closed_cleanly: AtomicBool::new(false),
            on_write: std::sync::OnceLock::new(),
        };
        store.publish_generation(store.lock_state().gens.current);
        Ok(store)
    }

    /// After a repair, counters and the recency index may not match the data that
    /// survived: recount every category and rebuild its index.
    fn rebuild_derived_state(&mut self) -> Result<()> {
        let lru = self.cf(LRU_CF);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(lru, Vec::<u8>::new(), vec![0xFFu8; 2]);
        self.db.write_opt(batch, &self.write_opts)?;
        let mut st = self.lock_state();
        let gen = st.gens.current;
        for (i, c) in self.cats.iter().enumerate() {
            let cf = self.cf(&c.cf_name);
            let mut counters = st.counters[i].emptied();
            let mut batch = WriteBatch::default();
            let mut it = self.db.raw_iterator_cf(cf);
            it.seek_to_first();
            while let (Some(k), Some(v)) = (it.key(), it.value()) {
                let mut frame = v.to_vec();
                codec::set_generation(&mut frame, gen);
                let size = entry_size(k, &frame);
                counters.add(size);
                batch.put_cf(cf, k, &frame);
                batch.put_cf(lru, lru_key(&c.name, gen, k), encode_size(size));
                it.next();
            }
            it.status()?;
            batch.put_cf(self.cf(META_CF), counters_key(&c.name), counters.encode());
            self.db.write_opt(batch, &self.write_opts)?;
            st.counters[i] = counters;
        }
        Ok(())
    }

    pub(crate) fn lock_state(&self) -> MutexGuard<'_, WriteState> {
        // A panic while holding the lock leaves no half-done write behind (RocksDB batches
        // are atomic and counters are only replaced after a successful write).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An iterator over the recency index restricted to one category's prefix (it never
    /// walks into the next category's records, or its tombstones), positioned at `from`.
    pub(crate) fn index_iter(&self, prefix: &[u8], from: &[u8]) -> rocksdb::DBRawIteratorWithThreadMode<'_, Db> {
        let mut o = ReadOptions::default();
        o.set_iterate_upper_bound(prefix_end(prefix));
        let mut it = self.db.raw_iterator_cf_opt(self.cf(LRU_CF), o);
        it.seek(from);
        it
    }

    pub(crate) fn cf(&self, name: &str) -> &ColumnFamily {
        self.db.cf_handle(name).expect("column family opened with the store")
    }

    /// The index of a category by name.
    pub fn category_index(&self, name: &[u8]) -> Result<usize> {
        self.cats
            .iter()
            .position(|c| c.name.as_bytes() == name)
            .ok_or_else(|| Error::UnknownCategory(String::from_utf8_lossy(name).into_owned()))
    }

    /// The names of this store's categories.
    pub fn category_names(&self) -> impl Iterator<Item = &str> {
        self.cats.iter().map(|c| c.name.as_str())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.read_only {
            Err(Error::ReadOnly)
        } else {
            Ok(())
        }
    }

    // ---- reads ----

    /// Reads a value. A damaged frame is dropped and reported as a miss.
    pub fn get(&self, category: &[u8], key: &[u8]) -> Result<Option<Vec<u8>>> {
        let ci = self.category_index(category)?;
        check_key(key)?;
        let Some(frame) = self.read_frame(ci, key)? else { return Ok(self.miss(ci)) };
        let decoded = decode_owned(&self.cats[ci].name, key, &frame);
        self.finish_read(ci, key, &frame, decoded)
    }

    /// Reads a value into `buf`. Returns the value's length, `None` on a miss, or
    /// `Error::BufferTooSmall(needed)` when `buf` is too short (nothing counted then).
    pub fn get_into(&self, category: &[u8], key: &[u8], buf: &mut [u8]) -> Result<Option<usize>> {
        let ci = self.category_index(category)?;
        check_key(key)?;
        let Some(frame) = self.read_frame(ci, key)? else { return Ok(self.miss(ci)) };
        let header = Header::parse(&frame);
        if let Ok(h) = &header {
            if h.value_len as usize > buf.len() {
                return Err(Error::BufferTooSmall(h.value_len as usize));
            }
        }
        let name = self.cats[ci].name.as_bytes();
        let decoded = header.and_then(|h| codec::decode_with_header(name, key, &frame, &h, buf).map(|n| (h.generation, n)));
        self.finish_read(ci, key, &frame, decoded)
    }

    fn miss<T>(&self, ci: usize) -> Option<T> {
        self.cats[ci].misses.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Counts a read and returns its value; a frame that failed to decode is dropped
    /// (if it is still there) and the read is a miss.
    fn finish_read<T>(&self, ci: usize, key: &[u8], frame: &[u8], decoded: Result<(u32, T), codec::CodecError>) -> Result<Option<T>> {
        match decoded {
            Ok((generation, value)) => {
                self.cats[ci].hits.fetch_add(1, Ordering::Relaxed);
                self.note_use(ci, key, generation);
                Ok(Some(value))
            }
            Err(_) => {
                self.drop_corrupt(ci, key, frame)?;
                Ok(self.miss(ci))
            }
        }
    }

    /// Reads many values with RocksDB's batched multi-get (one call per category).
    /// Fails as a whole only for an invalid key or category; each element is that
    /// key's own outcome.
    ///
    /// Large batches are split across up to four threads (the machine's cores): lookups
    /// and decoding are CPU work, and a batch is the caller saying "all of these, now".
    pub fn batch_get(&self, keys: &[(&[u8], &[u8])]) -> Vec<Result<Option<Vec<u8>>>> {
        in_parallel(keys, work_threads(keys.len() / READ_KEYS_PER_THREAD), |part| self.batch_get_here(part))
    }

    fn batch_get_here(&self, keys: &[(&[u8], &[u8])]) -> Vec<Result<Option<Vec<u8>>>> {
        let looked = self.look_up(keys);
        keys.iter()
            .zip(looked)
            .map(|((_, key), l)| match l {
                Looked::Frame(ci, frame, h) => {
                    let decoded = decode_owned_with(&self.cats[ci].name, key, &frame, &h);
                    self.finish_read(ci, key, &frame, decoded)
                }
                Looked::Miss(ci) => Ok(self.miss(ci)),
                Looked::Failed(e) => Err(e),
            })
            .collect()
    }

    /// Like [`Store::batch_get`], with the values decoded straight into `out`: for each
    /// key in order, `gap` bytes left for the caller, then the value's bytes if it was
    /// found. No value is copied on the way and no vector is allocated per value.
    /// Reads are counted (hits, misses, recency) only when `out` was large enough.
    pub fn batch_get_into(&self, keys: &[(&[u8], &[u8])], out: &mut [u8], gap: usize) -> PackedRead {
        let threads = work_threads(keys.len() / READ_KEYS_PER_THREAD);
        let Some(pool) = (threads > 1).then(read_pool).flatten() else {
            let looked = self.look_up(keys);
            let need = packed_len(&looked, gap);
            if need > out.len() {
                return PackedRead::TooSmall(need);
            }
            let (outcomes, len) = self.decode_looked(keys, looked, out, gap);
            return PackedRead::Written(outcomes, len);
        };
        // Each thread looks its part up and reports the bytes its answer needs; once all
        // have, each decodes into its own slice of `out`. A value that fails to decode
        // leaves its slice's tail unused: the parts are moved together afterwards.
        let chunk = keys.len().div_ceil(threads);
        let parts = pool.in_place_scope(|s| {
            let others: Vec<_> = keys
                .chunks(chunk)
                .skip(1)
                .map(|part| {
                    let (size_tx, size_rx) = std::sync::mpsc::channel::<usize>();
                    let (out_tx, out_rx) = std::sync::mpsc::channel::<Option<&mut [u8]>>();
                    let (done_tx, done_rx) = std::sync::mpsc::channel();
                    s.spawn(move |_| {
                        let looked = self.look_up(part);
                        if size_tx.send(packed_len(&looked, gap)).is_err() {
                            return;
                        }
                        let r = out_rx.recv().ok().flatten().map(|out| self.decode_looked(part, looked, out, gap));
                        let _ = done_tx.send(r);
                    });
                    (done_rx, size_rx, out_tx)
                })
                .collect();
            let looked = self.look_up(&keys[..chunk]);
            // A part that panicked reports nothing (size 0, no answer): the scope resumes its
            // panic as it ends.
            let sizes: Vec<usize> = std::iter::once(packed_len(&looked, gap)).chain(others.iter().map(|(_, rx, _)| rx.recv().unwrap_or(0))).collect();
            let total: usize = sizes.iter().sum();
            let cap = out.len();
            let fits = total <= cap;
            let mut rest = &mut out[..total.min(cap)];
            let mut mine = None;
            for (i, &size) in sizes.iter().enumerate() {
                let part = if fits {
                    let (part, tail) = std::mem::take(&mut rest).split_at_mut(size);
                    rest = tail;
                    Some(part)
                } else {
                    None
                };
                match i {
                    0 => mine = part,
                    _ => drop(others[i - 1].2.send(part)),
                }
            }
            let first = mine.map(|m| self.decode_looked(&keys[..chunk], looked, m, gap));
            let rest: Vec<_> = others.into_iter().map(|(done, _, _)| done.recv().ok().flatten()).collect();
            (sizes, first.into_iter().chain(rest.into_iter().flatten()).collect::<Vec<_>>())
        });
        let (sizes, decoded) = parts;
        let total: usize = sizes.iter().sum();
        if total > out.len() {
            return PackedRead::TooSmall(total);
        }
        let mut outcomes = Vec::with_capacity(keys.len());
        let (mut len, mut start) = (0, 0);
        for ((part, written), size) in decoded.into_iter().zip(sizes) {
            if start != len {
                out.copy_within(start..start + written, len);
            }
            outcomes.extend(part);
            len += written;
            start += size;
        }
        PackedRead::Written(outcomes, len)
    }

    /// Looks keys up (one multi-get per category), parsing each frame's header.
    fn look_up<'s>(&'s self, keys: &[(&[u8], &[u8])]) -> Vec<Looked<'s>> {
        let mut out: Vec<Looked<'s>> = keys
            .iter()
            .map(|(cat, key)| match self.category_index(cat).and_then(|ci| check_key(key).map(|_| ci)) {
                Ok(ci) => Looked::Miss(ci),
                Err(e) => Looked::Failed(e),
            })
            .collect();
        let valid = out.iter().enumerate().filter_map(|(i, l)| if let Looked::Miss(ci) = l { Some((i, *ci)) } else { None });
        for (ci, idxs) in by_category(valid) {
            let cf = self.cf(&self.cats[ci].cf_name);
            let results = self.db.batched_multi_get_cf_opt(cf, idxs.iter().map(|&i| keys[i].1), false, &self.read_opts);
            for (&i, r) in idxs.iter().zip(results) {
                let key = keys[i].1;
                out[i] = match r {
                    Err(e) if e.kind() == rocksdb::ErrorKind::Corruption => {
                        self.drop_unreadable(ci, key);
                        Looked::Miss(ci)
                    }
                    Err(e) => Looked::Failed(e.into()),
                    Ok(None) => Looked::Miss(ci),
                    Ok(Some(frame)) => match Header::parse(&frame) {
                        Ok(h) => Looked::Frame(ci, frame, h),
                        Err(_) => match self.drop_corrupt(ci, key, &frame) {
                            Ok(()) => Looked::Miss(ci),
                            Err(e) => Looked::Failed(e),
                        },
                    },
                };
            }
        }
        out
    }

    /// Decodes looked-up frames into `out` (see [`Store::batch_get_into`]) and counts
    /// the reads. Returns each key's outcome and the bytes written.
    fn decode_looked(&self, keys: &[(&[u8], &[u8])], looked: Vec<Looked<'_>>, out: &mut [u8], gap: usize) -> (Vec<Result<Option<usize>>>, usize) {
        let mut at = 0;
        let outcomes = keys
            .iter()
            .zip(looked)
            .map(|((_, key), l)| {
                at += gap;
                match l {
                    Looked::Frame(ci, frame, h) => {
                        let decoded = codec::decode_with_header(self.cats[ci].name.as_bytes(), key, &frame, &h, &mut out[at..]).map(|n| (h.generation, n));
                        let r = self.finish_read(ci, key, &frame, decoded);
                        if let Ok(Some(n)) = r {
                            at += n;
                        }
                        r
                    }
                    Looked::Miss(ci) => Ok(self.miss(ci)),
                    Looked::Failed(e) => Err(e),
                }
            })
            .collect();
        (outcomes, at)
    }

    /// Reads a frame; a read that RocksDB finds damaged becomes a miss (see
    /// [`Store::drop_unreadable`]).
    fn read_frame(&self, ci: usize, key: &[u8]) -> Result<Option<rocksdb::DBPinnableSlice<'_>>> {
        match self.db.get_pinned_cf_opt(self.cf(&self.cats[ci].cf_name), key, &self.read_opts) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == rocksdb::ErrorKind::Corruption => {
                self.drop_unreadable(ci, key);
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A read of `key` failed RocksDB's own checksum (a damaged table). The key is
    /// dropped (a tombstone shadows the damaged copy) using its index record for exact
    /// counters, it is counted in `corrupt_dropped`, and the store is marked so that the
    /// next open repairs it. Best effort: the repair recounts everything anyway.
    fn drop_unreadable(&self, ci: usize, key: &[u8]) {
        self.mark_damaged();
        if self.read_only {
            self.corrupt_seen.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let _ = (|| -> Result<()> {
            let mut st = self.lock_state();
            let e = self.existing_from_index(ci, key)?;
            let mut counters = st.counters[ci];
            let mut batch = WriteBatch::default();
            match e {
                Some(e) => self.remove_into(&mut batch, ci, key, &e, &mut counters),
                None => batch.delete_cf(self.cf(&self.cats[ci].cf_name), key),
            }
            counters.corrupt_dropped += 1;
            self.put_counters(&mut batch, ci, &counters);
            self.write_removing(batch)?;
            st.counters[ci] = counters;
            Ok(())
        })();
    }

    /// Marks the store for repair at the next open (once).
    fn mark_damaged(&self) {
        if !self.damaged.swap(true, Ordering::SeqCst) {
            let _ = std::fs::write(self.path.join(REPAIR_MARKER), "a read found a damaged table; the next open repairs the store\n");
        }
    }

    /// An entry as its recency-index record describes it, for when its frame cannot be read.
    fn existing_from_index(&self, ci: usize, key: &[u8]) -> Result<Option<Existing>> {
        let Some(g) = self.find_index_generation(ci, key)? else { return Ok(None) };
        let record = self.db.get_pinned_cf(self.cf(LRU_CF), lru_key(&self.cats[ci].name, g, key))?;
        Ok(record.and_then(|r| decode_size(&r)).map(|size| Existing { generation: Some(g), size }))
    }

    /// Removes a frame that failed its checksum, if it is still the one that was read.
    fn drop_corrupt(&self, ci: usize, key: &[u8], seen: &[u8]) -> Result<()> {
        if self.read_only {
            self.corrupt_seen.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let mut st = self.lock_state();
        let c = &self.cats[ci];
        let cf = self.cf(&c.cf_name);
        let current = self.db.get_pinned_cf(cf, key)?;
        if current.as_deref() != Some(seen) {
            return Ok(()); // replaced meanwhile
        }
        drop(current);
        let existing = self.existing_from_frame(ci, key, seen)?;
        let mut counters = st.counters[ci];
        let mut batch = WriteBatch::default();
        self.remove_into(&mut batch, ci, key, &existing, &mut counters);
        counters.corrupt_dropped += 1;
        batch.put_cf(self.cf(META_CF), counters_key(&c.name), counters.encode());
        self.write_removing(batch)?;
        st.counters[ci] = counters;
        Ok(())
    }

    // ---- writes ----

    /// What the store holds under a key now, for a writer holding the state lock.
    pub(crate) fn existing(&self, ci: usize, key: &[u8]) -> Result<Option<Existing>> {
        self.existing_in(&self.write_cfs(), ci, key)
    }

    fn write_cfs(&self) -> WriteCfs<'_> {
        WriteCfs {
            store: self,
            cats: vec![std::cell::OnceCell::new(); self.cats.len()],
            lru: std::cell::OnceCell::new(),
            lru_key: std::cell::RefCell::new(Vec::with_capacity(64)),
        }
    }

    fn existing_in(&self, cfs: &WriteCfs<'_>, ci: usize, key: &[u8]) -> Result<Option<Existing>> {
        self.existing_from_read(ci, key, self.db.get_pinned_cf_opt(cfs.cat(ci), key, &self.read_opts))
    }

    /// What a read of `key` (a get or one key of a multi-get) says the store holds.
    fn existing_from_read(&self, ci: usize, key: &[u8], read: std::result::Result<Option<rocksdb::DBPinnableSlice<'_>>, rocksdb::Error>) -> Result<Option<Existing>> {
        match read {
            Ok(None) => Ok(None),
            Ok(Some(frame)) => self.existing_from_frame(ci, key, &frame).map(Some),
            // A damaged table: the index record still describes the entry.
            Err(e) if e.kind() == rocksdb::ErrorKind::Corruption => {
                self.mark_damaged();
                self.existing_from_index(ci, key)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// [`Store::existing_in`] for each of a batch's entries, with one multi-get per
    /// category (cheaper than a get per key once a batch has more than a few).
    fn existing_many(&self, cfs: &WriteCfs<'_>, entries: &[(usize, &[u8], &[u8])]) -> Result<Vec<Option<Existing>>> {
        if entries.len() < 8 {
            return entries.iter().map(|(ci, key, _)| self.existing_in(cfs, *ci, key)).collect();
        }
        let mut out = vec![None; entries.len()];
        for (ci, idxs) in by_category(entries.iter().enumerate().map(|(i, (ci, _, _))| (i, *ci))) {
            let results = self.db.batched_multi_get_cf_opt(cfs.cat(ci), idxs.iter().map(|&i| entries[i].1), false, &self.read_opts);
            for (&i, r) in idxs.iter().zip(results) {
                out[i] = self.existing_from_read(ci, entries[i].1, r)?;
            }
        }
        Ok(out)
    }

    fn existing_from_frame(&self, ci: usize, key: &[u8], frame: &[u8]) -> Result<Existing> {
        let size = entry_size(key, frame);
        let generation = match Header::parse(frame) {
            Ok(h) => Some(h.generation),
            // A damaged header: find the entry's index record by its key instead.
            Err(_) => self.find_index_generation(ci, key)?,
        };
        Ok(Existing { generation, size })
    }

    /// Scans one category's index for a key (only for frames whose header is damaged).
    fn find_index_generation(&self, ci: usize, key: &[u8]) -> Result<Option<u32>> {
        let prefix = lru_prefix(&self.cats[ci].name);
        let mut it = self.index_iter(&prefix, &prefix);
        while let Some(k) = it.key() {
            if k.len() == prefix.len() + 4 + key.len() && &k[prefix.len() + 4..] == key {
                return Ok(Some(u32::from_be_bytes(k[prefix.len()..prefix.len() + 4].try_into().unwrap())));
            }
            it.next();
        }
        it.status()?;
        Ok(None)
    }

    /// Adds the removal of an existing entry (data and index) to `batch`.
    pub(crate) fn remove_into(&self, batch: &mut WriteBatch, ci: usize, key: &[u8], e: &Existing, counters: &mut Counters) {
        self.remove_into_cfs(&self.write_cfs(), batch, ci, key, e, counters)
    }

    fn remove_into_cfs(&self, cfs: &WriteCfs<'_>, batch: &mut WriteBatch, ci: usize, key: &[u8], e: &Existing, counters: &mut Counters) {
        batch.delete_cf(cfs.cat(ci), key);
        if let Some(g) = e.generation {
            cfs.index(batch, ci, g, key, None);
        }
        counters.remove(e.size);
    }

    /// Adds the storing of a frame (data and index) to `batch`.
    pub(crate) fn put_into(&self, batch: &mut WriteBatch, ci: usize, key: &[u8], frame: &[u8], generation: u32, counters: &mut Counters) -> EntrySize {
        self.put_into_cfs(&self.write_cfs(), batch, ci, key, frame, generation, counters)
    }

    #[allow(clippy::too_many_arguments)]
    fn put_into_cfs(&self, cfs: &WriteCfs<'_>, batch: &mut WriteBatch, ci: usize, key: &[u8], frame: &[u8], generation: u32, counters: &mut Counters) -> EntrySize {
        let size = entry_size(key, frame);
        batch.put_cf(cfs.cat(ci), key, frame);
        cfs.index(batch, ci, generation, key, Some(&encode_size(size)));
        counters.add(size);
        size
    }

    pub(crate) fn put_counters(&self, batch: &mut WriteBatch, ci: usize, counters: &Counters) {
        batch.put_cf(self.cf(META_CF), counters_key(&self.cats[ci].name), counters.encode());
    }

    pub(crate) fn write(&self, batch: WriteBatch) -> Result<()> {
        self.write_noting(batch, false)
    }

    fn write_noting(&self, batch: WriteBatch, replaced: bool) -> Result<()> {
        self.db.write_opt(batch, &self.write_opts)?;
        if let Some(notify) = self.on_write.get() {
            notify(replaced);
        }
        Ok(())
    }

    /// [`Store::write`] of a batch that overwrites or removes entries: once written, the
    /// readers that follow this store from other processes are told (before the write is
    /// acknowledged) to catch up before their next read.
    pub(crate) fn write_removing(&self, batch: WriteBatch) -> Result<()> {
        self.write_noting(batch, true)
    }

    /// Stores one value, replacing what the key held.
    pub fn set(&self, category: &[u8], key: &[u8], value: &[u8]) -> Result<()> {
        self.batch_set(&[(category, key, value)])
    }

    /// Stores several values atomically: after a crash either all are there or none.
    /// Every entry is validated before anything is written.
    pub fn batch_set(&self, entries: &[(&[u8], &[u8], &[u8])]) -> Result<()> {
        self.store_entries(entries, false).map(|_| ())
    }

    /// Stores a value only when the key holds none (a value fetched from a remote tier
    /// never overwrites one written here meanwhile). Returns whether it was stored.
    pub fn fill(&self, category: &[u8], key: &[u8], value: &[u8]) -> Result<bool> {
        self.store_entries(&[(category, key, value)], true).map(|n| n == 1)
    }

    /// `batch_set`, or with `only_absent` a batch that skips keys holding a value.
    /// Returns the number of entries written.
    fn store_entries(&self, entries: &[(&[u8], &[u8], &[u8])], only_absent: bool) -> Result<usize> {
        let mut prepared = Vec::with_capacity(entries.len());
        for (cat, key, value) in entries {
            let ci = self.category_index(cat)?;
            check_key(key)?;
            check_value(value)?;
            prepared.push((ci, *key, *value));
        }
        self.check_writable()?;
        if prepared.is_empty() {
            return Ok(0);
        }
        // Compress and checksum outside the lock, the frames one after another in one
        // buffer sized for the worst case (raw frames): no allocation per value. The
        // generation is patched in below. (On two threads, large batches were 8-15% slower
        // on 2 cores: RocksDB's flushes want the other core.)
        let mut arena = Vec::with_capacity(prepared.iter().map(|(_, _, v)| codec::HEADER_LEN + v.len()).sum());
        let mut scratch = Vec::new();
        let mut at = 0;
        let ends: Vec<usize> = prepared
            .iter()
            .map(|(ci, key, value)| {
                at += codec::encode_append(self.cats[*ci].name.as_bytes(), key, value, 0, self.config.compression, &mut scratch, &mut arena);
                at
            })
            .collect();
        let mut frames: Vec<&mut [u8]> = Vec::with_capacity(prepared.len());
        let mut rest = &mut arena[..];
        let mut start = 0;
        for &end in &ends {
            let (frame, tail) = std::mem::take(&mut rest).split_at_mut(end - start);
            frames.push(frame);
            rest = tail;
            start = end;
        }

        let mut st = self.lock_state();
        let incoming: u64 = prepared.iter().zip(&frames).map(|((_, k, _), f)| (k.len() + f.len()) as u64).sum();
        st.space.admit(&self.path, incoming, self.config.memory_budget / 4, || {
            self.category_file_bytes() + self.cf_file_bytes(LRU_CF)
        })?;
        self.apply_touches(&mut st, crate::policy::TOUCHES_PER_WRITE)?;
        let generation = st.gens.current;
        let mut counters = st.counters.clone();
        // Sized up front: each record's frame and key, its index record (category, key,
        // generation, size) and RocksDB's per-record overhead; growing it by doubling
        // copied the batch a dozen times.
        let reserve: usize = prepared.iter().zip(&frames).map(|((ci, k, _), f)| f.len() + 2 * k.len() + self.cats[*ci].name.len() + 48).sum();
        let mut batch = WriteBatch::with_capacity_bytes(reserve + 256);
        // Earlier entries of this batch shadow the store for later ones with the same key.
        let mut shadow: HashMap<(usize, &[u8]), Existing, BatchHash> = HashMap::with_capacity_and_hasher(prepared.len(), BatchHash);
        let mut added = 0u64;
        let mut written = vec![false; prepared.len()];
        let mut replaced = false;
        let cfs = self.write_cfs();
        let stored = self.existing_many(&cfs, &prepared)?;
        for ((((ci, key, _), frame), written), stored) in prepared.iter().zip(frames.iter_mut()).zip(written.iter_mut()).zip(stored) {
            codec::set_generation(frame, generation);
            let old = match shadow.get(&(*ci, *key)) {
                Some(e) => Some(*e),
                None => stored,
            };
            if only_absent && old.is_some() {
                continue;
            }
            *written = true;
            if let Some(old) = old {
                replaced = true;
                // A repeated key in one batch deletes and re-puts the same index record;
                // a WriteBatch applies its operations in order, so the last put wins.
                self.remove_into_cfs(&cfs, &mut batch, *ci, key, &old, &mut counters[*ci]);
            }
            let size = self.put_into_cfs(&cfs, &mut batch, *ci, key, frame, generation, &mut counters[*ci]);
            shadow.insert((*ci, *key), Existing { generation: Some(generation), size });
            added += size.stored;
        }
        if !written.contains(&true) {
            return Ok(0);
        }
        let mut touched: Vec<usize> = prepared.iter().zip(&written).filter(|(_, w)| **w).map(|(p, _)| p.0).collect();
        touched.sort_unstable();
        touched.dedup();
        for &ci in &touched {
            self.put_counters(&mut batch, ci, &counters[ci]);
        }
        let advanced = st.gens.account(added, (self.clock)());
        if let Some(g) = &advanced {
            g.write_into(&mut batch, self.cf(META_CF));
        }
        if replaced { self.write_removing(batch)? } else { self.write(batch)? }
        st.counters = counters;
        if let Some(g) = advanced {
            self.publish_generation(g.generation);
            st.gens.commit(g);
        }
        let over = self.over_limits(&st);
        drop(st);
        for ((ci, _, _), _) in prepared.iter().zip(&written).filter(|(_, w)| **w) {
            self.cats[*ci].writes.fetch_add(1, Ordering::Relaxed);
        }
        if over {
            self.on_over_limit()?;
        }
        Ok(written.iter().filter(|w| **w).count())
    }

    /// Removes a key. Removing a key that is absent is not an error.
    pub fn delete(&self, category: &[u8], key: &[u8]) -> Result<()> {
        self.remove(category, key).map(|_| ())
    }

    /// [`Store::delete`], returning whether the key held an entry.
    pub fn remove(&self, category: &[u8], key: &[u8]) -> Result<bool> {
        let ci = self.category_index(category)?;
        check_key(key)?;
        self.check_writable()?;
        let mut st = self.lock_state();
        let Some(old) = self.existing(ci, key)? else { return Ok(false) };
        let mut counters = st.counters[ci];
        let mut batch = WriteBatch::default();
        self.remove_into(&mut batch, ci, key, &old, &mut counters);
        self.put_counters(&mut batch, ci, &counters);
        self.write_removing(batch)?;
        st.counters[ci] = counters;
        drop(st);
        self.cats[ci].deletes.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    /// Removes every entry of the given categories (all of them when `categories` is
    /// empty) in one atomic write, then compacts them to return the disk space.
    pub fn clear(&self, categories: &[&[u8]]) -> Result<()> {
        let mut idx = Vec::new();
        for c in categories {
            idx.push(self.category_index(c)?);
        }
        if categories.is_empty() {
            idx = (0..self.cats.len()).collect();
        }
        idx.sort_unstable();
        idx.dedup();
        self.check_writable()?;
        let mut st = self.lock_state();
        let mut counters = st.counters.clone();
        let mut batch = WriteBatch::default();
        for &ci in &idx {
            let c = &self.cats[ci];
            // Point deletes of every key: category tables (PlainTable) have no DeleteRange.
            let cf = self.cf(&c.cf_name);
            let mut it = self.db.raw_iterator_cf(cf);
            it.seek_to_first();
            while let Some(k) = it.key() {
                batch.delete_cf(cf, k);
                it.next();
            }
            it.status()?;
            let p = lru_prefix(&c.name);
            batch.delete_range_cf(self.cf(LRU_CF), p.clone(), prefix_end(&p));
            counters[ci] = counters[ci].emptied();
            self.put_counters(&mut batch, ci, &counters[ci]);
        }
        self.write_removing(batch)?;
        st.counters = counters;
        drop(st);
        for &ci in &idx {
            self.compact_cf(&self.cats[ci].cf_name)?;
        }
        self.compact_cf(LRU_CF)?;
        Ok(())
    }

    // ---- maintenance ----

    pub(crate) fn compact_cf(&self, cf_name: &str) -> Result<()> {
        let mut o = rocksdb::CompactOptions::default();
        o.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        o.set_exclusive_manual_compaction(false);
        self.db.compact_range_cf_opt(self.cf(cf_name), None::<&[u8]>, None::<&[u8]>, &o);
        Ok(())
    }

    /// Compacts one category (or all, with the internal column families) so that the
    /// space of deleted and overwritten entries is returned to the file system.
    pub fn compact(&self, category: Option<&[u8]>) -> Result<()> {
        self.check_writable()?;
        match category {
            Some(c) => {
                let ci = self.category_index(c)?;
                self.compact_cf(&self.cats[ci].cf_name)
            }
            None => {
                self.db.flush_cfs_opt(&self.all_cfs(), &rocksdb::FlushOptions::default())?;
                for c in &self.cats {
                    self.compact_cf(&c.cf_name)?;
                }
                self.compact_cf(LRU_CF)?;
                self.compact_cf(META_CF)?;
                // A log file stays until every column family has flushed what it holds, and
                // the evictor's writes meanwhile (counters, recency) can keep a small family
                // holding logs of many MiB: flushed again, they are all obsolete. RocksDB
                // deletes obsolete files from a background job, maybe after a flush returns;
                // turning deletions off and on purges them in this thread, so the disk use a
                // caller reads next is the compacted one.
                self.db.flush_cfs_opt(&self.all_cfs(), &rocksdb::FlushOptions::default())?;
                self.db.disable_file_deletions()?;
                Ok(self.db.enable_file_deletions()?)
            }
        }
    }

    fn all_cfs(&self) -> Vec<&ColumnFamily> {
        let mut v: Vec<&ColumnFamily> = self.cats.iter().map(|c| self.cf(&c.cf_name)).collect();
        v.push(self.cf(LRU_CF));
        v.push(self.cf(META_CF));
        v
    }

    /// Makes everything acknowledged so far durable (syncs the write-ahead log).
    pub fn flush(&self) -> Result<()> {
        self.check_writable()?;
        Ok(self.db.flush_wal(true)?)
    }

    /// Bytes of the categories' SST and blob files.
    pub(crate) fn category_file_bytes(&self) -> u64 {
        self.cats.iter().map(|c| self.cf_file_bytes(&c.cf_name)).sum()
    }

    /// Bytes of SST and blob files RocksDB holds for one column family.
    pub(crate) fn cf_file_bytes(&self, cf_name: &str) -> u64 {
        let cf = self.cf(cf_name);
        let p = |name: &str| self.db.property_int_value_cf(cf, name).ok().flatten().unwrap_or(0);
        p("rocksdb.total-sst-files-size") + p("rocksdb.total-blob-file-size")
    }

    // ---- stats ----

    fn handle_stats(&self, ci: usize, s: &mut Stats) {
        let c = &self.cats[ci];
        s.hits += c.hits.load(Ordering::Relaxed);
        s.misses += c.misses.load(Ordering::Relaxed);
        s.writes += c.writes.load(Ordering::Relaxed);
        s.deletes += c.deletes.load(Ordering::Relaxed);
    }

    /// Statistics of the whole store. `disk_bytes` is the directory's size on disk.
    pub fn stats(&self) -> Stats {
        let st = self.lock_state();
        let mut s = Stats { read_only: self.read_only, recovered: self.recovered, ..Default::default() };
        for (ci, c) in st.counters.iter().enumerate() {
            s.add_counters(c);
            self.handle_stats(ci, &mut s);
        }
        drop(st);
        s.corrupt_dropped += self.corrupt_seen.load(Ordering::Relaxed);
        s.disk_bytes = disk_usage(&self.path);
        s
    }

    /// Statistics of one category. Its `disk_bytes` counts the category's SST and blob
    /// files; the write-ahead log and shared files are counted only in [`Store::stats`].
    pub fn category_stats(&self, category: &[u8]) -> Result<Stats> {
        let ci = self.category_index(category)?;
        let mut s = Stats { read_only: self.read_only, recovered: self.recovered, ..Default::default() };
        s.add_counters(&self.lock_state().counters[ci]);
        self.handle_stats(ci, &mut s);
        s.disk_bytes = self.cf_file_bytes(&self.cats[ci].cf_name);
        Ok(s)
    }

    /// Recounts every category from its data, for checks that the counters are exact.
    /// Returns, per category, the counters a full scan finds (evictions and
    /// corrupt_dropped, which a scan cannot see, are copied) and the number of index
    /// records.
    pub fn recount(&self) -> Result<Vec<(String, Counters, u64)>> {
        let st = self.lock_state();
        let mut out = Vec::new();
        for (ci, c) in self.cats.iter().enumerate() {
            let mut counters = st.counters[ci].emptied();
            let mut it = self.db.raw_iterator_cf(self.cf(&c.cf_name));
            it.seek_to_first();
            while let (Some(k), Some(v)) = (it.key(), it.value()) {
                counters.add(entry_size(k, v));
                it.next();
            }
            it.status()?;
            let p = lru_prefix(&c.name);
            let mut index = 0u64;
            let mut it = self.index_iter(&p, &p);
            while it.key().is_some() {
                index += 1;
                it.next();
            }
            it.status()?;
            out.push((c.name.clone(), counters, index));
        }
        Ok(out)
    }

    /// Per-category counters as the store keeps them, in the order of [`Store::recount`].
    pub fn counters(&self) -> Vec<(String, Counters)> {
        let st = self.lock_state();
        self.cats.iter().zip(st.counters.iter()).map(|(c, k)| (c.name.clone(), *k)).collect()
    }

    /// Reads every entry and checks its checksum. With `drop_bad`, entries that fail are
    /// removed (and counted in `corrupt_dropped`) as a read would. `progress` is called
    /// with (entries checked, entries in all) every 4096 entries and at the end.
    pub fn verify(&self, drop_bad: bool, progress: &mut dyn FnMut(u64, u64)) -> Result<VerifyReport> {
        if drop_bad {
            self.check_writable()?;
        }
        let total: u64 = self.lock_state().counters.iter().map(|c| c.entries).sum();
        let mut report = VerifyReport::default();
        for (ci, c) in self.cats.iter().enumerate() {
            let mut bad_here: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            let mut it = self.db.raw_iterator_cf(self.cf(&c.cf_name));
            it.seek_to_first();
            while let (Some(k), Some(v)) = (it.key(), it.value()) {
                report.checked += 1;
                match codec::decode(c.name.as_bytes(), k, v) {
                    Ok(value) => report.value_bytes += value.len() as u64,
                    Err(_) => {
                        report.bad += 1;
                        if report.bad_keys.len() < 1000 {
                            report.bad_keys.push((c.name.clone(), k.to_vec()));
                        }
                        if drop_bad {
                            bad_here.push((k.to_vec(), v.to_vec()));
                        }
                    }
                }
                if report.checked % 4096 == 0 {
                    progress(report.checked, total.max(report.checked));
                }
                it.next();
            }
            it.status()?;
            drop(it);
            for (k, v) in bad_here {
                self.drop_corrupt(ci, &k, &v)?;
                report.dropped += 1;
            }
            if drop_bad {
                report.dropped_index_records += self.drop_orphan_index_records(ci)?;
            }
        }
        progress(report.checked, total.max(report.checked));
        Ok(report)
    }

    /// Removes recency-index records whose entry has no data: what a damaged key in a
    /// table leaves behind (its entry's bytes now sit under another, garbled key, which
    /// fails its checksum and is dropped). Returns how many were removed.
    fn drop_orphan_index_records(&self, ci: usize) -> Result<u64> {
        let c = &self.cats[ci];
        let prefix = lru_prefix(&c.name);
        let _st = self.lock_state(); // no write may add an entry between check and delete
        let mut batch = WriteBatch::default();
        let mut n = 0;
        let mut it = self.index_iter(&prefix, &prefix);
        while let Some(k) = it.key() {
            if k.len() > prefix.len() + 4 {
                let key = &k[prefix.len() + 4..];
                if self.db.get_pinned_cf_opt(self.cf(&c.cf_name), key, &self.read_opts)?.is_none() {
                    batch.delete_cf(self.cf(LRU_CF), k);
                    n += 1;
                }
            }
            it.next();
        }
        it.status()?;
        drop(it);
        if n > 0 {
            self.write(batch)?;
        }
        Ok(n)
    }

    /// Writes a raw frame under a key, bypassing the codec, for tests of damage handling.
    #[doc(hidden)]
    pub fn debug_put_raw(&self, category: &[u8], key: &[u8], frame: &[u8]) -> Result<()> {
        let ci = self.category_index(category)?;
        let mut st = self.lock_state();
        let mut counters = st.counters[ci];
        let mut batch = WriteBatch::default();
        if let Some(old) = self.existing(ci, key)? {
            self.remove_into(&mut batch, ci, key, &old, &mut counters);
        }
        let generation = st.gens.current;
        self.put_into(&mut batch, ci, key, frame, generation, &mut counters);
        self.put_counters(&mut batch, ci, &counters);
        self.write_removing(batch)?;
        st.counters[ci] = counters;
        Ok(())
    }

    /// Persists pending recency updates and flushes memtables, so that the next open
    /// does not replay the write-ahead log. Called when the store is dropped.
    pub(crate) fn shutdown(&self) {
        if self.read_only || self.closed_cleanly.swap(true, Ordering::SeqCst) {
            return;
        }
        {
            let mut st = self.lock_state();
            let _ = self.apply_touches(&mut st, usize::MAX);
        }
        let _ = self.db.flush_cfs_opt(&self.all_cfs(), &rocksdb::FlushOptions::default());
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shutdown();
    }
}
