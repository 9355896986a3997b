//! A minimal HTTP/1.1 client for loopback: GET with keep-alive, bodies framed by
//! `Content-Length`, chunked encoding or end of stream. It is what the harness
//! scrapes with (like Prometheus, one kept-alive connection per target) and
//! how it drives blackbox_exporter's `/probe`.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long one request may take before the harness gives up on it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A response: status code and body.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One server, one kept-alive connection (reopened when the server closes it).
pub struct Client {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    /// A client for `addr`; connects on first use.
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr, conn: None }
    }

    /// GETs `path`, retrying once on a connection the server had closed.
    pub fn get(&mut self, path: &str) -> io::Result<Response> {
        match self.try_get(path) {
            Ok(r) => Ok(r),
            Err(_) if self.conn.is_none() => {
                // The kept-alive connection was stale: one fresh attempt.
                self.try_get(path)
            }
            Err(e) => Err(e),
        }
    }

    fn try_get(&mut self, path: &str) -> io::Result<Response> {
        if self.conn.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, REQUEST_TIMEOUT)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(REQUEST_TIMEOUT))?;
            s.set_write_timeout(Some(REQUEST_TIMEOUT))?;
            self.conn = Some(BufReader::with_capacity(64 * 1024, s));
        }
        let result = self.exchange(path);
        match &result {
            Ok((_, keep)) if *keep => {}
            _ => self.conn = None,
        }
        result.map(|(r, _)| r)
    }

    fn exchange(&mut self, path: &str) -> io::Result<(Response, bool)> {
        let conn = self.conn.as_mut().expect("connected");
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: mailpulse-bench\r\nAccept: */*\r\n\r\n",
            self.addr
        );
        conn.get_mut().write_all(request.as_bytes())?;
        read_response(conn)
    }
}

/// Reads one response; returns it and whether the connection stays open.
fn read_response<R: BufRead>(r: &mut R) -> io::Result<(Response, bool)> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {line:?}")))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut keep = true;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("eof in headers".into()));
        }
        let h = line.trim_end();
        if h.is_empty() {
            break;
        }
        let Some((name, value)) = h.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().ok(),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => keep = !value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                // Trailers end with an empty line.
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            line.clear();
            r.read_line(&mut line)?;
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
        keep = false;
    }
    Ok((Response { status, body }, keep))
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_chunked_and_sized_bodies() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno";
        let mut r = BufReader::new(&raw[..]);
        let (a, keep) = read_response(&mut r).unwrap();
        assert_eq!(
            (a.status, a.body.as_slice(), keep),
            (200, &b"abcde"[..], true)
        );
        let (b, keep) = read_response(&mut r).unwrap();
        assert_eq!(
            (b.status, b.body.as_slice(), keep),
            (404, &b"no"[..], false)
        );
    }
}
