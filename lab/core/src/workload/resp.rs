//! A lean RESP2 connection for the load generator's hot path: commands are encoded straight
//! into one write buffer, replies are parsed in place from one read buffer, and a batch of
//! pipelined replies costs one read syscall and no allocation when they all arrived together.
//! (The redis crate's multiplexed connection adds a channel round trip per request, which
//! shows up against redis-benchmark at 2 cores; the control plane — Sentinel queries,
//! pub/sub, cluster maps — still uses the redis crate.)

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

/// All the load generator needs of a reply: it worked, or the server's error text (MOVED,
/// ASK, READONLY...). Values are skipped without being copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Fine,
    Error(String),
}

pub struct RespConn {
    stream: TcpStream,
    out: Vec<u8>,
    /// Bytes `start..end` of `inb` are read but not yet parsed.
    inb: Vec<u8>,
    start: usize,
    end: usize,
    pub port: u16,
}

/// Appends one bulk string (`$<len>\r\n<bytes>\r\n`); lengths below 100 skip the number
/// formatting (every key and value of the seed's benchmark).
#[inline]
fn push_bulk(out: &mut Vec<u8>, b: &[u8]) {
    let n = b.len();
    if n < 10 {
        out.extend_from_slice(&[b'$', b'0' + n as u8, b'\r', b'\n']);
    } else if n < 100 {
        out.extend_from_slice(&[
            b'$',
            b'0' + (n / 10) as u8,
            b'0' + (n % 10) as u8,
            b'\r',
            b'\n',
        ]);
    } else {
        out.push(b'$');
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// `encode(out, &[b"SET", key, value])`, with the constant part written at once.
#[inline]
pub fn encode_set(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    out.extend_from_slice(b"*3\r\n$3\r\nSET\r\n");
    push_bulk(out, key);
    push_bulk(out, value);
}

/// `encode(out, &[b"GET", key])`.
#[inline]
pub fn encode_get(out: &mut Vec<u8>, key: &[u8]) {
    out.extend_from_slice(b"*2\r\n$3\r\nGET\r\n");
    push_bulk(out, key);
}

/// Appends one command in RESP array form.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    let mut n = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(n.format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        out.extend_from_slice(n.format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

const READ_CHUNK: usize = 16 * 1024;

impl RespConn {
    /// Connects to 127.0.0.1:`port` and authenticates.
    pub async fn connect(
        port: u16,
        password: Option<&str>,
        timeout: Duration,
    ) -> io::Result<RespConn> {
        Self::connect_to(
            SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            port,
            password,
            timeout,
        )
        .await
    }

    /// Connects to `addr` (a published port, or a container's address on lab's network) and
    /// authenticates; `port` names the node (its published port) in this connection.
    pub async fn connect_to(
        addr: SocketAddr,
        port: u16,
        password: Option<&str>,
        timeout: Duration,
    ) -> io::Result<RespConn> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        let mut c = RespConn {
            stream,
            out: Vec::with_capacity(16 * 1024),
            inb: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            port,
        };
        if let Some(pw) = password {
            c.queue(&[b"AUTH", pw.as_bytes()]);
            c.flush().await?;
            match tokio::time::timeout(timeout, c.read_reply()).await {
                Ok(Ok(Reply::Status(_))) => {}
                Ok(Ok(Reply::Error(e))) => {
                    return Err(io::Error::new(io::ErrorKind::PermissionDenied, e))
                }
                Ok(Ok(other)) => {
                    return Err(io::Error::other(format!("unexpected AUTH reply {other:?}")))
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "AUTH timed out")),
            }
        }
        Ok(c)
    }

    pub fn queue(&mut self, args: &[&[u8]]) {
        encode(&mut self.out, args);
    }

    /// `queue(&[b"SET", key, value])`, faster.
    #[inline]
    pub fn queue_set(&mut self, key: &[u8], value: &[u8]) {
        encode_set(&mut self.out, key, value);
    }

    /// `queue(&[b"GET", key])`, faster.
    #[inline]
    pub fn queue_get(&mut self, key: &[u8]) {
        encode_get(&mut self.out, key);
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        self.stream.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    /// Reads one reply with its full content.
    pub async fn read_reply(&mut self) -> io::Result<Reply> {
        loop {
            if let Some((r, used)) = parse_reply(&self.inb[self.start..self.end])? {
                self.start += used;
                return Ok(r);
            }
            self.fill().await?;
        }
    }

    /// Reads `n` replies into `out` (cleared first), keeping only whether each was an error.
    pub async fn read_answers(&mut self, n: usize, out: &mut Vec<Answer>) -> io::Result<()> {
        out.clear();
        while out.len() < n {
            match skip_reply(&self.inb[self.start..self.end])? {
                Some((a, used)) => {
                    self.start += used;
                    out.push(a);
                }
                None => self.fill().await?,
            }
        }
        Ok(())
    }

    /// Reads more bytes after the unparsed ones, making room first (a reply larger than the
    /// buffer grows it).
    async fn fill(&mut self) -> io::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.inb.len() {
            if self.start > 0 {
                self.inb.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let grown = self.inb.len() * 2;
                self.inb.resize(grown, 0);
            }
        }
        let n = self.stream.read(&mut self.inb[self.end..]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        self.end += n;
        Ok(())
    }
}

fn bad(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// The first line of `buf` without its CRLF, and the bytes it used; `None` when incomplete.
#[inline]
fn line(buf: &[u8]) -> io::Result<Option<(&[u8], usize)>> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    if nl == 0 || buf[nl - 1] != b'\r' {
        return Err(bad("reply line without CRLF"));
    }
    Ok(Some((&buf[..nl - 1], nl + 1)))
}

#[inline]
fn parse_int(b: &[u8]) -> io::Result<i64> {
    // Fast path: the short non-negative lengths of nearly every reply.
    if !b.is_empty() && b.len() <= 9 && b.iter().all(u8::is_ascii_digit) {
        return Ok(b.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')));
    }
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad integer in reply"))
}

/// One complete reply at the start of `buf` and the bytes it used; `None` when incomplete.
fn parse_reply(buf: &[u8]) -> io::Result<Option<(Reply, usize)>> {
    let Some((l, mut used)) = line(buf)? else {
        return Ok(None);
    };
    let (kind, rest) = l.split_first().ok_or_else(|| bad("empty reply"))?;
    let text = || String::from_utf8_lossy(rest).into_owned();
    let r = match kind {
        b'+' => Reply::Status(text()),
        b'-' => Reply::Error(text()),
        b':' => Reply::Int(parse_int(rest)?),
        b'$' => {
            let n = parse_int(rest)?;
            if n < 0 {
                Reply::Bulk(None)
            } else {
                let n = n as usize;
                if buf.len() < used + n + 2 {
                    return Ok(None);
                }
                let v = buf[used..used + n].to_vec();
                used += n + 2;
                Reply::Bulk(Some(v))
            }
        }
        b'*' => {
            let n = parse_int(rest)?;
            if n < 0 {
                Reply::Array(None)
            } else {
                let mut v = Vec::with_capacity((n as usize).min(1024));
                for _ in 0..n {
                    let Some((r, u)) = parse_reply(&buf[used..])? else {
                        return Ok(None);
                    };
                    used += u;
                    v.push(r);
                }
                Reply::Array(Some(v))
            }
        }
        _ => return Err(bad("unknown reply type")),
    };
    Ok(Some((r, used)))
}

/// Like `parse_reply`, but copies nothing unless the reply is an error.
fn skip_reply(buf: &[u8]) -> io::Result<Option<(Answer, usize)>> {
    let Some((l, mut used)) = line(buf)? else {
        return Ok(None);
    };
    let (kind, rest) = l.split_first().ok_or_else(|| bad("empty reply"))?;
    match kind {
        b'+' | b':' => {}
        b'-' => {
            return Ok(Some((
                Answer::Error(String::from_utf8_lossy(rest).into_owned()),
                used,
            )))
        }
        b'$' => {
            let n = parse_int(rest)?;
            if n >= 0 {
                used += n as usize + 2;
                if buf.len() < used {
                    return Ok(None);
                }
            }
        }
        b'*' => {
            for _ in 0..parse_int(rest)?.max(0) {
                let Some((_, u)) = skip_reply(&buf[used..])? else {
                    return Ok(None);
                };
                used += u;
            }
        }
        _ => return Err(bad("unknown reply type")),
    }
    Ok(Some((Answer::Fine, used)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIRE: &[u8] =
        b"+OK\r\n-MOVED 3999 10.0.0.2:6379\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n$1\r\na\r\n$-1\r\n";

    #[test]
    fn encodes_commands() {
        let mut b = vec![];
        encode(&mut b, &[b"SET", b"k", b"v1"]);
        assert_eq!(b, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\n");
        // The bulk fast path agrees with `encode` at every length it special-cases.
        for len in [0, 1, 9, 10, 42, 99, 100, 1000] {
            let v = vec![b'x'; len];
            let (mut a, mut b) = (vec![], vec![]);
            encode(&mut a, &[b"SET", b"lab:k:g1:7", &v]);
            encode_set(&mut b, b"lab:k:g1:7", &v);
            assert_eq!(a, b, "length {len}");
            let (mut a, mut b) = (vec![], vec![]);
            encode(&mut a, &[b"GET", &v]);
            encode_get(&mut b, &v);
            assert_eq!(a, b, "length {len}");
        }
    }

    #[test]
    fn parses_replies() {
        let mut buf = WIRE;
        let mut next = || {
            let (r, used) = parse_reply(buf).expect("valid").expect("complete");
            buf = &buf[used..];
            r
        };
        assert_eq!(next(), Reply::Status("OK".into()));
        assert_eq!(next(), Reply::Error("MOVED 3999 10.0.0.2:6379".into()));
        assert_eq!(next(), Reply::Int(42));
        assert_eq!(next(), Reply::Bulk(Some(b"abc".to_vec())));
        assert_eq!(next(), Reply::Bulk(None));
        assert_eq!(
            next(),
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"a".to_vec())),
                Reply::Bulk(None)
            ]))
        );
        assert!(buf.is_empty());
        assert!(parse_reply(b"?x\r\n").is_err());
        assert!(parse_reply(b"+OK\n").is_err());
    }

    #[test]
    fn parses_integers() {
        for (text, want) in [
            ("0", 0),
            ("3", 3),
            ("42", 42),
            ("123456789", 123_456_789),
            ("1234567890", 1_234_567_890),
            ("-1", -1),
            ("-42", -42),
        ] {
            assert_eq!(parse_int(text.as_bytes()).expect(text), want, "{text}");
        }
        for text in ["", "-", "4x", " 4", "+"] {
            assert!(parse_int(text.as_bytes()).is_err(), "{text:?}");
        }
    }

    #[test]
    fn skips_replies_keeping_errors() {
        let mut buf = WIRE;
        let mut got = vec![];
        while !buf.is_empty() {
            let (a, used) = skip_reply(buf).expect("valid").expect("complete");
            got.push(a);
            buf = &buf[used..];
        }
        let mut want = vec![Answer::Fine; 6];
        want[1] = Answer::Error("MOVED 3999 10.0.0.2:6379".into());
        assert_eq!(got, want);
    }

    /// Every proper prefix of a reply is incomplete, never an error or a wrong reply.
    #[test]
    fn incomplete_replies_wait_for_more() {
        for end in 0..WIRE.len() {
            let cut = &WIRE[..end];
            let mut at = 0;
            while let Some((_, u)) = parse_reply(&cut[at..]).expect("a prefix is valid") {
                at += u;
            }
            let mut at2 = 0;
            while let Some((_, u)) = skip_reply(&cut[at2..]).expect("a prefix is valid") {
                at2 += u;
            }
            assert_eq!(
                at, at2,
                "both parsers stop at the same reply (cut at {end})"
            );
            assert!(at <= end);
        }
    }

    /// Replies split across reads, and one larger than the read buffer, come out whole.
    #[tokio::test]
    async fn reads_replies_split_across_packets() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        let big = vec![b'v'; READ_CHUNK * 3];
        let mut wire = WIRE.to_vec();
        wire.extend_from_slice(format!("${}\r\n", big.len()).as_bytes());
        wire.extend_from_slice(&big);
        wire.extend_from_slice(b"\r\n+OK\r\n");
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            for piece in wire.chunks(7) {
                s.write_all(piece).await.expect("write");
                s.flush().await.expect("flush");
                tokio::task::yield_now().await;
            }
            s
        });
        let mut c = RespConn::connect(port, None, Duration::from_secs(5))
            .await
            .expect("connect");
        let mut answers = vec![];
        c.read_answers(6, &mut answers).await.expect("answers");
        assert_eq!(answers.len(), 6);
        assert!(matches!(answers[1], Answer::Error(_)));
        assert_eq!(
            c.read_reply().await.expect("big"),
            Reply::Bulk(Some(big.clone()))
        );
        assert_eq!(
            c.read_reply().await.expect("ok"),
            Reply::Status("OK".into())
        );
        drop(server.await.expect("server"));
    }
}
