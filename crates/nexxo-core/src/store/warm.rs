//! The warm table: the frames a build is about to read, in memory, so that a `get`
//! becomes a hash lookup and a decode instead of a RocksDB point lookup.
//!
//! Builds repeat themselves: the next build reads nearly every key the last one wrote or
//! read. A writable store that serves the cache fills the table on a thread of its own
//! once the process's reads call for it (see [`Demand`]), up to a bound of memory: a
//! store that fits is scanned whole (a scan costs a fraction of a point lookup per entry,
//! and runs on the other core beside the build's reads); a larger one gives its newest
//! entries, the last build's, found newest first in the recency index and read with
//! multi-gets. The frames a process writes go in as
//! they are written, within the same bound.
//!
//! Never a stale value: the table only ever holds the frame a key has in the store.
//! - A write that removes anything (delete, clear, eviction, a dropped damaged frame)
//!   empties the table before it is acknowledged, and bumps its epoch.
//! - A batch of sets that overwrites keys takes those keys out of the table before it is
//!   acknowledged ([`WarmTable::forget`]); while a fill runs, their hashes are kept
//!   ([`Inner::replaced`]) and the fill inserts no frame of those keys (the frame it read
//!   may be the older one). Until 1.10.4 it emptied the table and stopped the fill: a
//!   build with path keys that rewrites its changed files' entries then read the rest
//!   from RocksDB (README, "Reads: the warm table", has the measurements). Past
//!   [`REPLACED_MAX`] such keys during one fill, the epoch is bumped instead. A write of
//!   new keys only cannot make an entry stale.
//! - The fill thread takes the epoch (and starts keeping replaced keys) before it opens
//!   its iterator, and inserts only while the epoch is unchanged (checked under the
//!   table's lock), so a frame it read before a removal is never inserted after it.
//! - Written frames are inserted by the writer, under the writers' lock, after RocksDB
//!   took the write.
//!
//! Never a false miss: the table says a key is absent ([`Look::Absent`]) only while it
//! holds every key of the store ([`Inner::complete`]), which only the writable store's
//! table can (every write goes through it), from an empty open or once a fill has
//! covered the store; a removal or a frame refused for room ends it, and while an
//! overwrite's keys are out of the table ([`Inner::replacing`]) nothing is absent.
//!
//! Frames are kept encoded (compressed, checksummed): reads decode and verify them as
//! they do frames from RocksDB.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, TryLockError};
use std::thread::JoinHandle;

use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::layout::{decode_size, lru_prefix, parse_lru_key};
use super::Store;
use crate::error::Result;

mod image;

/// Bytes one entry costs besides its key and frame: its slot in the index (24 bytes, at
/// most half the slots in use) and the arena space it cannot share.
const ENTRY_OVERHEAD: usize = 64;
/// The fill thread hands over its frames in packs of at most this many entries or bytes
/// (one write lock each, held while their slots go in: tens of microseconds).
const PACK_ENTRIES: usize = 512;
const PACK_BYTES: usize = 256 << 10;
/// Frames inserted one by one (a writer's) are copied into arena chunks of this size.
const CHUNK_BYTES: usize = 256 << 10;
/// Entries put into the index under one hold of the table's write lock, by a writer or
/// the fill: a read waits for at most that many (a few microseconds), where it waited for
/// a whole batch or pack (a fill's pack of 512, tens of microseconds to milliseconds on a
/// cold index). A Node build's first pass, its gets beside its sets written on another
/// thread, blocked in a get on the table's lock ~170 times per 100,000 (`perf` of its
/// context switches) before; so did a new process's reads beside its fill.
const SECTION: usize = 32;
/// Most keys overwritten during one fill that the table remembers (8 bytes each, and
/// the set's overhead): past that, an overwrite ends the fill as a removal does.
const REPLACED_MAX: usize = 1 << 16;

/// The table holds keys and frames side by side in arena chunks (a pack of the fill
/// thread is one chunk, moved in whole; a writer's frames are copied into the open
/// chunk), and finds them through an open-addressing index per category of 24-byte slots
/// (the key's hash and where its bytes are). A lookup touches a slot and then one run of
/// arena bytes, where a map of boxed keys and frames touched three places; a fill is one
/// allocation per pack instead of two per entry; emptying it frees its chunks.
pub(crate) struct WarmTable {
    inner: RwLock<Inner>,
    /// When the fill thread may start (see [`Demand`]).
    demand: Arc<Demand>,
    /// Most bytes held (keys, frames and [`ENTRY_OVERHEAD`] each); 0 disables the table.
    budget: usize,
    /// The keys' hash seed, random per table: keys come from builds, not attackers, but
    /// a chosen set of colliding keys must not turn lookups into scans either.
    seed: u64,
    /// Whether the table may answer for the whole store ([`Inner::complete`]): only the
    /// table of the store that takes the writes (every frame written reaches it), never a
    /// read-only instance's or a follower's, which other processes' writes bypass.
    authoritative: bool,
}

struct Inner {
    epoch: u64,
    cats: Vec<Index>,
    chunks: Vec<Chunk>,
    /// The chunk a writer's frames are appended to, while it has room.
    open: Option<u32>,
    bytes: usize,
    /// While a fill runs: the hashes of the keys overwritten since it started (taken
    /// out of the table by [`WarmTable::forget`]), whose frames the fill must not
    /// insert. None when no fill runs.
    replaced: Option<HashSet<(usize, u64)>>,
    /// The table holds every key the store holds, with its current frame, so a key it
    /// lacks is a miss without a RocksDB lookup ([`Look::Absent`]). Set when an
    /// authoritative table starts on an empty store, or a fill has scanned the whole store
    /// into it with nothing refused or removed meanwhile; cleared by anything that leaves
    /// a key of the store out of it: a removal ([`WarmTable::clear`]), a frame refused for
    /// want of room.
    complete: bool,
    /// A writer took keys it overwrote out ([`WarmTable::forget`]) and has not put their
    /// new frames in yet: until it has, a key not found may be one of those, and is not
    /// a miss for sure.
    replacing: bool,
    /// Since the fill began, a frame of the store was left out (refused for want of room):
    /// the fill's end cannot make the table complete.
    dropped: bool,
    /// An image of the store's present state was there and failed its checks (damaged):
    /// the close replaces it.
    image_refused: bool,
}

impl Inner {
    /// A table of `categories` empty indexes at `epoch`, no fill running.
    fn empty(categories: usize, epoch: u64) -> Inner {
        Inner {
            epoch,
            cats: (0..categories).map(|_| Index::default()).collect(),
            chunks: Vec::new(),
            open: None,
            bytes: 0,
            replaced: None,
            complete: false,
            replacing: false,
            dropped: false,
            image_refused: false,
        }
    }

    /// A frame of the store is left out: a key the table lacks may be in the store.
    fn left_out(&mut self) {
        self.complete = false;
        self.dropped = true;
    }
}

/// What a lookup of the table found.
pub(super) enum Look<R> {
    /// The key's frame, through the caller's function.
    Found(R),
    /// The store does not hold the key: the table is complete and lacks it.
    Absent,
    /// Not held, or not looked at (the lock was taken): RocksDB has the answer.
    Unknown,
}

#[cfg(test)]
impl<R> Look<R> {
    /// The frame's result, if the key was found.
    fn found(self) -> Option<R> {
        match self {
            Look::Found(r) => Some(r),
            Look::Absent | Look::Unknown => None,
        }
    }
}

/// An arena chunk: a fill's pack or a writer's frames in memory, or the image of the last
/// run's table, mapped from its file ([`image`]). Its bytes never move or change while
/// it is in the table (a writer appends to a heap chunk only within its capacity).
enum Chunk {
    Heap(Vec<u8>),
    Image(image::Mapped),
}

impl Chunk {
    /// Bytes a writer may still append without the chunk moving.
    fn room(&self) -> usize {
        match self {
            Chunk::Heap(v) => v.capacity() - v.len(),
            Chunk::Image(_) => 0,
        }
    }
}

