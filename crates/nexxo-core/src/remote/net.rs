//! Plumbing shared by the HTTP and Redis clients: failures, deadlines, a connection pool.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::{ClientConfig, ClientConnection, StreamOwned};
use rustls_pki_types::ServerName;

/// Why a remote request failed. None of these ever fails a local operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No answer within the timeout: not retried, it opens the circuit breaker at once.
    Timeout(String),
    /// Could not connect, or the connection broke: retried.
    Connect(String),
    /// The server answered with a temporary error (HTTP 5xx, Redis LOADING/BUSY...): retried.
    Server(String),
    /// The server answered in a way that retrying will not change (HTTP 4xx, a bad
    /// response, an oversized value, Redis's refusals): not retried.
    Refused(String),
    /// TLS failed: a certificate that does not verify (unknown CA, expired, another
    /// host's), or a handshake the server broke off. Not retried; it opens the breaker.
    Tls(String),
}

impl Failure {
    pub fn retryable(&self) -> bool {
        matches!(self, Failure::Connect(_) | Failure::Server(_))
    }

    pub fn from_io(what: &str, e: io::Error) -> Failure {
        if let Some(t) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return Failure::Tls(format!("{what}: {t}"));
        }
        match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Failure::Timeout(format!("{what}: timed out")),
            _ => Failure::Connect(format!("{what}: {e}")),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Timeout(m) | Failure::Connect(m) | Failure::Server(m) | Failure::Refused(m) | Failure::Tls(m) => f.write_str(m),
        }
    }
}

pub type Outcome<T> = std::result::Result<T, Failure>;

/// A TCP stream whose every read and write is bounded by one deadline for the whole
/// request, so a server that trickles bytes cannot hold a caller past its timeout.
pub struct Conn {
    pub reader: BufReader<Transport>,
    /// Set up for its protocol (Redis: authenticated, database selected).
    pub ready: bool,
}

pub struct DeadlineStream {
    stream: TcpStream,
    deadline: Instant,
}

impl DeadlineStream {
    fn remaining(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"))
        } else {
            Ok(left)
        }
    }
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.remaining()?;
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.remaining()?;
        self.stream.set_write_timeout(Some(left))?;
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// Plain TCP, or TLS over it; either way under the request's deadline (TLS reads and
/// writes the TCP stream through [`DeadlineStream`], the handshake included).
pub enum Transport {
    Plain(DeadlineStream),
    Tls(Box<StreamOwned<ClientConnection, DeadlineStream>>),
}

impl Transport {
    fn tcp(&mut self) -> &mut DeadlineStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => &mut t.sock,
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(t) => t.flush(),
        }
    }
}

impl Conn {
    /// Starts a request: everything until `deadline`.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.reader.get_mut().tcp().deadline = deadline;
    }

    pub fn write_all(&mut self, parts: &[&[u8]]) -> Outcome<()> {
        let s = self.reader.get_mut();
        for p in parts {
            s.write_all(p).map_err(|e| Failure::from_io("sending", e))?;
        }
        // TLS holds records back until flushed.
        s.flush().map_err(|e| Failure::from_io("sending", e))
    }

    /// One line without its CRLF, at most `max` bytes.
    pub fn read_line(&mut self, max: usize) -> Outcome<Vec<u8>> {
        let mut line = Vec::new();
        let n = (&mut self.reader).take(max as u64 + 2).read_until(b'\n', &mut line).map_err(|e| Failure::from_io("receiving", e))?;
        if n == 0 {
            return Err(Failure::Connect("the server closed the connection".into()));
        }
        if !line.ends_with(b"\r\n") {
            return Err(Failure::Refused("a malformed or overlong line in the response".into()));
        }
        line.truncate(line.len() - 2);
        Ok(line)
    }

    pub fn read_exact(&mut self, buf: &mut [u8]) -> Outcome<()> {
        self.reader.read_exact(buf).map_err(|e| Failure::from_io("receiving", e))
    }

    /// Reads `n` bytes into a new vector, growing it as bytes arrive so that a lying
    /// length costs no more memory than the bytes actually sent.
    pub fn read_vec(&mut self, n: usize) -> Outcome<Vec<u8>> {
        let mut out = Vec::with_capacity(n.min(1 << 20));
        let got = (&mut self.reader).take(n as u64).read_to_end(&mut out).map_err(|e| Failure::from_io("receiving", e))?;
        if got != n {
            return Err(Failure::Connect("the server closed the connection mid-value".into()));
        }
        Ok(out)
    }
}

/// Idle connections to one server, reused across requests and threads.
pub struct Pool {
    host: String,
    port: u16,
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
    /// TLS, with the name the server's certificate must carry (a DNS name or an IP).
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    /// An HTTP proxy: connections go to it; TLS ones through a CONNECT tunnel.
    proxy: Option<super::proxy::Proxy>,
}

impl Pool {
    pub fn new(host: &str, port: u16, max_idle: usize) -> Pool {
        Pool { host: host.to_owned(), port, idle: Mutex::new(Vec::new()), max_idle, tls: None, proxy: None }
    }

    /// Connections go through `proxy` (see `proxy.rs`).
    pub fn through(mut self, proxy: Option<super::proxy::Proxy>) -> Pool {
        self.proxy = proxy;
        self
    }

