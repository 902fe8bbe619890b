//! The crate's error type: a kind for programs, a message for people. The C ABI maps
//! each kind to its `nexxo_status` (the root crate's `src/status.rs`); the core knows
//! no status codes or names.

use std::fmt;

/// What went wrong. The message is for people; the kind is for programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A bad argument: empty key, bad option value, malformed category name.
    InvalidArgument(String),
    /// The category is neither built in nor added through the options.
    UnknownCategory(String),
    /// A key or value over its limit.
    TooLarge(String),
    /// The caller's buffer is too small; the value needs this many bytes.
    BufferTooSmall(usize),
    /// Another process (or another handle in this one) holds the directory for writing.
    Locked(String),
    /// Any other failure of the file system or of RocksDB's I/O.
    Io(String),
    /// The disk is full.
    NoSpace(String),
    /// Damage that could not be repaired or set aside.
    Corruption(String),
    /// A write through a read-only handle.
    ReadOnly,
    /// The directory holds a newer on-disk format, or something that is not a cache.
    Incompatible(String),
    /// The cache directory is not trusted: owned by another user, writable by others,
    /// or reached through someone else's symlink.
    Insecure(String),
    /// Not a failure: the cache was disabled on request (`NEXXO_CACHE_DISABLE`). Only
    /// ever a disabled cache's reason, never returned by an operation.
    DisabledOnRequest(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn with_context(self, ctx: &str) -> Error {
        match self {
            Error::Io(m) => Error::Io(format!("{ctx}: {m}")),
            Error::NoSpace(m) => Error::NoSpace(format!("{ctx}: {m}")),
            other => other,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::UnknownCategory(c) => write!(f, "unknown category {c:?}"),
            Error::TooLarge(m) => write!(f, "too large: {m}"),
            Error::BufferTooSmall(n) => write!(f, "buffer too small: {n} bytes needed"),
            Error::Locked(m) => write!(f, "locked: {m}"),
            Error::Io(m) => write!(f, "I/O error: {m}"),
            Error::NoSpace(m) => write!(f, "no space left: {m}"),
            Error::Corruption(m) => write!(f, "corruption: {m}"),
            Error::ReadOnly => write!(f, "the cache was opened read-only"),
            Error::Incompatible(m) => write!(f, "incompatible: {m}"),
            Error::Insecure(m) => write!(f, "not trusted: {m}"),
            Error::DisabledOnRequest(m) => write!(f, "disabled on request: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        if e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT) {
            Error::NoSpace(e.to_string())
        } else {
            Error::Io(e.to_string())
        }
    }
}

impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Self {
        classify_rocksdb(e.kind(), e.into_string())
    }
}

/// Maps RocksDB's error to ours. RocksDB reports lock conflicts and a full disk only in
/// its message text (see `shared/docs/perf-notes.md` for the exact wording).
fn classify_rocksdb(kind: rocksdb::ErrorKind, msg: String) -> Error {
    use rocksdb::ErrorKind as K;
    let lower = msg.to_ascii_lowercase();
    if lower.contains("lock file") || lower.contains("lock hold by current process") {
        return Error::Locked(msg);
    }
    if lower.contains("no space left") || lower.contains("disk quota exceeded") || lower.contains("nospace") {
        return Error::NoSpace(msg);
    }
    match kind {
        K::Corruption => Error::Corruption(msg),
        K::NotSupported | K::InvalidArgument => Error::Incompatible(msg),
        _ => Error::Io(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_messages_map_to_locked() {
        let other = "IO error: While lock file: /x/LOCK: Resource temporarily unavailable";
        let same = "IO error: lock hold by current process, acquire time 1 acquiring thread 2: /x/LOCK: No locks available";
        assert!(matches!(classify_rocksdb(rocksdb::ErrorKind::IOError, other.into()), Error::Locked(_)));
        assert!(matches!(classify_rocksdb(rocksdb::ErrorKind::IOError, same.into()), Error::Locked(_)));
    }

    #[test]
    fn full_disk_maps_to_no_space() {
        let m = "IO error: No space left on device: While appending to file: /x/000012.log";
        assert!(matches!(classify_rocksdb(rocksdb::ErrorKind::IOError, m.into()), Error::NoSpace(_)));
        let io = std::io::Error::from_raw_os_error(libc::ENOSPC);
        assert!(matches!(Error::from(io), Error::NoSpace(_)));
    }

    #[test]
    fn corruption_stays_corruption() {
        let m = "Corruption: block checksum mismatch";
        assert!(matches!(classify_rocksdb(rocksdb::ErrorKind::Corruption, m.into()), Error::Corruption(_)));
    }
}
