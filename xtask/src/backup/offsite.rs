//! The off-site store (`[backups.remote]`): S3-compatible object storage or an SFTP server, reached with
//! rclone (a kept client: no hand-written request signing). This module only moves objects; the protocol
//! that makes an off-site copy trustworthy (temporary names, SHA-256 read back, manifest last) is `backup::push`.
//!
//! rclone gets its whole configuration from the environment of its process (`RCLONE_CONFIG_OFFSITE_*`) and
//! `--config ""` (no config file is read or written): credentials are never in argv, the echo (masked) or a log.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::cmd::{Cmd, cmd, shell};
use crate::context::Ctx;
use crate::offsite_config::Remote;
use crate::runner::Streamed;
use crate::term::Progress;

/// The suffix of an object while it is uploaded: it never lists as part of a finished backup.
pub const UPLOADING: &str = ".uploading";

/// One object under the store's folder: `<service>/<file>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub service: String,
    pub name: String,
    pub size: u64,
}

/// The configured remote, ready to run rclone against.
#[derive(Debug, Clone)]
pub struct Store {
    pub remote: Remote,
    /// `offsite:<bucket>/<folder>` or `offsite:<folder>`.
    root: String,
    env: Vec<(String, String)>,
    secrets: Vec<String>,
    /// `--ca-cert` for S3 over TLS with a custom CA (AWS_CA_BUNDLE).
    ca_cert: Option<PathBuf>,
    /// Where it is, for people (no credentials).
    pub describe: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Listed {
    path: String,
    size: i64,
    #[serde(default)]
    is_dir: bool,
}

impl Store {
    /// The store of `[backups.remote]`; an error naming the fix when there is none or its credentials are missing.
    pub fn open(ctx: &Ctx) -> Result<Store> {
        let Some(remote) = ctx.config.backups.remote.clone() else {
            bail!(
                "no off-site store is configured\n  fix: add a [backups.remote] section to infra/stack.toml (type = \"s3\" or \"sftp\"; see the README, \"Off-site copies\")"
            );
        };
        let folder = remote.folder(&ctx.config.project.name);
        // AWS_CA_BUNDLE in rclone's environment makes its S3 client fail ("unsupported transport"): it goes
        // in as --ca-cert instead.
        let mut env = vec![
            ("RCLONE_CONFIG_OFFSITE_TYPE".to_string(), remote.kind().to_string()),
            ("AWS_CA_BUNDLE".to_string(), String::new()),
        ];
        let mut secrets = Vec::new();
        let mut set = |key: &str, value: &str| env.push((format!("RCLONE_CONFIG_OFFSITE_{key}"), value.to_string()));
        let root = match &remote {
            Remote::S3 {
                endpoint,
                bucket,
                region,
                credentials_file,
                ..
            } => {
                let (id, secret) = s3_credentials(ctx, credentials_file.as_deref())?;
                set("PROVIDER", "Other");
                set("ENDPOINT", endpoint);
                set("REGION", region);
                set("FORCE_PATH_STYLE", "true");
                set("ACCESS_KEY_ID", &id);
                set("SECRET_ACCESS_KEY", &secret);
                secrets.push(secret);
                format!("offsite:{bucket}/{folder}")
            }
            Remote::Sftp {
                host,
                port,
                user,
                key_file,
                known_hosts_file,
                ..
            } => {
                let key = ctx.path(key_file);
                let known = ctx.path(known_hosts_file);
                for (what, path) in [("key_file", &key), ("known_hosts_file", &known)] {
                    if !path.is_file() {
                        bail!(
                            "backups.remote.{what} = {} does not exist\n  fix: {}",
                            path.display(),
                            if what == "key_file" {
                                "point it at the private key that logs in to the backup server"
                            } else {
                                "write the server's host key there (ssh-keyscan -p <port> <host> > file, checked against the server) — nothing is sent to an unknown host"
                            }
                        );
                    }
                }
                set("HOST", host);
                set("PORT", &port.to_string());
                set("USER", user);
                set("KEY_FILE", &key.display().to_string());
                set("KNOWN_HOSTS_FILE", &known.display().to_string());
                // Files only: no remote shell commands (an SFTP-only account has none), hashes are ours.
                set("SHELL_TYPE", "none");
                set("DISABLE_HASHCHECK", "true");
                format!("offsite:{folder}")
            }
        };
        crate::provision::ensure_tools(ctx, &[crate::provision::Tool::Rclone])?;
        Ok(Store {
            ca_cert: match &remote {
                Remote::S3 { ca_file: Some(ca), .. } => Some(ctx.path(ca)),
                _ => ctx.vars.aws_ca_bundle.clone(),
            },
            describe: remote.describe(&ctx.config.project.name),
            remote,
            root,
            env,
            secrets,
        })
    }

