//! `[backups.remote]` and `[backups.encryption]` of infra/stack.toml: where the off-site copies go and whom
//! backups are encrypted for. Parsed into types that cannot hold a half-described target (an S3 remote without a
//! bucket does not exist), and validated with errors that name the key and the fix. No secret is in the config:
//! credentials come from a file or the environment (`backup::offsite`), age identities from a file.

use anyhow::{Result, bail};
use serde::Deserialize;

/// `[backups.remote]`: one off-site store, S3-compatible object storage or an SFTP server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Remote {
    S3 {
        /// `https://s3.eu-central-1.amazonaws.com`, `http://127.0.0.1:9000`, ...
        endpoint: String,
        bucket: String,
        #[serde(default = "default_region")]
        region: String,
        /// Folder inside the bucket (default: the project name).
        #[serde(default)]
        path: String,
        /// A file of `access_key_id = ...` and `secret_access_key = ...` lines (mode 0600); else the
        /// environment's DRYDOCK_OFFSITE_ACCESS_KEY_ID / DRYDOCK_OFFSITE_SECRET_ACCESS_KEY.
        #[serde(default)]
        credentials_file: Option<String>,
        /// A PEM file of the CA that signed the endpoint's certificate, when it is not a public one.
        #[serde(default)]
        ca_file: Option<String>,
        /// Push every new backup right after it is written (else only `cargo xtask backups push`).
        #[serde(default = "yes")]
        push_after_backup: bool,
    },
    Sftp {
        host: String,
        #[serde(default = "default_ssh_port")]
        port: u16,
        user: String,
        /// The private key that logs in (never copied, never printed).
        key_file: String,
        /// The server's host key(s) in known_hosts format: without it nothing is sent (no trust on first use).
        known_hosts_file: String,
        /// Folder on the server (default: the project name, relative to the login directory).
        #[serde(default)]
        path: String,
        #[serde(default = "yes")]
        push_after_backup: bool,
    },
}

fn default_region() -> String {
    "us-east-1".to_string()
}

fn default_ssh_port() -> u16 {
    22
}

fn yes() -> bool {
    true
}

impl Remote {
    pub fn kind(&self) -> &'static str {
        match self {
            Remote::S3 { .. } => "s3",
            Remote::Sftp { .. } => "sftp",
        }
    }

    pub fn push_after_backup(&self) -> bool {
        match self {
            Remote::S3 { push_after_backup, .. } | Remote::Sftp { push_after_backup, .. } => *push_after_backup,
        }
    }

    /// The folder under which `<service>/<backup files>` are kept, `project` when not set. On an SFTP server
    /// a leading `/` makes it absolute (else it is below the login directory); S3 keys have no leading `/`.
    pub fn folder(&self, project: &str) -> String {
        let path = match self {
            Remote::S3 { path, .. } => path.trim_matches('/'),
            Remote::Sftp { path, .. } => path.trim_end_matches('/'),
        };
        if path.is_empty() {
            project.to_string()
        } else {
            path.to_string()
        }
    }

    /// Where it is, for people: `s3://bucket/folder at endpoint` or `sftp://user@host:port/folder`.
    pub fn describe(&self, project: &str) -> String {
        let folder = self.folder(project);
        match self {
            Remote::S3 { endpoint, bucket, .. } => format!("s3://{bucket}/{folder} at {endpoint}"),
            Remote::Sftp { host, port, user, .. } => {
                let sep = if folder.starts_with('/') { "" } else { "/~/" };
                format!("sftp://{user}@{host}:{port}{sep}{folder}")
            }
        }
    }

    pub fn validate(&self, file: &str) -> Result<()> {
        let bad_path = |path: &str| path.split('/').any(|p| p == "..") || path.contains('\\');
        match self {
            Remote::S3 {
                endpoint, bucket, path, ..
            } => {
                if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
                    bail!(
                        "{file}: key `backups.remote.endpoint` = {endpoint:?} is not an http(s) URL\n  fix: the S3 endpoint, e.g. \"https://s3.eu-central-1.amazonaws.com\" or \"http://127.0.0.1:9000\""
                    );
                }
                let valid_bucket = (3..=63).contains(&bucket.len())
                    && bucket
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
                if !valid_bucket {
                    bail!(
                        "{file}: key `backups.remote.bucket` = {bucket:?} is not an S3 bucket name\n  fix: 3 to 63 lowercase letters, digits, `-` or `.`"
                    );
                }
                if bad_path(path) {
                    bail!(
                        "{file}: key `backups.remote.path` = {path:?} leaves its folder\n  fix: a plain folder such as \"drydock\""
                    );
                }
            }
            Remote::Sftp { host, user, path, .. } => {
                if host.trim().is_empty() || host.contains(['/', ' ', '@']) {
                    bail!(
                        "{file}: key `backups.remote.host` = {host:?} is not a host name\n  fix: e.g. \"backup.example.org\" (the user goes in `user`)"
                    );
                }
                if user.trim().is_empty() {
                    bail!("{file}: key `backups.remote.user` is empty\n  fix: the SSH user on the backup server");
                }
                if bad_path(path) {
                    bail!(
                        "{file}: key `backups.remote.path` = {path:?} leaves its folder\n  fix: a plain folder such as \"drydock\""
                    );
                }
            }
        }
        Ok(())
    }
}

