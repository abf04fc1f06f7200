//! `backend healthcheck [--ready]`: the Docker HEALTHCHECK of an image without shell or curl.
//! A minimal HTTP/1.1 GET over a plain tokio socket: the check needs no TLS, redirects or bodies, and this keeps it
//! from pulling an HTTP client into the binary.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const TIMEOUT: Duration = Duration::from_secs(3);

/// Returns the HTTP status code of `GET http://127.0.0.1:{port}{path}`.
pub async fn get_status(port: u16, path: &str) -> anyhow::Result<u16> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: drydock-healthcheck\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        // The status line is in the first bytes; the body is irrelevant.
        let mut buf = vec![0u8; 256];
        let mut read = 0;
        while read < 12 {
            let n = stream.read(&mut buf[read..]).await?;
            if n == 0 {
                break;
            }
            read += n;
        }
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf[..read]).into_owned())
    };
    let head = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {TIMEOUT:?}"))??;
    parse_status(&head).ok_or_else(|| anyhow::anyhow!("not an HTTP response: {head:?}"))
}

pub fn parse_status(head: &str) -> Option<u16> {
    let mut parts = head.split_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        assert_eq!(parse_status("HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(
            parse_status("HTTP/1.1 503 Service Unavailable\r\ncontent-type"),
            Some(503)
        );
        assert_eq!(parse_status("SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status(""), None);
    }

    #[tokio::test]
    async fn closed_port_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        assert!(get_status(port, "/health").await.is_err());
    }
}
