//! TLS for `https://` and `rediss://` remotes: rustls (its ring provider), verifying the
//! server's certificate chain and host name against Mozilla's roots (webpki-roots), the
//! system's CA bundle (rustls-native-certs: `SSL_CERT_FILE`/`SSL_CERT_DIR` are honoured)
//! and an extra CA file the opener names. There is no way to turn verification off.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::error::{Error, Result};

/// Most certificates an extra CA file may hold.
const MAX_CA_CERTS: usize = 1000;

/// Reads the PEM certificates of an extra CA file (at option time, so that a wrong path
/// is an error of the option that names it).
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let what = || format!("remote CA file {}", path.display());
    let bytes = std::fs::read(path).map_err(|e| Error::InvalidArgument(format!("{}: {e}", what())))?;
    let mut certs = Vec::new();
    for c in CertificateDer::pem_slice_iter(&bytes) {
        let c = c.map_err(|e| Error::InvalidArgument(format!("{}: not PEM certificates: {e:?}", what())))?;
        certs.push(c);
        if certs.len() > MAX_CA_CERTS {
            return Err(Error::InvalidArgument(format!("{}: more than {MAX_CA_CERTS} certificates", what())));
        }
    }
    if certs.is_empty() {
        return Err(Error::InvalidArgument(format!("{}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it", what())));
    }
    // Each must parse as a trust anchor.
    let mut probe = RootCertStore::empty();
    for c in &certs {
        probe.add(c.clone()).map_err(|e| Error::InvalidArgument(format!("{}: a certificate that cannot be a CA: {e}", what())))?;
    }
    Ok(certs)
}

/// Mozilla's roots and the system's, loaded once per process (the system bundle is
/// read from disk: a few milliseconds).
fn builtin_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        // Unreadable system certificates are skipped: the others, and Mozilla's, remain.
        let native = rustls_native_certs::load_native_certs();
        let _ = roots.add_parsable_certificates(native.certs);
        roots
    })
}

/// The client configuration every TLS connection of one cache uses.
pub fn client_config(extra_cas: &[CertificateDer<'static>]) -> Result<Arc<ClientConfig>> {
    let mut roots = builtin_roots().clone();
    for c in extra_cas {
        roots.add(c.clone()).map_err(|e| Error::InvalidArgument(format!("remote CA certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InvalidArgument(format!("TLS set-up: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
