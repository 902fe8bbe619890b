//! Framing of a stored value: format version, codec, lengths and checksum, with LZ4
//! compression (`lz4_flex`) when it makes the value smaller.
//!
//! Frame layout, version 1 (all integers little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | format version, `1` |
//! | 1 | 1 | codec: `0` raw, `1` LZ4 block |
//! | 2 | 2 | reserved, zero |
//! | 4 | 4 | generation (recency, for eviction; not covered by the checksum) |
//! | 8 | 4 | value length before compression |
//! | 12 | 8 | checksum |
//! | 20 | .. | payload: the value, raw or LZ4-compressed |
//!
//! The checksum is XXH3-64 of the uncompressed value, seeded with a hash of the format,
//! codec, length, category and key. A frame therefore only decodes under the category
//! and key it was written for: a value moved to another key, a damaged payload, a damaged
//! header or a decompressor fault all fail the checksum and the read becomes a miss.
//! Decoding never trusts a length it has not bounded: arbitrary bytes yield an error,
//! never a panic and never a value that was not encoded.

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Bytes in front of every payload.
pub const HEADER_LEN: usize = 20;
/// The frame format this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Largest value a frame can describe; the public limit (`MAX_VALUE_LEN`) is below it.
pub const MAX_FRAME_VALUE_LEN: usize = u32::MAX as usize;
/// Values shorter than this are stored raw: LZ4 cannot win back its own overhead.
pub const MIN_COMPRESS_LEN: usize = 64;

/// Whether values may be compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    None,
    #[default]
    Lz4,
}

/// How a frame's payload is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Raw = 0,
    Lz4 = 1,
}

/// Why a frame failed to decode. Every variant means the same to a reader: a miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecError {
    Truncated,
    UnknownFormat(u8),
    UnknownCodec(u8),
    BadLength,
    Decompress,
    Checksum,
}

/// The fixed fields of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub codec: Codec,
    pub generation: u32,
    pub value_len: u32,
    pub checksum: u64,
}

impl Header {
    /// Parses the header. Only the fields are checked here; the checksum needs the value.
    pub fn parse(frame: &[u8]) -> Result<Header, CodecError> {
        if frame.len() < HEADER_LEN {
            return Err(CodecError::Truncated);
        }
        if frame[0] != FORMAT_VERSION {
            return Err(CodecError::UnknownFormat(frame[0]));
        }
        let codec = match frame[1] {
            0 => Codec::Raw,
            1 => Codec::Lz4,
            c => return Err(CodecError::UnknownCodec(c)),
        };
        let value_len = u32::from_le_bytes(frame[8..12].try_into().unwrap());
        let payload_len = frame.len() - HEADER_LEN;
        let plausible = match codec {
            Codec::Raw => payload_len == value_len as usize,
            // LZ4 expands at most 255:1, and a compressed frame is only kept when smaller.
            Codec::Lz4 => payload_len < value_len as usize && (value_len as usize) <= payload_len.saturating_mul(255) + 16,
        };
        if frame[2] != 0 || frame[3] != 0 || !plausible {
            return Err(CodecError::BadLength);
        }
        Ok(Header {
            codec,
            generation: u32::from_le_bytes(frame[4..8].try_into().unwrap()),
            value_len,
            checksum: u64::from_le_bytes(frame[12..20].try_into().unwrap()),
        })
    }
}

/// The checksum of `value` as stored under `category`/`key` with `codec`.
fn checksum(category: &[u8], key: &[u8], codec: Codec, value: &[u8]) -> u64 {
    let fields = [FORMAT_VERSION, codec as u8];
    let mut seed = xxh3_64(&fields) ^ (value.len() as u64).rotate_left(17);
    seed = xxh3_64_with_seed(category, seed);
    seed = xxh3_64_with_seed(key, seed);
    xxh3_64_with_seed(value, seed)
}