impl std::ops::Deref for Chunk {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Chunk::Heap(v) => v,
            Chunk::Image(m) => m.bytes(),
        }
    }
}

/// Where a key's bytes are: `klen` key bytes at `off` in chunk `chunk`, its frame's
/// `flen` bytes right after them.
#[derive(Clone, Copy)]
struct Slot {
    hash: u64,
    chunk: u32,
    off: u32,
    klen: u32,
    flen: u32,
}

/// A slot never used (probing stops at it).
const EMPTY: u32 = u32::MAX;
/// `flen` of a key removed (its slot stays, so probing goes on past it; the key can
/// come back in the same slot).
const REMOVED: u32 = u32::MAX;

const NO_SLOT: Slot = Slot { hash: 0, chunk: EMPTY, off: 0, klen: 0, flen: 0 };

/// One category's index: linear probing over a power-of-two table at most half full.
#[derive(Default)]
struct Index {
    slots: Vec<Slot>,
    used: usize,
}

impl Index {
    /// The slot holding `key` (live or removed), else the empty slot where it would go.
    /// The table must have at least one empty slot.
    fn find(&self, chunks: &[Chunk], hash: u64, key: &[u8]) -> (usize, bool) {
        self.find_in(|c| &chunks[c as usize][..], hash, key)
    }

    /// [`Index::find`] with the bytes of chunk `c` given by `bytes_of(c)`.
    fn find_in<'a>(&self, bytes_of: impl Fn(u32) -> &'a [u8], hash: u64, key: &[u8]) -> (usize, bool) {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let s = &self.slots[i];
            if s.chunk == EMPTY {
                return (i, false);
            }
            if s.hash == hash && s.klen as usize == key.len() {
                let at = s.off as usize;
                if &bytes_of(s.chunk)[at..at + key.len()] == key {
                    return (i, true);
                }
            }
            i = (i + 1) & mask;
        }
    }

    fn get<'a>(&self, chunks: &'a [Chunk], hash: u64, key: &[u8]) -> Option<&'a [u8]> {
        if self.slots.is_empty() {
            return None;
        }
        let (i, found) = self.find(chunks, hash, key);
        let s = &self.slots[i];
        if !found || s.flen == REMOVED {
            return None;
        }
        let at = s.off as usize + s.klen as usize;
        Some(&chunks[s.chunk as usize][at..at + s.flen as usize])
    }

    /// Keys held (tests: a scan of the slots).
    fn live(&self) -> usize {
        self.slots.iter().filter(|s| s.chunk != EMPTY && s.flen != REMOVED).count()
    }

    /// Makes room for `more` keys (at most half the slots in use after them).
    fn reserve(&mut self, more: usize) {
        if let Some(need) = self.slots_for(more) {
            self.grow_into(vec![NO_SLOT; need]);
        }
    }

    /// The slots room for `more` keys takes, when that is more than the table has.
    fn slots_for(&self, more: usize) -> Option<usize> {
        let need = (self.used + more).saturating_mul(2).max(16).next_power_of_two();
        (need > self.slots.len()).then_some(need)
    }

    /// Moves the keys into `slots` (empty, a power of two, larger than the table).
    fn grow_into(&mut self, slots: Vec<Slot>) {
        let old = std::mem::replace(&mut self.slots, slots);
        let mask = self.slots.len() - 1;
        self.used = 0;
        // Removed keys are dropped here: absent is what they mean.
        for s in old.into_iter().filter(|s| s.chunk != EMPTY && s.flen != REMOVED) {
            let mut i = s.hash as usize & mask;
            while self.slots[i].chunk != EMPTY {
                i = (i + 1) & mask;
            }
            self.slots[i] = s;
            self.used += 1;
        }
    }

    /// Asks the processor for the cache line of `hash`'s first slot, so that lookups of
    /// many keys in a row (a section of a pack) wait for their slots together instead of
    /// one after another: a fill's inserts each waited for one (a random slot of a table
    /// of megabytes is a cache miss), a third of the fill's time.
    fn prefetch(&self, hash: u64) {
        if self.slots.is_empty() {
            return;
        }
        let slot = &self.slots[hash as usize & (self.slots.len() - 1)];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint; the address is a live slot's.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((slot as *const Slot).cast());
        }
        #[cfg(not(target_arch = "x86_64"))]
        std::hint::black_box(slot.hash);
    }

    /// Points `key`'s slot at `slot`'s bytes, the chunks' bytes given by `bytes_of`.
    fn put_in<'a>(&mut self, bytes_of: impl Fn(u32) -> &'a [u8], slot: Slot, key: &[u8]) {
        self.reserve(1);
        let (i, found) = self.find_in(bytes_of, slot.hash, key);
        if !found {
            self.used += 1;
        }
        self.slots[i] = slot;
    }

    /// Removes `key`; returns its frame's length if it held one.
    fn remove(&mut self, chunks: &[Chunk], hash: u64, key: &[u8]) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let (i, found) = self.find(chunks, hash, key);
        if !found || self.slots[i].flen == REMOVED {
            return None;
        }
        let old = self.slots[i].flen as usize;
        self.slots[i].flen = REMOVED;
        Some(old)
    }
}

/// Frames gathered outside the table's lock, handed to it in one piece
/// ([`WarmTable::insert_pack`]): their keys and frames in one buffer, which becomes an
/// arena chunk as it is.
pub(super) struct Pack {
    buf: Vec<u8>,
    /// (category, hash, offset, key length, frame length)
    entries: Vec<(usize, u64, u32, u32, u32)>,
    /// An entry no pack can hold was left to RocksDB.
    skipped: bool,
}

impl Pack {
    fn new() -> Pack {
        Pack { buf: Vec::with_capacity(PACK_BYTES + (PACK_BYTES >> 2)), entries: Vec::with_capacity(PACK_ENTRIES), skipped: false }
    }

    /// Adds a frame; false (nothing added) when the pack is full, or when the entry is
    /// too large for one (over 4 GiB).
    fn push(&mut self, table: &WarmTable, ci: usize, key: &[u8], frame: &[u8]) -> bool {
        if self.is_full() || u32::try_from(key.len() + frame.len()).is_err() {
            return false;
        }
        let off = self.buf.len();
        self.buf.extend_from_slice(key);
        self.buf.extend_from_slice(frame);
        self.entries.push((ci, table.hash(key), off as u32, key.len() as u32, frame.len() as u32));
        true
    }

    /// Adds a frame, handing the pack to `table` first when it is full. False once the
    /// table takes no more (full, or the epoch moved). An entry no pack can hold (over
    /// 4 GiB) is left to RocksDB.
    fn add(&mut self, table: &WarmTable, epoch: u64, ci: usize, key: &[u8], frame: &[u8]) -> bool {
        if self.push(table, ci, key, frame) {
            return true;
        }
        if !self.is_empty() {
            if !table.insert_pack(epoch, self) {
                return false;
            }
            // An empty pack takes any entry a pack can hold.
            if self.push(table, ci, key, frame) {
                return true;
            }
        }
        self.skipped = true;
        true
    }

