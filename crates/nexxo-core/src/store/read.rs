//! Reads: one key, or many with RocksDB's multi-get, into new buffers or one packed
//! buffer; a damaged frame is dropped and read as a miss.

use std::sync::atomic::Ordering;

use super::pool::{in_parallel, read_pool, work_threads, READ_KEYS_PER_THREAD};
use super::{by_category, Store};
use super::warm::Look;
use crate::codec::{self, Header};
use crate::error::{Error, Result};
use crate::limits::check_key;

/// Decodes a frame into a new vector: (its generation, the value).
pub(super) fn decode_owned(category: &str, key: &[u8], frame: &[u8]) -> Result<(u32, Vec<u8>), codec::CodecError> {
    decode_owned_with(category, key, frame, &Header::parse(frame)?)
}

/// [`decode_owned`] with the frame's header already parsed.
pub(super) fn decode_owned_with(category: &str, key: &[u8], frame: &[u8], h: &Header) -> Result<(u32, Vec<u8>), codec::CodecError> {
    let mut out = vec![0u8; h.value_len as usize];
    codec::decode_with_header(category.as_bytes(), key, frame, h, &mut out)?;
    Ok((h.generation, out))
}

/// What a batch read's lookup found for one key.
pub(super) enum Looked<'a> {
    /// A frame to decode (category index, frame, its parsed header).
    Frame(usize, FrameBytes<'a>, Header),
    /// Not there (or dropped as damaged): a miss of this category, not yet counted.
    Miss(usize),
    Failed(Error),
}

/// A frame as a batch read found it: pinned in RocksDB, or copied from the warm table
/// (whose lock is not held while a batch decodes).
pub(super) enum FrameBytes<'a> {
    Pinned(rocksdb::DBPinnableSlice<'a>),
    Copied(Vec<u8>),
}

impl std::ops::Deref for FrameBytes<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FrameBytes::Pinned(p) => p,
            FrameBytes::Copied(v) => v,
        }
    }
}

