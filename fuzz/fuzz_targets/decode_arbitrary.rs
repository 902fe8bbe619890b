//! Decoding arbitrary stored bytes never panics, and a value it returns has exactly the
//! length the frame's header states.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nexxo_codec::{decode, Header};

fuzz_target!(|data: &[u8]| {
    // The first two bytes split the input into category, key and frame.
    if data.len() < 2 {
        return;
    }
    let (a, b) = (data[0] as usize, data[1] as usize);
    let rest = &data[2..];
    let a = a.min(rest.len());
    let (category, rest) = rest.split_at(a);
    let b = b.min(rest.len());
    let (key, frame) = rest.split_at(b);
    if let Ok(v) = decode(category, key, frame) {
        let h = Header::parse(frame).expect("a frame that decodes has a header");
        assert_eq!(v.len(), h.value_len as usize);
    }
});