    fn is_full(&self) -> bool {
        self.entries.len() >= PACK_ENTRIES || self.buf.len() >= PACK_BYTES
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl WarmTable {
    pub(super) fn new(categories: usize, budget: usize) -> WarmTable {
        WarmTable { inner: RwLock::new(Inner::empty(categories, 0)), demand: Arc::default(), budget, seed: RandomState::new().hash_one(0u64), authoritative: false }
    }

    /// Makes this the table of the store that takes the writes (see
    /// [`WarmTable::authoritative`]); `empty`: the store holds nothing, so the table is
    /// complete from the start.
    pub(super) fn make_authoritative(&mut self, empty: bool) {
        self.authoritative = true;
        let t = self.inner.get_mut().unwrap_or_else(|p| p.into_inner());
        t.complete = empty && self.budget > 0 && t.bytes == 0;
    }

    pub(super) fn enabled(&self) -> bool {
        self.budget > 0
    }

    fn hash(&self, key: &[u8]) -> u64 {
        xxh3_64_with_seed(key, self.seed)
    }

    /// `f` of the frame held for `key` in category `ci`, if one is held (tests).
    #[cfg(test)]
    fn with<R>(&self, ci: usize, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        self.look(ci, key, f).found()
    }

    /// `f` of the frame held for `key` in category `ci`, if one is held
    /// ([`Look::Found`]); [`Look::Absent`] for a key the store does not hold while the
    /// table is complete: a build's first pass, whose gets all miss, then answers them
    /// from memory. Before 1.10.6 each such miss looked the key up in RocksDB's memtables
    /// and tables: 0.8 µs on a new store, 1.7 µs once 100,000 entries were written (C, one
    /// thread), and in a Node build beside its writer thread about 3 µs.
    ///
    /// [`Look::Unknown`], as for a key not held, while a writer or the fill holds the
    /// table's lock or waits for it: the caller reads RocksDB, which holds every frame the
    /// table does (see the module's comment), instead of waiting. A Node build's gets,
    /// beside its sets written on libuv's thread pool, waited there for a writer that the
    /// scheduler had taken off one of two cores with the lock held: ~100 ms of gets over
    /// 20 µs per 100,000 gets, the longest 4-13 ms (`perf` of their context switches: the
    /// table's `read_contended`).
    #[inline]
    pub(super) fn look<R>(&self, ci: usize, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Look<R> {
        if self.budget == 0 {
            return Look::Unknown;
        }
        if !self.demand.started.load(Ordering::Relaxed) {
            self.demand.lookup();
        }
        let hash = self.hash(key);
        let t = match self.inner.try_read() {
            Ok(t) => t,
            Err(TryLockError::WouldBlock) => return Look::Unknown,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        match t.cats[ci].get(&t.chunks, hash, key) {
            Some(frame) => Look::Found(f(frame)),
            None if t.complete && !t.replacing => Look::Absent,
            None => Look::Unknown,
        }
    }

    /// Whether the table holds a frame for `key` in category `ci` (the fill's test: a key
    /// it holds has its current frame there, put by the write that wrote it). Not a read:
    /// not counted as a lookup.
    fn holds(&self, ci: usize, key: &[u8]) -> bool {
        let hash = self.hash(key);
        let t = self.inner.read().unwrap_or_else(|p| p.into_inner());
        t.cats[ci].get(&t.chunks, hash, key).is_some()
    }

    /// Forgets everything: called after a write that overwrote or removed entries.
    pub(super) fn clear(&self) {
        if self.budget == 0 {
            return;
        }
        let mut t = self.inner.write().unwrap_or_else(|p| p.into_inner());
        t.epoch += 1;
        // The store may still hold entries (a delete, an eviction): the table no longer
        // answers for it.
        t.left_out();
        if t.bytes > 0 || !t.chunks.is_empty() {
            for c in &mut t.cats {
                *c = Index::default();
            }
            t.chunks = Vec::new();
            t.open = None;
            t.bytes = 0;
        }
    }

    /// Takes out the frames of keys a batch of sets overwrote (category, key): called
    /// after RocksDB took the batch, before it is acknowledged. The other keys stay. While
    /// a fill runs, the keys are remembered so that it does not insert what it read of
    /// them; past [`REPLACED_MAX`] the epoch is bumped (the fill stops) instead.
    pub(super) fn forget<'a>(&self, keys: impl IntoIterator<Item = (usize, &'a [u8])>) {
        if self.budget == 0 {
            return;
        }
        let mut t = self.inner.write().unwrap_or_else(|p| p.into_inner());
        // Until the writer's insert puts their new frames in.
        t.replacing = true;
        let Inner { cats, chunks, replaced, epoch, .. } = &mut *t;
        for (ci, key) in keys {
            let hash = self.hash(key);
            cats[ci].remove(chunks, hash, key);
            if let Some(r) = replaced {
                if r.len() < REPLACED_MAX {
                    r.insert((ci, hash));
                } else {
                    *epoch += 1;
                    *replaced = None;
                }
            }
        }
    }

    /// The fill begins (before it opens its iterator): the epoch it inserts under, and
    /// overwritten keys are remembered from now on.
    fn fill_begins(&self) -> u64 {
        let mut t = self.inner.write().unwrap_or_else(|p| p.into_inner());
        t.replaced = Some(HashSet::new());
        t.dropped = false;
        t.epoch
    }

    /// The fill begun at `epoch` has put the whole store in: the table is complete if it
    /// is authoritative and nothing was removed or left out since.
    fn fill_covered(&self, epoch: u64) {
        let mut t = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if self.authoritative && t.epoch == epoch && !t.dropped {
            t.complete = true;
        }
    }

    /// The fill is over: overwritten keys need no remembering.
    fn fill_ends(&self) {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).replaced = None;
    }

    /// Takes `other`'s frames, and the hash seed they are indexed under, into this table,
    /// which must be empty; `other` is left empty, its epoch moved. Nothing is taken (false)
    /// when the two differ in categories or budget, or a fill of `other` has not ended.
    fn adopt(&mut self, other: &WarmTable) -> bool {
        let mine = self.inner.get_mut().unwrap_or_else(|p| p.into_inner());
        let mut theirs = other.inner.write().unwrap_or_else(|p| p.into_inner());
        if self.budget != other.budget || mine.bytes != 0 || mine.cats.len() != theirs.cats.len() || theirs.replaced.is_some() {
            return false;
        }
        let emptied = Inner::empty(theirs.cats.len(), theirs.epoch + 1);
        // Whether the table answers for the store is this store's to say (the frames
        // taken are the same store's, at the same sequence number).
        let complete = mine.complete;
        *mine = std::mem::replace(&mut *theirs, emptied);
        mine.complete = complete && !mine.dropped;
        mine.replacing = false;
        self.seed = other.seed;
        true
    }

    /// `f` of every entry held (category, key, frame), in the order of the chunks' bytes
    /// (as written or scanned). None when the table holds neither the whole store nor half
    /// its budget's worth (not worth an image: a process that wrote a few entries and read
    /// little): `counts` is each category's (entries, stored bytes) as counted in the
    /// store, and a frame held is always its key's current frame, so as many as the store
    /// holds are all of them.
    fn for_image<R>(&self, counts: &[(u64, u64)], f: impl FnOnce(&[(usize, &[u8], &[u8])]) -> R) -> Option<R> {
        let t = self.inner.read().unwrap_or_else(|p| p.into_inner());
        if t.replacing || t.cats.len() != counts.len() {
            return None;
        }
        // (chunk, offset, category, key length, frame length)
        let mut all: Vec<(u32, u32, usize, u32, u32)> = Vec::new();
        let mut whole = true;
        for (ci, index) in t.cats.iter().enumerate() {
            let (mut n, mut b) = (0u64, 0u64);
            for s in index.slots.iter().filter(|s| s.chunk != EMPTY && s.flen != REMOVED) {
                n += 1;
                b += u64::from(s.klen) + u64::from(s.flen);
                all.push((s.chunk, s.off, ci, s.klen, s.flen));
            }
            whole &= (n, b) == counts[ci];
        }
        if !whole && t.bytes < self.budget / 2 {
            return None;
        }
        all.sort_unstable_by_key(|e| (e.0, e.1));
        let records: Vec<(usize, &[u8], &[u8])> = all
            .iter()
            .map(|&(c, off, ci, klen, flen)| {
                let at = off as usize;
                let key_end = at + klen as usize;
                (ci, &t.chunks[c as usize][at..key_end], &t.chunks[c as usize][key_end..key_end + flen as usize])
            })
            .collect();
        Some(f(&records))
    }

    /// Notes that an image of the store's present state failed its checks.
    fn refuse_image(&self) {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).image_refused = true;
    }

