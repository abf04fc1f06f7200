//! A tiny HTTP/1.0 GET over loopback, enough for health checks without an HTTP client crate.
//!
//! Kept on purpose (measured 2026-12-02 with farm-bench, 3 cold builds each): the smallest kept client, ureq 3
//! without TLS, is 10 crates and 2.9 s wall / 4.6 s CPU of cold compile (the whole xtask: 21.1 s), for what
//! these ~100 lines do: one `GET` to 127.0.0.1 with a timeout, no TLS, no redirects, no keep-alive, no body
//! larger than a readiness report. Should the xtask ever talk HTTP to anything but its own loopback probes
//! (a registry, object storage), that is the point to take a client crate instead.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// The parts of a response the health checks look at.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `GET http://host:port/path` with a timeout. HTTP/1.0 so the server answers without chunked encoding.
pub fn get(url: &str, timeout: Duration) -> Result<Response> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {authority}"))?
        .next()
        .with_context(|| format!("{authority} has no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("cannot connect to {url}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nAccept: application/json\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("reading the response of {url}"))?;
    parse(&raw).with_context(|| format!("malformed HTTP response from {url}"))
}

fn parse(raw: &[u8]) -> Result<Response> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok());
    let Some(status) = status else {
        bail!("bad status line {status_line:?}")
    };
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: body.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn parses_status_headers_and_body() {
        let r = parse(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\r\n{\"status\":\"unavailable\"}",
        )
        .unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.body, "{\"status\":\"unavailable\"}");
    }

    #[test]
    fn get_talks_to_a_real_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap() == 1 {
                head.push(byte[0]);
            }
            assert!(String::from_utf8_lossy(&head).starts_with("GET /health HTTP/1.0"));
            conn.write_all(b"HTTP/1.0 200 OK\r\n\r\n{\"status\":\"ok\"}").unwrap();
        });
        let r = get(&format!("http://{addr}/health"), Duration::from_secs(2)).unwrap();
        server.join().unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "{\"status\":\"ok\"}"));
    }

    #[test]
    fn refused_connection_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        assert!(get(&format!("http://{addr}/"), Duration::from_secs(1)).is_err());
    }
}
