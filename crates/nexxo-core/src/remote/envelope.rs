//! What a remote server stores for one entry, and how an entry is named there.
//!
//! ```text
//! "NXR1" | flags u8 (bit 0: signed) | frame (nexxo-codec: checksum seeded by category and key)
//!        | [HMAC-SHA256 tag, 32 bytes, when signed]
//! ```
//! The tag covers the cache name, the category, the key, the flags and the frame, so a
//! value moved to another entry, another category or another cache fails as surely as a
//! changed byte. With a key configured, unsigned or wrongly signed values are rejected;
//! without one, the frame's checksum still catches damage (not tampering).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::codec::{self, Compression};

type HmacSha256 = Hmac<Sha256>;

const MAGIC: &[u8; 4] = b"NXR1";
const SIGNED: u8 = 1;
const TAG_LEN: usize = 32;
/// Bytes an envelope adds to a frame at most.
pub const OVERHEAD: usize = MAGIC.len() + 1 + TAG_LEN;

/// Why a remote value was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not an envelope of this format, or a frame that does not decode or check.
    Damaged,
    /// A key is configured and the value is unsigned or its tag does not verify.
    BadSignature,
}

/// The name of an entry on the server: hex SHA-256 of the cache name, category and key,
/// each length-prefixed, so that no two entries can share one.
pub fn entry_name(cache_name: &str, category: &[u8], key: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [cache_name.as_bytes(), category, key] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn tag(secret: &[u8], cache_name: &str, category: &[u8], key: &[u8], signed_part: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(b"nexxo-remote-v1");
    for part in [cache_name.as_bytes(), category, key] {
        mac.update(&(part.len() as u64).to_le_bytes());
        mac.update(part);
    }
    mac.update(signed_part);
    mac
}

/// Wraps `value` for the server, signed when `secret` is given.
pub fn seal(secret: Option<&[u8]>, cache_name: &str, category: &[u8], key: &[u8], value: &[u8], compression: Compression) -> Vec<u8> {
    let frame = codec::encode(category, key, value, 0, compression);
    let mut out = Vec::with_capacity(OVERHEAD + frame.len());
    out.extend_from_slice(MAGIC);
    out.push(if secret.is_some() { SIGNED } else { 0 });
    out.extend_from_slice(&frame);
    if let Some(secret) = secret {
        let t = tag(secret, cache_name, category, key, &out[MAGIC.len()..]).finalize().into_bytes();
        out.extend_from_slice(&t);
    }
    out
}

/// Unwraps and checks a value read from the server.
pub fn open(secret: Option<&[u8]>, cache_name: &str, category: &[u8], key: &[u8], data: &[u8]) -> Result<Vec<u8>, Rejection> {
    if data.len() < MAGIC.len() + 1 || &data[..MAGIC.len()] != MAGIC {
        return Err(Rejection::Damaged);
    }
    let flags = data[MAGIC.len()];
    if flags & !SIGNED != 0 {
        return Err(Rejection::Damaged);
    }
    let signed = flags & SIGNED != 0;
    let body_end = if signed { data.len().checked_sub(TAG_LEN).filter(|&e| e > MAGIC.len()).ok_or(Rejection::Damaged)? } else { data.len() };
    if let Some(secret) = secret {
        if !signed {
            return Err(Rejection::BadSignature);
        }
        tag(secret, cache_name, category, key, &data[MAGIC.len()..body_end])
            .verify_slice(&data[body_end..])
            .map_err(|_| Rejection::BadSignature)?;
    }
    codec::decode(category, key, &data[MAGIC.len() + 1..body_end]).map_err(|_| Rejection::Damaged)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &[u8] = b"0123456789abcdef-shared";

    #[test]
    fn round_trips_signed_and_unsigned() {
        let v = b"export const x = 1;\n".repeat(20);
        for secret in [None, Some(K)] {
            let e = seal(secret, "app", b"transform", b"src/a.ts", &v, Compression::Lz4);
            assert_eq!(open(secret, "app", b"transform", b"src/a.ts", &e).unwrap(), v);
        }
        let empty = seal(Some(K), "app", b"meta", b"k", b"", Compression::Lz4);
        assert_eq!(open(Some(K), "app", b"meta", b"k", &empty).unwrap(), b"");
    }

    #[test]
    fn every_flipped_bit_is_rejected() {
        let e = seal(Some(K), "app", b"parse", b"k", b"some artifact bytes, long enough to matter", Compression::None);
        for i in 0..e.len() * 8 {
            let mut bad = e.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(open(Some(K), "app", b"parse", b"k", &bad).is_err(), "bit {i}");
        }
    }

    #[test]
    fn signatures_bind_the_entry_and_the_key() {
        let e = seal(Some(K), "app", b"parse", b"k", b"value", Compression::None);
        assert_eq!(open(Some(K), "app", b"parse", b"other", &e), Err(Rejection::BadSignature));
        assert_eq!(open(Some(K), "app", b"bundle", b"k", &e), Err(Rejection::BadSignature));
        assert_eq!(open(Some(K), "other-app", b"parse", b"k", &e), Err(Rejection::BadSignature));
        assert_eq!(open(Some(b"another key of 16+ bytes"), "app", b"parse", b"k", &e), Err(Rejection::BadSignature));
        // An unsigned value, however well formed, is refused when a key is configured.
        let plain = seal(None, "app", b"parse", b"k", b"value", Compression::None);
        assert_eq!(open(Some(K), "app", b"parse", b"k", &plain), Err(Rejection::BadSignature));
        // Without a key, the checksum still binds the value to its entry.
        assert_eq!(open(None, "app", b"parse", b"other", &plain), Err(Rejection::Damaged));
        assert_eq!(open(None, "app", b"parse", b"k", b"NXR1"), Err(Rejection::Damaged));
        assert_eq!(open(None, "app", b"parse", b"k", b"<html>404</html>"), Err(Rejection::Damaged));
    }

    #[test]
    fn names_are_distinct_and_stable() {
        assert_ne!(entry_name("a", b"parse", b"k"), entry_name("a", b"transform", b"k"));
        assert_ne!(entry_name("ab", b"c", b"k"), entry_name("a", b"bc", b"k"));
        assert_eq!(entry_name("a", b"parse", b"k").len(), 64);
    }
}