    fn image_refused(&self) -> bool {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).image_refused
    }

    /// Whether the table holds frames mapped from an image.
    fn from_image(&self) -> bool {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).chunks.iter().any(|c| matches!(c, Chunk::Image(_)))
    }

    /// Whether any slot of the index is in use (a key held, or one removed since).
    fn holds_any(&self) -> bool {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).cats.iter().any(|c| c.used > 0)
    }

    /// Entries held (tests).
    pub(super) fn held(&self) -> usize {
        let t = self.inner.read().unwrap_or_else(|p| p.into_inner());
        t.cats.iter().map(|c| c.live()).sum()
    }

    #[cfg(test)]
    fn epoch(&self) -> u64 {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).epoch
    }

    /// Makes room in category `ci`'s index for `more` keys at once (instead of doubling
    /// it step by step as they come).
    fn reserve(&self, ci: usize, more: usize) {
        if self.budget == 0 {
            return;
        }
        // Never more keys than the budget can hold.
        let more = more.min(self.budget / ENTRY_OVERHEAD);
        let Some(need) = self.inner.read().unwrap_or_else(|p| p.into_inner()).cats[ci].slots_for(more) else { return };
        // Allocated and filled outside the lock: for 100,000 keys 6 MiB of new pages, whose
        // faults took 4-5 ms, during which a new process's first get waited on the lock.
        let slots = vec![NO_SLOT; need];
        let mut t = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if t.cats[ci].slots_for(more).is_some_and(|n| n <= need) {
            t.cats[ci].grow_into(slots);
        } else {
            t.cats[ci].reserve(more);
        }
    }

    /// Inserts a writer's frames (category, key, frame), just written to RocksDB, while the
    /// budget allows; returns false once nothing more fits. The index's room is made
    /// first, outside the lock, and the frames go in [`SECTION`] at a time, each under the
    /// lock once: reads wait for a section, not for the batch (see [`SECTION`]). It ends
    /// the [`Inner::replacing`] its batch's overwrites began. (The fill's frames go in
    /// through [`WarmTable::insert_pack`].)
    pub(super) fn insert(&self, frames: &[(usize, &[u8], &[u8])]) -> bool {
        if self.budget == 0 {
            return false;
        }
        if frames.is_empty() {
            self.inner.write().unwrap_or_else(|p| p.into_inner()).replacing = false;
            return true;
        }
        let mut counts: Vec<usize> = Vec::new();
        for &(ci, _, _) in frames {
            if counts.len() <= ci {
                counts.resize(ci + 1, 0);
            }
            counts[ci] += 1;
        }
        for (ci, &n) in counts.iter().enumerate().filter(|(_, &n)| n > 0) {
            self.reserve(ci, n);
        }
        let sections = frames.len().div_ceil(SECTION);
        for (s, section) in frames.chunks(SECTION).enumerate() {
            let mut t = self.inner.write().unwrap_or_else(|p| p.into_inner());
            // The last section puts the last of the overwritten keys back.
            if s + 1 == sections {
                t.replacing = false;
            }
            for &(ci, key, frame) in section {
                let hash = self.hash(key);
                let len = key.len() + frame.len();
                let cost = len + ENTRY_OVERHEAD;
                if t.bytes + cost > self.budget || u32::try_from(len).is_err() {
                    // Full: an older frame of this key must not outlive the new one, and
                    // the table no longer holds the whole store.
                    let Inner { cats, chunks, .. } = &mut *t;
                    cats[ci].remove(chunks, hash, key);
                    t.left_out();
                    t.replacing = false;
                    return false;
                }
                // The open chunk when the frame fits its spare room, else a new one (of its
                // own size for a frame larger than a chunk).
                let room = t.open.map_or(0, |c| t.chunks[c as usize].room());
                if room < len {
                    t.chunks.push(Chunk::Heap(Vec::with_capacity(len.max(CHUNK_BYTES))));
                    t.open = Some((t.chunks.len() - 1) as u32);
                }
                let Inner { cats, chunks, open, bytes, .. } = &mut *t;
                let chunk = open.expect("an open chunk");
                let Chunk::Heap(buf) = &mut chunks[chunk as usize] else { unreachable!("the open chunk is a writer's") };
                let off = buf.len();
                buf.extend_from_slice(key);
                buf.extend_from_slice(frame);
                let slot = Slot { hash, chunk, off: off as u32, klen: key.len() as u32, flen: frame.len() as u32 };
                // A replaced frame's bytes stay in their chunk until the table is emptied:
                // they stay counted.
                cats[ci].put_in(|c| &chunks[c as usize][..], slot, key);
                *bytes += cost;
            }
        }
        true
    }

    /// Inserts a pack made outside the lock, its buffer taken as a chunk, only if the
    /// table's epoch is still `epoch`. Returns false once nothing more fits or the epoch
    /// moved. The buffer goes into the table first; its entries are then indexed
    /// [`SECTION`] at a time, each under the lock once, the epoch checked each time (a
    /// removal in between empties the table, this chunk with it).
    fn insert_pack(&self, epoch: u64, pack: &mut Pack) -> bool {
        let fits = self.index_pack(epoch, pack);
        pack.entries.clear();
        pack.buf = Vec::with_capacity(PACK_BYTES + (PACK_BYTES >> 2));
        fits
    }

    fn index_pack(&self, epoch: u64, pack: &mut Pack) -> bool {
        // A fill's packs stop with the fill, between packs.
        let never = AtomicBool::new(false);
        let Some((chunk, taken, fits)) = self.index_chunk(epoch, Chunk::Heap(std::mem::take(&mut pack.buf)), &pack.entries, &never) else { return false };
        let mut t = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if t.epoch == epoch {
            let Chunk::Heap(buf) = &mut t.chunks[chunk as usize] else { unreachable!("a pack is a heap chunk") };
            // The bytes of the entries refused for want of room go (nothing points there).
            if let Some(&(_, _, off, _, _)) = pack.entries.get(taken) {
                buf.truncate(off as usize);
            }
            // Room the pack reserved and did not use is not kept for the table's life.
            if buf.capacity() - buf.len() > PACK_BYTES / 16 {
                buf.shrink_to_fit();
            }
        }
        fits
    }

    /// Puts `chunk` into the table and indexes `entries` (category, hash, offset in the
    /// chunk, key length, frame length), [`SECTION`] at a time, each under the lock once,
    /// the epoch checked each time (a removal in between empties the table, this chunk
    /// with it). Returns the chunk's number, the entries taken (indexed, or left out as
    /// overwritten since the fill began) and whether all fit; None once the epoch moved.
    fn index_chunk(&self, epoch: u64, chunk: Chunk, entries: &[(usize, u64, u32, u32, u32)], stop: &AtomicBool) -> Option<(u32, usize, bool)> {
        if self.budget == 0 {
            return None;
        }
        let chunk = {
            let mut t = self.inner.write().unwrap_or_else(|p| p.into_inner());
            if t.epoch != epoch || u32::try_from(t.chunks.len()).is_err() {
                return None;
            }
            t.chunks.push(chunk);
            (t.chunks.len() - 1) as u32
        };
        let mut taken = 0;
        for section in entries.chunks(SECTION) {
            let mut t = self.inner.write().unwrap_or_else(|p| p.into_inner());
            if t.epoch != epoch || stop.load(Ordering::Relaxed) {
                return None;
            }
            for &(ci, hash, ..) in section {
                t.cats[ci].prefetch(hash);
            }
            for &(ci, hash, off, klen, flen) in section {
                let cost = klen as usize + flen as usize + ENTRY_OVERHEAD;
                let Inner { cats, chunks, bytes, replaced, .. } = &mut *t;
                let key = &chunks[chunk as usize][off as usize..(off + klen) as usize];
                if *bytes + cost > self.budget {
                    cats[ci].remove(chunks, hash, key);
                    t.left_out();
                    return Some((chunk, taken, false));
                }
                if replaced.as_ref().is_some_and(|r| r.contains(&(ci, hash))) {
                    // Overwritten since the fill began: what it read may be the older frame.
                    // Not indexed; its bytes stay in the chunk, counted. Its writer puts the
                    // new frame in; a key not held now (its writer has yet to, or its hash
                    // only equals an overwritten key's) is left out of the table.
                    *bytes += cost;
                    taken += 1;
                    if cats[ci].get(chunks, hash, key).is_none() {
                        t.left_out();
                    }
                    continue;
                }
                // A key the pack holds twice is found in it: its bytes are a chunk already.
                cats[ci].put_in(|c| &chunks[c as usize][..], Slot { hash, chunk, off, klen, flen }, key);
                *bytes += cost;
                taken += 1;
            }
        }
        Some((chunk, taken, true))
    }
}

