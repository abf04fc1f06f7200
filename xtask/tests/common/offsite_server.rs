//! The off-site servers of the backup tests: an S3-compatible store (moto's server, over HTTP or, role `s3-tls`,
//! HTTPS only) or an OpenSSH SFTP server,
//! each a container of `drydock/offsite-test:trixie` (infra/images/offsite-test/, built offline when missing)
//! published on 127.0.0.1 only. Containers carry the label `drydock.test=offsite` and go when dropped.

use std::time::{Duration, Instant};

use super::{docker, docker_ok, ensure_offline_image, text};

pub const IMAGE: &str = "drydock/offsite-test:trixie";
pub const LABEL: &str = "drydock.test=offsite";

/// The test server image, built offline from drydock/base:trixie when missing.
pub fn ensure_image() {
    ensure_offline_image("offsite-test", IMAGE);
}

/// One server container; removed on drop.
pub struct Server {
    pub name: String,
    pub role: String,
    pub port: u16,
}

impl Server {
    pub fn start(name: &str, role: &str, inner_port: u16, extra: &[&str]) -> Server {
        ensure_image();
        let _ = docker(&["rm", "-f", "-v", name]);
        let publish = format!("127.0.0.1::{inner_port}");
        let mut args = vec!["run", "-d", "--name", name, "--label", LABEL, "-p", &publish];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[IMAGE, role]);
        docker_ok(&args);
        let mapped = docker_ok(&["port", name, &format!("{inner_port}/tcp")]);
        let port = mapped
            .lines()
            .next()
            .and_then(|l| l.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no published port in {mapped:?}"));
        let server = Server {
            name: name.to_string(),
            role: role.to_string(),
            port,
        };
        server.wait_listening();
        server
    }

    /// Waits until the server really answers: an HTTP status line from the S3 server, a finished TLS handshake
    /// from the HTTPS one, the SSH banner from sshd (docker's proxy accepts connections before the server inside
    /// listens).
    pub fn wait_listening(&self) {
        use std::io::{Read, Write};
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.role == "s3-tls" {
                if tls_handshake(self.port) {
                    return;
                }
                assert!(Instant::now() < deadline, "{} did not answer within 60 s", self.name);
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            let answer = std::net::TcpStream::connect(("127.0.0.1", self.port))
                .ok()
                .and_then(|mut c| {
                    c.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
                    if self.role == "s3" {
                        c.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
                    }
                    let mut buf = [0u8; 16];
                    let n = c.read(&mut buf).ok()?;
                    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
                });
            if answer.is_some_and(|a| a.starts_with("HTTP/") || a.starts_with("SSH-")) {
                return;
            }
            assert!(Instant::now() < deadline, "{} did not answer within 60 s", self.name);
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn logs(&self) -> String {
        text(&docker(&["logs", &self.name]))
    }
}

/// Whether a TLS handshake with 127.0.0.1:`port` completes (`openssl s_client`; the certificate is checked by
/// the clients under test, not here).
fn tls_handshake(port: u16) -> bool {
    std::process::Command::new("openssl")
        .args(["s_client", "-brief", "-connect", &format!("127.0.0.1:{port}")])
        .stdin(std::process::Stdio::null())
        .output()
        .is_ok_and(|out| out.status.success())
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", "-v", &self.name]);
    }
}

/// The server's host keys as known_hosts lines (every type: the client may negotiate any of them).
pub fn host_keys(server: &Server) -> String {
    let keys = docker_ok(&["exec", &server.name, "sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub"]);
    keys.lines()
        .map(|line| {
            let mut fields = line.split_whitespace();
            format!(
                "[127.0.0.1]:{} {} {}\n",
                server.port,
                fields.next().unwrap(),
                fields.next().unwrap()
            )
        })
        .collect()
}
