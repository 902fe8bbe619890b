//! Checks of C arguments: pointers, lengths and category names.

use std::ffi::{c_char, CStr};

use crate::status::nexxo_status::{self, *};
use nexxo_core::store::{MAX_KEY_LEN, MAX_VALUE_LEN};

/// A category name: NUL-terminated, any bytes (an invalid name is simply unknown).
pub(crate) unsafe fn category<'a>(p: *const c_char) -> Result<&'a [u8], nexxo_status> {
    if p.is_null() {
        return Err(NEXXO_INVALID_ARGUMENT);
    }
    Ok(CStr::from_ptr(p).to_bytes())
}

/// Bytes given as (pointer, length); NULL is allowed only with length 0.
unsafe fn bytes<'a>(p: *const u8, len: usize, max: usize) -> Result<&'a [u8], nexxo_status> {
    if len > max {
        return Err(NEXXO_TOO_LARGE);
    }
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(NEXXO_INVALID_ARGUMENT);
    }
    Ok(std::slice::from_raw_parts(p, len))
}

/// A key: 1 to `MAX_KEY_LEN` bytes (emptiness is reported by the core).
pub(crate) unsafe fn key<'a>(p: *const u8, len: usize) -> Result<&'a [u8], nexxo_status> {
    bytes(p, len, MAX_KEY_LEN)
}

/// A value: 0 to `MAX_VALUE_LEN` bytes.
pub(crate) unsafe fn value<'a>(p: *const u8, len: usize) -> Result<&'a [u8], nexxo_status> {
    bytes(p, len, MAX_VALUE_LEN)
}

/// A tag: 1 to `MAX_TAG_LEN` bytes (emptiness is reported by the core).
pub(crate) unsafe fn tag<'a>(p: *const u8, len: usize) -> Result<&'a [u8], nexxo_status> {
    bytes(p, len, nexxo_core::store::MAX_TAG_LEN)
}

/// An array of `count` elements; NULL is allowed only with count 0.
pub(crate) unsafe fn array<'a, T>(p: *const T, count: usize) -> Result<&'a [T], nexxo_status> {
    if count == 0 {
        return Ok(&[]);
    }
    if p.is_null() || count > isize::MAX as usize / std::mem::size_of::<T>().max(1) {
        return Err(NEXXO_INVALID_ARGUMENT);
    }
    Ok(std::slice::from_raw_parts(p, count))
}

/// A writable array of `count` elements.
pub(crate) unsafe fn array_mut<'a, T>(p: *mut T, count: usize) -> Result<&'a mut [T], nexxo_status> {
    if count == 0 {
        return Ok(&mut []);
    }
    if p.is_null() || count > isize::MAX as usize / std::mem::size_of::<T>().max(1) {
        return Err(NEXXO_INVALID_ARGUMENT);
    }
    Ok(std::slice::from_raw_parts_mut(p, count))
}

/// A required pointer.
pub(crate) unsafe fn non_null<'a, T>(p: *const T) -> Result<&'a T, nexxo_status> {
    p.as_ref().ok_or(NEXXO_INVALID_ARGUMENT)
}

/// A required out-pointer.
pub(crate) unsafe fn out<'a, T>(p: *mut T) -> Result<&'a mut T, nexxo_status> {
    p.as_mut().ok_or(NEXXO_INVALID_ARGUMENT)
}