/// Encodes `value` for `category`/`key`. LZ4 is used when `compression` allows it and the
/// compressed payload saves at least 1/16 of the value; otherwise the value is stored raw.
///
/// # Panics
/// If `value` is longer than [`MAX_FRAME_VALUE_LEN`]; callers check the public limit first.
pub fn encode(category: &[u8], key: &[u8], value: &[u8], generation: u32, compression: Compression) -> Vec<u8> {
    let mut frame = Vec::new();
    encode_append(category, key, value, generation, compression, &mut Vec::new(), &mut frame);
    frame
}

/// [`encode`], appending the frame to `out`; returns its length. `scratch` is LZ4's
/// output space, for the caller to keep across calls: it grows to the largest bound
/// needed and is never cleared again, so a batch of frames costs no allocation or
/// zeroing per value (when `out` has room).
///
/// # Panics
/// If `value` is longer than [`MAX_FRAME_VALUE_LEN`]; callers check the public limit first.
pub fn encode_append(category: &[u8], key: &[u8], value: &[u8], generation: u32, compression: Compression, scratch: &mut Vec<u8>, out: &mut Vec<u8>) -> usize {
    assert!(value.len() <= MAX_FRAME_VALUE_LEN, "value longer than a frame can hold");
    let sum_raw = |codec| checksum(category, key, codec, value);
    let start = out.len();
    if compression == Compression::Lz4 && value.len() >= MIN_COMPRESS_LEN {
        let bound = lz4_flex::block::get_maximum_output_size(value.len());
        if scratch.len() < bound {
            scratch.resize(bound, 0);
        }
        if let Ok(n) = lz4_flex::block::compress_into(value, &mut scratch[..bound]) {
            if n <= value.len() - value.len() / 16 {
                out.resize(start + HEADER_LEN, 0);
                out.extend_from_slice(&scratch[..n]);
                write_header(&mut out[start..], Codec::Lz4, generation, value.len(), sum_raw(Codec::Lz4));
                return HEADER_LEN + n;
            }
        }
    }
    out.resize(start + HEADER_LEN, 0);
    out.extend_from_slice(value);
    write_header(&mut out[start..], Codec::Raw, generation, value.len(), sum_raw(Codec::Raw));
    HEADER_LEN + value.len()
}

fn write_header(frame: &mut [u8], codec: Codec, generation: u32, value_len: usize, sum: u64) {
    frame[0] = FORMAT_VERSION;
    frame[1] = codec as u8;
    frame[2] = 0;
    frame[3] = 0;
    frame[4..8].copy_from_slice(&generation.to_le_bytes());
    frame[8..12].copy_from_slice(&(value_len as u32).to_le_bytes());
    frame[12..20].copy_from_slice(&sum.to_le_bytes());
}

/// Rewrites the generation of an encoded frame in place (the checksum does not cover it).
pub fn set_generation(frame: &mut [u8], generation: u32) {
    if frame.len() >= HEADER_LEN {
        frame[4..8].copy_from_slice(&generation.to_le_bytes());
    }
}

/// Decodes `frame` into the front of `out`, which must hold at least the header's
/// `value_len` bytes, and returns that length. On error the contents of `out` are
/// unspecified.
pub fn decode_into(category: &[u8], key: &[u8], frame: &[u8], out: &mut [u8]) -> Result<usize, CodecError> {
    let h = Header::parse(frame)?;
    decode_with_header(category, key, frame, &h, out)
}

