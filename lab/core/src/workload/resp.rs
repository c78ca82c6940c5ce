//! A lean RESP2 connection for the load generator's hot path: commands are encoded straight
//! into one write buffer and replies parsed from a buffered reader, with no per-request
//! channel or task hop. (The redis crate's multiplexed connection adds a channel round trip
//! per request, which shows up against redis-benchmark at 2 cores; the control plane —
//! Sentinel queries, pub/sub, cluster maps — still uses the redis crate.)

use std::io;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
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

pub struct RespConn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    out: Vec<u8>,
    pub port: u16,
}

/// Appends one command in RESP array form.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    out.extend_from_slice(itoa(args.len() as u64).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        out.extend_from_slice(itoa(a.len() as u64).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn itoa(n: u64) -> String {
    n.to_string()
}

impl RespConn {
    /// Connects to 127.0.0.1:`port` and authenticates.
    pub async fn connect(
        port: u16,
        password: Option<&str>,
        timeout: Duration,
    ) -> io::Result<RespConn> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(("127.0.0.1", port)))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        let mut c = RespConn {
            reader: BufReader::with_capacity(64 * 1024, r),
            writer: w,
            out: Vec::with_capacity(16 * 1024),
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

    pub async fn flush(&mut self) -> io::Result<()> {
        self.writer.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    pub async fn read_reply(&mut self) -> io::Result<Reply> {
        read_reply(&mut self.reader).await
    }
}

async fn read_line<R: AsyncBufReadExt + Unpin>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut line = Vec::with_capacity(32);
    let n = r.read_until(b'\n', &mut line).await?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    if line.ends_with(b"\r\n") {
        line.truncate(line.len() - 2);
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "reply line without CRLF",
        ));
    }
    Ok(line)
}

fn parse_int(b: &[u8]) -> io::Result<i64> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad integer in reply"))
}

fn read_reply<'a, R: AsyncBufReadExt + Unpin + Send>(
    r: &'a mut R,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<Reply>> + Send + 'a>> {
    Box::pin(async move {
        let line = read_line(r).await?;
        let (kind, rest) = line
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "empty reply"))?;
        match kind {
            b'+' => Ok(Reply::Status(String::from_utf8_lossy(rest).into_owned())),
            b'-' => Ok(Reply::Error(String::from_utf8_lossy(rest).into_owned())),
            b':' => Ok(Reply::Int(parse_int(rest)?)),
            b'$' => {
                let n = parse_int(rest)?;
                if n < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let mut buf = vec![0u8; n as usize + 2];
                r.read_exact(&mut buf).await?;
                buf.truncate(n as usize);
                Ok(Reply::Bulk(Some(buf)))
            }
            b'*' => {
                let n = parse_int(rest)?;
                if n < 0 {
                    return Ok(Reply::Array(None));
                }
                let mut v = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    v.push(read_reply(r).await?);
                }
                Ok(Reply::Array(Some(v)))
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "unknown reply type",
            )),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands() {
        let mut b = vec![];
        encode(&mut b, &[b"SET", b"k", b"v1"]);
        assert_eq!(b, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\n");
    }

    #[tokio::test]
    async fn parses_replies() {
        let data: &[u8] = b"+OK\r\n-MOVED 3999 10.0.0.2:6379\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n$1\r\na\r\n$-1\r\n";
        let mut r = BufReader::new(data);
        assert_eq!(
            read_reply(&mut r).await.expect("ok"),
            Reply::Status("OK".into())
        );
        assert_eq!(
            read_reply(&mut r).await.expect("err"),
            Reply::Error("MOVED 3999 10.0.0.2:6379".into())
        );
        assert_eq!(read_reply(&mut r).await.expect("int"), Reply::Int(42));
        assert_eq!(
            read_reply(&mut r).await.expect("bulk"),
            Reply::Bulk(Some(b"abc".to_vec()))
        );
        assert_eq!(read_reply(&mut r).await.expect("nil"), Reply::Bulk(None));
        assert_eq!(
            read_reply(&mut r).await.expect("arr"),
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"a".to_vec())),
                Reply::Bulk(None)
            ]))
        );
        assert!(read_reply(&mut r).await.is_err());
    }
}