/// The fill starts at the [`FILL_AFTER_LOOKUPS`]th lookup of the table or
/// [`FILL_AFTER`] after the open, whichever comes first: a process that opens the cache
/// for a few reads (a compiler run of `make -j`, a CLI `get`) and ends sooner never fills
/// it. Filling a 100,000-entry cache read 40 MiB for such a process, and its close waited
/// for the fill to stop and freed what it had filled (a one-get process on that cache:
/// close 4-5.6 ms). A build's reads start the fill at once: its 32nd read of the table.
const FILL_AFTER_LOOKUPS: u32 = 32;
const FILL_AFTER: std::time::Duration = std::time::Duration::from_millis(20);

/// Whether the fill thread may start, shared by the table (whose lookups count) and the
/// thread (which waits for it, or for its stop).
#[derive(Default)]
struct Demand {
    /// Set once the fill is let go: lookups then stop counting (one relaxed load each).
    started: AtomicBool,
    lookups: std::sync::atomic::AtomicU32,
    /// Set by the lookup that starts the fill, or by the Warmer's drop (with its stop).
    woken: std::sync::Mutex<bool>,
    wake: std::sync::Condvar,
}

impl Demand {
    fn lookup(&self) {
        if self.lookups.fetch_add(1, Ordering::Relaxed) + 1 == FILL_AFTER_LOOKUPS {
            self.wake();
        }
    }

    fn wake(&self) {
        self.started.store(true, Ordering::Relaxed);
        *self.woken.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.wake.notify_all();
    }

    /// Waits until the fill may start (woken, or `after` passed): false when `stop` was
    /// set meanwhile (the store is closing).
    fn wait(&self, stop: &AtomicBool, after: std::time::Duration) -> bool {
        let woken = self.woken.lock().unwrap_or_else(|p| p.into_inner());
        let woken = self.wake.wait_timeout_while(woken, after, |w| !*w && !stop.load(Ordering::Relaxed)).map_or_else(|p| p.into_inner().0, |r| r.0);
        drop(woken);
        self.started.store(true, Ordering::Relaxed);
        !stop.load(Ordering::Relaxed)
    }
}

/// The thread that fills a store's warm table once reads call for it (see [`Demand`]);
/// stopped and joined on drop, before the store is closed.
pub(crate) struct Warmer {
    stop: Arc<AtomicBool>,
    demand: Arc<Demand>,
    thread: Option<JoinHandle<()>>,
}

impl Warmer {
    /// Starts the thread that fills `store`'s table, when it has one and the store holds
    /// entries (what a process writes goes in as it is written).
    pub(crate) fn start(store: Arc<Store>) -> Option<Warmer> {
        if !store.warm.enabled() || store.lock_state().counters.iter().all(|c| c.entries == 0) {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let demand = store.warm.demand.clone();
        let (s, d) = (stop.clone(), demand.clone());
        let thread = std::thread::Builder::new()
            .name("nexxo-warm".into())
            .spawn(move || {
                if d.wait(&s, FILL_AFTER) {
                    store.fill_warm_table(&s);
                }
            })
            .ok()?;
        Some(Warmer { stop, demand, thread: Some(thread) })
    }
}

/// Each category's (entries, stored bytes), as the store counts them.
fn entries_and_bytes(counters: &[crate::stats::Counters]) -> Vec<(u64, u64)> {
    counters.iter().map(|c| (c.entries, c.stored_bytes)).collect()
}

/// RocksDB's identity of the database in `dir` (its `IDENTITY` file: new for every
/// database created), which an image must name.
fn identity(dir: &std::path::Path) -> Option<Vec<u8>> {
    std::fs::read(dir.join("IDENTITY")).ok().filter(|id| !id.is_empty())
}

impl Drop for Warmer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.demand.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Store {
    /// Takes the warm table of `reader`, the read-only instance that answered reads until
    /// this store was opened for writing (`share/backing.rs`), with its fill stopped: the
    /// frames it read are this store's as well, so the build's next reads need not wait
    /// for a new fill. Taken only when both see the same store: the same categories, and
    /// the same last sequence number of RocksDB's (nothing written between the two opens,
    /// this one no recovery); else the reader keeps its table and this store fills its
    /// own. Called before this store takes any write.
    pub(crate) fn adopt_warm(&mut self, reader: &Store) -> bool {
        if self.recovered
            || self.cats.len() != reader.cats.len()
            || self.cats.iter().zip(&reader.cats).any(|(a, b)| a.name != b.name)
            || self.db.latest_sequence_number() != reader.db.latest_sequence_number()
        {
            return false;
        }
        self.warm.adopt(&reader.warm)
    }

    /// Entries its warm table holds (tests).
    #[doc(hidden)]
    pub fn debug_warm_entries(&self) -> usize {
        self.warm.held()
    }

    /// Whether its warm table answers for the whole store: a key it lacks is a miss
    /// without a RocksDB lookup (tests).
    #[doc(hidden)]
    pub fn debug_warm_complete(&self) -> bool {
        self.warm.inner.read().unwrap_or_else(|p| p.into_inner()).complete
    }

    /// Whether its warm table holds frames mapped from the last run's image (tests).
    #[doc(hidden)]
    pub fn debug_warm_from_image(&self) -> bool {
        self.warm.from_image()
    }

    /// Whether its warm table holds a frame a read of `key` would find (tests).
    #[doc(hidden)]
    pub fn debug_warm_holds(&self, category: &[u8], key: &[u8]) -> Result<bool> {
        Ok(self.warm.holds(self.category_index(category)?, key))
    }

    /// Fills the warm table until it is full, the epoch moves (a write replaced
    /// something) or `stop` is set. Errors end the fill: the table is an optimisation,
    /// and reads find what it lacks in RocksDB.
    fn fill_warm_table(&self, stop: &AtomicBool) {
        let epoch = self.warm.fill_begins();
        if self.fill_warm_table_from(epoch, stop) {
            self.warm.fill_covered(epoch);
        }
        self.warm.fill_ends();
    }

    /// True when the whole store went in.
    fn fill_warm_table_from(&self, epoch: u64, stop: &AtomicBool) -> bool {
        // Each category's entries and stored bytes.
        let counts = entries_and_bytes(&self.lock_state().counters);
        let (entries, stored) = counts.iter().fold((0u64, 0u64), |(n, b), c| (n + c.0, b + c.1));
        let image = self.warm_from_image(epoch, stop);
        if stored.saturating_add(entries.saturating_mul(ENTRY_OVERHEAD as u64)) <= self.warm.budget as u64 {
            match image {
                Some((true, true)) => true,
                // Part of the store: the scan adds the rest (skipping what the table holds).
                Some((true, false)) | None => self.scan_into_warm(epoch, stop, &counts),
                Some((false, _)) => false,
            }
        } else {
            // The last run's table stands for the newest entries (what that build used).
            if image.is_none() {
                self.newest_into_warm(epoch, stop);
            }
            false
        }
    }

