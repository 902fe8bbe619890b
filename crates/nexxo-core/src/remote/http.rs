//! A client for cache servers in the Bazel HTTP layout: `GET` and `PUT` of
//! `<base>/ac/<sha256 hex>`. bazel-remote (run it with `--disable_http_ac_validation`,
//! since these entries are not Bazel action results), nginx with its WebDAV module,
//! and any server that stores what is PUT and serves it back by GET all work.
//!
//! HTTP/1.1 with keep-alive over TCP or TLS (`https://`, see `tls.rs`), written here
//! rather than pulled in: a cache needs four verbs and a strict, bounded response parser,
//! the same deadline-bounded, pooled connections as the Redis client (which no HTTP crate
//! would give it), and nothing of a web client (redirects, cookies, URL handling).

use std::time::Instant;

use crate::json::base64;

use super::config::RemoteConfig;
use super::endpoint::Address;
use super::net::{with_conn, Conn, Failure, Outcome, Pool};

const MAX_LINE: usize = 16 << 10;
const MAX_HEADERS: usize = 128;
/// Interim (1xx) responses accepted before the real one.
const MAX_INTERIM: usize = 8;
/// Error bodies longer than this are not read; the connection is dropped instead.
const MAX_ERROR_BODY: usize = 64 << 10;

pub struct Http {
    pool: Pool,
    base: String,
    host_header: String,
    /// The request's own header lines (`Authorization` among them), each ending in CRLF:
    /// they hold secrets, and are never printed.
    extra: String,
    /// Longest body accepted for a GET.
    max_len: usize,
    /// Through a proxy without a tunnel (plain `http://`): `http://host:port`, put before
    /// each path (requests in absolute form).
    absolute: String,
}

struct Response {
    status: u16,
    body: Vec<u8>,
}

/// `Basic` credentials for an `Authorization` or `Proxy-Authorization` header.
pub(super) fn basic_auth(user: Option<&str>, password: &str) -> String {
    format!("Basic {}", base64(format!("{}:{password}", user.unwrap_or("")).as_bytes()))
}

fn header_value<'a>(line: &'a [u8], name: &str) -> Option<&'a str> {
    let colon = line.iter().position(|&b| b == b':')?;
    if !line[..colon].eq_ignore_ascii_case(name.as_bytes()) {
        return None;
    }
    std::str::from_utf8(&line[colon + 1..]).ok().map(str::trim)
}

