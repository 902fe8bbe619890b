//! Journals: how a process that does not own the cache acknowledges a small set without
//! a round trip to the owner.
//!
//! A client appends each set (a batch of at most [`MAX_JOURNALED_ENTRIES`] entries and
//! [`MAX_JOURNALED_BYTES`]) to a journal file of its own in the cache directory
//! (`journal/<id>.<segment>`), as checksummed records written with one `write(2)`, adds
//! one to the shared journal counter (`nexxo.changes`) and returns: the set is durable
//! from then on (it survives kill -9 of any process, as a write in the owner's write-ahead
//! log does). The client keeps the values it journaled for its own reads until the owner
//! reports them applied.
//!
//! The owner *takes in* the journals (reads their new records and applies them, each
//! journal's last applied sequence stored in the same atomic write as the entries, so no
//! record is applied twice across owner failovers): before every write it makes, before
//! answering a read that found nothing, a statistics request or a client's `Pull`, each
//! time only when the counter moved. So a write acknowledged to any process is seen by
//! every read that starts after it (a read that finds nothing looks again after the
//! take-in), and writes are applied in the order they were acknowledged as far as any
//! process could observe it.
//!
//! A set that replaces a value the client knows of (one it journaled, or one its direct
//! reader has) is not journaled but sent to the owner, so that no process's direct reader
//! keeps serving the value it replaced.
//!
//! A journal's owner process holds a POSIX lock (`fcntl`, not inherited by `fork`) on
//! `journal/<id>.lock` while it lives. The owner of the cache applies and removes the
//! journals whose lock is free (their process ended without removing them: killed, or its
//! close could not reach an owner) when it is elected and whenever a client's connection
//! ends. A client that closes asks the owner to take in its journal and removes it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use xxhash_rust::xxh3::xxh3_64;

use super::changes::Changes;
use super::sys;
use crate::error::{Error, Result};
use crate::limits::{check_key, check_value};
use crate::store::Store;

/// The journals' directory, inside the cache directory.
pub(crate) const JOURNAL_DIR: &str = "journal";
/// A batch larger than this (its categories, keys and values together) goes to the owner.
/// (Journaling the Node binding's batches of up to 1,000 entries too made 8 processes'
/// writes 0.7x what sending them does: a client that need not wait for the owner piles
/// its work on the owner's own calls, which must take it in first.)
pub(crate) const MAX_JOURNALED_BYTES: usize = 64 << 10;
/// A batch of more entries than this goes to the owner.
pub(crate) const MAX_JOURNALED_ENTRIES: usize = 256;
/// A journal starts a new segment file past this size; segments the owner applied whole
/// are removed by the client.
const SEGMENT_BYTES: u64 = 8 << 20;
/// After this many records, or values of this many bytes not reported applied, a client
/// asks the owner to take its journal in (one round trip) and drops what was applied.
const SYNC_RECORDS: usize = 8192;
const SYNC_BYTES: usize = 16 << 20;
/// The most record bytes one take-in applies in one write.
const TAKE_IN_BYTES: usize = 32 << 20;
/// The most bytes a batch being written can take (every record of a batch at its
/// largest): more bytes than this that do not parse are a damaged journal, not one being
/// written, and it is read no further (it is removed once its process is gone).
const MAX_BATCH_BYTES: usize = MAX_JOURNALED_ENTRIES * (HEADER + FIXED) + MAX_JOURNALED_BYTES;

/// Record header: magic, body length, checksum of the body (xxh3).
const MAGIC: u32 = u32::from_le_bytes(*b"NXJ1");
const HEADER: usize = 16;
/// Body before the category, key and value: sequence, flags, category length, key
/// length, value length.
const FIXED: usize = 8 + 1 + 1 + 4 + 4;
const MAX_BODY: usize = FIXED + MAX_JOURNALED_BYTES;
/// Flag: the last record of its batch (a batch is applied whole or not at all).
const LAST: u8 = 1;

/// This process's live journals, with the fork generation that made them: the owner side
/// never tests their locks (a POSIX lock taken and released by the same process would
/// release the journal's own). A child of a fork holds none of its parent's locks.
static LIVE: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

fn is_live(id: u64) -> bool {
    let gen = crate::fork::generation();
    LIVE.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|&(g, l)| l == id && g == gen)
}

fn forget_live(id: u64) {
    LIVE.lock().unwrap_or_else(|p| p.into_inner()).retain(|&(_, l)| l != id);
}