    /// The fill from the image the last run left (see [`image`]): Some((whether every
    /// entry of the image went in, whether the image holds the whole store)) when it is an
    /// image of the store as it is now; None when there is no such image (the caller fills
    /// as without one) or the table holds frames already (adopted, or written by this
    /// process: a scan skips those).
    fn warm_from_image(&self, epoch: u64, stop: &AtomicBool) -> Option<(bool, bool)> {
        let path = self.path.join(image::IMAGE_FILE);
        // Its header first: an image of an older state (a run that wrote and could not
        // leave one) is not read whole.
        let (taken_at, taken_id) = image::taken_from(&path)?;
        if taken_at != self.db.latest_sequence_number() || identity(&self.path).is_none_or(|id| id != taken_id) || self.warm.holds_any() {
            return None;
        }
        let Some(img) = image::load(&path, |key| self.warm.hash(key)) else {
            self.warm.refuse_image();
            return None;
        };
        let (sequence, counts) = {
            let st = self.lock_state();
            (self.db.latest_sequence_number(), entries_and_bytes(&st.counters))
        };
        let same = img.sequence == sequence
            && img.identity == taken_id
            && img.categories.len() == self.cats.len()
            && img.categories.iter().zip(&self.cats).zip(&counts).all(|((i, c), n)| i.0 == c.name.as_bytes() && (i.1, i.2) == *n);
        if !same {
            return None;
        }
        for (ci, c) in img.held.iter().enumerate() {
            self.warm.reserve(ci, usize::try_from(c.0).unwrap_or(usize::MAX));
        }
        let whole = img.held.iter().zip(&counts).all(|(h, c)| h == c);
        let done = self.warm.index_chunk(epoch, Chunk::Image(img.map), &img.records, stop);
        Some((done.is_some_and(|(_, taken, fits)| fits && taken == img.records.len()), whole))
    }

    /// At a clean close, after the last write: leaves an image of the warm table for the
    /// next run (see [`image`]) when the table holds the whole store or at least half its
    /// budget's worth, unless the image there is of this very state already; removes one
    /// that no longer matches otherwise. Best effort: without an image the next run fills
    /// its table as before.
    pub(super) fn write_warm_image(&self) {
        let path = self.path.join(image::IMAGE_FILE);
        let st = self.lock_state();
        let sequence = self.db.latest_sequence_number();
        let counts = entries_and_bytes(&st.counters);
        let written = identity(&self.path).filter(|_| self.warm.enabled() && counts.iter().any(|c| c.0 > 0)).and_then(|identity| {
            // A run that wrote nothing keeps the image there (unless its fill found it
            // damaged): it is of this very state.
            if !self.warm.image_refused() && image::taken_from(&path).is_some_and(|(s, id)| s == sequence && id == identity) {
                return Some(true);
            }
            let categories = self.cats.iter().zip(&counts).map(|(c, &(e, b))| (c.name.as_bytes(), e, b)).collect();
            let taken = image::Taken { sequence, identity: &identity, categories };
            self.warm.for_image(&counts, |records| image::write(&self.path, &taken, records).is_ok())
        });
        if written != Some(true) {
            let _ = std::fs::remove_file(&path);
            image::remove_leftovers(&self.path);
        }
    }

    /// The whole store, category by category, in key order; `counts` is each category's
    /// (entries, stored bytes), which size its index. True when every entry went in (or
    /// was held already).
    fn scan_into_warm(&self, epoch: u64, stop: &AtomicBool, counts: &[(u64, u64)]) -> bool {
        let mut pack = Pack::new();
        // A table empty now holds no key the scan will meet but those written from here
        // on (before its iterator was made): the few such duplicates go in again with the
        // same frame (a later overwrite is refused as for any other key, see
        // `Inner::replaced`), which saves every other key a lookup of the table.
        let held = self.warm.holds_any();
        for ci in 0..self.cats.len() {
            self.warm.reserve(ci, counts.get(ci).map_or(0, |c| usize::try_from(c.0).unwrap_or(usize::MAX)));
            let mut it = self.db.raw_iterator_cf(self.cf(&self.cats[ci].cf_name));
            it.seek_to_first();
            let mut seen = 0usize;
            while let (Some(k), Some(v)) = (it.key(), it.value()) {
                seen += 1;
                if (seen.is_multiple_of(PACK_ENTRIES) || pack.is_full()) && stop.load(Ordering::Relaxed) {
                    return false;
                }
                // Keys this process wrote since its open are held already (the fill starts
                // once reads call for it, possibly after writes).
                if !(held && self.warm.holds(ci, k)) && !pack.add(&self.warm, epoch, ci, k, v) {
                    return false;
                }
                it.next();
            }
            if it.status().is_err() {
                return false;
            }
        }
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        (pack.is_empty() || self.warm.insert_pack(epoch, &mut pack)) && !pack.skipped
    }

    /// The newest entries across categories, up to the budget: each category's recency
    /// index read backwards (newest generation first) for keys and stored sizes, the
    /// candidates chosen by generation, their frames read in key order with one
    /// multi-get per category and chunk.
    fn newest_into_warm(&self, epoch: u64, stop: &AtomicBool) {
        let budget = self.warm.budget;
        // (generation, category, key, bytes in the table)
        let mut picked: Vec<(u32, usize, Box<[u8]>, usize)> = Vec::new();
        for ci in 0..self.cats.len() {
            let p = lru_prefix(&self.cats[ci].name);
            let mut it = self.index_iter(&p, &p);
            it.seek_to_last();
            let mut bytes = 0usize;
            while let (Some(k), Some(v)) = (it.key(), it.value()) {
                let Some((generation, key)) = parse_lru_key(&p, k) else { break };
                // Stored bytes are the key's and the frame's: what the table holds of it.
                let cost = decode_size(v).map_or(key.len(), |s| s.stored as usize) + ENTRY_OVERHEAD;
                bytes += cost;
                if bytes > budget || stop.load(Ordering::Relaxed) {
                    break;
                }
                if !self.warm.holds(ci, key) {
                    picked.push((generation, ci, key.into(), cost));
                }
                it.prev();
            }
            if it.status().is_err() {
                return;
            }
        }
        picked.sort_by_key(|e| std::cmp::Reverse(e.0));
        let mut total = 0usize;
        picked.retain(|e| {
            total += e.3;
            total <= budget
        });
        // Read in key order: the tables are sorted by key, so the frames come off the
        // memory map in runs, not one random page at a time.
        picked.sort_by(|a, b| (a.1, &a.2).cmp(&(b.1, &b.2)));
        for ci in 0..self.cats.len() {
            self.warm.reserve(ci, picked.iter().filter(|e| e.1 == ci).count());
        }
        let mut pack = Pack::new();
        for chunk in picked.chunks(PACK_ENTRIES) {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            for ci in 0..self.cats.len() {
                let keys: Vec<&[u8]> = chunk.iter().filter(|e| e.1 == ci).map(|e| &e.2[..]).collect();
                if keys.is_empty() {
                    continue;
                }
                let cf = self.cf(&self.cats[ci].cf_name);
                for (key, r) in keys.iter().zip(self.db.batched_multi_get_cf_opt(cf, keys.iter(), true, &self.read_opts)) {
                    match r {
                        Ok(Some(frame)) => {
                            if !pack.add(&self.warm, epoch, ci, key, &frame) {
                                return;
                            }
                        }
                        Ok(None) => {}
                        Err(_) => return,
                    }
                }
            }
        }
        if !pack.is_empty() {
            self.warm.insert_pack(epoch, &mut pack);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_epoch_and_clear() {
        let t = WarmTable::new(2, 4 * (1 + 10 + ENTRY_OVERHEAD));
        let f = [7u8; 10];
        assert!(t.insert(&[(0, &b"a"[..], &f[..]), (1, b"b", &f)]));
        assert_eq!(t.with(0, b"a", |v| v.len()), Some(10));
        assert_eq!(t.with(1, b"a", |v| v.len()), None, "categories are separate");
        // A replaced frame's bytes stay held (and counted) until the table is emptied:
        // a third key fits, a fourth does not.
        assert!(t.insert(&[(0, &b"a"[..], &[1u8; 10][..])]));
        assert_eq!(t.with(0, b"a", |v| v[0]), Some(1));
        assert!(t.insert(&[(0, &b"c"[..], &f[..])]));
        assert!(!t.insert(&[(0, &b"d"[..], &f[..])]));
        assert_eq!(t.with(0, b"d", |_| ()), None);
        // A larger frame for a held key that does not fit removes the old one.
        assert!(!t.insert(&[(0, &b"a"[..], &[2u8; 100][..])]));
        assert_eq!(t.with(0, b"a", |_| ()), None);
        assert_eq!(t.with(0, b"c", |v| v.len()), Some(10), "the others stay");
        // An insert made for an older epoch is refused.
        let e = t.epoch();
        t.clear();
        assert_eq!(t.with(1, b"b", |_| ()), None);
        assert_eq!(t.with(0, b"c", |_| ()), None);
        let mut pack = Pack::new();
        assert!(pack.push(&t, 0, b"x", &f));
        assert!(!t.insert_pack(e, &mut pack));
        assert!(pack.push(&t, 0, b"x", &f));
        assert!(t.insert_pack(t.epoch(), &mut pack));
        // A table with no budget holds nothing.
        let off = WarmTable::new(1, 0);
        assert!(!off.insert(&[(0, &b"a"[..], &f[..])]));
        assert_eq!(off.with(0, b"a", |_| ()), None);
    }

    /// A lookup finds nothing, at once, while the table's lock is held for writing (the
    /// caller reads RocksDB instead of waiting for the writer).
    #[test]
    fn a_lookup_does_not_wait_for_a_writer() {
        let t = WarmTable::new(1, 1 << 20);
        assert!(t.insert(&[(0, &b"a"[..], &[7u8; 10][..])]));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            let writing = t.inner.write().unwrap();
            s.spawn(|| tx.send(t.with(0, b"a", |v| v.len())).unwrap());
            let got = rx.recv_timeout(std::time::Duration::from_secs(10));
            drop(writing);
            assert_eq!(got, Ok(None), "the lookup waited for the writer");
        });
        assert_eq!(t.with(0, b"a", |v| v.len()), Some(10), "found once the lock is free");
    }

