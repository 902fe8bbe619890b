//! The cache directory around the database: the format marker, what else may be in a
//! directory that is still "new", the trust check, and where a damaged store is moved.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

// Files that sharing (`crate::share`) keeps in the directory; a directory holding only
// these (and a format marker being written) is still new.
/// The socket the owning process serves, inside the cache directory (mode 0700).
pub const SOCKET_FILE: &str = "nexxo.sock";
/// Held (flock) while a process decides whether it serves or connects, and while an
/// owner stops serving: the two never interleave, so an opener always finds either a
/// serving owner or no owner at all.
pub const ELECTION_FILE: &str = "NEXXO_OPEN.lock";

/// The file that marks a directory as a nexxo cache and names its on-disk format.
pub const FORMAT_FILE: &str = "NEXXO_FORMAT";

/// Written when a read finds a damaged table; the next open repairs the store.
pub const REPAIR_MARKER: &str = "NEXXO_NEEDS_REPAIR";

/// The on-disk format (major) this build writes. Format 2 (1.1): category tables are
/// PlainTable, memory-mapped. Format 1 (1.0, block-based tables) is emptied at the first
/// writable open (see [`Store::open`]).
pub const STORE_FORMAT: u32 = 2;

/// What a directory holds, judged before RocksDB touches it.
pub(super) enum DirState {
    /// Missing or empty: a new cache may be made here.
    New,
    /// A cache of an older format, which this build does not read.
    Older(u32),
    /// A cache of this format.
    Cache,
    /// A store whose format marker is unreadable (damaged) beside RocksDB's files.
    DamagedMarker,
}

/// Refuses, before anything is written into it, a directory that is not a cache this
/// build may open (see [`Store::open`]'s errors).
pub(crate) fn judge_dir(path: &Path) -> Result<()> {
    read_dir_state(path).map(|_| ())
}