fn segment_path(dir: &Path, id: u64, seg: u64) -> PathBuf {
    dir.join(format!("{id:016x}.{seg}"))
}

fn lock_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.lock"))
}

/// Appends one record to `out`.
fn encode(out: &mut Vec<u8>, seq: u64, last: bool, cat: &[u8], key: &[u8], value: &[u8]) {
    let body = FIXED + cat.len() + key.len() + value.len();
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&(body as u32).to_le_bytes());
    let sum_at = out.len();
    out.extend_from_slice(&[0; 8]);
    let start = out.len();
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(if last { LAST } else { 0 });
    out.push(cat.len() as u8);
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(cat);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    let sum = xxh3_64(&out[start..]);
    out[sum_at..sum_at + 8].copy_from_slice(&sum.to_le_bytes());
}

/// A record as parsed: its sequence and where its category, key and value lie in the
/// buffer it was parsed from.
#[derive(Clone)]
struct Parsed {
    seq: u64,
    cat: std::ops::Range<usize>,
    key: std::ops::Range<usize>,
    value: std::ops::Range<usize>,
}

/// The whole batches at the start of `buf`, and the bytes they take. Parsing stops at
/// the first record that is incomplete, damaged or malformed: a record being written
/// (the owner may read while a client writes), or the torn end of a killed writer's
/// last write, which was never acknowledged.
fn parse(buf: &[u8]) -> (Vec<Parsed>, usize) {
    let (mut out, mut at, mut whole, mut consumed) = (Vec::new(), 0, 0, 0);
    while buf.len() - at >= HEADER {
        let h = &buf[at..at + HEADER];
        let body = u32::from_le_bytes(h[4..8].try_into().unwrap()) as usize;
        if u32::from_le_bytes(h[..4].try_into().unwrap()) != MAGIC || !(FIXED..=MAX_BODY).contains(&body) || buf.len() - at - HEADER < body {
            break;
        }
        let b = at + HEADER;
        if xxh3_64(&buf[b..b + body]) != u64::from_le_bytes(h[8..16].try_into().unwrap()) {
            break;
        }
        let seq = u64::from_le_bytes(buf[b..b + 8].try_into().unwrap());
        let flags = buf[b + 8];
        let (c, k, v) = (buf[b + 9] as usize, u32::from_le_bytes(buf[b + 10..b + 14].try_into().unwrap()) as usize, u32::from_le_bytes(buf[b + 14..b + 18].try_into().unwrap()) as usize);
        if FIXED + c + k + v != body {
            break;
        }
        let s = b + FIXED;
        out.push(Parsed { seq, cat: s..s + c, key: s + c..s + c + k, value: s + c + k..s + c + k + v });
        at = b + body;
        if flags & LAST != 0 {
            (whole, consumed) = (out.len(), at);
        }
    }
    out.truncate(whole);
    (out, consumed)
}

/// A random journal id (never reused: an id names a journal and its mark in the store).
fn new_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    static N: AtomicU64 = AtomicU64::new(0);
    h.write_u64(N.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// Creates the journals' directory (0700, never through a symlink).
fn journal_dir(cache_dir: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = cache_dir.join(JOURNAL_DIR);
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::from(e).with_context(&dir.display().to_string())),
    }
    let m = std::fs::symlink_metadata(&dir).map_err(|e| Error::from(e).with_context(&dir.display().to_string()))?;
    if !m.is_dir() {
        return Err(Error::Insecure(format!("{} is not a directory", dir.display())));
    }
    Ok(dir)
}

// ---- the client's side ----

/// A value this process journaled, kept for its own reads.
struct Entry {
    seq: u64,
    value: Arc<[u8]>,
    /// The owner's replacement count before it was journaled: while the count has not
    /// moved, no write replaced or removed any entry, so this is still the key's value.
    stamp: u64,
    /// Reported applied by the owner (kept only as a copy for reads).
    applied: bool,
}

/// What a client keeps for its own reads: the records the owner has not reported applied
/// (bounded by [`SYNC_BYTES`]: more makes the client ask the owner), and, within a byte
/// budget, values it reported applied (a build reads back what it wrote, as the owner's
/// warm table keeps the frames just written).
#[derive(Default)]
struct Held {
    by_cat: Vec<HashMap<Arc<[u8]>, Entry>>,
    /// Not reported applied, oldest first.
    order: VecDeque<(u64, usize, Arc<[u8]>)>,
    bytes: usize,
    /// Reported applied, oldest first (dropped first past the budget).
    kept: VecDeque<(u64, usize, Arc<[u8]>)>,
    kept_bytes: usize,
    entries: usize,
}