    /// A pool whose connections speak TLS with `config`, verifying `host`'s certificate.
    pub fn with_tls(host: &str, port: u16, max_idle: usize, config: Arc<ClientConfig>) -> crate::error::Result<Pool> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| crate::error::Error::InvalidArgument(format!("remote host {host:?} cannot be checked against a certificate: {e}")))?;
        Ok(Pool { tls: Some((config, name)), ..Pool::new(host, port, max_idle) })
    }

    /// An idle connection, when there is one: `(conn, true)`; else a new one: `(conn, false)`.
    pub fn take(&self, deadline: Instant) -> Outcome<(Conn, bool)> {
        if let Some(mut c) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            c.set_deadline(deadline);
            return Ok((c, true));
        }
        self.connect(deadline).map(|c| (c, false))
    }

    pub fn connect(&self, deadline: Instant) -> Outcome<Conn> {
        let (host, port) = match &self.proxy {
            Some(p) => (p.host.as_str(), p.port),
            None => (self.host.as_str(), self.port),
        };
        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|e| Failure::Connect(format!("resolving {host}{}: {e}", if self.proxy.is_some() { " (the proxy)" } else { "" })))?
            .collect();
        let mut last = Failure::Connect(format!("{host} has no address"));
        for addr in addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Failure::Timeout(format!("connecting to {addr}: timed out")));
            }
            match TcpStream::connect_timeout(&addr, left) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    let mut tcp = DeadlineStream { stream, deadline };
                    if let (Some(p), Some(_)) = (&self.proxy, &self.tls) {
                        self.tunnel(&mut tcp, p)?;
                    }
                    let transport = match &self.tls {
                        None => Transport::Plain(tcp),
                        Some((config, name)) => {
                            let c = ClientConnection::new(config.clone(), name.clone()).map_err(|e| Failure::Tls(format!("TLS with {}: {e}", self.host)))?;
                            let mut t = StreamOwned::new(c, tcp);
                            // The handshake, under the request's deadline: a certificate
                            // that does not verify fails here, named.
                            while t.conn.is_handshaking() {
                                t.conn.complete_io(&mut t.sock).map_err(|e| Failure::from_io(&format!("TLS handshake with {}:{}", self.host, self.port), e))?;
                            }
                            Transport::Tls(Box::new(t))
                        }
                    };
                    return Ok(Conn { reader: BufReader::with_capacity(64 << 10, transport), ready: false });
                }
                Err(e) => last = Failure::from_io(&format!("connecting to {addr}"), e),
            }
        }
        Err(last)
    }

    /// Opens a CONNECT tunnel to the server through the proxy `tcp` is connected to.
    fn tunnel(&self, tcp: &mut DeadlineStream, p: &super::proxy::Proxy) -> Outcome<()> {
        let target = if self.host.contains(':') { format!("[{}]:{}", self.host, self.port) } else { format!("{}:{}", self.host, self.port) };
        let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(a) = &p.auth {
            req.push_str(&format!("Proxy-Authorization: {a}\r\n"));
        }
        req.push_str("\r\n");
        tcp.write_all(req.as_bytes()).map_err(|e| Failure::from_io("sending CONNECT to the proxy", e))?;
        // The answer's head, a byte at a time: nothing past it may be consumed (the TLS
        // handshake follows on the same stream). Bounded.
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() > 16 << 10 {
                return Err(Failure::Refused("the proxy's answer to CONNECT is too long".into()));
            }
            match tcp.read(&mut b).map_err(|e| Failure::from_io("reading the proxy's answer to CONNECT", e))? {
                0 => return Err(Failure::Connect("the proxy closed the connection during CONNECT".into())),
                _ => head.push(b[0]),
            }
        }
        let line = String::from_utf8_lossy(&head[..head.iter().position(|&c| c == b'\r').unwrap_or(0)]).into_owned();
        let status: u16 = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        match status {
            200..=299 => Ok(()),
            500..=599 => Err(Failure::Server(format!("proxy CONNECT to {target}: {line}"))),
            _ => Err(Failure::Refused(format!("proxy CONNECT to {target}: {line}"))),
        }
    }

    /// Returns a connection that finished its request cleanly.
    pub fn put_back(&self, c: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle {
            idle.push(c);
        }
    }

    /// Drops every idle connection (after a failure they may all be stale).
    pub fn clear(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Runs `attempt` on a pooled connection; when a reused connection turns out to be
/// stale (closed by the server while idle), tries once more on a fresh one.
pub fn with_conn<T>(pool: &Pool, deadline: Instant, mut attempt: impl FnMut(&mut Conn) -> Outcome<(T, bool)>) -> Outcome<T> {
    let (mut conn, reused) = pool.take(deadline)?;
    let result = match attempt(&mut conn) {
        Err(Failure::Connect(_)) if reused => {
            pool.clear();
            conn = pool.connect(deadline)?;
            attempt(&mut conn)
        }
        other => other,
    };
    match result {
        Ok((v, keep)) => {
            if keep {
                pool.put_back(conn);
            }
            Ok(v)
        }
        Err(e) => Err(e),
    }
}