/// Like [`decode_into`] with a header already parsed from the same `frame`.
pub fn decode_with_header(category: &[u8], key: &[u8], frame: &[u8], h: &Header, out: &mut [u8]) -> Result<usize, CodecError> {
    let n = h.value_len as usize;
    if out.len() < n {
        return Err(CodecError::BadLength);
    }
    let payload = &frame[HEADER_LEN..];
    let out = &mut out[..n];
    match h.codec {
        Codec::Raw => {
            // Check before copying: a caller's buffer only ever receives verified bytes here.
            if checksum(category, key, Codec::Raw, payload) != h.checksum {
                return Err(CodecError::Checksum);
            }
            out.copy_from_slice(payload);
        }
        Codec::Lz4 => {
            match lz4_flex::block::decompress_into(payload, out) {
                Ok(m) if m == n => {}
                _ => return Err(CodecError::Decompress),
            }
            if checksum(category, key, Codec::Lz4, out) != h.checksum {
                return Err(CodecError::Checksum);
            }
        }
    }
    Ok(n)
}

/// Decodes `frame` into a new vector holding exactly the value.
pub fn decode(category: &[u8], key: &[u8], frame: &[u8]) -> Result<Vec<u8>, CodecError> {
    let h = Header::parse(frame)?;
    let mut out = vec![0u8; h.value_len as usize];
    decode_with_header(category, key, frame, &h, &mut out)?;
    Ok(out)
}

/// Which of `categories` `frame` was encoded for under `key`: the index of the first
/// whose checksum holds, or None (not a frame, or damaged). The value is decompressed
/// once. For salvage: a record read from a damaged store's files names its key and
/// frame, not its category.
pub fn find_category(categories: &[&[u8]], key: &[u8], frame: &[u8]) -> Option<usize> {
    let h = Header::parse(frame).ok()?;
    let payload = &frame[HEADER_LEN..];
    let decompressed;
    let value: &[u8] = match h.codec {
        Codec::Raw => payload,
        Codec::Lz4 => {
            let mut out = vec![0u8; h.value_len as usize];
            match lz4_flex::block::decompress_into(payload, &mut out) {
                Ok(m) if m == out.len() => {}
                _ => return None,
            }
            decompressed = out;
            &decompressed
        }
    };
    categories.iter().position(|c| checksum(c, key, h.codec, value) == h.checksum)
}

