//! A counter in a small file of the cache directory, mapped by every process that shares
//! the cache: the owner adds one after each write that overwrites or removes entries
//! (before the write is acknowledged); a client that reads the store directly catches up
//! whenever the counter moved since its last catch-up, so it never serves an entry that an
//! acknowledged write replaced or removed. Writes of new keys do not move it: a key a
//! client does not find is asked of the owner. A second counter moves with every write: a
//! client's reader catches up in the background when it moved, ahead of its reads. Two
//! more count the batches clients journaled and the journals they made (`journal.rs`).

use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

pub const CHANGES_FILE: &str = "nexxo.changes";
const LEN: usize = 4096;

pub(crate) struct Changes {
    map: *mut libc::c_void,
}

// The mapping is only touched through the atomic at its start.
unsafe impl Send for Changes {}
unsafe impl Sync for Changes {}

impl Changes {
    /// Maps `dir`'s counter file, creating it (zero) when missing.
    pub fn open(dir: &Path) -> Result<Changes> {
        let path = dir.join(CHANGES_FILE);
        let io = |e: std::io::Error| Error::from(e).with_context(&path.display().to_string());
        let f = super::sys::open_private(&path)?;
        if f.metadata().map_err(io)?.len() < LEN as u64 {
            f.set_len(LEN as u64).map_err(io)?;
        }
        let map = unsafe { libc::mmap(std::ptr::null_mut(), LEN, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, f.as_raw_fd(), 0) };
        if map == libc::MAP_FAILED {
            return Err(io(std::io::Error::last_os_error()));
        }
        Ok(Changes { map })
    }

    /// The counter at `index` (0: writes that replaced or removed entries; 1: every
    /// write, which lets readers catch up ahead of their reads).
    fn counter(&self, index: usize) -> &AtomicU64 {
        // Page-aligned, so aligned for AtomicU64s; lives as long as `self`.
        unsafe { &*(self.map as *const AtomicU64).add(index) }
    }

    /// Called by the owner after each write, before it is acknowledged.
    pub fn note_write(&self, replaced: bool) {
        self.counter(1).fetch_add(1, Ordering::SeqCst);
        if replaced {
            self.counter(0).fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Writes that replaced or removed entries.
    pub fn load(&self) -> u64 {
        self.counter(0).load(Ordering::SeqCst)
    }

    /// Every write.
    pub fn writes(&self) -> u64 {
        self.counter(1).load(Ordering::SeqCst)
    }

    /// Called by a client after each batch it journaled, before it is acknowledged (see
    /// `journal.rs`).
    pub fn note_journaled(&self) {
        self.counter(2).fetch_add(1, Ordering::SeqCst);
    }

    /// Batches journaled by clients.
    pub fn journaled(&self) -> u64 {
        self.counter(2).load(Ordering::SeqCst)
    }

    /// Called by a client after it made a journal, before its first record.
    pub fn note_journal_created(&self) {
        self.counter(3).fetch_add(1, Ordering::SeqCst);
    }

    /// Journals made.
    pub fn journals_created(&self) -> u64 {
        self.counter(3).load(Ordering::SeqCst)
    }

    /// The journal counter as of the owner's last complete take-in: a new owner that finds
    /// it equal to [`Changes::journaled`] has nothing to take in.
    pub fn taken_in(&self) -> u64 {
        self.counter(4).load(Ordering::SeqCst)
    }

    pub fn note_taken_in(&self, journaled: u64) {
        self.counter(4).store(journaled, Ordering::SeqCst);
    }
}

impl Drop for Changes {
    fn drop(&mut self) {
        unsafe { libc::munmap(self.map, LEN) };
    }
}
