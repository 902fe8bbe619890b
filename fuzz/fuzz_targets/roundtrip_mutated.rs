//! A value encoded and then damaged decodes to exactly that value or to an error: never
//! to other bytes. Undamaged, it always decodes to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nexxo_codec::{decode, encode, Compression};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let compression = if data[0] & 1 == 0 { Compression::None } else { Compression::Lz4 };
    let flips = (data[1] % 4) as usize; // how many bytes of the frame to damage
    let split = (data[2] as usize).min(data.len() - 3);
    let (key, value) = data[3..].split_at(split.min(data.len() - 3));
    let frame = encode(b"transform", key, value, 7, compression);
    assert_eq!(decode(b"transform", key, &frame).as_deref(), Ok(value), "an undamaged frame must decode");
    let mut damaged = frame.clone();
    for i in 0..flips {
        // Positions and masks taken from the value itself, so libFuzzer can steer them.
        let seed = value.get(i).copied().unwrap_or(i as u8) as usize * 131 + i * 7919;
        let pos = seed % damaged.len();
        damaged[pos] ^= (seed as u8) | 1;
    }
    match decode(b"transform", key, &damaged) {
        Err(_) => {}
        Ok(v) => assert_eq!(v, value, "damaged frame decoded to other bytes"),
    }
    // Under another key or category it never decodes.
    let mut other_key = key.to_vec();
    other_key.push(0);
    assert!(decode(b"transform", &other_key, &frame).is_err());
    assert!(decode(b"bundle", key, &frame).is_err());
});