/// `host` and `port` of an `http(s)://host[:port][/...]` URL (the scheme's port when none is given).
pub fn url_host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let default = if scheme == "https" { 443 } else { 80 };
    split_host_port(authority, default)
}

/// `host[:port]` (a bracketed `[v6]:port` too) with `default` when no port is given.
pub fn split_host_port(text: &str, default: u16) -> Option<(String, u16)> {
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && p.chars().all(|c| c.is_ascii_digit()) => (h, p.parse().ok()?),
        _ => (text, default),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return None;
    }
    Some((host.to_string(), port))
}

/// `[backups.pitr] offsite = true` needs a store pgBackRest can use as its second repository: an S3 endpoint
/// over HTTPS (pgBackRest speaks no plain HTTP) or an SFTP folder given as an absolute path.
pub fn validate_pitr_offsite(remote: Option<&Remote>, offsite_address: Option<&str>, file: &str) -> Result<()> {
    let Some(remote) = remote else {
        bail!(
            "{file}: key `backups.pitr.offsite` = true, but there is no [backups.remote] to put the second pgBackRest repository on\n  fix: add [backups.remote] (type = \"s3\" or \"sftp\"), or set offsite = false"
        );
    };
    if let Some(address) = offsite_address
        && split_host_port(address, 0).is_none()
    {
        bail!(
            "{file}: key `backups.pitr.offsite_address` = {address:?} is not host[:port]\n  fix: the store's address as the database server reaches it, e.g. \"s3.internal:9000\" or \"backup.example.org:22\""
        );
    }
    match remote {
        Remote::S3 { endpoint, .. } => {
            if !endpoint.starts_with("https://") {
                bail!(
                    "{file}: key `backups.pitr.offsite` = true needs an HTTPS endpoint, but `backups.remote.endpoint` = {endpoint:?}: pgBackRest talks to S3 over TLS only\n  fix: an https:// endpoint (with `ca_file` for a private CA), or set offsite = false"
                );
            }
        }
        Remote::Sftp { path, .. } => {
            if !path.starts_with('/') {
                bail!(
                    "{file}: key `backups.pitr.offsite` = true needs an absolute folder on the SFTP server, but `backups.remote.path` = {path:?}: pgBackRest's SFTP repository has no login directory to start from\n  fix: e.g. path = \"/srv/backups/drydock\""
                );
            }
        }
    }
    Ok(())
}

/// `[backups.encryption]`: backups are encrypted with age for every recipient (public keys only).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    /// age recipients (`age1...`, or SSH public keys `ssh-ed25519 ...`): any of their identities decrypts.
    pub recipients: Vec<String>,
    /// The identity file that `backups verify` and the restores decrypt with (else --identity or the
    /// environment's DRYDOCK_AGE_IDENTITY_FILE). Keep it off the backup machine if you can.
    #[serde(default)]
    pub identity_file: Option<String>,
}

