//! How the remote tier is configured: the remotes, their keys and limits. Below the
//! crate's `Config`, which holds one of these.

use std::fmt;
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;

use crate::error::{Error, Result};
use super::endpoint::Address;

/// Most remotes one cache may have.
pub const MAX_REMOTES: usize = 8;
/// Shortest HMAC key accepted, in bytes.
pub const MIN_HMAC_KEY_LEN: usize = 16;
/// Default time one remote request may take, retries included: 3 s.
pub const DEFAULT_TIMEOUT_MS: u32 = 3_000;
/// Default retries of a request that failed for a temporary reason.
pub const DEFAULT_RETRIES: u32 = 2;
/// Default time a remote is skipped after its breaker opens: 30 s.
pub const DEFAULT_COOLDOWN_MS: u32 = 30_000;
/// Default lifetime of a value on a Redis server: 7 days.
pub const DEFAULT_TTL_SECS: u64 = 7 * 24 * 3600;
/// Default bound on the bytes of values waiting to be uploaded: 64 MiB.
pub const DEFAULT_QUEUE_BYTES: u64 = 64 << 20;
/// Default time closing a cache waits for queued uploads: 10 s.
pub const DEFAULT_CLOSE_WAIT_MS: u32 = 10_000;
/// Most extra headers an HTTP remote request carries.
pub const MAX_HEADERS: usize = 32;
/// Longest bearer token or header value, in bytes.
pub const MAX_HEADER_VALUE_LEN: usize = 8 << 10;
/// Background upload threads (each entry always goes through the same one, in order).
pub(super) const UPLOADERS: usize = 4;

/// What a cache does with its remotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Remotes are configured but not used.
    Off,
    /// Read from remotes, never write to them (developer machines).
    ReadOnly,
    /// Read from remotes and upload every local write (CI).
    ReadWrite,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::ReadOnly => "read-only",
            Mode::ReadWrite => "read-write",
        }
    }
}

/// A secret that `Debug` does not print.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// The remote tier's options (part of [`crate::Config`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    pub remotes: Vec<Address>,
    /// Default read-write: like Bazel and Turborepo, a configured remote is used both ways.
    pub mode: Mode,
    /// The namespace on the servers: caches with the same name share entries.
    pub name: String,
    /// Categories that never go to a remote (for example `meta`).
    pub local_only: Vec<String>,
    pub hmac_key: Option<Secret>,
    pub timeout_ms: u32,
    pub retries: u32,
    pub cooldown_ms: u32,
    /// Redis: seconds a value lives on the server; 0 keeps it until Redis evicts it.
    pub ttl_secs: u64,
    pub queue_bytes: u64,
    pub close_wait_ms: u32,
    /// HTTP remotes: `Authorization: Bearer <token>` (instead of the URL's user:password).
    pub token: Option<Secret>,
    /// HTTP remotes: extra request headers (values never printed).
    pub headers: Vec<(String, Secret)>,
    /// TLS remotes: an extra CA file and its certificates, trusted beside Mozilla's
    /// roots and the system's.
    pub ca_file: Option<(PathBuf, Vec<CertificateDer<'static>>)>,
    /// The HTTP proxy of HTTP remotes (default: the environment's).
    pub proxy: super::proxy::ProxySetting,
    /// Ask the server (HEAD, EXISTS) before uploading, and skip what it has: for keys
    /// that name their content. Off by default (last write wins).
    pub check_exists: bool,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            remotes: Vec::new(),
            mode: Mode::ReadWrite,
            name: "default".into(),
            local_only: Vec::new(),
            hmac_key: None,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            retries: DEFAULT_RETRIES,
            cooldown_ms: DEFAULT_COOLDOWN_MS,
            ttl_secs: DEFAULT_TTL_SECS,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            close_wait_ms: DEFAULT_CLOSE_WAIT_MS,
            token: None,
            headers: Vec::new(),
            ca_file: None,
            proxy: Default::default(),
            check_exists: false,
        }
    }
}

impl RemoteConfig {
    pub fn add_remote(&mut self, url: &str) -> Result<()> {
        let a = Address::parse(url)?;
        if self.remotes.contains(&a) {
            return Ok(());
        }
        if self.remotes.len() >= MAX_REMOTES {
            return Err(Error::InvalidArgument(format!("a cache has at most {MAX_REMOTES} remotes")));
        }
        self.remotes.push(a);
        Ok(())
    }

