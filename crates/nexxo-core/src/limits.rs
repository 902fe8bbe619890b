//! The rules every key, value and category name follows, checked before anything is
//! written or read. A leaf: the store, the remote tier, the configuration and the C ABI
//! all take their limits from here.

use crate::error::{Error, Result};

/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 4096;
/// Longest value, in bytes: 256 MiB.
pub const MAX_VALUE_LEN: usize = 256 << 20;
/// Longest category name.
pub const MAX_CATEGORY_NAME_LEN: usize = 32;
/// Most categories one cache can have, built-in ones included.
pub const MAX_CATEGORIES: usize = 64;

pub(crate) fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidArgument("a key must not be empty".into()));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(Error::TooLarge(format!("key of {} bytes exceeds the limit of {MAX_KEY_LEN}", key.len())));
    }
    Ok(())
}

pub(crate) fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::TooLarge(format!("value of {} bytes exceeds the limit of {MAX_VALUE_LEN}", value.len())));
    }
    Ok(())
}

/// Checks a category name: `[a-z0-9_-]{1,32}`.
pub fn validate_category_name(name: &[u8]) -> Result<&str> {
    let ok = !name.is_empty()
        && name.len() <= MAX_CATEGORY_NAME_LEN
        && name.iter().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'));
    if ok {
        Ok(std::str::from_utf8(name).expect("ASCII"))
    } else {
        Err(Error::InvalidArgument(format!(
            "category name {:?} must be 1 to {MAX_CATEGORY_NAME_LEN} characters of a-z, 0-9, '_' and '-'",
            String::from_utf8_lossy(name)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_values_and_names_at_their_limits() {
        assert!(check_key(b"").is_err());
        assert!(check_key(&[b'k'; MAX_KEY_LEN]).is_ok());
        assert!(matches!(check_key(&[b'k'; MAX_KEY_LEN + 1]), Err(Error::TooLarge(_))));
        assert!(check_value(b"").is_ok());
        assert!(matches!(check_value(&vec![0; MAX_VALUE_LEN + 1]), Err(Error::TooLarge(_))));
        assert_eq!(validate_category_name(b"a-b_9").unwrap(), "a-b_9");
        assert!(validate_category_name(&[b'a'; MAX_CATEGORY_NAME_LEN]).is_ok());
        for bad in [&b""[..], &[b'a'; MAX_CATEGORY_NAME_LEN + 1], b"A", b"a b", b"\xff"] {
            assert!(matches!(validate_category_name(bad), Err(Error::InvalidArgument(_))), "{bad:?}");
        }
    }
}