/// The bytes a packed answer needs: `gap` per key plus every found value.
pub(super) fn packed_len(looked: &[Looked<'_>], gap: usize) -> usize {
    looked.iter().map(|l| gap + if let Looked::Frame(_, _, h) = l { h.value_len as usize } else { 0 }).sum()
}

/// The answer of [`Store::batch_get_into`].
pub enum PackedRead {
    /// Each key's outcome (its value's length, `None` for a miss, or its error) and the
    /// bytes of `out` written.
    Written(Vec<Result<Option<usize>>>, usize),
    /// `out` is too short: the bytes needed. Nothing was counted.
    TooSmall(usize),
}

impl Store {
    /// Reads a value. A damaged frame is dropped and reported as a miss.
    pub fn get(&self, category: &[u8], key: &[u8]) -> Result<Option<Vec<u8>>> {
        let ci = self.category_index(category)?;
        check_key(key)?;
        let name = &self.cats[ci].name;
        match self.warm.look(ci, key, |frame| decode_owned(name, key, frame).map_err(|_| frame.to_vec())) {
            Look::Found(r) => return self.finish_warm(ci, key, r),
            Look::Absent => return Ok(self.miss(ci)),
            Look::Unknown => {}
        }
        let Some(frame) = self.read_frame(ci, key)? else { return Ok(self.miss(ci)) };
        let decoded = decode_owned(&self.cats[ci].name, key, &frame);
        self.finish_read(ci, key, &frame, decoded.ok())
    }

    /// Reads a value into `buf`. Returns the value's length, `None` on a miss, or
    /// `Error::BufferTooSmall(needed)` when `buf` is too short (nothing counted then).
    pub fn get_into(&self, category: &[u8], key: &[u8], buf: &mut [u8]) -> Result<Option<usize>> {
        let ci = self.category_index(category)?;
        check_key(key)?;
        let name = self.cats[ci].name.as_bytes();
        let warm = self.warm.look(ci, key, |frame| {
            let Ok(h) = Header::parse(frame) else { return Ok(Err(frame.to_vec())) };
            if h.value_len as usize > buf.len() {
                return Err(Error::BufferTooSmall(h.value_len as usize));
            }
            Ok(codec::decode_with_header(name, key, frame, &h, buf).map(|n| (h.generation, n)).map_err(|_| frame.to_vec()))
        });
        match warm {
            Look::Found(r) => return self.finish_warm(ci, key, r?),
            Look::Absent => return Ok(self.miss(ci)),
            Look::Unknown => {}
        }
        let Some(frame) = self.read_frame(ci, key)? else { return Ok(self.miss(ci)) };
        let header = Header::parse(&frame);
        if let Ok(h) = &header {
            if h.value_len as usize > buf.len() {
                return Err(Error::BufferTooSmall(h.value_len as usize));
            }
        }
        let name = self.cats[ci].name.as_bytes();
        let decoded = header.and_then(|h| codec::decode_with_header(name, key, &frame, &h, buf).map(|n| (h.generation, n)));
        self.finish_read(ci, key, &frame, decoded.ok())
    }

    /// [`Store::finish_read`] for a frame of the warm table, decoded under its lock: a
    /// frame that failed comes out as a copy, dropped here once the lock is released.
    fn finish_warm<T>(&self, ci: usize, key: &[u8], decoded: Result<(u32, T), Vec<u8>>) -> Result<Option<T>> {
        match decoded {
            Ok(hit) => self.finish_read(ci, key, &[], Some(hit)),
            Err(frame) => self.finish_read(ci, key, &frame, None),
        }
    }

    pub(super) fn miss<T>(&self, ci: usize) -> Option<T> {
        self.cats[ci].misses.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Counts a read of `frame` and returns its value: `decoded` is (generation, value), or
    /// None for a frame that failed to decode, which is dropped (if it is still there)
    /// and makes the read a miss.
    pub(super) fn finish_read<T>(&self, ci: usize, key: &[u8], frame: &[u8], decoded: Option<(u32, T)>) -> Result<Option<T>> {
        match decoded {
            Some((generation, value)) => {
                self.cats[ci].hits.fetch_add(1, Ordering::Relaxed);
                self.note_use(ci, key, generation);
                Ok(Some(value))
            }
            None => {
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

    pub(super) fn batch_get_here(&self, keys: &[(&[u8], &[u8])]) -> Vec<Result<Option<Vec<u8>>>> {
        let looked = self.look_up(keys);
        keys.iter()
            .zip(looked)
            .map(|((_, key), l)| match l {
                Looked::Frame(ci, frame, h) => {
                    let decoded = decode_owned_with(&self.cats[ci].name, key, &frame, &h);
                    self.finish_read(ci, key, &frame, decoded.ok())
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
    pub(super) fn look_up<'s>(&'s self, keys: &[(&[u8], &[u8])]) -> Vec<Looked<'s>> {
        // Frames the warm table holds are copied out; the keys it says the store does not
        // hold are misses; the others (index, category) are looked up in RocksDB below.
        let mut unknown = Vec::new();
        let mut out: Vec<Looked<'s>> = Vec::with_capacity(keys.len());
        for (i, (cat, key)) in keys.iter().enumerate() {
            out.push(match self.category_index(cat).and_then(|ci| check_key(key).map(|_| ci)) {
                Ok(ci) => match self.warm.look(ci, key, |f| Header::parse(f).map(|h| (h, f.to_vec()))) {
                    Look::Found(Ok((h, f))) => Looked::Frame(ci, FrameBytes::Copied(f), h),
                    Look::Absent => Looked::Miss(ci),
                    Look::Found(Err(_)) | Look::Unknown => {
                        unknown.push((i, ci));
                        Looked::Miss(ci)
                    }
                },
                Err(e) => Looked::Failed(e),
            });
        }
        for (ci, idxs) in by_category(unknown.into_iter()) {
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
                        Ok(h) => Looked::Frame(ci, FrameBytes::Pinned(frame), h),
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
    pub(super) fn decode_looked(&self, keys: &[(&[u8], &[u8])], looked: Vec<Looked<'_>>, out: &mut [u8], gap: usize) -> (Vec<Result<Option<usize>>>, usize) {
        let mut at = 0;
        let outcomes = keys
            .iter()
            .zip(looked)
            .map(|((_, key), l)| {
                at += gap;
                match l {
                    Looked::Frame(ci, frame, h) => {
                        let decoded = codec::decode_with_header(self.cats[ci].name.as_bytes(), key, &frame, &h, &mut out[at..]).map(|n| (h.generation, n));
                        let r = self.finish_read(ci, key, &frame, decoded.ok());
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
    pub(super) fn read_frame(&self, ci: usize, key: &[u8]) -> Result<Option<rocksdb::DBPinnableSlice<'_>>> {
        match self.db.get_pinned_cf_opt(self.cf(&self.cats[ci].cf_name), key, &self.read_opts) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == rocksdb::ErrorKind::Corruption => {
                self.drop_unreadable(ci, key);
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}