impl Http {
    pub fn new(addr: &Address, pool: Pool, proxy: Option<&super::proxy::Proxy>, config: &RemoteConfig, max_len: usize) -> Http {
        let host_header = if addr.host.contains(':') { format!("[{}]:{}", addr.host, addr.port) } else { format!("{}:{}", addr.host, addr.port) };
        // Authorization: a header of that name, else the token, else the URL's user.
        let custom_auth = config.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("authorization"));
        let auth = match (&config.token, &addr.password) {
            _ if custom_auth => None,
            (Some(t), _) => Some(format!("Bearer {}", String::from_utf8_lossy(&t.0))),
            (None, Some(p)) => Some(basic_auth(addr.user.as_deref(), p)),
            (None, None) => None,
        };
        let mut extra = String::new();
        if let Some(a) = auth {
            extra.push_str(&format!("Authorization: {a}\r\n"));
        }
        for (name, value) in &config.headers {
            extra.push_str(&format!("{name}: {}\r\n", String::from_utf8_lossy(&value.0)));
        }
        let mut absolute = String::new();
        if let (Some(p), false) = (proxy, addr.tls) {
            absolute = format!("http://{host_header}");
            if let Some(a) = &p.auth {
                extra.push_str(&format!("Proxy-Authorization: {a}\r\n"));
            }
        }
        Http { pool, base: addr.path.clone(), host_header, extra, max_len, absolute }
    }

    fn path(&self, name: &str) -> String {
        format!("{}/ac/{name}", self.base)
    }

    pub fn get(&self, name: &str, deadline: Instant) -> Outcome<Option<Vec<u8>>> {
        let r = self.request("GET", &self.path(name), &[], deadline)?;
        match r.status {
            200 => Ok(Some(r.body)),
            404 => Ok(None),
            s => Err(status_failure("GET", s)),
        }
    }

    /// Whether the server holds `name` (HEAD: 200 yes, 404 no).
    pub fn exists(&self, name: &str, deadline: Instant) -> Outcome<bool> {
        let r = self.request("HEAD", &self.path(name), &[], deadline)?;
        match r.status {
            200..=299 => Ok(true),
            404 => Ok(false),
            s => Err(status_failure("HEAD", s)),
        }
    }

    pub fn put(&self, name: &str, body: &[u8], deadline: Instant) -> Outcome<()> {
        let r = self.request("PUT", &self.path(name), body, deadline)?;
        match r.status {
            200..=299 => Ok(()),
            s => Err(status_failure("PUT", s)),
        }
    }

    fn request(&self, method: &str, path: &str, body: &[u8], deadline: Instant) -> Outcome<Response> {
        let mut head = format!("{method} {}{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: nexxo-cache/{}\r\n", self.absolute, self.host_header, env!("CARGO_PKG_VERSION"));
        head.push_str(&self.extra);
        if method == "PUT" {
            head.push_str(&format!("Content-Type: application/octet-stream\r\nContent-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        with_conn(&self.pool, deadline, |conn| {
            conn.write_all(&[head.as_bytes(), body])?;
            self.read_response(conn, method == "HEAD")
        })
    }

    /// Reads one response, after at most a few interim (1xx) ones; the flag says whether
    /// the connection may be reused.
    fn read_response(&self, conn: &mut Conn, head_only: bool) -> Outcome<(Response, bool)> {
        for _ in 0..MAX_INTERIM {
            if let Some(r) = self.read_one(conn, head_only)? {
                return Ok(r);
            }
        }
        Err(Failure::Refused(format!("more than {MAX_INTERIM} interim responses")))
    }

    /// One response; `None` for an interim (1xx) one, whose real response follows.
    fn read_one(&self, conn: &mut Conn, head_only: bool) -> Outcome<Option<(Response, bool)>> {
        let line = conn.read_line(MAX_LINE)?;
        let text = std::str::from_utf8(&line).map_err(|_| Failure::Refused("a status line that is not text".into()))?;
        let mut parts = text.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        let status: u16 = match (version.starts_with("HTTP/1."), parts.next().and_then(|s| s.parse().ok())) {
            (true, Some(s)) if (100..600).contains(&s) => s,
            _ => return Err(Failure::Refused(format!("not an HTTP/1.x status line: {:?}", text.chars().take(80).collect::<String>()))),
        };
        let mut keep = version != "HTTP/1.0";
        let mut length: Option<usize> = None;
        let mut chunked = false;
        let mut headers = 0;
        loop {
            let h = conn.read_line(MAX_LINE)?;
            if h.is_empty() {
                break;
            }
            headers += 1;
            if headers > MAX_HEADERS {
                return Err(Failure::Refused("too many response headers".into()));
            }
            if let Some(v) = header_value(&h, "content-length") {
                length = Some(v.parse().map_err(|_| Failure::Refused(format!("bad Content-Length {v:?}")))?);
            } else if let Some(v) = header_value(&h, "transfer-encoding") {
                chunked = v.to_ascii_lowercase().contains("chunked");
            } else if let Some(v) = header_value(&h, "connection") {
                if v.eq_ignore_ascii_case("close") {
                    keep = false;
                }
            }
        }
        if (100..200).contains(&status) {
            return Ok(None);
        }
        let limit = if status == 200 { self.max_len } else { MAX_ERROR_BODY };
        if head_only || status == 204 || status == 304 {
            return Ok(Some((Response { status, body: Vec::new() }, keep)));
        }
        let body = if chunked {
            read_chunked(conn, limit)?
        } else if let Some(n) = length {
            if n > limit {
                // Too long to accept: for an error page that only costs the connection.
                if status == 200 {
                    return Err(Failure::Refused(format!("a {n}-byte value is over the {limit}-byte limit")));
                }
                return Ok(Some((Response { status, body: Vec::new() }, false)));
            }
            conn.read_vec(n)?
        } else {
            // No length: the body runs to the end of the connection.
            keep = false;
            let mut body = Vec::new();
            loop {
                let mut buf = [0u8; 8192];
                let n = std::io::Read::read(&mut conn.reader, &mut buf).map_err(|e| Failure::from_io("receiving", e))?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&buf[..n]);
                if body.len() > limit {
                    return Err(Failure::Refused(format!("a value over the {limit}-byte limit")));
                }
            }
            body
        };
        Ok(Some((Response { status, body }, keep)))
    }
}

fn read_chunked(conn: &mut Conn, limit: usize) -> Outcome<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = conn.read_line(MAX_LINE)?;
        let size_text = std::str::from_utf8(&line).unwrap_or("").split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| Failure::Refused("a bad chunk size".into()))?;
        if size == 0 {
            // Trailers, then the empty line.
            while !conn.read_line(MAX_LINE)?.is_empty() {}
            return Ok(body);
        }
        if body.len().saturating_add(size) > limit {
            return Err(Failure::Refused(format!("a value over the {limit}-byte limit")));
        }
        body.extend_from_slice(&conn.read_vec(size)?);
        let mut crlf = [0u8; 2];
        conn.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(Failure::Refused("a chunk without its CRLF".into()));
        }
    }
}

fn status_failure(method: &str, status: u16) -> Failure {
    let m = format!("{method} answered HTTP {status}");
    if status >= 500 || status == 408 || status == 429 {
        Failure::Server(m)
    } else {
        Failure::Refused(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_is_base64_of_user_colon_password() {
        assert_eq!(basic_auth(Some("u"), "p@ss"), "Basic dTpwQHNz");
        assert_eq!(basic_auth(None, "pw"), "Basic OnB3");
    }
}