    fn kind<R>(l: Look<R>) -> &'static str {
        match l {
            Look::Found(_) => "found",
            Look::Absent => "absent",
            Look::Unknown => "unknown",
        }
    }

    /// An authoritative table of an empty store answers misses itself until something
    /// leaves a key of the store out of it; any other table never does.
    #[test]
    fn a_complete_table_answers_misses_until_a_key_is_left_out() {
        let f = [7u8; 10];
        let cost = 1 + 10 + ENTRY_OVERHEAD;
        let mut t = WarmTable::new(1, 3 * cost);
        assert_eq!(kind(t.look(0, b"x", |_| ())), "unknown", "not authoritative");
        t.make_authoritative(true);
        assert_eq!(kind(t.look(0, b"x", |_| ())), "absent");
        assert!(t.insert(&[(0, &b"a"[..], &f[..])]));
        assert_eq!(kind(t.look(0, b"a", |_| ())), "found");
        assert_eq!(kind(t.look(0, b"x", |_| ())), "absent");
        // An overwrite's keys are out until its insert: nothing is a miss for sure then.
        t.forget([(0, &b"a"[..])]);
        assert_eq!(kind(t.look(0, b"x", |_| ())), "unknown");
        assert_eq!(kind(t.look(0, b"a", |_| ())), "unknown");
        assert!(t.insert(&[(0, &b"a"[..], &f[..])]));
        assert_eq!(kind(t.look(0, b"x", |_| ())), "absent");
        // A frame refused for want of room: the store holds a key the table does not.
        assert!(t.insert(&[(0, &b"b"[..], &f[..])]));
        assert!(!t.insert(&[(0, &b"c"[..], &f[..]), (0, &b"d"[..], &f[..])]));
        assert_eq!(kind(t.look(0, b"x", |_| ())), "unknown");
        assert_eq!(kind(t.look(0, b"d", |_| ())), "unknown");
        // A removal empties the table: no longer complete.
        let mut t = WarmTable::new(1, 1 << 20);
        t.make_authoritative(true);
        assert!(t.insert(&[(0, &b"a"[..], &f[..]), (0, &b"b"[..], &f[..])]));
        t.clear();
        assert_eq!(kind(t.look(0, b"b", |_| ())), "unknown");
        // Nor is the table of a store that held entries at its open, until a fill covers it.
        let mut t = WarmTable::new(1, 1 << 20);
        t.make_authoritative(false);
        assert_eq!(kind(t.look(0, b"x", |_| ())), "unknown");
        let e = t.fill_begins();
        t.fill_covered(e);
        t.fill_ends();
        assert_eq!(kind(t.look(0, b"x", |_| ())), "absent", "a fill that covered the store");
        // A fill that left a frame out, or during which a removal came, does not.
        let mut t = WarmTable::new(1, cost);
        t.make_authoritative(false);
        let e = t.fill_begins();
        let mut pack = Pack::new();
        assert!(pack.push(&t, 0, b"a", &f) && pack.push(&t, 0, b"b", &f));
        assert!(!t.insert_pack(e, &mut pack));
        t.fill_covered(e);
        assert_eq!(kind(t.look(0, b"x", |_| ())), "unknown");
        let mut t = WarmTable::new(1, 1 << 20);
        t.make_authoritative(false);
        let e = t.fill_begins();
        t.clear();
        t.fill_covered(e);
        assert_eq!(kind(t.look(0, b"x", |_| ())), "unknown");
        // An overwrite during a fill keeps out the fill's frame of that key in that
        // category only: the same key of another category goes in.
        let mut t = WarmTable::new(2, 1 << 20);
        t.make_authoritative(false);
        let e = t.fill_begins();
        let mut pack = Pack::new();
        assert!(pack.push(&t, 0, b"k", &f) && pack.push(&t, 1, b"k", &f));
        t.forget([(1, &b"k"[..])]);
        assert!(t.insert(&[(1, &b"k"[..], &[8u8; 10][..])]));
        assert!(t.insert_pack(e, &mut pack));
        t.fill_covered(e);
        t.fill_ends();
        assert_eq!(t.look(0, b"k", |v| v[0]).found(), Some(7), "the other category's key");
        assert_eq!(t.look(1, b"k", |v| v[0]).found(), Some(8), "the writer's frame");
        assert_eq!(kind(t.look(0, b"x", |_| ())), "absent");
        // A fill's frame of an overwritten key the table does not hold (its writer has
        // yet to put the new one in) leaves the table incomplete.
        let mut t = WarmTable::new(1, 1 << 20);
        t.make_authoritative(false);
        let e = t.fill_begins();
        let mut pack = Pack::new();
        assert!(pack.push(&t, 0, b"k", &f));
        t.forget([(0, &b"k"[..])]);
        assert!(t.insert_pack(e, &mut pack));
        assert!(t.insert(&[(0, &b"k"[..], &[8u8; 10][..])]));
        t.fill_covered(e);
        assert_eq!(kind(t.look(0, b"x", |_| ())), "unknown");
    }

    /// Inserts and packs of many sections index every entry that fits, stop where the
    /// budget does, and keep only the bytes of what they indexed.
    #[test]
    fn many_sections_index_every_entry_that_fits() {
        let key = |i: usize| format!("key{i:04}").into_bytes();
        let cost = 7 + 10 + ENTRY_OVERHEAD;
        let fits = 3 * SECTION + 5;
        let t = WarmTable::new(2, fits * cost);
        let frames: Vec<Vec<u8>> = (0..4 * SECTION).map(|i| vec![i as u8; 10]).collect();
        let keys: Vec<Vec<u8>> = (0..4 * SECTION).map(key).collect();
        let batch: Vec<(usize, &[u8], &[u8])> = (0..2 * SECTION + 3).map(|i| (i % 2, &keys[i][..], &frames[i][..])).collect();
        assert!(t.insert(&batch));
        for i in 0..2 * SECTION + 3 {
            assert_eq!(t.with(i % 2, &keys[i], |v| v.to_vec()).as_deref(), Some(&frames[i][..]), "entry {i}");
        }
        // A pack of the rest: what fits is indexed, the rest is not, and its bytes go.
        let mut pack = Pack::new();
        for i in 2 * SECTION + 3..4 * SECTION {
            assert!(pack.push(&t, i % 2, &keys[i], &frames[i]));
        }
        let held = t.inner.read().unwrap().chunks.iter().map(|c| c.len()).sum::<usize>();
        assert!(!t.insert_pack(t.epoch(), &mut pack), "the budget ran out");
        for i in 2 * SECTION + 3..4 * SECTION {
            let want = (i < fits).then(|| frames[i].clone());
            assert_eq!(t.with(i % 2, &keys[i], |v| v.to_vec()), want, "entry {i}");
        }
        let inner = t.inner.read().unwrap();
        assert_eq!(inner.chunks.iter().map(|c| c.len()).sum::<usize>(), held + (fits - (2 * SECTION + 3)) * 17);
        assert_eq!(inner.bytes, fits * cost);
    }