impl Held {
    fn new(categories: usize) -> Held {
        Held { by_cat: (0..categories).map(|_| HashMap::new()).collect(), ..Default::default() }
    }

    /// Drops the oldest copies kept for reads until they fit `budget` bytes.
    fn trim_kept(&mut self, budget: usize) {
        while self.kept_bytes > budget {
            let Some((seq, ci, key)) = self.kept.pop_front() else { break };
            self.remove_if(ci, &key, seq);
        }
    }

    /// Removes the entry of `key` if it is the one with `seq`.
    fn remove_if(&mut self, ci: usize, key: &[u8], seq: u64) {
        if self.by_cat[ci].get(key).is_some_and(|e| e.seq == seq) {
            let e = self.by_cat[ci].remove(key).expect("found above");
            self.forget(key, &e);
        }
    }

    fn forget(&mut self, key: &[u8], e: &Entry) {
        self.entries -= 1;
        match e.applied {
            true => self.kept_bytes -= key.len() + e.value.len(),
            false => self.bytes -= key.len() + e.value.len(),
        }
    }
}

struct State {
    lock: Option<File>,
    seg: File,
    seg_no: u64,
    seg_len: u64,
    /// Segments written whole, with the last sequence each holds.
    closed: VecDeque<(u64, u64)>,
    next_seq: u64,
    held: Held,
    since_sync: usize,
    /// No more appends (finished, or a failed write could not be cut off).
    done: bool,
    buf: Vec<u8>,
}

/// What a client's journal holds for a key.
pub(crate) enum HeldValue {
    No,
    Value(Vec<u8>),
    /// Held, but another write may have replaced it since: the owner must be asked.
    Stale,
}

/// A client's journal (see the module's documentation).
pub(crate) struct Journal {
    pub id: u64,
    dir: PathBuf,
    changes: Changes,
    cats: Vec<String>,
    sync_writes: bool,
    st: Mutex<State>,
    /// Entries kept for reads (read without the lock: none, nothing to look up).
    entries: AtomicUsize,
    /// Records not reported applied.
    unapplied: AtomicUsize,
    /// Bytes of applied values kept for reads.
    keep_bytes: usize,
    /// The last record the owner reported applied (0: none).
    mark: AtomicU64,
    /// Taken shared by appends and exclusively by a write that must be ordered after
    /// every record journaled before it (see `Link::ordered`).
    pub order: std::sync::RwLock<()>,
}

/// Takes a POSIX write lock on the whole of `f`: false when another process holds one.
fn try_lock(f: &File) -> std::io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EAGAIN) => Ok(false),
        _ => Err(e),
    }
}