impl Encryption {
    pub fn validate(&self, file: &str) -> Result<()> {
        if self.recipients.is_empty() {
            bail!(
                "{file}: key `backups.encryption.recipients` is empty, so nobody could decrypt the backups\n  fix: add the public key of an age identity (`age-keygen -o key.txt` prints it), or remove [backups.encryption]"
            );
        }
        for r in &self.recipients {
            let r = r.trim();
            let age = r.starts_with("age1") && r.len() == 62 && r.chars().all(|c| c.is_ascii_alphanumeric());
            let ssh = r.starts_with("ssh-ed25519 ") || r.starts_with("ssh-rsa ");
            if !age && !ssh {
                bail!(
                    "{file}: key `backups.encryption.recipients` has {r:?}, which is not an age recipient\n  fix: a public key `age1...` (62 characters) as `age-keygen -y key.txt` prints it, or an `ssh-ed25519 ...` public key; never the identity (AGE-SECRET-KEY-...)"
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(text: &str) -> Result<Remote, String> {
        toml::from_str::<Remote>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn an_s3_remote_parses_with_its_defaults() {
        let r = remote("type = \"s3\"\nendpoint = \"http://127.0.0.1:9000\"\nbucket = \"drydock-b\"\n").unwrap();
        assert_eq!(r.kind(), "s3");
        assert!(r.push_after_backup());
        assert_eq!(r.folder("drydock"), "drydock");
        assert_eq!(r.describe("drydock"), "s3://drydock-b/drydock at http://127.0.0.1:9000");
        r.validate("stack.toml").unwrap();
    }

    #[test]
    fn half_described_or_unknown_remotes_are_refused() {
        assert!(
            remote("type = \"s3\"\nendpoint = \"http://x\"\n")
                .unwrap_err()
                .contains("bucket")
        );
        assert!(remote("type = \"ftp\"\n").unwrap_err().contains("ftp"));
        let typo =
            "type = \"sftp\"\nhost = \"h\"\nuser = \"u\"\nkey_file = \"k\"\nknown_hosts_file = \"kh\"\nbukcet = 1\n";
        assert!(remote(typo).unwrap_err().contains("bukcet"));
        let bad = remote("type = \"s3\"\nendpoint = \"s3.example.org\"\nbucket = \"b-b\"\n").unwrap();
        assert!(format!("{:#}", bad.validate("f").unwrap_err()).contains("not an http(s) URL"));
        let escape = remote("type = \"s3\"\nendpoint = \"http://x\"\nbucket = \"bbb\"\npath = \"../etc\"\n").unwrap();
        assert!(escape.validate("f").is_err());
    }

    #[test]
    fn an_offsite_pitr_repository_needs_https_or_an_absolute_sftp_folder() {
        let err = |r: Option<&Remote>, a: Option<&str>| format!("{:#}", validate_pitr_offsite(r, a, "f").unwrap_err());
        assert!(err(None, None).contains("no [backups.remote]"));
        let http = remote("type = \"s3\"\nendpoint = \"http://127.0.0.1:9000\"\nbucket = \"bbb\"\n").unwrap();
        assert!(err(Some(&http), None).contains("HTTPS"));
        let https = remote("type = \"s3\"\nendpoint = \"https://s3.example.org\"\nbucket = \"bbb\"\n").unwrap();
        validate_pitr_offsite(Some(&https), Some("minio:9000"), "f").unwrap();
        assert!(err(Some(&https), Some("a b")).contains("not host[:port]"));
        let sftp = |path: &str| {
            remote(&format!(
                "type = \"sftp\"\nhost = \"h\"\nuser = \"u\"\nkey_file = \"k\"\nknown_hosts_file = \"kh\"\npath = \"{path}\"\n"
            ))
            .unwrap()
        };
        assert!(err(Some(&sftp("team")), None).contains("absolute folder"));
        validate_pitr_offsite(Some(&sftp("/srv/team")), None, "f").unwrap();
        assert_eq!(
            url_host_port("https://s3.example.org:9000/x"),
            Some(("s3.example.org".into(), 9000))
        );
        assert_eq!(
            url_host_port("https://s3.example.org"),
            Some(("s3.example.org".into(), 443))
        );
        assert_eq!(split_host_port("[::1]:22", 0), Some(("::1".into(), 22)));
    }

    #[test]
    fn encryption_takes_public_keys_only() {
        let ok = Encryption {
            recipients: vec!["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p".into()],
            identity_file: None,
        };
        ok.validate("f").unwrap();
        let secret = Encryption {
            recipients: vec!["AGE-SECRET-KEY-1QQQ".into()],
            identity_file: None,
        };
        assert!(format!("{:#}", secret.validate("f").unwrap_err()).contains("never the identity"));
        let none = Encryption {
            recipients: vec![],
            identity_file: None,
        };
        assert!(none.validate("f").is_err());
    }
}
