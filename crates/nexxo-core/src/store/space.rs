//! The space guard: refuse new data before RocksDB runs the disk full.

use std::path::Path;

use crate::error::{Error, Result};

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
    pub(super) fn admit(&mut self, path: &Path, incoming: u64, write_buffers: u64, table_bytes: impl FnOnce() -> u64) -> Result<()> {
        self.admit_with(incoming, || Some((fs_space(path)?, write_buffers, table_bytes())))
            .map_err(|(free, reserve)| {
                Error::NoSpace(format!(
                    "{}: {free} bytes free, under the reserve of {reserve} kept for the store's own flushes and compactions",
                    path.display()
                ))
            })
    }

    /// The guard's arithmetic: `measure` gives ((free, total) of the file system, write
    /// buffers, table bytes) when a check is due. Refusals carry (free, reserve).
    fn admit_with(&mut self, incoming: u64, measure: impl FnOnce() -> Option<((u64, u64), u64, u64)>) -> Result<(), (u64, u64)> {
        self.written_since_check += incoming;
        if !self.short && self.written_since_check < self.check_after {
            return Ok(());
        }
        let Some(((free, total), write_buffers, table_bytes)) = measure() else { return Ok(()) };
        let reserve = (total / 50).min(256 << 20) + 2 * write_buffers + table_bytes;
        self.written_since_check = 0;
        if free < reserve.saturating_add(incoming) {
            self.short = true;
            return Err((free, reserve));
        }
        self.short = false;
        self.check_after = (free - reserve) / 4;
        Ok(())
    }
}

/// Free and total bytes of the file system holding `path`.
pub(super) fn fs_space(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let unit = st.f_frsize as u64;
    Some((st.f_bavail as u64 * unit, st.f_blocks as u64 * unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn refuses_under_the_reserve_and_resumes_when_space_is_freed() {
        let mut g = SpaceGuard::default();
        // 1 GiB file system: 2% = ~20 MiB, plus 2 x 4 MiB write buffers, plus 10 MiB of tables.
        let total = 1024 * MIB;
        let reserve = total / 50 + 8 * MIB + 10 * MIB;
        let fs = |free: u64| move || Some(((free, total), 4 * MIB, 10 * MIB));
        assert_eq!(g.admit_with(MIB, fs(reserve + MIB)), Ok(()), "exactly enough");
        // The next check is due after a quarter of the margin (0 here): every write checks.
        assert_eq!(g.admit_with(MIB + 1, fs(reserve + MIB)), Err((reserve + MIB, reserve)));
        assert!(g.short);
        // While short, every write measures again; freed space lets writes in.
        assert_eq!(g.admit_with(MIB, fs(reserve + 401 * MIB)), Ok(()));
        assert!(!g.short);
        assert_eq!(g.check_after, 100 * MIB + MIB / 4);
        // Until a quarter of the margin is written, no measurement is taken.
        assert_eq!(g.admit_with(100 * MIB, || panic!("measured too early")), Ok(()));
        assert_eq!(g.admit_with(MIB, fs(0)), Err((0, reserve)));
    }

    #[test]
    fn the_reserve_is_capped_and_unknown_space_admits() {
        let mut g = SpaceGuard::default();
        // A 100 TiB file system reserves 256 MiB, not 2 TiB.
        let total = 100 << 40;
        assert_eq!(g.admit_with(1, || Some(((256 * MIB, total), 0, 0))), Err((256 * MIB, 256 * MIB)));
        assert_eq!(g.admit_with(1, || Some(((256 * MIB + 1, total), 0, 0))), Ok(()));
        // statvfs failing (None) never blocks a write.
        let mut g = SpaceGuard { short: true, ..Default::default() };
        assert_eq!(g.admit_with(u64::MAX / 2, || None), Ok(()));
    }
}
