//! The wire format between the processes that share one cache (see [`super`]).
//!
//! Every message is a frame: a `u32` (little-endian) length of the body, then the body.
//! A request's body is an [`Op`] byte and its fields; a reply's body is a status byte
//! (0 ok, 1 error) and the fields. Fields are `u8`, `u32`, `u64` (little-endian) and byte
//! strings (`u32` length, then the bytes). A frame over [`MAX_FRAME`], a field running
//! past its frame's end, or bytes left over are protocol errors: the connection is
//! dropped, nothing is applied.

use std::io::{self, Read, Write};

use crate::error::Error;
use crate::evict::PolicyReport;
use crate::stats::Stats;
use crate::store::VerifyReport;

/// The first bytes of a connection's hello.
pub(crate) const MAGIC: &[u8; 8] = b"NEXXOIPC";
/// Raised whenever a message changes meaning; both sides must speak the same one.
/// 2 (1.3.1): the verify reply names damaged tables. 3 (1.7): tagged writes and
/// invalidation. 4 (1.9): clients journal small sets (`journal.rs`) and `Pull`.
pub(crate) const PROTOCOL: u32 = 4;
/// The largest frame read: a value's limit (256 MiB) with room for its key and fields.
/// Batches are split by the sender to fit.
pub(crate) const MAX_FRAME: usize = (256 << 20) + (1 << 20);
/// What a sender puts in one batch frame before starting another.
pub(crate) const BATCH_FRAME_BUDGET: usize = 64 << 20;

/// A request's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    Hello = 1,
    Get = 2,
    BatchGet = 3,
    BatchSet = 4,
    Fill = 5,
    Delete = 6,
    Clear = 7,
    Compact = 8,
    Enforce = 9,
    Flush = 10,
    Stats = 11,
    CategoryStats = 12,
    Verify = 13,
    BatchSetTagged = 14,
    Invalidate = 15,
    /// Take the journals in; the answer is the last record of the asker's journal (its
    /// id is the request's field) the store holds.
    Pull = 16,
}

impl Op {
    pub fn from_u8(b: u8) -> Option<Op> {
        use Op::*;
        Some(match b {
            1 => Hello,
            2 => Get,
            3 => BatchGet,
            4 => BatchSet,
            5 => Fill,
            6 => Delete,
            7 => Clear,
            8 => Compact,
            9 => Enforce,
            10 => Flush,
            11 => Stats,
            12 => CategoryStats,
            13 => Verify,
            14 => BatchSetTagged,
            15 => Invalidate,
            16 => Pull,
            _ => return None,
        })
    }
}

/// A malformed frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoError(pub String);

impl From<ProtoError> for io::Error {
    fn from(e: ProtoError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e.0)
    }
}

/// Builds one frame.
pub struct Frame(Vec<u8>);

impl Frame {
    pub fn new() -> Frame {
        Frame(vec![0; 4])
    }

    pub fn request(op: Op) -> Frame {
        Frame::new().u8(op as u8)
    }

    pub fn u8(mut self, v: u8) -> Frame {
        self.0.push(v);
        self
    }

    pub fn u32(mut self, v: u32) -> Frame {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u64(mut self, v: u64) -> Frame {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Bytes with no length before them (a fixed-size field).
    pub fn raw(mut self, v: &[u8]) -> Frame {
        self.0.extend_from_slice(v);
        self
    }

    pub fn bytes(mut self, v: &[u8]) -> Frame {
        self.push_bytes(v);
        self
    }

    pub fn push_bytes(&mut self, v: &[u8]) {
        self.0.extend_from_slice(&(v.len() as u32).to_le_bytes());
        self.0.extend_from_slice(v);
    }

    pub fn push_u8(&mut self, v: u8) {
        self.0.push(v);
    }

    pub fn push_u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    /// The frame with its length filled in.
    pub fn finish(mut self) -> Vec<u8> {
        let n = (self.0.len() - 4) as u32;
        self.0[..4].copy_from_slice(&n.to_le_bytes());
        self.0
    }

    pub fn send(self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&self.finish())
    }
}

impl Default for Frame {
    fn default() -> Self {
        Frame::new()
    }
}

/// Reads one frame's body into `buf`. The body is read as it arrives, so a peer that
/// announces a large frame and sends nothing costs no memory.
pub fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(ProtoError(format!("a frame of {len} bytes exceeds the limit of {MAX_FRAME}")).into());
    }
    buf.clear();
    let got = r.take(len as u64).read_to_end(buf)?;
    if got != len {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the peer closed the connection in the middle of a frame"));
    }
    Ok(())
}