pub(super) fn read_dir_state(path: &Path) -> Result<DirState> {
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
    match std::fs::read(&marker) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let version = text.trim().strip_prefix("nexxo-cache format ").and_then(|v| v.parse::<u32>().ok());
            match version {
                Some(STORE_FORMAT) => Ok(DirState::Cache),
                Some(v) if (1..STORE_FORMAT).contains(&v) => Ok(DirState::Older(v)),
                Some(v) if v > STORE_FORMAT => Err(Error::Incompatible(format!(
                    "{} holds on-disk format {v}; this library ({}) reads format {STORE_FORMAT}",
                    path.display(),
                    env!("CARGO_PKG_VERSION")
                ))),
                // A damaged marker beside a store's files (RocksDB's CURRENT or a
                // MANIFEST) is a cache whose marker was damaged: the open rewrites it.
                _ if store_files(path).is_ok_and(|f| f.iter().any(|n| n == "CURRENT" || n.starts_with("MANIFEST-"))) => Ok(DirState::DamagedMarker),
                _ => Err(Error::Incompatible(format!("{} has an unreadable {FORMAT_FILE} file", marker.display()))),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let entries = std::fs::read_dir(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
            // The files of sharing (the election lock, a socket) and a format marker being
            // written are there before the marker: the directory is new all the same.
            let ours = |name: &std::ffi::OsStr| {
                name == ELECTION_FILE || name == SOCKET_FILE || name.to_string_lossy().starts_with(FORMAT_TMP_PREFIX)
            };
            if entries.filter_map(|e| e.ok()).all(|e| ours(&e.file_name())) {
                Ok(DirState::New)
            } else if marker.exists() {
                // Another process wrote the marker between our read and the listing (N
                // processes creating a new directory at once): judge again.
                read_dir_state(path)
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

pub(super) const FORMAT_TMP_PREFIX: &str = "NEXXO_FORMAT.tmp";

pub(super) fn write_format_file(path: &Path) -> Result<()> {
    replace_file(path, FORMAT_FILE, format!("nexxo-cache format {STORE_FORMAT}\n").as_bytes(), true)?;
    Ok(())
}

/// Replaces `dir/name` with `contents` atomically: written to `name.tmp.<pid>` (synced
/// when `sync`), then renamed over it; the temporary file is removed on failure.
pub(crate) fn replace_file(dir: &Path, name: &str, contents: &[u8], sync: bool) -> std::io::Result<()> {
    replace_file_with(dir, name, 0o666, sync, |f| f.write_all(contents))
}

/// [`replace_file`] with the contents written by `write` into the new file (created with
/// `mode`, less the umask), for contents too large to build in memory first.
pub(crate) fn replace_file_with(dir: &Path, name: &str, mode: u32, sync: bool, write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = dir.join(format!("{name}.tmp.{}", std::process::id()));
    let done = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| {
            write(&mut f)?;
            if sync {
                f.sync_all()?;
            }
            Ok(())
        })
        .and_then(|()| std::fs::rename(&tmp, dir.join(name)));
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

/// Whether `path` (an existing directory) may be used as a cache as it is.
pub(crate) fn is_trusted(path: &Path, dir_mode: u32) -> bool {
    distrust(path, dir_mode).is_none()
}

/// Why an existing cache directory is not to be trusted, if it is not: a value someone
/// else wrote into a cache becomes code in the build that reads it.
pub(super) fn distrust(path: &Path, dir_mode: u32) -> Option<String> {
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

/// The sibling a damaged store is moved to: `<path>.corrupt-<unix seconds>[-n]`.
pub(super) fn aside_path(path: &Path, now: u64) -> PathBuf {
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

/// The names in `path` that belong to the RocksDB store (not the directory's own files:
/// the format marker, the sharing files, this library's log, a salvage in progress).
pub(super) fn store_files(path: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(path)? {
        let name = e?.file_name().to_string_lossy().into_owned();
        let rocksdb = matches!(name.as_str(), "CURRENT" | "IDENTITY" | "LOCK" | "lost")
            || ["MANIFEST-", "OPTIONS-", "LOG.old."].iter().any(|p| name.starts_with(p))
            || [".sst", ".log", ".blob", ".dbtmp"].iter().any(|x| name.ends_with(x) && name.as_bytes()[0].is_ascii_digit());
        if rocksdb {
            names.push(name);
        }
    }
    Ok(names)
}

/// What a clean close wrote about the MANIFEST: its name and size. RocksDB appends to a
/// MANIFEST and never shortens it, so an open that finds the same MANIFEST shorter knows
/// it was cut (RocksDB would open it and silently lose the tables its tail listed).
pub(super) const CLOSE_RECORD: &str = "NEXXO_CLOSED";

/// Records the MANIFEST's name and size (best effort: a store without the record is
/// opened without the check).
pub(super) fn write_close_record(path: &Path) {
    let Ok(current) = std::fs::read_to_string(path.join("CURRENT")) else { return };
    let manifest = current.trim_end();
    let Ok(md) = std::fs::metadata(path.join(manifest)) else { return };
    let _ = replace_file(path, CLOSE_RECORD, format!("{manifest} {}\n", md.len()).as_bytes(), false);
}

/// Why the store in `path` cannot be opened as it is, found before RocksDB opens it:
/// its CURRENT is missing beside a MANIFEST or tables (RocksDB would start an empty store
/// over them), its MANIFEST is shorter than at the last clean close, or a salvage was
/// interrupted.
pub(super) fn damage_before_open(path: &Path) -> Option<String> {
    if path.join(super::salvage::SALVAGE_DIR).exists() {
        return Some("an earlier salvage of the store was interrupted".into());
    }
    let current = match std::fs::read_to_string(path.join("CURRENT")) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let files = store_files(path).ok()?;
            return files
                .iter()
                .any(|n| n.starts_with("MANIFEST-") || n.ends_with(".sst"))
                .then(|| "the store's CURRENT file is missing".to_owned());
        }
        Err(_) => return None, // RocksDB's open reports it
    };
    let (name, size, now) = manifest_since_close(path, &current)?;
    (now < size).then(|| format!("{name} is {now} bytes, {size} at the last close: it was cut short"))
}

/// The MANIFEST that `current` (CURRENT's text) names, when the close record names it
/// too: its name, its size at that close and its size now.
fn manifest_since_close(path: &Path, current: &str) -> Option<(String, u64, u64)> {
    let record = std::fs::read_to_string(path.join(CLOSE_RECORD)).ok()?;
    let (name, size) = record.trim_end().split_once(' ')?;
    let size: u64 = size.parse().ok()?;
    if name != current.trim_end() {
        return None;
    }
    let now = std::fs::metadata(path.join(name)).ok()?.len();
    Some((name.to_owned(), size, now))
}

/// Whether the store in `path` was left by a clean close and nothing has opened it for
/// writing since: the close record names the MANIFEST that CURRENT names, and that
/// MANIFEST is not shorter than the record says (RocksDB may append to it while it
/// closes, after the record; every writable open starts a new MANIFEST, so a store open
/// for writing, or one whose writer was killed, fails this).
pub(crate) fn closed_cleanly(path: &Path) -> bool {
    let Ok(current) = std::fs::read_to_string(path.join("CURRENT")) else { return false };
    !path.join(super::salvage::SALVAGE_DIR).exists()
        && !path.join(REPAIR_MARKER).exists()
        && manifest_since_close(path, &current).is_some_and(|(_, size, now)| now >= size)
}

/// Directories (canonical) of the stores this process has open for writing: RocksDB
/// holds a POSIX lock on their `LOCK` file, which closing any descriptor of that file in
/// this process would release.
static WRITABLE: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// A writable store's entry in [`WRITABLE`], removed when dropped (declared after the
/// store's database, so after RocksDB released its lock).
pub(crate) struct WritableMark(Option<PathBuf>);

impl WritableMark {
    pub(super) fn new(path: &Path) -> WritableMark {
        let dir = std::fs::canonicalize(path).ok();
        if let Some(d) = &dir {
            WRITABLE.lock().unwrap_or_else(|p| p.into_inner()).push(d.clone());
        }
        WritableMark(dir)
    }
}

impl Drop for WritableMark {
    fn drop(&mut self) {
        let Some(dir) = self.0.take() else { return };
        let mut w = WRITABLE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = w.iter().position(|d| *d == dir) {
            w.swap_remove(i);
        }
    }
}

/// Whether a process holds RocksDB's lock on the store in `path` (asked with `fcntl`
/// F_GETLK on its `LOCK` file). `None` when it cannot be told, or when this process has
/// the store open for writing (asking would release that lock: see [`WRITABLE`]).
pub(crate) fn store_lock_held(path: &Path) -> Option<bool> {
    use std::os::unix::io::AsRawFd;
    let dir = std::fs::canonicalize(path).ok()?;
    if WRITABLE.lock().unwrap_or_else(|p| p.into_inner()).contains(&dir) {
        return None;
    }
    let f = std::fs::OpenOptions::new().read(true).write(true).open(dir.join("LOCK")).ok()?;
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETLK, &mut fl) } != 0 {
        return None;
    }
    Some(fl.l_type != libc::F_UNLCK as _)
}