    /// `rclone <subcommand>` with the store's environment, no config file, bounded timeouts.
    fn rclone(&self, written: xshell::Cmd<'_>) -> Cmd {
        let sh = shell();
        let ca = self.ca_cert.as_ref().map(|p| format!("--ca-cert={}", p.display()));
        let mut cmd = Cmd::from(cmd!(
            sh,
            "rclone --config '' -q --contimeout 10s --timeout 60s --retries 1 --low-level-retries 2 {ca...}"
        ))
        .then(written);
        for (k, v) in &self.env {
            cmd = cmd.env(k.clone(), v.clone());
        }
        for s in &self.secrets {
            cmd = cmd.secret(s.clone());
        }
        cmd
    }

    /// `offsite:<root>/<service>/<name>`.
    pub fn object(&self, service: &str, name: &str) -> String {
        format!("{}/{service}/{name}", self.root)
    }

    /// Creates the folder (and on S3 the bucket) when missing: the first push to a new store.
    pub fn create_folder(&self, ctx: &Ctx) -> Result<()> {
        let sh = shell();
        let root = &self.root;
        ctx.run.run(&self.rclone(cmd!(sh, "mkdir {root}")))?;
        Ok(())
    }

    /// Uploads a local file under `<name>.uploading`, hashing what it sent (checked by the caller).
    pub fn upload(
        &self,
        ctx: &Ctx,
        local: &Path,
        service: &str,
        name: &str,
        progress: &mut Progress,
    ) -> Result<Streamed> {
        let sh = shell();
        let target = self.object(service, &format!("{name}{UPLOADING}"));
        ctx.run
            .stream_in_hashed(&self.rclone(cmd!(sh, "rcat {target}")), local, progress)
    }

    /// Gives an uploaded object its final name.
    pub fn finish_upload(&self, ctx: &Ctx, service: &str, name: &str) -> Result<()> {
        let sh = shell();
        let from = self.object(service, &format!("{name}{UPLOADING}"));
        let to = self.object(service, name);
        ctx.run.run(&self.rclone(cmd!(sh, "moveto {from} {to}")))?;
        Ok(())
    }

    /// Streams an object into `sink` (hashed on the way): the read-back check and the downloads.
    pub fn download(
        &self,
        ctx: &Ctx,
        service: &str,
        name: &str,
        target: &Path,
        sink: &mut dyn std::io::Write,
        progress: &mut Progress,
    ) -> Result<Streamed> {
        let sh = shell();
        let object = self.object(service, name);
        ctx.run
            .stream_out(&self.rclone(cmd!(sh, "cat {object}")), target, sink, progress)
    }

    /// A small object's text (a manifest).
    pub fn read(&self, ctx: &Ctx, service: &str, name: &str) -> Result<String> {
        let sh = shell();
        let object = self.object(service, name);
        ctx.run.read(&self.rclone(cmd!(sh, "cat {object}")))
    }

    pub fn delete(&self, ctx: &Ctx, service: &str, name: &str) -> Result<()> {
        let sh = shell();
        let object = self.object(service, name);
        ctx.run.run(&self.rclone(cmd!(sh, "deletefile {object}")))?;
        Ok(())
    }

