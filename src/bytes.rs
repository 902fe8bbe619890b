//! `nexxo_bytes`: buffers the library hands out.

/// A buffer owned by the library: `len` bytes at `data`.
///
/// Free it exactly once with `nexxo_bytes_free`, which also resets it to `{NULL, 0}`.
/// A buffer of length 0 has `data == NULL`. Do not free copies of the same struct twice.
#[repr(C)]
#[derive(Debug)]
pub struct nexxo_bytes {
    pub data: *mut u8,
    pub len: usize,
}

impl nexxo_bytes {
    pub(crate) const EMPTY: nexxo_bytes = nexxo_bytes { data: std::ptr::null_mut(), len: 0 };

    pub(crate) fn from_vec(v: Vec<u8>) -> nexxo_bytes {
        if v.is_empty() {
            return Self::EMPTY;
        }
        let b: Box<[u8]> = v.into_boxed_slice();
        let len = b.len();
        nexxo_bytes { data: Box::into_raw(b).cast::<u8>(), len }
    }
}

/// Frees a buffer from this library and sets it to `{NULL, 0}`.
///
/// `b == NULL` and `{NULL, 0}` are no-ops, so calling it twice on the same struct is
/// harmless. Thread-safe for distinct buffers.
#[no_mangle]
pub unsafe extern "C" fn nexxo_bytes_free(b: *mut nexxo_bytes) {
    ffi_boundary!({
        let Some(b) = b.as_mut() else { return };
        if !b.data.is_null() && b.len > 0 {
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(b.data, b.len)));
        }
        *b = nexxo_bytes::EMPTY;
    })
}