/// The value length a frame accounts for in `logical_bytes`: the header's length when
/// the header parses, else the frame's own length. Stats use this one rule when a frame
/// is added, replaced, removed or recounted, so the counters stay exact even for frames
/// that were damaged on disk.
pub fn accounted_value_len(frame: &[u8]) -> u64 {
    match Header::parse(frame) {
        Ok(h) => h.value_len as u64,
        Err(_) => frame.len() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn js(n: usize) -> Vec<u8> {
        let line = b"export function transform(node) { return visit(node, ctx); }\n";
        line.iter().copied().cycle().take(n).collect()
    }

    #[test]
    fn find_category_names_the_one_whose_checksum_holds() {
        let cats: [&[u8]; 3] = [b"parse", b"transform", b"bundle"];
        for value in [js(5000), b"short".to_vec(), Vec::new()] {
            let f = encode(b"transform", b"k", &value, 7, Compression::Lz4);
            assert_eq!(find_category(&cats, b"k", &f), Some(1));
            assert_eq!(find_category(&cats, b"other", &f), None);
            assert_eq!(find_category(&cats[..1], b"k", &f), None);
            let mut bad = f.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            if bad.len() > HEADER_LEN {
                assert_eq!(find_category(&cats, b"k", &bad), None);
            }
        }
        assert_eq!(find_category(&cats, b"k", b"not a frame at all, not at all"), None);
    }

    #[test]
    fn round_trips_raw_and_compressed() {
        for len in [0usize, 1, 63, 64, 100, 1024, 70_000] {
            for c in [Compression::None, Compression::Lz4] {
                let v = js(len);
                let f = encode(b"transform", b"k", &v, 7, c);
                let h = Header::parse(&f).unwrap();
                assert_eq!(h.generation, 7);
                assert_eq!(h.value_len as usize, len);
                assert_eq!(decode(b"transform", b"k", &f).unwrap(), v);
            }
        }
    }

    /// Frames appended into one buffer, with one LZ4 scratch reused across values of
    /// growing and shrinking sizes, are each the frame `encode` makes.
    #[test]
    fn append_lays_frames_end_to_end() {
        let noise: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let values = [js(100), js(70_000), Vec::new(), noise, js(1024), b"tiny".to_vec()];
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        let mut lens = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let key = format!("k{i}");
            lens.push(encode_append(b"transform", key.as_bytes(), v, 3, Compression::Lz4, &mut scratch, &mut out));
        }
        let mut at = 0;
        for (i, (v, n)) in values.iter().zip(lens).enumerate() {
            let key = format!("k{i}");
            let frame = &out[at..at + n];
            assert_eq!(frame, &encode(b"transform", key.as_bytes(), v, 3, Compression::Lz4)[..], "frame {i}");
            assert_eq!(&decode(b"transform", key.as_bytes(), frame).unwrap(), v);
            at += n;
        }
        assert_eq!(at, out.len());
    }

    #[test]
    fn compresses_only_when_it_pays() {
        let text = js(4096);
        let f = encode(b"parse", b"k", &text, 0, Compression::Lz4);
        assert_eq!(Header::parse(&f).unwrap().codec, Codec::Lz4);
        assert!(f.len() < text.len() / 4);
        // Incompressible bytes are stored raw.
        let mut x = 0x1234_5678_9abc_def0u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let f = encode(b"parse", b"k", &noise, 0, Compression::Lz4);
        assert_eq!(Header::parse(&f).unwrap().codec, Codec::Raw);
        assert_eq!(f.len(), HEADER_LEN + noise.len());
    }

    #[test]
    fn bound_to_category_and_key() {
        let f = encode(b"parse", b"a", b"value", 0, Compression::None);
        assert_eq!(decode(b"parse", b"b", &f), Err(CodecError::Checksum));
        assert_eq!(decode(b"bundle", b"a", &f), Err(CodecError::Checksum));
    }

    #[test]
    fn no_single_bit_flip_yields_other_bytes() {
        for c in [Compression::None, Compression::Lz4] {
            let v = js(300);
            let f = encode(b"meta", b"key", &v, 3, c);
            for i in 0..f.len() {
                if (4..8).contains(&i) {
                    continue; // the generation is not covered, by design
                }
                for bit in 0..8 {
                    let mut g = f.clone();
                    g[i] ^= 1 << bit;
                    match decode(b"meta", b"key", &g) {
                        Err(_) => {}
                        // An LZ4 match offset can change to another that copies the same
                        // bytes of a periodic text: the value is still exactly the original.
                        Ok(d) => assert!(c == Compression::Lz4 && d == v, "flip at byte {i} bit {bit} gave other bytes"),
                    }
                }
            }
        }
    }

    #[test]
    fn truncation_and_garbage_are_errors() {
        let f = encode(b"meta", b"key", &js(500), 0, Compression::Lz4);
        for n in 0..f.len() {
            assert!(decode(b"meta", b"key", &f[..n]).is_err());
        }
        assert_eq!(decode(b"meta", b"key", &[9u8; 40]), Err(CodecError::UnknownFormat(9)));
    }

    #[test]
    fn generation_can_be_rewritten() {
        let mut f = encode(b"meta", b"key", b"abc", 1, Compression::None);
        set_generation(&mut f, 99);
        assert_eq!(Header::parse(&f).unwrap().generation, 99);
        assert_eq!(decode(b"meta", b"key", &f).unwrap(), b"abc");
    }

    #[test]
    fn decode_into_needs_room() {
        let f = encode(b"meta", b"key", b"abcdef", 0, Compression::None);
        let mut small = [0u8; 3];
        assert_eq!(decode_into(b"meta", b"key", &f, &mut small), Err(CodecError::BadLength));
        let mut big = [0u8; 16];
        assert_eq!(decode_into(b"meta", b"key", &f, &mut big), Ok(6));
        assert_eq!(&big[..6], b"abcdef");
    }
}
