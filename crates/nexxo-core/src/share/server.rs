//! The owner's side: serves the other processes of the same user that open the cache,
//! one thread per connection, each request applied to the store as this process's own
//! calls are (so writes from every process share one lock, one write-ahead log and one
//! evictor, and counters stay exact).

use std::io::{BufReader, BufWriter, Write};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::proto::{self, Fields, Frame, Op, ProtoError};
use super::sys;
use crate::error::{Error, Result};
use super::backing::Backing;

/// A running server. Stopped (every connection closed, every thread joined, the socket
/// file removed) by [`Server::stop`] or when dropped.
pub(crate) struct Server {
    /// Written to by `stop` to wake the accept loop (a blocked `accept` on a Unix socket
    /// is not woken by `shutdown`).
    wake: std::fs::File,
    accept: Option<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<(UnixStream, JoinHandle<()>)>>>,
    stopping: Arc<AtomicBool>,
    dir: std::path::PathBuf,
    /// Takes the clients' journals in as they grow (see [`intake_loop`]).
    intake: Option<JoinHandle<()>>,
    intake_ctl: Arc<IntakeCtl>,
}

/// What the intake thread waits on: (stop, connections being served).
type IntakeCtl = (Mutex<(bool, usize)>, Condvar);

impl Server {
    /// Binds the cache directory's socket (replacing a stale one: the caller holds the
    /// election lock and found no server answering, so no other server of this directory
    /// is alive) and serves.
    pub fn start(dir: &Path, backing: Arc<Backing>) -> Result<Server> {
        let listener = sys::bind(dir)?;
        let (woken, wake) = sys::pipe()?;
        let conns: Arc<Mutex<Vec<(UnixStream, JoinHandle<()>)>>> = Arc::default();
        let stopping = Arc::new(AtomicBool::new(false));
        let intake_ctl: Arc<IntakeCtl> = Arc::default();
        let accept = {
            let (conns, stopping, backing, ctl) = (conns.clone(), stopping.clone(), backing.clone(), intake_ctl.clone());
            std::thread::Builder::new()
                .name("nexxo-serve".into())
                .spawn(move || accept_loop(&listener, &woken, &backing, &conns, &stopping, &ctl))
                .map_err(|e| Error::Io(format!("cannot start the thread that shares the cache: {e}")))?
        };
        let intake = {
            let ctl = intake_ctl.clone();
            std::thread::Builder::new().name("nexxo-intake".into()).spawn(move || intake_loop(&backing, &ctl)).ok()
        };
        Ok(Server { wake, accept: Some(accept), conns, stopping, dir: dir.to_owned(), intake, intake_ctl })
    }