    /// Every object under the store's folder. A folder that does not exist yet is empty; anything else that
    /// fails (no such bucket, no permission to list) is an error, so nothing is decided on a listing we lack.
    pub fn list(&self, ctx: &Ctx) -> Result<Vec<Object>> {
        let sh = shell();
        let root = &self.root;
        let cmd = self.rclone(cmd!(
            sh,
            "lsjson --recursive --files-only --no-mimetype --no-modtime {root}"
        ));
        if ctx.run.dry_run {
            ctx.run.run(&cmd)?;
            return Ok(Vec::new());
        }
        let Some(probe) = ctx.run.probe(&cmd) else {
            return Ok(Vec::new());
        };
        if !probe.success {
            let stderr = cmd.mask(&probe.stderr);
            // An SFTP folder before the first push is empty; on S3 a missing prefix lists empty, so "not
            // found" there means the bucket itself is missing.
            if stderr.contains("directory not found") && matches!(self.remote, Remote::Sftp { .. }) {
                return Ok(Vec::new());
            }
            bail!(
                "cannot list the off-site store {}:\n{}\n  fix: check backups.remote in infra/stack.toml, the credentials, and that they may list (a write-only key can push but not list, verify or prune)",
                self.describe,
                tail(&stderr)
            );
        }
        let listed: Vec<Listed> = serde_json::from_str(&probe.stdout)
            .with_context(|| format!("rclone lsjson of {} gave no JSON list", self.describe))?;
        Ok(listed
            .into_iter()
            .filter(|l| !l.is_dir)
            .filter_map(|l| {
                let (service, name) = l.path.split_once('/')?;
                (!name.contains('/')).then(|| Object {
                    service: service.to_string(),
                    name: name.to_string(),
                    size: l.size.max(0) as u64,
                })
            })
            .collect())
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..]
        .iter()
        .map(|l| format!("    | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The S3 key pair: `credentials_file` (lines `access_key_id = ...`, `secret_access_key = ...`, readable by its
/// owner only), else DRYDOCK_OFFSITE_ACCESS_KEY_ID / DRYDOCK_OFFSITE_SECRET_ACCESS_KEY.
pub fn s3_credentials(ctx: &Ctx, file: Option<&str>) -> Result<(String, String)> {
    let Some(file) = file else {
        return ctx.vars.offsite_access_key.clone().context(
            "the S3 remote has no credentials\n  fix: set backups.remote.credentials_file in infra/stack.toml (a 0600 file with `access_key_id = ...` and `secret_access_key = ...`), or DRYDOCK_OFFSITE_ACCESS_KEY_ID and DRYDOCK_OFFSITE_SECRET_ACCESS_KEY",
        );
    };
    let path: PathBuf = ctx.path(file);
    let meta = std::fs::metadata(&path).with_context(|| {
        format!(
            "cannot read backups.remote.credentials_file {}\n  fix: create it (mode 0600) with `access_key_id = ...` and `secret_access_key = ...` lines",
            path.display()
        )
    })?;
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            bail!(
                "{} holds credentials but others may read it (mode {:o})\n  fix: chmod 600 {}",
                path.display(),
                meta.permissions().mode() & 0o777,
                path.display()
            );
        }
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_credentials(&text).with_context(|| format!("in {}", path.display()))
}

fn parse_credentials(text: &str) -> Result<(String, String)> {
    let (mut id, mut secret) = (None, None);
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            bail!("line {} is not `key = value`", n + 1);
        };
        let value = value.trim().trim_matches('"').to_string();
        match key.trim() {
            "access_key_id" => id = Some(value),
            "secret_access_key" => secret = Some(value),
            other => bail!(
                "line {}: unknown key `{other}`\n  fix: only access_key_id and secret_access_key",
                n + 1
            ),
        }
    }
    match (id, secret) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => Ok((id, secret)),
        _ => bail!("it needs both `access_key_id = ...` and `secret_access_key = ...`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_parse_and_refuse_what_is_not_theirs() {
        let (id, secret) =
            parse_credentials("# off-site\naccess_key_id = AKIA1\nsecret_access_key = \"s3cr3t\"\n").unwrap();
        assert_eq!((id.as_str(), secret.as_str()), ("AKIA1", "s3cr3t"));
        assert!(parse_credentials("access_key_id = a\n").is_err());
        assert!(format!("{:#}", parse_credentials("password = x\n").unwrap_err()).contains("unknown key"));
    }

    #[test]
    fn the_rclone_plans_keep_credentials_out_of_argv() {
        let store = Store {
            remote: toml::from_str("type = \"s3\"\nendpoint = \"http://127.0.0.1:9\"\nbucket = \"bbb\"\n").unwrap(),
            root: "offsite:bbb/drydock".into(),
            env: vec![("RCLONE_CONFIG_OFFSITE_SECRET_ACCESS_KEY".into(), "s3cr3t".into())],
            secrets: vec!["s3cr3t".into()],
            ca_cert: None,
            describe: "s3://bbb/drydock".into(),
        };
        let sh = shell();
        let object = store.object("postgres", "x.dump");
        let cmd = store.rclone(cmd!(sh, "cat {object}"));
        assert_eq!(
            cmd.argv(),
            [
                "rclone",
                "--config",
                "",
                "-q",
                "--contimeout",
                "10s",
                "--timeout",
                "60s",
                "--retries",
                "1",
                "--low-level-retries",
                "2",
                "cat",
                "offsite:bbb/drydock/postgres/x.dump"
            ]
        );
        assert!(!cmd.argv().iter().any(|a| a.contains("s3cr3t")));
        assert!(cmd.display_env().iter().all(|e| !e.contains("s3cr3t")));
    }
}
