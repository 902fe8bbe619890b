//! Where a remote lives: a parsed `http://` or `redis://` address.

use std::fmt;

use crate::error::{Error, Result};

/// The kind of server an address names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A cache server in the Bazel HTTP layout (bazel-remote, nginx with WebDAV, ...).
    Http,
    /// A Redis server.
    Redis,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Redis => "redis",
        }
    }
}

/// A parsed remote address. Its `Display` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Address {
    pub kind: Kind,
    /// `https://` or `rediss://`: TLS, the server's certificate verified.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// HTTP: the base path without a trailing slash (`""` for the root).
    /// Redis: unused.
    pub path: String,
    /// Redis database number (`redis://host/3`); 0 for HTTP.
    pub db: u32,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}://", self.kind.as_str(), match (self.kind, self.tls) {
            (Kind::Http, true) => "s",
            (Kind::Redis, true) => "s",
            _ => "",
        })?;
        match (&self.user, &self.password) {
            (Some(u), Some(_)) => write!(f, "{u}:***@")?,
            (None, Some(_)) => write!(f, ":***@")?,
            (Some(u), None) => write!(f, "{u}@")?,
            (None, None) => {}
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "{}:{}", self.host, self.port)?;
        }
        match self.kind {
            Kind::Http => write!(f, "{}", self.path),
            Kind::Redis if self.db != 0 => write!(f, "/{}", self.db),
            Kind::Redis => Ok(()),
        }
    }
}

fn bad(url: &str, why: &str) -> Error {
    // The address may carry a password: name it only up to the scheme.
    let scheme = url.split("://").next().unwrap_or("");
    Error::InvalidArgument(format!("remote address ({scheme}://...): {why}"))
}

/// Decodes `%XX` escapes (user names and passwords may hold reserved characters).
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Address {
    /// Parses `http[s]://[user:password@]host[:port][/base/path]` or
    /// `redis[s]://[[user]:password@]host[:port][/db]` (`https`, `rediss`: TLS).
    pub fn parse(url: &str) -> Result<Address> {
        const SCHEMES: &str = "must start with http://, https://, redis:// or rediss://";
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad(url, SCHEMES))?;
        let (kind, tls, default_port) = match scheme {
            "http" => (Kind::Http, false, 80),
            "https" => (Kind::Http, true, 443),
            "redis" => (Kind::Redis, false, 6379),
            "rediss" => (Kind::Redis, true, 6379),
            _ => return Err(bad(url, SCHEMES)),
        };
        if rest.contains(['?', '#']) || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad(url, "queries, fragments, spaces and control characters are not allowed"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(ui) => {
                let (u, p) = match ui.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (ui, None),
                };
                let u = percent_decode(u).ok_or_else(|| bad(url, "bad %-escape in the user name"))?;
                let p = p.map(|p| percent_decode(p).ok_or_else(|| bad(url, "bad %-escape in the password"))).transpose()?;
                ((!u.is_empty()).then_some(u), p)
            }
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad(url, "unclosed '[' in the host"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(bad(url, "junk after the IPv6 address")),
            };
            (h.to_owned(), port)
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (hostport.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err(bad(url, "no host"));
        }
        let port = match port {
            None => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(bad(url, "the port must be 1 to 65535")),
            },
        };
        let mut a = Address { kind, tls, host, port, path: String::new(), db: 0, user, password };
        match kind {
            Kind::Http => {
                if a.user.is_some() && a.password.is_none() {
                    return Err(bad(url, "HTTP basic authentication needs user:password"));
                }
                if path.contains("/../") || path.ends_with("/..") || path.contains("/./") {
                    return Err(bad(url, "the base path may not hold '.' or '..' segments"));
                }
                a.path = path.trim_end_matches('/').to_owned();
            }
            Kind::Redis => {
                let db = path.trim_start_matches('/');
                if !db.is_empty() {
                    a.db = db.parse().map_err(|_| bad(url, "the path of a redis:// address is a database number"))?;
                }
            }
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http() {
        let a = Address::parse("http://cache.local:9090/team/a/").unwrap();
        assert_eq!((a.kind, a.host.as_str(), a.port, a.path.as_str()), (Kind::Http, "cache.local", 9090, "/team/a"));
        let a = Address::parse("http://u:p%40ss@[::1]/").unwrap();
        assert_eq!((a.host.as_str(), a.port, a.path.as_str()), ("::1", 80, ""));
        assert_eq!(a.password.as_deref(), Some("p@ss"));
        assert_eq!(a.to_string(), "http://u:***@[::1]:80");
    }

    #[test]
    fn parses_redis() {
        let a = Address::parse("redis://:secret@127.0.0.1:6380/2").unwrap();
        assert_eq!((a.kind, a.port, a.db, a.user.clone(), a.password.as_deref()), (Kind::Redis, 6380, 2, None, Some("secret")));
        assert_eq!(a.to_string(), "redis://:***@127.0.0.1:6380/2");
        assert_eq!(Address::parse("redis://localhost").unwrap().port, 6379);
    }

    #[test]
    fn parses_tls_schemes() {
        let a = Address::parse("https://cache.example.com/v1").unwrap();
        assert_eq!((a.kind, a.tls, a.port, a.path.as_str()), (Kind::Http, true, 443, "/v1"));
        assert_eq!(a.to_string(), "https://cache.example.com:443/v1");
        let a = Address::parse("rediss://:pw@redis.example.com:6380/1").unwrap();
        assert_eq!((a.kind, a.tls, a.port, a.db), (Kind::Redis, true, 6380, 1));
        assert_eq!(a.to_string(), "rediss://:***@redis.example.com:6380/1");
        assert!(!Address::parse("http://x").unwrap().tls);
    }

    #[test]
    fn refuses_what_it_cannot_serve() {
        for bad in [
            "", "localhost:80", "ftp://x", "httpss://x", "http://", "http://x:0", "http://x:99999",
            "http://x/a?b", "http://x/a b", "redis://x/abc", "http://u@x", "http://x/a/../b", "http://[::1",
        ] {
            assert!(matches!(Address::parse(bad), Err(Error::InvalidArgument(_))), "{bad}");
        }
        // The password never appears in an error.
        let e = Address::parse("redis://:hunter2@x/notanumber").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