    /// Stops serving: the accept loop ends, every connection is shut down (its peer sees
    /// the end of the stream and elects a new owner), their threads are joined.
    pub fn stop(&mut self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        sys::remove_socket(&self.dir);
        self.intake_ctl.0.lock().unwrap_or_else(|p| p.into_inner()).0 = true;
        self.intake_ctl.1.notify_all();
        if let Some(t) = self.intake.take() {
            let _ = t.join();
        }
        let _ = (&self.wake).write_all(b"x");
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let conns = std::mem::take(&mut *self.conns.lock().unwrap_or_else(|p| p.into_inner()));
        for (s, _) in &conns {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        for (_, t) in conns {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Between a client's journaled set and the owner's next write or "not found", the set
/// waits in its journal; this thread takes the journals in as they grow, so that the
/// owner's own calls seldom find much to take in (and the store's work for the clients'
/// sets runs beside them, as it did when each set was a request). It looks every
/// millisecond after finding something, backing off to every 50 ms while nothing comes,
/// and sleeps while no process is connected (a client that journals without a connection
/// to this owner has its sets taken in by the owner's own calls, or when it asks).
fn intake_loop(backing: &Backing, ctl: &IntakeCtl) {
    const BUSY: std::time::Duration = std::time::Duration::from_millis(1);
    const IDLE: std::time::Duration = std::time::Duration::from_millis(50);
    let mut pause = IDLE;
    let mut g = ctl.0.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if g.0 {
            return;
        }
        if g.1 == 0 && !backing.moved() {
            g = ctl.1.wait(g).unwrap_or_else(|p| p.into_inner());
            continue;
        }
        g = ctl.1.wait_timeout(g, pause).unwrap_or_else(|p| p.into_inner()).0;
        if g.0 {
            return;
        }
        if backing.moved() {
            drop(g);
            let _ = backing.writable();
            pause = BUSY;
            g = ctl.0.lock().unwrap_or_else(|p| p.into_inner());
        } else {
            pause = (pause * 2).min(IDLE);
        }
    }
}

/// Counts a connection in (`+1`) or out (`-1`) for the intake thread.
fn count_connection(ctl: &IntakeCtl, delta: isize) {
    let mut g = ctl.0.lock().unwrap_or_else(|p| p.into_inner());
    g.1 = g.1.saturating_add_signed(delta);
    ctl.1.notify_all();
}

fn accept_loop(listener: &UnixListener, woken: &std::fs::File, backing: &Arc<Backing>, conns: &Mutex<Vec<(UnixStream, JoinHandle<()>)>>, stopping: &Arc<AtomicBool>, ctl: &Arc<IntakeCtl>) {
    loop {
        // Waits for a connection or for `stop`.
        let mut fds = [
            libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: woken.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if stopping.load(Ordering::SeqCst) || fds[1].revents != 0 {
            return;
        }
        if n <= 0 {
            continue; // EINTR
        }
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(_) if stopping.load(Ordering::SeqCst) => return,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return,
            Err(_) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
        };
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        // Only this user's processes: a value written here becomes code in their builds.
        if sys::peer_uid(&stream) != Some(unsafe { libc::geteuid() }) {
            continue;
        }
        let Ok(handle) = stream.try_clone() else { continue };
        let backing = backing.clone();
        let stopping = stopping.clone();
        let peer_ctl = ctl.clone();
        count_connection(ctl, 1);
        let Ok(t) = std::thread::Builder::new().name("nexxo-peer".into()).spawn(move || {
            serve(stream, &backing, &stopping);
            count_connection(&peer_ctl, -1);
        }) else {
            count_connection(ctl, -1);
            continue;
        };
        let mut c = conns.lock().unwrap_or_else(|p| p.into_inner());
        // Threads of closed connections are joined as new ones arrive.
        let (done, live): (Vec<_>, Vec<_>) = std::mem::take(&mut *c).into_iter().partition(|(_, t)| t.is_finished());
        *c = live;
        c.push((handle, t));
        drop(c);
        for (_, t) in done {
            let _ = t.join();
        }
    }
}

/// One connection: a hello, then requests answered in order until the peer closes or
/// sends something malformed (then the connection is dropped; nothing half-applied:
/// a request is decoded whole before the store sees it). When it ends, the journals of
/// processes that are gone are taken in and removed (the peer may have been killed).
fn serve(stream: UnixStream, backing: &Backing, stopping: &AtomicBool) {
    let Ok(end) = stream.try_clone() else { return };
    serve_conn(stream, backing);
    // The accept loop keeps a handle of every connection (to end it at `stop`): shut
    // down, the peer sees the end at once however many handles remain.
    let _ = end.shutdown(std::net::Shutdown::Both);
    if !stopping.load(Ordering::SeqCst) {
        let _ = backing.reap();
    }
}

fn serve_conn(stream: UnixStream, backing: &Backing) {
    let Ok(write_half) = stream.try_clone() else { return };
    let mut r = BufReader::with_capacity(64 << 10, stream);
    let mut w = BufWriter::with_capacity(64 << 10, write_half);
    let mut buf = Vec::new();
    if proto::read_frame(&mut r, &mut buf).is_err() {
        return;
    }
    let hello = hello(backing, &buf);
    let ok = hello.is_ok();
    if proto::reply(&hello, |f, names: &Vec<String>| {
        let mut f = f.u32(std::process::id()).bytes(env!("CARGO_PKG_VERSION").as_bytes()).u8(backing.is_read_only() as u8).u32(names.len() as u32);
        for n in names {
            f.push_bytes(n.as_bytes());
        }
        f
    })
    .send(&mut w)
    .and_then(|_| w.flush())
    .is_err()
        || !ok
    {
        return;
    }
    loop {
        if proto::read_frame(&mut r, &mut buf).is_err() {
            return;
        }
        let reply = match answer(backing, &buf) {
            Ok(f) => f,
            Err(_) => return, // malformed: drop the connection
        };
        if reply.send(&mut w).and_then(|_| w.flush()).is_err() {
            return;
        }
    }
}

fn hello(backing: &Backing, body: &[u8]) -> Result<Vec<String>> {
    let mut r = Fields::new(body);
    let bad = |e: ProtoError| Error::Incompatible(format!("a malformed hello: {}", e.0));
    if r.u8().map_err(bad)? != Op::Hello as u8 || r.take_magic().map_err(bad)? != *proto::MAGIC {
        return Err(Error::Incompatible("not a nexxo-cache peer".into()));
    }
    let protocol = r.u32().map_err(bad)?;
    if protocol != proto::PROTOCOL {
        return Err(Error::Incompatible(format!(
            "the process serving this cache (nexxo-cache {}, pid {}) speaks protocol {}, the opener speaks {protocol}",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            proto::PROTOCOL
        )));
    }
    Ok(backing.category_names())
}

/// The reply to one request, or a protocol error (the connection is then dropped).
fn answer(backing: &Backing, body: &[u8]) -> Result<Frame, ProtoError> {
    // Reads may be answered before the store is open for writing; the rest opens it.
    let store = || backing.writable();
    let mut r = Fields::new(body);
    let op = r.u8()?;
    let op = Op::from_u8(op).ok_or_else(|| ProtoError(format!("unknown request {op}")))?;
    let f = match op {
        Op::Hello => return Err(ProtoError("a second hello".into())),
        Op::Get => {
            let (cat, key) = (r.bytes()?, r.bytes()?);
            r.end()?;
            // Sets other clients journaled first: a client asks when its own reader lacks
            // the key or may be behind.
            proto::reply(&backing.fresh().and_then(|_| backing.read(|s| s.get(cat, key))), |mut f, v| {
                proto::put_found(&mut f, v.as_deref());
                f
            })
        }
        Op::BatchGet => {
            let n = r.count(8)?;
            let mut keys = Vec::with_capacity(n);
            for _ in 0..n {
                keys.push((r.bytes()?, r.bytes()?));
            }
            r.end()?;
            let _ = backing.fresh();
            let out = backing.batch_get(&keys);
            let mut f = Frame::new().u8(proto::REPLY_OK);
            for o in &out {
                match o {
                    Ok(v) => proto::put_found(&mut f, v.as_deref()),
                    Err(e) => {
                        f.push_u8(2);
                        proto::put_error(&mut f, e);
                    }
                }
            }
            f
        }
        Op::BatchSet => {
            let n = r.count(12)?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                entries.push((r.bytes()?, r.bytes()?, r.bytes()?));
            }
            r.end()?;
            proto::reply(&store().and_then(|s| s.batch_set(&entries)), |f, _| f)
        }
        Op::BatchSetTagged => {
            let n = r.count(16)?;
            let mut entries = Vec::with_capacity(n);
            let mut tags = Vec::with_capacity(n);
            for _ in 0..n {
                entries.push((r.bytes()?, r.bytes()?, r.bytes()?));
                let m = r.count(4)?;
                let mut t = Vec::with_capacity(m);
                for _ in 0..m {
                    t.push(r.bytes()?);
                }
                tags.push(t);
            }
            r.end()?;
            let tags: Vec<&[&[u8]]> = tags.iter().map(Vec::as_slice).collect();
            proto::reply(&store().and_then(|s| s.batch_set_tagged(&entries, &tags)), |f, _| f)
        }
        Op::Pull => {
            let id = r.u64()?;
            r.end()?;
            proto::reply(&store().and_then(|s| s.journal_mark(id)), |f, mark| match mark {
                Some(m) => f.u8(1).u64(*m),
                None => f.u8(0),
            })
        }
        Op::Invalidate => {
            let tag = r.bytes()?;
            r.end()?;
            proto::reply(&store().and_then(|s| s.invalidate(tag)), |f, (n, bytes)| f.u64(*n).u64(*bytes))
        }
        Op::Fill => {
            let (cat, key, value) = (r.bytes()?, r.bytes()?, r.bytes()?);
            r.end()?;
            proto::reply(&store().and_then(|s| s.fill(cat, key, value)), |f, stored| f.u8(*stored as u8))
        }
        Op::Delete => {
            let (cat, key) = (r.bytes()?, r.bytes()?);
            r.end()?;
            proto::reply(&store().and_then(|s| s.remove(cat, key)), |f, removed| f.u8(*removed as u8))
        }
        Op::Clear => {
            let n = r.count(4)?;
            let mut cats = Vec::with_capacity(n);
            for _ in 0..n {
                cats.push(r.bytes()?);
            }
            r.end()?;
            proto::reply(&store().and_then(|s| s.clear(&cats)), |f, _| f)
        }
        Op::Compact => {
            let cat = if r.u8()? == 1 { Some(r.bytes()?) } else { None };
            r.end()?;
            proto::reply(&store().and_then(|s| s.compact(cat)), |f, _| f)
        }
        Op::Enforce => {
            r.end()?;
            proto::reply(&store().and_then(crate::evict::enforce_policy), proto::put_report)
        }
        Op::Flush => {
            r.end()?;
            proto::reply(&store().and_then(|s| s.flush()), |f, _| f)
        }
        Op::Stats => {
            r.end()?;
            proto::reply(&backing.stats(), proto::put_stats)
        }
        Op::CategoryStats => {
            let cat = r.bytes()?;
            r.end()?;
            proto::reply(&backing.category_stats(cat), proto::put_stats)
        }
        Op::Verify => {
            let drop_bad = r.u8()? != 0;
            r.end()?;
            proto::reply(&store().and_then(|s| s.verify(drop_bad, &mut |_, _| {})), proto::put_verify)
        }
    };
    Ok(f)
}