/// Reads the fields of one frame's body.
pub struct Fields<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    pub fn new(buf: &'a [u8]) -> Fields<'a> {
        Fields { buf, at: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(ProtoError(format!("a field of {n} bytes runs past the end of its frame")));
        };
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }

    pub fn u8(&mut self) -> Result<u8, ProtoError> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32, ProtoError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    pub fn u64(&mut self) -> Result<u64, ProtoError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], ProtoError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    pub fn take_magic(&mut self) -> Result<[u8; 8], ProtoError> {
        Ok(self.take(8)?.try_into().unwrap())
    }

    pub fn string(&mut self) -> Result<String, ProtoError> {
        Ok(String::from_utf8_lossy(self.bytes()?).into_owned())
    }

    /// A count of items that each take at least `min_item` bytes: refused when the frame
    /// cannot hold that many (no allocation sized by a peer's claim).
    pub fn count(&mut self, min_item: usize) -> Result<usize, ProtoError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item.max(1)) > self.buf.len() - self.at {
            return Err(ProtoError(format!("a count of {n} items does not fit in its frame")));
        }
        Ok(n)
    }

    pub fn end(&self) -> Result<(), ProtoError> {
        if self.at == self.buf.len() {
            Ok(())
        } else {
            Err(ProtoError(format!("{} bytes left over at the end of a frame", self.buf.len() - self.at)))
        }
    }
}

// ---- errors ----

pub fn put_error(f: &mut Frame, e: &Error) {
    let (tag, text): (u8, String) = match e {
        Error::InvalidArgument(m) => (1, m.clone()),
        Error::UnknownCategory(m) => (2, m.clone()),
        Error::TooLarge(m) => (3, m.clone()),
        Error::BufferTooSmall(n) => (4, n.to_string()),
        Error::Locked(m) => (5, m.clone()),
        Error::Io(m) => (6, m.clone()),
        Error::NoSpace(m) => (7, m.clone()),
        Error::Corruption(m) => (8, m.clone()),
        Error::ReadOnly => (9, String::new()),
        Error::Incompatible(m) => (10, m.clone()),
        Error::Insecure(m) => (11, m.clone()),
        Error::DisabledOnRequest(m) => (12, m.clone()),
    };
    f.push_u8(tag);
    f.push_bytes(text.as_bytes());
}

pub fn get_error(r: &mut Fields<'_>) -> Result<Error, ProtoError> {
    let tag = r.u8()?;
    let m = r.string()?;
    Ok(match tag {
        1 => Error::InvalidArgument(m),
        2 => Error::UnknownCategory(m),
        3 => Error::TooLarge(m),
        4 => Error::BufferTooSmall(m.parse().map_err(|_| ProtoError("a malformed buffer size".into()))?),
        5 => Error::Locked(m),
        6 => Error::Io(m),
        7 => Error::NoSpace(m),
        8 => Error::Corruption(m),
        9 => Error::ReadOnly,
        10 => Error::Incompatible(m),
        11 => Error::Insecure(m),
        12 => Error::DisabledOnRequest(m),
        t => return Err(ProtoError(format!("unknown error kind {t}"))),
    })
}

// ---- replies ----

pub(crate) const REPLY_OK: u8 = 0;
pub(crate) const REPLY_ERR: u8 = 1;

/// A reply frame for `r`: status, then what `ok` adds for a success.
pub fn reply<T>(r: &crate::error::Result<T>, ok: impl FnOnce(Frame, &T) -> Frame) -> Frame {
    match r {
        Ok(v) => ok(Frame::new().u8(REPLY_OK), v),
        Err(e) => {
            let mut f = Frame::new().u8(REPLY_ERR);
            put_error(&mut f, e);
            f
        }
    }
}

/// The reply's status: `Ok(fields)` to read on, or the error it carries.
pub fn open_reply(body: &[u8]) -> Result<Result<Fields<'_>, Error>, ProtoError> {
    let mut r = Fields::new(body);
    match r.u8()? {
        REPLY_OK => Ok(Ok(r)),
        REPLY_ERR => {
            let e = get_error(&mut r)?;
            r.end()?;
            Ok(Err(e))
        }
        s => Err(ProtoError(format!("unknown reply status {s}"))),
    }
}

// ---- records ----

/// A value or a miss: 0, or 1 and the bytes.
pub fn put_found(f: &mut Frame, v: Option<&[u8]>) {
    match v {
        None => f.push_u8(0),
        Some(v) => {
            f.push_u8(1);
            f.push_bytes(v);
        }
    }
}

pub fn get_found<'a>(r: &mut Fields<'a>) -> Result<Option<&'a [u8]>, ProtoError> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(r.bytes()?)),
        t => Err(ProtoError(format!("unknown value marker {t}"))),
    }
}

const STATS_U64S: usize = 10;

pub fn put_stats(f: Frame, s: &Stats) -> Frame {
    let mut f = f;
    for v in [s.hits, s.misses, s.writes, s.deletes, s.entries, s.logical_bytes, s.stored_bytes, s.disk_bytes, s.evictions, s.corrupt_dropped] {
        f = f.u64(v);
    }
    f.u8(s.read_only as u8 | (s.recovered as u8) << 1)
}

pub fn get_stats(r: &mut Fields<'_>) -> Result<Stats, ProtoError> {
    let mut v = [0u64; STATS_U64S];
    for x in &mut v {
        *x = r.u64()?;
    }
    let flags = r.u8()?;
    Ok(Stats {
        hits: v[0],
        misses: v[1],
        writes: v[2],
        deletes: v[3],
        entries: v[4],
        logical_bytes: v[5],
        stored_bytes: v[6],
        disk_bytes: v[7],
        evictions: v[8],
        corrupt_dropped: v[9],
        read_only: flags & 1 != 0,
        recovered: flags & 2 != 0,
        disabled: None,
    })
}