impl Journal {
    /// Starts a journal in `cache_dir` for a client of an owner with categories `cats`.
    pub fn create(cache_dir: &Path, cats: Vec<String>, sync_writes: bool, keep_bytes: usize) -> Result<Journal> {
        let dir = journal_dir(cache_dir)?;
        let changes = Changes::open(cache_dir)?;
        let id = new_id();
        let io = |p: &Path| {
            let p = p.display().to_string();
            move |e: std::io::Error| Error::from(e).with_context(&p)
        };
        // Locked before it is given its name, so the owner never finds it unlocked while
        // this process lives.
        let tmp = dir.join(format!("{id:016x}.lock.tmp"));
        let lock = sys::open_private(&tmp)?;
        if !try_lock(&lock).map_err(io(&tmp))? {
            return Err(Error::Locked(format!("{}: locked by another process", tmp.display())));
        }
        LIVE.lock().unwrap_or_else(|p| p.into_inner()).push((crate::fork::generation(), id));
        let made = (|| {
            std::fs::rename(&tmp, lock_path(&dir, id)).map_err(io(&tmp))?;
            sys::open_private(&segment_path(&dir, id, 0))
        })();
        let seg = match made {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                let _ = std::fs::remove_file(lock_path(&dir, id));
                forget_live(id);
                return Err(e);
            }
        };
        changes.note_journal_created();
        let held = Held::new(cats.len());
        Ok(Journal {
            id,
            dir,
            changes,
            cats,
            sync_writes,
            st: Mutex::new(State { lock: Some(lock), seg, seg_no: 0, seg_len: 0, closed: VecDeque::new(), next_seq: 1, held, since_sync: 0, done: false, buf: Vec::new() }),
            entries: AtomicUsize::new(0),
            unapplied: AtomicUsize::new(0),
            keep_bytes,
            mark: AtomicU64::new(0),
            order: std::sync::RwLock::new(()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The counts read without the lock, from `held` as the lock holder left it.
    fn publish(&self, held: &Held) {
        self.entries.store(held.entries, Ordering::Release);
        self.unapplied.store(held.order.len(), Ordering::Release);
    }

    fn cat_index(&self, cat: &[u8]) -> Option<usize> {
        self.cats.iter().position(|c| c.as_bytes() == cat)
    }

    /// Checks a batch as the owner's store will: a record the owner would refuse must
    /// never be acknowledged.
    pub fn check(&self, entries: &[(&[u8], &[u8], &[u8])]) -> Result<()> {
        for (c, k, v) in entries {
            if self.cat_index(c).is_none() {
                return Err(Error::UnknownCategory(String::from_utf8_lossy(c).into_owned()));
            }
            check_key(k)?;
            check_value(v)?;
        }
        Ok(())
    }

    /// Whether `entries` may be journaled: small enough.
    pub fn fits(entries: &[(&[u8], &[u8], &[u8])]) -> bool {
        entries.len() <= MAX_JOURNALED_ENTRIES && entries.iter().map(|(c, k, v)| c.len() + k.len() + v.len()).sum::<usize>() <= MAX_JOURNALED_BYTES
    }

    /// The value this process journaled under a key, while the owner has not reported it
    /// applied.
    pub fn lookup(&self, cat: &[u8], key: &[u8]) -> HeldValue {
        if self.entries.load(Ordering::Acquire) == 0 {
            return HeldValue::No;
        }
        let Some(ci) = self.cat_index(cat) else { return HeldValue::No };
        let mut guard = self.state();
        let st = &mut *guard;
        let answer = match st.held.by_cat[ci].get(key) {
            None => return HeldValue::No,
            // Nothing replaced or removed an entry since it was journaled: still current.
            Some(e) if e.stamp == self.changes.load() => return HeldValue::Value(e.value.to_vec()),
            // Not applied yet, and the owner may apply it and replace it since: ask.
            Some(e) if !e.applied => return HeldValue::Stale,
            // A copy that may be out of date: dropped.
            Some(e) => e.seq,
        };
        st.held.remove_if(ci, key, answer);
        self.publish(&st.held);
        HeldValue::No
    }

    /// Whether this process journaled a value for the key that it still keeps.
    pub fn holds(&self, cat: &[u8], key: &[u8]) -> bool {
        self.entries.load(Ordering::Acquire) != 0 && self.cat_index(cat).is_some_and(|ci| self.state().held.by_cat[ci].contains_key(key))
    }

    /// Whether records are not yet reported applied.
    pub fn holding(&self) -> bool {
        self.unapplied.load(Ordering::Acquire) != 0
    }

    /// Appends a checked batch (see [`Journal::check`], [`Journal::fits`]) as one write.
    /// `Ok(None)`: the journal takes no more records (the caller sends the batch to the
    /// owner); `Ok(Some(sync))`: durable, and `sync` when the owner should be asked to take
    /// the journal in now. An error: not acknowledged, nothing of it will be applied.
    pub fn append(&self, entries: &[(&[u8], &[u8], &[u8])]) -> Result<Option<bool>> {
        let mut guard = self.state();
        let st = &mut *guard;
        if st.done || entries.is_empty() {
            return Ok(if st.done { None } else { Some(false) });
        }
        if st.seg_len >= SEGMENT_BYTES {
            // The next segment exists only once this one is written whole: the owner reads
            // a segment to its end once it sees the next.
            let next = sys::open_private(&segment_path(&self.dir, self.id, st.seg_no + 1))?;
            st.closed.push_back((st.seg_no, st.next_seq - 1));
            st.seg = next;
            st.seg_no += 1;
            st.seg_len = 0;
        }
        st.buf.clear();
        let first = st.next_seq;
        // Read before the write: a replacement the owner makes after it moves it.
        let replaced = self.changes.load();
        for (i, (c, k, v)) in entries.iter().enumerate() {
            encode(&mut st.buf, first + i as u64, i + 1 == entries.len(), c, k, v);
        }
        let written = st.seg.write_all_at(&st.buf, st.seg_len).and_then(|_| if self.sync_writes { st.seg.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            // Not acknowledged. Part of it may be in the file (even whole, and read by the
            // owner already): nothing more is journaled after it, so no sequence or
            // offset is used twice. The caller sends the batch to the owner.
            st.done = true;
            return Err(Error::from(e).with_context(&segment_path(&self.dir, self.id, st.seg_no).display().to_string()));
        }
        st.seg_len += st.buf.len() as u64;
        st.next_seq += entries.len() as u64;
        // Counted before the set returns: a read that starts after it makes the owner
        // take the record in.
        self.changes.note_journaled();
        for (i, (c, k, v)) in entries.iter().enumerate() {
            let ci = self.cat_index(c).expect("checked");
            let key: Arc<[u8]> = Arc::from(*k);
            st.held.bytes += k.len() + v.len();
            st.held.entries += 1;
            let seq = first + i as u64;
            if let Some(old) = st.held.by_cat[ci].insert(key.clone(), Entry { seq, value: Arc::from(*v), stamp: replaced, applied: false }) {
                st.held.forget(k, &old);
            }
            st.held.order.push_back((seq, ci, key));
        }
        st.since_sync += entries.len();
        self.publish(&st.held);
        Ok(Some(st.since_sync >= SYNC_RECORDS || st.held.bytes >= SYNC_BYTES))
    }

    /// The owner's replacement count now: read before a batch is sent to the owner, and
    /// given to [`Journal::keep`] once it is applied.
    pub fn stamp(&self) -> u64 {
        self.changes.load()
    }

    /// Keeps copies of a batch the owner applied (sent to it, not journaled), as copies of
    /// journaled values are kept once applied: `stamp` is [`Journal::stamp`] from before
    /// the batch was sent.
    pub fn keep(&self, entries: &[(&[u8], &[u8], &[u8])], stamp: u64) {
        let mut guard = self.state();
        let st = &mut *guard;
        if st.done {
            return;
        }
        for (c, k, v) in entries {
            let Some(ci) = self.cat_index(c) else { continue };
            // A set of the key journaled meanwhile (another thread) is the later one.
            if st.held.by_cat[ci].get(*k).is_some_and(|e| !e.applied) {
                continue;
            }
            let key: Arc<[u8]> = Arc::from(*k);
            // Sequence 0: never one of a journaled record's.
            let e = Entry { seq: 0, value: Arc::from(*v), stamp, applied: true };
            st.held.kept_bytes += k.len() + v.len();
            st.held.entries += 1;
            if let Some(old) = st.held.by_cat[ci].insert(key.clone(), e) {
                st.held.forget(k, &old);
            }
            st.held.kept.push_back((0, ci, key));
        }
        st.held.trim_kept(self.keep_bytes);
        self.publish(&st.held);
    }

    /// The owner reported every record up to `mark` applied: they are no longer held, and
    /// segments applied whole are removed.
    pub fn applied(&self, mark: u64) {
        self.mark.fetch_max(mark, Ordering::AcqRel);
        let mut guard = self.state();
        let st = &mut *guard;
        while st.held.order.front().is_some_and(|(seq, _, _)| *seq <= mark) {
            let (seq, ci, key) = st.held.order.pop_front().expect("checked");
            let held = &mut st.held;
            if let Some(e) = held.by_cat[ci].get_mut(&*key).filter(|e| e.seq == seq) {
                // Kept as a copy for reads, within the budget.
                e.applied = true;
                let n = key.len() + e.value.len();
                held.bytes -= n;
                held.kept_bytes += n;
                held.kept.push_back((seq, ci, key));
            }
        }
        st.held.trim_kept(self.keep_bytes);
        st.since_sync = 0;
        while let Some(&(no, last)) = st.closed.front() {
            if last > mark {
                break;
            }
            let _ = std::fs::remove_file(segment_path(&self.dir, self.id, no));
            st.closed.pop_front();
        }
        self.publish(&st.held);
    }

    /// The last record the owner reported applied.
    pub fn applied_mark(&self) -> Option<u64> {
        Some(self.mark.load(Ordering::Acquire)).filter(|&m| m > 0)
    }

    /// No more appends; nothing is held for reads any more (the caller now writes through
    /// the store, which holds the records up to `mark`). When `mark` covers every record,
    /// the journal's files are removed; otherwise they stay for the owner to take in once
    /// this journal's lock is released.
    pub fn finish(&self, mark: Option<u64>) -> bool {
        let mut st = self.state();
        st.done = true;
        st.held = Held::new(self.cats.len());
        self.publish(&st.held);
        let whole = st.next_seq == 1 || mark.is_some_and(|m| m + 1 >= st.next_seq);
        if whole {
            for &(no, _) in &st.closed {
                let _ = std::fs::remove_file(segment_path(&self.dir, self.id, no));
            }
            let _ = std::fs::remove_file(segment_path(&self.dir, self.id, st.seg_no));
            let _ = std::fs::remove_file(lock_path(&self.dir, self.id));
        }
        whole
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // The lock goes first, then this process may test it like any other.
        drop(self.state().lock.take());
        forget_live(self.id);
    }
}

// ---- the owner's side ----

/// Where the owner has read a journal to.
struct Tail {
    seg: u64,
    off: u64,
    /// The segment open for reading.
    file: Option<(u64, File)>,
    /// Damaged past `off`: read no further.
    broken: bool,
    /// The last sequence the store holds (read from the store at first use).
    mark: Option<u64>,
}

struct IntakeState {
    /// The journal counter at the last complete take-in.
    seen: Option<u64>,
    /// The journals-created counter at the last look at the directory.
    created: Option<u64>,
    tails: BTreeMap<u64, Tail>,
}

/// The owner's side: takes the clients' journals in (see the module's documentation).
pub(crate) struct Intake {
    dir: PathBuf,
    changes: Changes,
    st: Mutex<IntakeState>,
    /// The journal counter at the last complete take-in, for the lock-free check.
    seen: AtomicU64,
}

/// The journals a directory listing names: ids with their lowest segment, and ids of
/// lock files (with whether it is a `.lock.tmp`).
fn list(dir: &Path) -> (BTreeMap<u64, u64>, Vec<(u64, bool)>) {
    let (mut segs, mut locks) = (BTreeMap::new(), Vec::new());
    let Ok(rd) = std::fs::read_dir(dir) else { return (segs, locks) };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((id, rest)) = name.split_once('.') else { continue };
        let Ok(id) = u64::from_str_radix(id, 16) else { continue };
        match rest {
            "lock" => locks.push((id, false)),
            "lock.tmp" => locks.push((id, true)),
            n => {
                if let Ok(n) = n.parse::<u64>() {
                    let s = segs.entry(id).or_insert(n);
                    *s = (*s).min(n);
                }
            }
        }
    }
    (segs, locks)
}

impl Intake {
    pub fn open(cache_dir: &Path) -> Result<Intake> {
        let changes = Changes::open(cache_dir)?;
        // What the last owner took in: nothing moved since, nothing to do until it does
        // (the first take-in reads every journal from its start all the same).
        let seen = AtomicU64::new(changes.taken_in());
        Ok(Intake { dir: cache_dir.join(JOURNAL_DIR), changes, st: Mutex::new(IntakeState { seen: None, created: None, tails: BTreeMap::new() }), seen })
    }

    /// Whether clients journaled records since the last take-in.
    pub fn moved(&self) -> bool {
        self.changes.journaled() != self.seen.load(Ordering::Acquire)
    }

    /// Applies every journaled record the store does not hold yet.
    pub fn take_in(&self, store: &Store) -> Result<()> {
        let mut st = self.st.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let now = self.changes.journaled();
            if st.seen == Some(now) {
                return Ok(());
            }
            let created = self.changes.journals_created();
            if st.created != Some(created) {
                // Read before listing: a journal made later moves it again.
                let (segs, locks) = list(&self.dir);
                if st.created.is_none() {
                    // Marks of journals that are gone (removed by their process after the
                    // last owner applied them): forgotten. A journal made after this
                    // listing has no mark yet.
                    forget_gone_marks(store, &segs, &locks)?;
                }
                for (id, seg) in segs {
                    st.tails.entry(id).or_insert(Tail { seg, off: 0, file: None, broken: false, mark: None });
                }
                st.created = Some(created);
            }
            if !self.take_in_once(&mut st, store)? {
                st.seen = Some(now);
                self.seen.store(now, Ordering::Release);
                self.changes.note_taken_in(now);
                return Ok(());
            }
        }
    }

    /// One write of what the journals hold beyond their tails; true when more remains.
    fn take_in_once(&self, st: &mut IntakeState, store: &Store) -> Result<bool> {
        let mut chunks: Vec<(u64, Vec<u8>, Vec<Parsed>)> = Vec::new();
        let mut moved: Vec<(u64, u64, u64, u64)> = Vec::new();
        let mut finished = Vec::new();
        let mut bytes = 0;
        let mut more = false;
        for (&id, tail) in st.tails.iter_mut() {
            if bytes >= TAKE_IN_BYTES {
                more = true;
                break;
            }
            if tail.broken {
                continue;
            }
            let mark = match tail.mark {
                Some(m) => m,
                None => {
                    let m = store.journal_mark(id)?.unwrap_or(0);
                    tail.mark = Some(m);
                    m
                }
            };
            let (mut seg, mut off, mut last) = (tail.seg, tail.off, mark);
            loop {
                let path = segment_path(&self.dir, id, seg);
                // A client starts the next segment only once this one is past
                // SEGMENT_BYTES and written whole: looked for before reading.
                let checked = off >= SEGMENT_BYTES;
                let next = checked && segment_path(&self.dir, id, seg + 1).exists();
                if tail.file.as_ref().is_none_or(|(s, _)| *s != seg) {
                    tail.file = match File::open(&path) {
                        Ok(f) => Some((seg, f)),
                        // Removed by its writer once applied whole, or by the reaper.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                        Err(e) => return Err(Error::from(e).with_context(&path.display().to_string())),
                    };
                }
                let (data, at_end) = match &tail.file {
                    Some((_, f)) => {
                        let read = read_from(f, off, TAKE_IN_BYTES + MAX_BATCH_BYTES).map_err(|e| Error::from(e).with_context(&path.display().to_string()))?;
                        // Removed by its writer (applied whole) or by the reaper: let go of
                        // it (the next take-in finds it gone and moves on).
                        if f.metadata().is_ok_and(|m| std::os::unix::fs::MetadataExt::nlink(&m) == 0) {
                            tail.file = None;
                        }
                        read
                    }
                    None => {
                        // Removed: applied whole (a client removes its segments in order).
                        if segment_path(&self.dir, id, seg + 1).exists() {
                            (seg, off) = (seg + 1, 0);
                            continue;
                        }
                        if !lock_path(&self.dir, id).exists() {
                            finished.push(id);
                        }
                        (Vec::new(), true)
                    }
                };
                let (recs, used) = parse(&data);
                if data.len() - used > MAX_BATCH_BYTES {
                    tail.broken = true;
                }
                let recs: Vec<Parsed> = recs.into_iter().filter(|r| r.seq > last).collect();
                if let Some(r) = recs.last() {
                    last = r.seq;
                }
                bytes += used;
                off += used as u64;
                let whole = used == data.len() && at_end;
                if !at_end && used > 0 {
                    more = true;
                }
                if !recs.is_empty() {
                    chunks.push((id, data, recs));
                }
                if next && whole && bytes < TAKE_IN_BYTES {
                    seg += 1;
                    off = 0;
                    continue;
                }
                if next && whole {
                    more = true;
                }
                if !checked && off >= SEGMENT_BYTES {
                    continue;
                }
                break;
            }
            if (seg, off, last) != (tail.seg, tail.off, mark) {
                moved.push((id, seg, off, last));
            }
        }
        for id in finished {
            // Its process removed it, applied whole: its mark is no longer needed.
            st.tails.remove(&id);
            store.forget_journal(id)?;
        }
        if moved.is_empty() {
            return Ok(false);
        }
        // A record the store would refuse (only a broken or hostile peer writes one: the
        // client checks each set as the store does) is skipped, not retried forever.
        let mut entries: Vec<(&[u8], &[u8], &[u8])> = Vec::new();
        for (_, data, recs) in &chunks {
            for r in recs {
                let (c, k, v) = (&data[r.cat.clone()], &data[r.key.clone()], &data[r.value.clone()]);
                if store.category_index(c).is_ok() && check_key(k).is_ok() && check_value(v).is_ok() {
                    entries.push((c, k, v));
                }
            }
        }
        let marks: Vec<(u64, u64)> = moved.iter().filter(|(id, _, _, last)| st.tails.get(id).is_some_and(|t| t.mark != Some(*last))).map(|(id, _, _, last)| (*id, *last)).collect();
        store.batch_set_marked(&entries, &marks)?;
        for (id, seg, off, last) in moved {
            if let Some(t) = st.tails.get_mut(&id) {
                (t.seg, t.off, t.mark) = (seg, off, Some(last));
            }
        }
        Ok(more)
    }

    /// Applies and removes the journals of processes that are gone (their lock is free),
    /// and forgets the marks of journals no longer there. `store` is asked for only when
    /// some are gone.
    pub fn reap<'a>(&self, store: impl FnOnce() -> Result<&'a Store>) -> Result<()> {
        let (_, locks) = list(&self.dir);
        let mut gone = Vec::new();
        for (id, tmp) in locks {
            if is_live(id) {
                continue;
            }
            let path = if tmp { self.dir.join(format!("{id:016x}.lock.tmp")) } else { lock_path(&self.dir, id) };
            let Ok(f) = std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(&path) else { continue };
            if try_lock(&f).unwrap_or(false) {
                gone.push((id, tmp, path, f));
            }
        }
        if gone.is_empty() {
            return Ok(());
        }
        let store = store()?;
        // Everything they hold, read again from the start (nothing is added to them any
        // more; what the store holds already is skipped by its mark).
        {
            let mut st = self.st.lock().unwrap_or_else(|p| p.into_inner());
            st.seen = None;
            st.created = None;
            for (id, _, _, _) in &gone {
                st.tails.remove(id);
            }
        }
        self.seen.store(u64::MAX, Ordering::Release);
        self.take_in(store)?;
        let mut st = self.st.lock().unwrap_or_else(|p| p.into_inner());
        let (segs, _) = list(&self.dir);
        for (id, _, path, f) in gone {
            if let Some(&low) = segs.get(&id) {
                let mut n = low;
                while std::fs::remove_file(segment_path(&self.dir, id, n)).is_ok() || segment_path(&self.dir, id, n + 1).exists() {
                    n += 1;
                }
            }
            let _ = std::fs::remove_file(&path);
            drop(f);
            st.tails.remove(&id);
        }
        drop(st);
        let (segs, locks) = list(&self.dir);
        forget_gone_marks(store, &segs, &locks)
    }

    /// Whether the directory names a journal whose process may be gone (cheap: no locks
    /// are tested).
    pub fn any(&self) -> bool {
        std::fs::read_dir(&self.dir).is_ok_and(|mut d| d.next().is_some())
    }
}

/// Forgets the store's marks of journals the directory no longer holds (`segs`, `locks`:
/// a listing): removed by their process once applied whole, or reaped. A journal made
/// after the listing has no mark yet.
fn forget_gone_marks(store: &Store, segs: &BTreeMap<u64, u64>, locks: &[(u64, bool)]) -> Result<()> {
    for id in store.journal_marks()? {
        if !segs.contains_key(&id) && !locks.iter().any(|&(l, _)| l == id) && !is_live(id) {
            store.forget_journal(id)?;
        }
    }
    Ok(())
}

/// The bytes of `f` from `off` to its end, at most `max`, and whether they reach its end.
fn read_from(f: &File, off: u64, max: usize) -> std::io::Result<(Vec<u8>, bool)> {
    let len = f.metadata()?.len();
    if len <= off {
        return Ok((Vec::new(), true));
    }
    let capped = (len - off) as usize > max;
    let mut buf = vec![0; ((len - off) as usize).min(max)];
    let mut got = 0;
    while got < buf.len() {
        match f.read_at(&mut buf[got..], off + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok((buf, !capped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_back_and_stop_at_a_torn_or_open_batch() {
        let mut b = Vec::new();
        encode(&mut b, 1, true, b"parse", b"k1", b"v1");
        encode(&mut b, 2, false, b"parse", b"k2", b"v2");
        encode(&mut b, 3, true, b"transform", b"k3", &[7; 1000]);
        let whole = b.len();
        encode(&mut b, 4, false, b"parse", b"k4", b"v4");
        // A batch whose last record is missing is not taken.
        let (recs, used) = parse(&b);
        assert_eq!(used, whole);
        assert_eq!(recs.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(&b[recs[2].cat.clone()], b"transform");
        assert_eq!(&b[recs[2].value.clone()], &[7; 1000][..]);
        // Any cut inside the second batch leaves the first.
        for cut in (whole - 1000..whole).step_by(97) {
            let (recs, used) = parse(&b[..cut]);
            assert_eq!((recs.len(), used), (1, recs.first().map_or(0, |_| used)));
        }
        // A flipped byte stops parsing at its record.
        let mut bad = b.clone();
        bad[whole - 10] ^= 1;
        assert_eq!(parse(&bad).0.len(), 1);
    }
}
