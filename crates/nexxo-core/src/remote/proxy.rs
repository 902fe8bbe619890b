//! HTTP proxies for HTTP remotes: `HTTPS_PROXY` for `https://` remotes (a `CONNECT`
//! tunnel, TLS inside it end to end), `HTTP_PROXY` for `http://` ones (requests in
//! absolute form), `NO_PROXY` to bypass; or a proxy the opener names. Redis remotes
//! are never proxied (Redis clients do not use HTTP proxies).

use std::fmt;

use super::endpoint::{Address, Kind};
use crate::error::{Error, Result};

/// An HTTP proxy: `http://[user:password@]host[:port]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    pub host: String,
    pub port: u16,
    /// `Proxy-Authorization` value (Basic), when the URL has a user.
    pub auth: Option<String>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Proxy({}:{}{})", self.host, self.port, if self.auth.is_some() { ", with credentials" } else { "" })
    }
}

/// Which proxy HTTP remotes use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ProxySetting {
    /// `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` (lower case first), read at open.
    #[default]
    Environment,
    /// None, whatever the environment says.
    Direct,
    /// This proxy for every HTTP remote.
    Url(Proxy),
}

impl Proxy {
    /// Parses `http://[user:password@]host[:port]` (port 80 by default; a bare
    /// `host:port` is taken as http, as curl does).
    pub fn parse(url: &str) -> Result<Proxy> {
        let with_scheme = if url.contains("://") { url.to_owned() } else { format!("http://{url}") };
        if !with_scheme.starts_with("http://") {
            return Err(Error::InvalidArgument("a proxy must be http://host[:port] (HTTPS and SOCKS proxies are not supported)".into()));
        }
        let a = Address::parse(&with_scheme).map_err(|e| Error::InvalidArgument(format!("proxy: {e}")))?;
        if !a.path.is_empty() {
            return Err(Error::InvalidArgument("a proxy address has no path".into()));
        }
        let auth = a.password.as_ref().map(|p| super::http::basic_auth(a.user.as_deref(), p));
        Ok(Proxy { host: a.host, port: a.port, auth })
    }
}

fn env(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| std::env::var(n).ok()).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Whether `NO_PROXY` (a comma-separated list: `*`, host names, `.domain` or `domain`
/// suffixes, IP addresses; ports ignored) exempts `host`.
pub fn bypassed(no_proxy: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    no_proxy.split([',', ' ']).map(str::trim).filter(|e| !e.is_empty()).any(|entry| {
        if entry == "*" {
            return true;
        }
        let e = entry.trim_start_matches('[');
        let e = match e.rsplit_once(']') {
            Some((ip6, _)) => ip6.to_owned(),
            None if e.matches(':').count() == 1 => e.split(':').next().unwrap_or("").to_owned(),
            None => e.to_owned(),
        };
        let e = e.trim_start_matches("*.").trim_start_matches('.').trim_end_matches('.').to_ascii_lowercase();
        !e.is_empty() && (host == e || host.ends_with(&format!(".{e}")))
    })
}

/// The proxy `target` goes through, if any.
pub fn for_target(setting: &ProxySetting, target: &Address) -> Result<Option<Proxy>> {
    if target.kind != Kind::Http {
        return Ok(None);
    }
    match setting {
        ProxySetting::Direct => Ok(None),
        ProxySetting::Url(p) => Ok(Some(p.clone())),
        ProxySetting::Environment => {
            let names: &[&str] = if target.tls { &["https_proxy", "HTTPS_PROXY"] } else { &["http_proxy", "HTTP_PROXY"] };
            let Some(url) = env(names) else { return Ok(None) };
            if env(&["no_proxy", "NO_PROXY"]).is_some_and(|n| bypassed(&n, &target.host)) {
                return Ok(None);
            }
            // The proxy URL may hold a password: the error names the variable only.
            Proxy::parse(&url).map(Some).map_err(|e| Error::InvalidArgument(format!("{}: {e}", names[1])))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proxies() {
        let p = Proxy::parse("http://u:p%40ss@proxy.corp:3128").unwrap();
        assert_eq!((p.host.as_str(), p.port, p.auth.is_some()), ("proxy.corp", 3128, true));
        assert!(!format!("{p:?}").contains("p@ss"));
        assert_eq!(Proxy::parse("proxy.corp:8080").unwrap().port, 8080);
        assert_eq!(Proxy::parse("http://proxy").unwrap().port, 80);
        for bad in ["https://proxy:443", "socks5://proxy:1080", "http://proxy/path", "http://"] {
            assert!(Proxy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn no_proxy_matching() {
        assert!(bypassed("*", "anything"));
        assert!(bypassed("localhost,127.0.0.1", "127.0.0.1"));
        assert!(bypassed(".corp.example", "cache.corp.example"));
        assert!(bypassed("corp.example", "cache.corp.example"));
        assert!(bypassed("corp.example", "CORP.example"));
        assert!(bypassed("cache.corp.example:8080", "cache.corp.example"));
        assert!(bypassed("[::1]", "::1"));
        assert!(!bypassed("corp.example", "notcorp.example"));
        assert!(!bypassed("", "x"));
        assert!(!bypassed("other", "cache"));
    }
}