pub fn put_report(f: Frame, r: &PolicyReport) -> Frame {
    f.u64(r.evicted_entries).u64(r.evicted_bytes).u64(r.stored_bytes_before).u64(r.stored_bytes_after).u8(r.compacted as u8)
}

pub fn get_report(r: &mut Fields<'_>) -> Result<PolicyReport, ProtoError> {
    Ok(PolicyReport {
        evicted_entries: r.u64()?,
        evicted_bytes: r.u64()?,
        stored_bytes_before: r.u64()?,
        stored_bytes_after: r.u64()?,
        compacted: r.u8()? != 0,
    })
}

pub fn put_verify(f: Frame, v: &VerifyReport) -> Frame {
    let mut f = f.u64(v.checked).u64(v.bad).u64(v.dropped).u64(v.dropped_index_records).u64(v.value_bytes).u32(v.bad_keys.len() as u32);
    for (c, k) in &v.bad_keys {
        f.push_bytes(c.as_bytes());
        f.push_bytes(k);
    }
    f = f.u32(v.damaged_tables.len() as u32);
    for (c, e) in &v.damaged_tables {
        f.push_bytes(c.as_bytes());
        f.push_bytes(e.as_bytes());
    }
    f
}

pub fn get_verify(r: &mut Fields<'_>) -> Result<VerifyReport, ProtoError> {
    let mut v = VerifyReport { checked: r.u64()?, bad: r.u64()?, dropped: r.u64()?, dropped_index_records: r.u64()?, value_bytes: r.u64()?, ..Default::default() };
    for _ in 0..r.count(8)? {
        v.bad_keys.push((r.string()?, r.bytes()?.to_vec()));
    }
    for _ in 0..r.count(8)? {
        v.damaged_tables.push((r.string()?, r.string()?));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(f: Frame) -> Vec<u8> {
        f.finish()[4..].to_vec()
    }

    #[test]
    fn fields_round_trip() {
        let b = body(Frame::new().u8(7).u32(9).u64(u64::MAX).bytes(b"key"));
        let mut r = Fields::new(&b);
        assert_eq!((r.u8().unwrap(), r.u32().unwrap(), r.u64().unwrap(), r.bytes().unwrap()), (7, 9, u64::MAX, &b"key"[..]));
        r.end().unwrap();
    }

    #[test]
    fn hostile_fields_are_errors() {
        // A byte string claiming more than the frame holds, a count claiming more items
        // than fit, a truncated integer, bytes left over: each an error, no panic.
        let b = body(Frame::new().u32(u32::MAX));
        assert!(Fields::new(&b).bytes().is_err());
        assert!(Fields::new(&b).count(1).is_err());
        assert!(Fields::new(&[1, 2]).u32().is_err());
        assert!(Fields::new(&[1, 2]).end().is_err());
        let mut r = Fields::new(&[]);
        assert!(r.u8().is_err());
        assert!(open_reply(&[9]).is_err());
        assert!(open_reply(&[REPLY_ERR, 77, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn frames_over_the_limit_are_refused_without_allocating() {
        let mut wire = ((MAX_FRAME + 1) as u32).to_le_bytes().to_vec();
        wire.extend_from_slice(b"abc");
        let mut buf = Vec::new();
        assert_eq!(read_frame(&mut &wire[..], &mut buf).unwrap_err().kind(), io::ErrorKind::InvalidData);
        // A frame that ends early is an EOF, not a short message.
        let mut wire = 10u32.to_le_bytes().to_vec();
        wire.extend_from_slice(b"abc");
        assert_eq!(read_frame(&mut &wire[..], &mut buf).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn errors_round_trip() {
        for e in [Error::InvalidArgument("a".into()), Error::BufferTooSmall(12), Error::ReadOnly, Error::Insecure("x".into()), Error::NoSpace("n".into())] {
            let b = body(reply::<()>(&Err(e.clone()), |f, _| f));
            assert_eq!(open_reply(&b).unwrap().err(), Some(e));
        }
    }

    #[test]
    fn stats_and_reports_round_trip() {
        let s = Stats { hits: 1, misses: 2, writes: 3, deletes: 4, entries: 5, logical_bytes: 6, stored_bytes: 7, disk_bytes: 8, evictions: 9, corrupt_dropped: 10, read_only: true, recovered: true, disabled: None };
        let b = body(put_stats(Frame::new(), &s));
        assert_eq!(get_stats(&mut Fields::new(&b)).unwrap(), s);
        let v = VerifyReport { damaged_tables: vec![("bundle".into(), "Corruption: bad".into())], checked: 3, bad: 1, dropped: 1, dropped_index_records: 0, value_bytes: 9, bad_keys: vec![("parse".into(), b"k".to_vec())] };
        let b = body(put_verify(Frame::new(), &v));
        assert_eq!(get_verify(&mut Fields::new(&b)).unwrap(), v);
    }
}
