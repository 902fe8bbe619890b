//! A process that does not own the cache: its requests go to the owner over the cache
//! directory's socket, on a small pool of connections (one per thread at a time, so
//! threads do not queue behind each other).

use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use super::proto::{self, Fields, Frame, Op};
use super::sys;
use crate::error::{Error, Result};

/// How long an ordinary request waits for its answer before the owner is taken for
/// stuck (the request then fails with `Error::Io`; the connection is dropped).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection failed (the owner exited, was killed, or stopped serving): the caller
/// elects a new owner and retries.
#[derive(Debug)]
pub(crate) struct Lost(pub String);

struct Conn {
    r: BufReader<UnixStream>,
    w: UnixStream,
}

pub(crate) struct Client {
    dir: std::path::PathBuf,
    pool: Mutex<Vec<Conn>>,
    /// The owner's categories, in its store's order.
    pub categories: Vec<String>,
    pub owner_pid: u32,
}

/// Why a connection attempt found no owner to talk to.
pub(crate) enum NoOwner {
    /// Nothing serves (no socket, or a stale one).
    Absent,
    /// Something serves that this process cannot share with: its answer says why.
    Refused(Error),
}

impl Client {
    /// Connects to the owner of `dir`, if one serves.
    pub fn connect(dir: &Path) -> Result<Client, NoOwner> {
        let (conn, info) = Self::open_conn(dir)?;
        Ok(Client { dir: dir.to_owned(), pool: Mutex::new(vec![conn]), categories: info.0, owner_pid: info.1 })
    }

    fn open_conn(dir: &Path) -> Result<(Conn, (Vec<String>, u32)), NoOwner> {
        let s = sys::connect(dir).map_err(|_| NoOwner::Absent)?;
        let me = unsafe { libc::geteuid() };
        match sys::peer_uid(&s) {
            Some(uid) if uid == me => {}
            other => {
                return Err(NoOwner::Refused(Error::Insecure(format!(
                    "{}: the process serving this cache runs as uid {}, not as this user (uid {me})",
                    dir.join(sys::SOCKET_FILE).display(),
                    other.map_or("unknown".into(), |u| u.to_string())
                ))))
            }
        }
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let w = s.try_clone().map_err(|_| NoOwner::Absent)?;
        let mut conn = Conn { r: BufReader::with_capacity(64 << 10, s), w };
        let hello = Frame::request(Op::Hello).raw(proto::MAGIC).u32(proto::PROTOCOL).finish();
        let body = conn.round_trip(&hello).map_err(|_| NoOwner::Absent)?;
        let info = (|| {
            let mut r = match proto::open_reply(&body)? {
                Ok(r) => r,
                Err(e) => return Ok(Err(e)),
            };
            let pid = r.u32()?;
            let _version = r.string()?;
            let _owner_read_only = r.u8()?;
            let mut cats = Vec::new();
            for _ in 0..r.count(4)? {
                cats.push(r.string()?);
            }
            r.end()?;
            Ok::<_, proto::ProtoError>(Ok((cats, pid)))
        })();
        match info {
            Ok(Ok(info)) => {
                let _ = conn.w.set_read_timeout(Some(REQUEST_TIMEOUT));
                Ok((conn, info))
            }
            Ok(Err(e)) => Err(NoOwner::Refused(e)),
            Err(e) => Err(NoOwner::Refused(Error::Incompatible(format!("the process serving this cache answered a malformed hello: {}", e.0)))),
        }
    }

    /// Sends one request and returns the reply's body. `Err(Lost)` when the connection
    /// failed: nothing is known about whether the owner applied the request (every
    /// request is idempotent, so the caller retries it with the next owner).
    pub fn call(&self, request: &[u8], long: bool) -> Result<Vec<u8>, Lost> {
        let taken = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = match taken {
            Some(c) => c,
            None => match Self::open_conn(&self.dir) {
                Ok((c, _)) => c,
                Err(NoOwner::Absent) => return Err(Lost("the process serving the cache is gone".into())),
                Err(NoOwner::Refused(e)) => return Err(Lost(e.to_string())),
            },
        };
        if long {
            let _ = conn.w.set_read_timeout(None);
        }
        let r = conn.round_trip(request);
        match r {
            Ok(body) => {
                if long {
                    let _ = conn.w.set_read_timeout(Some(REQUEST_TIMEOUT));
                }
                self.pool.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
                Ok(body)
            }
            Err(e) => Err(Lost(e.to_string())),
        }
    }
}

impl Conn {
    fn round_trip(&mut self, request: &[u8]) -> std::io::Result<Vec<u8>> {
        self.w.write_all(request)?;
        let mut body = Vec::new();
        proto::read_frame(&mut self.r, &mut body)?;
        Ok(body)
    }
}

/// Decodes a reply with `f`, turning a malformed one into an error.
pub(crate) fn decode<T>(body: &[u8], f: impl FnOnce(&mut Fields<'_>) -> Result<T, proto::ProtoError>) -> Result<T> {
    let malformed = |e: proto::ProtoError| Error::Io(format!("the process serving this cache sent a malformed answer: {}", e.0));
    match proto::open_reply(body).map_err(malformed)? {
        Err(e) => Err(e),
        Ok(mut r) => {
            let v = f(&mut r).map_err(malformed)?;
            r.end().map_err(malformed)?;
            Ok(v)
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        for c in self.pool.get_mut().unwrap_or_else(|p| p.into_inner()).drain(..) {
            let _ = c.w.shutdown(std::net::Shutdown::Both);
        }
    }
}
