//! A Redis client for the four commands a cache needs (`AUTH`, `SELECT`, `GET`, `SET`),
//! speaking RESP2 over plain TCP with pooled connections.

use std::time::Instant;

use super::endpoint::Address;
use super::net::{with_conn, Conn, Failure, Outcome, Pool};

const MAX_LINE: usize = 4096;

pub struct Redis {
    pool: Pool,
    db: u32,
    user: Option<String>,
    password: Option<String>,
    /// Seconds a value lives on the server; 0 keeps it until Redis evicts it.
    ttl_secs: u64,
    max_len: usize,
}

enum Reply {
    Simple(Vec<u8>),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array,
}

fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

impl Redis {
    pub fn new(addr: &Address, pool: Pool, ttl_secs: u64, max_len: usize) -> Redis {
        Redis { pool, db: addr.db, user: addr.user.clone(), password: addr.password.clone(), ttl_secs, max_len }
    }

    fn read_reply(&self, conn: &mut Conn) -> Outcome<Reply> {
        let line = conn.read_line(MAX_LINE)?;
        let (kind, rest) = line.split_first().ok_or_else(|| Failure::Refused("an empty reply line".into()))?;
        let text = || String::from_utf8_lossy(rest).into_owned();
        let int = || text().parse::<i64>().map_err(|_| Failure::Refused(format!("a bad integer {:?}", text())));
        match kind {
            b'+' => Ok(Reply::Simple(rest.to_vec())),
            b'-' => {
                let m = text();
                // Temporary states are worth a retry; everything else is a refusal.
                if m.starts_with("LOADING") || m.starts_with("BUSY") || m.starts_with("TRYAGAIN") || m.starts_with("MASTERDOWN") {
                    Err(Failure::Server(format!("redis: {m}")))
                } else {
                    Err(Failure::Refused(format!("redis: {m}")))
                }
            }
            b':' => int().map(Reply::Int),
            b'$' => {
                let n = int()?;
                if n < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let n = n as usize;
                if n > self.max_len {
                    return Err(Failure::Refused(format!("a {n}-byte value is over the {}-byte limit", self.max_len)));
                }
                let v = conn.read_vec(n)?;
                let mut crlf = [0u8; 2];
                conn.read_exact(&mut crlf)?;
                if &crlf != b"\r\n" {
                    return Err(Failure::Refused("a bulk reply without its CRLF".into()));
                }
                Ok(Reply::Bulk(Some(v)))
            }
            b'*' => int().map(|_| Reply::Array),
            _ => Err(Failure::Refused(format!("not a RESP reply: {:?}", text().chars().take(40).collect::<String>()))),
        }
    }

    /// Sends one command on a connection that is authenticated and on the right database,
    /// and reads its reply.
    fn command(&self, args: &[&[u8]], deadline: Instant) -> Outcome<Reply> {
        let cmd = encode(args);
        with_conn(&self.pool, deadline, |conn| {
            self.prepare(conn)?;
            conn.write_all(&[&cmd])?;
            let r = self.read_reply(conn)?;
            if let Reply::Array = r {
                // Nothing sent here answers with an array; do not reuse the connection.
                return Err(Failure::Refused("an unexpected array reply".into()));
            }
            Ok((r, true))
        })
    }

    /// Authenticates and selects the database on a fresh connection (once).
    fn prepare(&self, conn: &mut Conn) -> Outcome<()> {
        if conn.ready {
            return Ok(());
        }
        if let Some(p) = &self.password {
            let args: Vec<&[u8]> = match &self.user {
                Some(u) => vec![b"AUTH", u.as_bytes(), p.as_bytes()],
                None => vec![b"AUTH", p.as_bytes()],
            };
            conn.write_all(&[&encode(&args)])?;
            self.read_reply(conn)?;
        }
        if self.db != 0 {
            conn.write_all(&[&encode(&[b"SELECT", self.db.to_string().as_bytes()])])?;
            self.read_reply(conn)?;
        }
        conn.ready = true;
        Ok(())
    }

    pub fn get(&self, key: &str, deadline: Instant) -> Outcome<Option<Vec<u8>>> {
        match self.command(&[b"GET", key.as_bytes()], deadline)? {
            Reply::Bulk(v) => Ok(v),
            _ => Err(Failure::Refused("GET answered with something other than a value".into())),
        }
    }

    /// Whether the server holds `key` (EXISTS).
    pub fn exists(&self, key: &str, deadline: Instant) -> Outcome<bool> {
        match self.command(&[b"EXISTS", key.as_bytes()], deadline)? {
            Reply::Int(n) => Ok(n > 0),
            _ => Err(Failure::Refused("EXISTS answered with something other than a number".into())),
        }
    }

    pub fn put(&self, key: &str, value: &[u8], deadline: Instant) -> Outcome<()> {
        let ttl = self.ttl_secs.to_string();
        let args: Vec<&[u8]> = if self.ttl_secs > 0 { vec![b"SET", key.as_bytes(), value, b"EX", ttl.as_bytes()] } else { vec![b"SET", key.as_bytes(), value] };
        match self.command(&args, deadline)? {
            Reply::Simple(s) if s == b"OK" => Ok(()),
            _ => Err(Failure::Refused("SET answered with something other than OK".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_commands_as_bulk_arrays() {
        assert_eq!(super::encode(&[b"GET", b"k\r\n"]), b"*2\r\n$3\r\nGET\r\n$3\r\nk\r\n\r\n");
    }
}
