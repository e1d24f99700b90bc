//! A minimal HTTP/1.1 client over `std::net::TcpStream` (one POST per connection, no TLS, no
//! redirects), and the `http` sink: each batch is one NDJSON POST.
//!
//! A new connection per batch keeps the client small and makes a restarted collector
//! transparent; at one batch per interval the cost is one handshake per second.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::{Outgoing, Sink};

/// Most of a response we read (status line, headers, an error body to quote).
const MAX_RESPONSE: u64 = 64 * 1024;

/// `http://HOST[:PORT][/PATH]`, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    /// Starts with `/`; includes any query.
    pub path: String,
}

impl Url {
    pub fn parse(text: &str) -> Result<Url, String> {
        let rest = text.strip_prefix("http://").ok_or_else(|| {
            if text.starts_with("https://") {
                format!("`{text}`: https is not supported (use a local TLS proxy)")
            } else {
                format!("`{text}`: not an http:// URL")
            }
        })?;
        let (authority, path) = rest
            .find(['/', '?'])
            .map_or((rest, "/"), |at| (&rest[..at], &rest[at..]));
        if authority.contains('@') {
            return Err(format!(
                "`{text}`: credentials in the URL are not supported (use the user and \
                 password options)"
            ));
        }
        // `[v6]:port`, `[v6]`, `host:port`, `host`.
        let (host, port) = match authority.rfind(':') {
            Some(at) if !authority[at..].contains(']') => {
                let p = &authority[at + 1..];
                let port = p
                    .parse::<u16>()
                    .map_err(|_| format!("`{text}`: bad port `{p}`"))?;
                (&authority[..at], port)
            }
            _ => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("`{text}`: no host"));
        }
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        Ok(Url {
            host: host.to_string(),
            port,
            path,
        })
    }

    /// `host:port` as the Host header and messages write it.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn addrs(&self) -> io::Result<Vec<SocketAddr>> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        Ok((host, self.port).to_socket_addrs()?.collect())
    }
}

/// A response: status code and (the start of) its body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// Sends one request and reads the response; every step bounded by `timeout`.
pub fn post(
    url: &Url,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<Response> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    let mut stream = None;
    for addr in url.addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut stream = stream.ok_or(last)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        url.authority(),
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    let mut raw = Vec::new();
    stream.take(MAX_RESPONSE).read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> io::Result<Response> {
    let text = String::from_utf8_lossy(raw);
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "not an HTTP response");
    let status_line = text.lines().next().ok_or_else(bad)?;
    let mut words = status_line.split_whitespace();
    if !words.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(bad());
    }
    let status = words.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .trim()
        .to_string();
    Ok(Response { status, body })
}

/// The error for a non-2xx response: the status and the body's first line.
pub fn status_error(r: &Response) -> io::Error {
    let first = r.body.lines().next().unwrap_or("").chars().take(200);
    io::Error::other(format!("HTTP {}: {}", r.status, first.collect::<String>()))
}

/// NDJSON batches POSTed to a URL.
pub struct HttpSink {
    url: Url,
    text: String,
    timeout: Duration,
    buf: Vec<u8>,
}

impl HttpSink {
    pub fn new(url: &str, timeout: Duration) -> Result<HttpSink, String> {
        Ok(HttpSink {
            url: Url::parse(url)?,
            text: url.to_string(),
            timeout,
            buf: Vec::new(),
        })
    }
}

impl Sink for HttpSink {
    fn name(&self) -> String {
        self.text.clone()
    }

    fn deliver(&mut self, records: &[Outgoing]) -> io::Result<()> {
        self.buf.clear();
        for r in records {
            self.buf.extend_from_slice(r.json.as_bytes());
            self.buf.push(b'\n');
        }
        let headers = [("Content-Type", "application/x-ndjson")];
        let r = post(&self.url, &self.url.path, &headers, &self.buf, self.timeout)?;
        if (200..300).contains(&r.status) {
            Ok(())
        } else {
            Err(status_error(&r))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::sync::Arc;

    use super::*;
    use tcpulse_core::schema::{IntervalRecord, Record};

    #[test]
    fn urls() {
        let u = Url::parse("http://127.0.0.1:9000/ingest?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 9000, "/ingest?x=1")
        );
        let u = Url::parse("http://collector").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        let u = Url::parse("http://[::1]:8123").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("[::1]", 8123));
        assert!(Url::parse("https://x").unwrap_err().contains("https"));
        assert!(Url::parse("http://:80/").is_err());
        assert!(Url::parse("http://h:99999/").is_err());
        assert!(Url::parse("ftp://h/").is_err());
    }

    #[test]
    fn posts_ndjson_and_reads_the_status() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/ingest", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut chunk = [0; 4096];
            // Headers and the two lines of body.
            while !String::from_utf8_lossy(&got).ends_with("{\"b\":2}\n") {
                let n = s.read(&mut chunk).unwrap();
                assert!(n > 0);
                got.extend_from_slice(&chunk[..n]);
            }
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
            String::from_utf8(got).unwrap()
        });
        let mut sink = HttpSink::new(&url, Duration::from_secs(5)).unwrap();
        let empty = Arc::new(Record::Interval(Box::new(IntervalRecord::new(
            0,
            0,
            String::new(),
        ))));
        let records: Vec<Outgoing> = ["{\"a\":1}", "{\"b\":2}"]
            .iter()
            .map(|t| Outgoing {
                record: empty.clone(),
                json: Arc::from(*t),
            })
            .collect();
        sink.deliver(&records).unwrap();
        let request = server.join().unwrap();
        assert!(
            request.starts_with("POST /ingest HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("Content-Type: application/x-ndjson\r\n"));
        assert!(request.contains("Content-Length: 16\r\n"));
    }

    #[test]
    fn a_refused_connection_is_an_error() {
        // Bind then drop: the port is very likely closed now.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut sink =
            HttpSink::new(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(1)).unwrap();
        let e = sink.deliver(&[]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    }
}