    /// A batch of sets that overwrote keys takes only those keys out; a fill running
    /// meanwhile inserts nothing of them (what it read may be older); past REPLACED_MAX
    /// overwritten keys during one fill, the epoch moves and the fill stops.
    #[test]
    fn overwritten_keys_leave_the_table_and_a_running_fill_does_not_bring_them_back() {
        let t = WarmTable::new(1, 1 << 20);
        let f = [7u8; 10];
        assert!(t.insert(&[(0, &b"a"[..], &f[..]), (0, b"b", &f)]));
        let e = t.epoch();
        t.forget([(0, &b"a"[..])]);
        assert_eq!(t.with(0, b"a", |_| ()), None);
        assert_eq!(t.with(0, b"b", |v| v.len()), Some(10), "the other keys stay");
        assert_eq!(t.epoch(), e, "no fill runs: the epoch stays");
        let epoch = t.fill_begins();
        t.forget([(0, &b"c"[..])]);
        let mut pack = Pack::new();
        assert!(pack.push(&t, 0, b"c", &[1u8; 10]));
        assert!(pack.push(&t, 0, b"d", &[1u8; 10]));
        assert!(t.insert_pack(epoch, &mut pack));
        assert_eq!(t.with(0, b"c", |_| ()), None, "the fill's frame of an overwritten key");
        assert_eq!(t.with(0, b"d", |v| v.len()), Some(10));
        assert!(pack.push(&t, 0, b"c", &f));
        assert!(t.insert_pack(epoch, &mut pack));
        assert_eq!(t.with(0, b"c", |_| ()), None);
        // The writer's frame of that key goes in.
        assert!(t.insert(&[(0, &b"c"[..], &f[..])]));
        assert_eq!(t.with(0, b"c", |v| v.len()), Some(10));
        t.fill_ends();
        let epoch = t.fill_begins();
        let keys: Vec<Vec<u8>> = (0..=REPLACED_MAX).map(|i| i.to_le_bytes().to_vec()).collect();
        t.forget(keys.iter().map(|k| (0, &k[..])));
        assert_ne!(t.epoch(), epoch);
        let mut pack = Pack::new();
        assert!(pack.push(&t, 0, b"e", &f));
        assert!(!t.insert_pack(epoch, &mut pack), "the fill stops");
        assert_eq!(t.with(0, b"d", |v| v.len()), Some(10), "what the table held stays");
    }

    /// The fill waits for its demand: the 32nd lookup (not one before), its timer, or
    /// the stop of a closing store (then it does not fill).
    #[test]
    fn the_fill_starts_at_the_32nd_lookup_its_timer_or_never_when_stopped() {
        use std::time::Duration;
        let t = Arc::new(WarmTable::new(1, 1 << 20));
        let stop = Arc::new(AtomicBool::new(false));
        let waiter = |t: &Arc<WarmTable>, stop: &Arc<AtomicBool>, after: Duration| {
            let (d, s) = (t.demand.clone(), stop.clone());
            std::thread::spawn(move || d.wait(&s, after))
        };
        let w = waiter(&t, &stop, Duration::from_secs(600));
        for i in 0..FILL_AFTER_LOOKUPS - 1 {
            assert_eq!(t.with(0, format!("k{i}").as_bytes(), |_| ()), None);
        }
        std::thread::sleep(Duration::from_millis(100));
        assert!(!w.is_finished(), "the fill started before its 32nd lookup");
        assert_eq!(t.with(0, b"last", |_| ()), None);
        assert!(w.join().unwrap(), "the 32nd lookup starts the fill");
        assert!(t.demand.started.load(Ordering::Relaxed));

        // No lookups: the timer starts it.
        let t = Arc::new(WarmTable::new(1, 1 << 20));
        assert!(waiter(&t, &stop, Duration::from_millis(20)).join().unwrap());

        // A store closing before either: woken with its stop set, the thread does not fill.
        let t = Arc::new(WarmTable::new(1, 1 << 20));
        let w = waiter(&t, &stop, Duration::from_secs(600));
        std::thread::sleep(Duration::from_millis(20));
        stop.store(true, Ordering::Relaxed);
        t.demand.wake();
        assert!(!w.join().unwrap());
    }

    fn frame(i: u32) -> Vec<u8> {
        let n = 1 + (i as usize * 7) % 300;
        (0..n).map(|j| (i as usize + j) as u8).collect()
    }

    /// Many keys, through writers' inserts and packs, across index growth and chunks:
    /// every key finds its own frame, in its own category, and no other.
    #[test]
    fn many_keys_across_growth_packs_and_chunks() {
        let t = WarmTable::new(2, 1 << 30);
        let key = |i: u32| format!("k{i}").into_bytes();
        // Writers' frames, one at a time (the index grows from empty).
        for i in 0..3000 {
            assert!(t.insert(&[((i % 2) as usize, &key(i)[..], &frame(i)[..])]));
        }
        // Packs: new keys, and keys the table holds (replaced), some twice in one pack.
        let e = t.epoch();
        let mut pack = Pack::new();
        for i in (2000..6000).chain(5990..6000) {
            let (k, f) = (key(i), frame(i + 1));
            if !pack.push(&t, (i % 2) as usize, &k, &f) {
                assert!(t.insert_pack(e, &mut pack));
                assert!(pack.push(&t, (i % 2) as usize, &k, &f));
            }
        }
        assert!(t.insert_pack(e, &mut pack));
        for i in 0..6000u32 {
            let want = if i < 2000 { frame(i) } else { frame(i + 1) };
            assert_eq!(t.with((i % 2) as usize, &key(i), |v| v.to_vec()), Some(want), "key {i}");
            assert_eq!(t.with(((i + 1) % 2) as usize, &key(i), |_| ()), None, "key {i} in the other category");
        }
        assert_eq!(t.with(0, b"k6000", |_| ()), None);
        // A pack made before an epoch moved is refused.
        let mut late = Pack::new();
        assert!(late.push(&t, 0, b"late", b"frame"));
        t.clear();
        assert!(!t.insert_pack(e, &mut late));
        assert_eq!(t.with(0, b"late", |_| ()), None);
        assert_eq!(t.with(0, b"k0", |_| ()), None);
    }

    /// A pack that does not fit is taken up to the budget; a key it would have replaced
    /// is removed, not left with its older frame; a removed key can come back.
    #[test]
    fn a_pack_past_the_budget_stops_there() {
        let cost = 2 + 10 + ENTRY_OVERHEAD;
        let t = WarmTable::new(1, 5 * cost);
        assert!(t.insert(&[(0, &b"k9"[..], &[1u8; 10][..])]));
        let mut pack = Pack::new();
        for i in 0..8u8 {
            assert!(pack.push(&t, 0, format!("k{i}").as_bytes(), &[i; 10]));
        }
        assert!(pack.push(&t, 0, b"k9", &[9u8; 10]));
        assert!(!t.insert_pack(t.epoch(), &mut pack));
        for i in 0..4u8 {
            assert_eq!(t.with(0, format!("k{i}").as_bytes(), |v| v.to_vec()), Some(vec![i; 10]));
        }
        // k4 did not fit: k9, which the pack would have replaced later, keeps its frame
        // (the pack stopped before it); a key refused for room removes its older frame.
        assert_eq!(t.with(0, b"k4", |_| ()), None);
        assert_eq!(t.with(0, b"k9", |v| v[0]), Some(1));
        assert!(!t.insert(&[(0, &b"k9"[..], &[3u8; 10][..])]));
        assert_eq!(t.with(0, b"k9", |_| ()), None);
        t.clear();
        assert!(t.insert(&[(0, &b"k9"[..], &[4u8; 10][..])]));
        assert_eq!(t.with(0, b"k9", |v| v[0]), Some(4));
    }
}
