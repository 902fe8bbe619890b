//! The operating-system pieces of sharing: the cache directory's socket (its path may be
//! longer than a socket address holds), peer credentials, and the election lock.

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
pub use crate::store::dir::{ELECTION_FILE, SOCKET_FILE};


/// Longest path a `sockaddr_un` holds, less its terminating NUL.
const SUN_PATH_MAX: usize = 107;

/// Runs `f` with a path naming `dir`'s socket that fits a socket address: the socket's
/// own path when short enough, else a path through `/proc/self/fd` to the open directory.
fn with_socket_path<T>(dir: &Path, f: impl FnOnce(&Path) -> std::io::Result<T>) -> std::io::Result<T> {
    let direct = dir.join(SOCKET_FILE);
    if direct.as_os_str().len() <= SUN_PATH_MAX {
        return f(&direct);
    }
    let d = File::open(dir)?;
    let via = PathBuf::from(format!("/proc/self/fd/{}/{SOCKET_FILE}", d.as_raw_fd()));
    let r = f(&via);
    drop(d);
    r
}

/// Binds `dir`'s socket, removing a stale one first.
pub fn bind(dir: &Path) -> Result<UnixListener> {
    remove_socket(dir);
    let l = with_socket_path(dir, |p| UnixListener::bind(p)).map_err(|e| Error::Io(format!("{}: cannot serve the cache to other processes: {e}", dir.join(SOCKET_FILE).display())))?;
    Ok(l)
}

pub fn remove_socket(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(SOCKET_FILE));
}

pub fn connect(dir: &Path) -> std::io::Result<UnixStream> {
    with_socket_path(dir, |p| UnixStream::connect(p))
}

/// The user id of the process at the other end of `s`.
pub fn peer_uid(s: &UnixStream) -> Option<u32> {
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    let rc = unsafe { libc::getsockopt(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_PEERCRED, &mut cred as *mut _ as *mut libc::c_void, &mut len) };
    (rc == 0).then_some(cred.uid)
}

/// Opens (creating, mode 0600) a file of the cache directory's own: never through a
/// symlink, closed on exec.
pub fn open_private(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| Error::from(e).with_context(&path.display().to_string()))
}

/// The election lock of a cache directory, held until dropped.
pub struct ElectionLock {
    _file: File,
}

impl ElectionLock {
    /// Waits for the lock, at most `wait`: `Ok(None)` when it is still held then. Holders
    /// keep it for an open or a close of the store (milliseconds) and a holder that dies
    /// releases it; only a stopped holder (SIGSTOP, a debugger) makes the wait run out.
    pub fn acquire(dir: &Path, wait: std::time::Duration) -> Result<Option<ElectionLock>> {
        let path = dir.join(ELECTION_FILE);
        let file = open_private(&path)?;
        let deadline = std::time::Instant::now() + wait;
        let mut pause = std::time::Duration::from_micros(200);
        loop {
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(Some(ElectionLock { _file: file }));
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EWOULDBLOCK) | Some(libc::EINTR) => {}
                _ => return Err(Error::from(e).with_context(&path.display().to_string())),
            }
            if std::time::Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_millis(10));
        }
    }
}

/// A pipe: (read end, write end), both close-on-exec.
pub fn pipe() -> Result<(File, File)> {
    use std::os::unix::io::FromRawFd;
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::from(std::io::Error::last_os_error()));
    }
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}