    /// Sets the namespace: 1 to 64 characters of `a-z A-Z 0-9 _ - .`.
    pub fn set_name(&mut self, name: &[u8]) -> Result<()> {
        let ok = !name.is_empty() && name.len() <= 64 && name.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !ok {
            return Err(Error::InvalidArgument(format!(
                "remote name {:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '-' and '.'",
                String::from_utf8_lossy(name)
            )));
        }
        self.name = String::from_utf8(name.to_vec()).expect("ASCII");
        Ok(())
    }

    /// Sets (or with an empty key removes) the HMAC key; at least 16 bytes.
    pub fn set_hmac_key(&mut self, key: &[u8]) -> Result<()> {
        if key.is_empty() {
            self.hmac_key = None;
        } else if key.len() < MIN_HMAC_KEY_LEN {
            return Err(Error::InvalidArgument(format!("an HMAC key needs at least {MIN_HMAC_KEY_LEN} bytes")));
        } else {
            self.hmac_key = Some(Secret(key.to_vec()));
        }
        Ok(())
    }

    pub fn set_timeout_ms(&mut self, ms: u32) -> Result<()> {
        if !(1..=600_000).contains(&ms) {
            return Err(Error::InvalidArgument(format!("remote timeout {ms} ms must be 1 to 600000")));
        }
        self.timeout_ms = ms;
        Ok(())
    }

    pub fn set_retries(&mut self, n: u32) -> Result<()> {
        if n > 10 {
            return Err(Error::InvalidArgument(format!("{n} retries: at most 10")));
        }
        self.retries = n;
        Ok(())
    }

    /// Sets (or with an empty token removes) the bearer token of HTTP remotes: visible
    /// ASCII, at most 8 KiB.
    pub fn set_token(&mut self, token: &[u8]) -> Result<()> {
        if token.is_empty() {
            self.token = None;
            return Ok(());
        }
        if token.len() > MAX_HEADER_VALUE_LEN || !token.iter().all(|b| b.is_ascii_graphic()) {
            // The token is never printed.
            return Err(Error::InvalidArgument(format!("a remote token must be 1 to {MAX_HEADER_VALUE_LEN} visible ASCII characters (no spaces)")));
        }
        self.token = Some(Secret(token.to_vec()));
        Ok(())
    }

    /// Adds (or replaces) an extra header of HTTP remote requests. The name is an HTTP
    /// token, not one the client sets itself; the value is visible ASCII and spaces, at
    /// most 8 KiB. An `Authorization` header replaces the token and the URL's user.
    pub fn add_header(&mut self, name: &str, value: &[u8]) -> Result<()> {
        const RESERVED: [&str; 6] = ["host", "content-length", "transfer-encoding", "connection", "content-type", "user-agent"];
        let name_ok = !name.is_empty()
            && name.len() <= 256
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !name_ok {
            return Err(Error::InvalidArgument(format!("remote header name {name:?} is not an HTTP token")));
        }
        if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
            return Err(Error::InvalidArgument(format!("remote header {name:?} is set by the client itself")));
        }
        if value.len() > MAX_HEADER_VALUE_LEN || !value.iter().all(|&b| b == b' ' || b == b'\t' || b.is_ascii_graphic()) {
            return Err(Error::InvalidArgument(format!("the value of remote header {name:?} must be at most {MAX_HEADER_VALUE_LEN} bytes of visible ASCII, spaces and tabs")));
        }
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if self.headers.len() >= MAX_HEADERS {
            return Err(Error::InvalidArgument(format!("at most {MAX_HEADERS} remote headers")));
        }
        self.headers.push((name.to_owned(), Secret(value.to_vec())));
        Ok(())
    }

    /// Trusts the CA certificates (PEM) of `path` for TLS remotes, beside Mozilla's roots
    /// and the system's; read now, so a wrong file is this call's error.
    pub fn set_ca_file(&mut self, path: &Path) -> Result<()> {
        let certs = super::tls::read_ca_file(path)?;
        self.ca_file = Some((path.to_owned(), certs));
        Ok(())
    }

    /// HTTP remotes go through this proxy (`http://[user:password@]host[:port]`); `""`:
    /// through none, whatever `HTTPS_PROXY`/`HTTP_PROXY` say. Unset, the environment
    /// decides (`NO_PROXY` included).
    pub fn set_proxy(&mut self, url: &str) -> Result<()> {
        self.proxy = match url.trim() {
            "" => super::proxy::ProxySetting::Direct,
            u => super::proxy::ProxySetting::Url(super::proxy::Proxy::parse(u)?),
        };
        Ok(())
    }

    pub fn set_local_only(&mut self, category: &str, local_only: bool) {
        self.local_only.retain(|c| c != category);
        if local_only {
            self.local_only.push(category.to_owned());
        }
    }
}
