//! The off-site pgBackRest repository (`[backups.pitr] offsite = true`): repo2 on the store of
//! `[backups.remote]`, under `<folder>/pitr`, so the WAL archive and the base backups survive the loss of the
//! machine, not only the dumps.
//!
//! pgBackRest itself talks to the store (S3 over HTTPS, or SFTP), from inside the PostgreSQL container: every
//! WAL segment PostgreSQL archives goes to both repositories, and `backups base` takes each base backup into
//! both. Its settings, credentials included, are written by the xtask into the `pgbackrest-conf` volume
//! (`/etc/pgbackrest/conf.d`, owned by postgres, files 0600) through `docker compose exec` with the content
//! on stdin: never in argv, an environment, an image or a log. Turning `offsite` off removes those files.
//!
//! A recovery from the off-site repository (`restore-postgres --to-time T --from-remote`) runs pgBackRest
//! with `PGBACKREST_REPO=2` in containers that share the running server's network (so they reach the store
//! exactly as archiving does) and mount the same settings read-only.

use std::io::Write;

use anyhow::{Context, Result};

use crate::backup::offsite::s3_credentials;
use crate::cmd::{Cmd, Input, cmd, shell};
use crate::compose::Compose;
use crate::context::Ctx;
use crate::offsite_config::{Remote, split_host_port, url_host_port};

/// Where the image reads extra pgBackRest settings (a volume: `pgbackrest-conf`).
pub const CONF_DIR: &str = "/etc/pgbackrest/conf.d";
/// The settings file of the second repository; pgBackRest reads `*.conf` in [`CONF_DIR`].
pub const CONF_FILE: &str = "offsite.conf";
/// Files beside it that pgBackRest points to (not `*.conf`, so not parsed as settings).
const KEY_FILE: &str = "offsite-key";
const KNOWN_HOSTS_FILE: &str = "offsite-known_hosts";
const CA_FILE: &str = "offsite-ca.pem";

/// What goes into [`CONF_DIR`]: file names and contents, and the values to mask if anything echoes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsiteRepo {
    pub files: Vec<(String, String)>,
    pub secrets: Vec<String>,
    /// For people: `s3://bucket/folder/pitr at endpoint`, `sftp://user@host:port/folder/pitr`.
    pub describe: String,
}

/// The credentials pgBackRest needs, read by the caller (files, environment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    S3 {
        key: String,
        secret: String,
        ca: Option<String>,
    },
    Sftp {
        private_key: String,
        known_hosts: String,
    },
}

/// The repo2 settings for `remote` (pure; [`plan`] reads the credentials). `address`: the store's
/// `host[:port]` as the database server reaches it, when that differs from the remote's own.
pub fn render(
    remote: &Remote,
    project: &str,
    retention_full: u32,
    address: Option<&str>,
    credentials: &Credentials,
) -> Result<OffsiteRepo> {
    let folder = remote.folder(project);
    let mut conf = String::from(
        "# Written by cargo xtask from [backups.remote] and [backups.pitr] of infra/stack.toml: the off-site\n# pgBackRest repository. Do not edit here (the next `backups base` rewrites it).\n[global]\n",
    );
    let mut files = Vec::new();
    let mut secrets = Vec::new();
    let mut set = |key: &str, value: &str| conf.push_str(&format!("repo2-{key}={value}\n"));
    set("retention-full", &retention_full.to_string());
    // Small files bundled into larger objects: a base backup of a small cluster is a few dozen requests to the
    // store instead of one per file (about a thousand), which decides its time on an object store or a far
    // SFTP server.
    set("bundle", "y");
    let describe = match (remote, credentials) {
        (
            Remote::S3 {
                endpoint,
                bucket,
                region,
                ..
            },
            Credentials::S3 { key, secret, ca },
        ) => {
            let (host, port) = match address {
                Some(a) => split_host_port(a, 443),
                None => url_host_port(endpoint),
            }
            .with_context(|| format!("no host in the S3 endpoint {endpoint:?}"))?;
            set("type", "s3");
            set("path", &format!("/{folder}/pitr"));
            set("s3-endpoint", &host);
            set("storage-port", &port.to_string());
            set("s3-bucket", bucket);
            set("s3-region", region);
            // Path-style requests: every S3-compatible store answers them; host-style needs DNS per bucket.
            set("s3-uri-style", "path");
            set("s3-key", key);
            set("s3-key-secret", secret);
            secrets.extend([key.clone(), secret.clone()]);
            if let Some(ca) = ca {
                set("storage-ca-file", &format!("{CONF_DIR}/{CA_FILE}"));
                files.push((CA_FILE.to_string(), ca.clone()));
            }
            format!("s3://{bucket}/{folder}/pitr at https://{host}:{port}")
        }
        (
            Remote::Sftp { host, port, user, .. },
            Credentials::Sftp {
                private_key,
                known_hosts,
            },
        ) => {
            let (host, port) = match address {
                Some(a) => split_host_port(a, 22),
                None => Some((host.clone(), *port)),
            }
            .with_context(|| format!("no host in {address:?}"))?;
            set("type", "sftp");
            set("path", &format!("{folder}/pitr"));
            set("sftp-host", &host);
            set("sftp-host-port", &port.to_string());
            set("sftp-host-user", user);
            set("sftp-private-key-file", &format!("{CONF_DIR}/{KEY_FILE}"));
            set("sftp-known-host", &format!("{CONF_DIR}/{KNOWN_HOSTS_FILE}"));
            // Only a host key listed in known_hosts_file is accepted: no trust on first use. (pgBackRest
            // requires a hash type even when it checks against known hosts rather than a fingerprint.)
            set("sftp-host-key-check-type", "strict");
            set("sftp-host-key-hash-type", "sha256");
            files.push((KEY_FILE.to_string(), private_key.clone()));
            files.push((KNOWN_HOSTS_FILE.to_string(), known_hosts.clone()));
            secrets.push(private_key.trim().to_string());
            format!("sftp://{user}@{host}:{port}{folder}/pitr")
        }
        _ => anyhow::bail!("the credentials do not match the kind of [backups.remote]"),
    };
    files.insert(0, (CONF_FILE.to_string(), conf));
    Ok(OffsiteRepo {
        files,
        secrets,
        describe,
    })
}

/// The off-site repository of this checkout's config, or `None` when `[backups.pitr] offsite` is off.
pub fn plan(ctx: &Ctx) -> Result<Option<OffsiteRepo>> {
    let pitr = &ctx.config.backups.pitr;
    let Some(remote) = ctx.config.backups.remote.as_ref().filter(|_| pitr.offsite) else {
        return Ok(None);
    };
    let read = |what: &str, path: &str| {
        let path = ctx.path(path);
        std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read backups.remote.{what} = {}\n  fix: point it at the file (the off-site pgBackRest repository needs it)",
                path.display()
            )
        })
    };
    let credentials = match remote {
        Remote::S3 {
            credentials_file,
            ca_file,
            ..
        } => {
            let (key, secret) = s3_credentials(ctx, credentials_file.as_deref())?;
            let ca = ca_file.as_deref().map(|f| read("ca_file", f)).transpose()?;
            Credentials::S3 { key, secret, ca }
        }
        Remote::Sftp {
            key_file,
            known_hosts_file,
            ..
        } => Credentials::Sftp {
            private_key: read("key_file", key_file)?,
            known_hosts: read("known_hosts_file", known_hosts_file)?,
        },
    };
    render(
        remote,
        &ctx.config.project.name,
        pitr.retention_full,
        pitr.offsite_address.as_deref(),
        &credentials,
    )
    .map(Some)
}

/// Writes `name` into [`CONF_DIR`] of the running service as postgres, mode 0600, atomically (a temporary
/// name, then a rename); the content comes on stdin from `source`.
pub fn write_plan(compose: &Compose, service: &str, name: &str, source: &std::path::Path) -> Cmd {
    let sh = shell();
    let path = format!("{CONF_DIR}/{name}");
    let script = "umask 077 && cat > \"$1.tmp\" && mv -f \"$1.tmp\" \"$1\"";
    compose
        .cmd(cmd!(sh, "exec -T -u postgres {service} sh -c {script} write {path}"))
        .stdin(Input::File(source.to_path_buf()))
}

/// Removes every off-site file from [`CONF_DIR`] (the repository on the store is left as it is).
pub fn remove_plan(compose: &Compose, service: &str) -> Cmd {
    let sh = shell();
    let files: Vec<String> = [CONF_FILE, KEY_FILE, KNOWN_HOSTS_FILE, CA_FILE]
        .iter()
        .map(|f| format!("{CONF_DIR}/{f}"))
        .collect();
    compose.cmd(cmd!(sh, "exec -T -u postgres {service} rm -f {files...}"))
}

/// Makes the service's off-site settings match the config: written when `offsite` is on, removed when off.
/// Returns the repository when there is one.
pub fn install(ctx: &Ctx, compose: &Compose, service: &str) -> Result<Option<OffsiteRepo>> {
    let Some(repo) = plan(ctx)? else {
        ctx.run
            .run(&remove_plan(compose, service))
            .with_context(|| format!("cannot clear the off-site pgBackRest settings of `{service}` ({CONF_DIR})"))?;
        return Ok(None);
    };
    // The contents travel through 0600 files in a private temporary directory, streamed to stdin.
    let dir = tempfile::Builder::new()
        .prefix("drydock-pitr-offsite-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    for (name, content) in &repo.files {
        let path = dir.path().join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.write_all(content.as_bytes())?;
        let mut write = write_plan(compose, service, name, &path);
        for s in &repo.secrets {
            write = write.secret(s);
        }
        ctx.run.run(&write).with_context(|| {
            format!(
                "cannot write the off-site pgBackRest settings into `{service}` ({CONF_DIR}/{name})\n  fix: the container must mount the pgbackrest-conf volume there, owned by postgres (cargo xtask dev-up recreates it from the current image)"
            )
        })?;
    }
    Ok(Some(repo))
}

/// Which repository a recovery reads, and what its containers need for that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// repo1, the `pgbackrest-repo` volume: no network at all.
    Local,
    /// repo2: the settings volume read-only, the running server's network (the route archiving takes).
    Offsite { conf_volume: String, container: String },
}

impl Source {
    /// `docker run` arguments for a container that runs pgBackRest against this repository.
    pub fn docker_args(&self) -> Vec<String> {
        match self {
            Source::Local => vec!["--network".into(), "none".into()],
            Source::Offsite { conf_volume, container } => vec![
                "--network".into(),
                format!("container:{container}"),
                "-v".into(),
                format!("{conf_volume}:{CONF_DIR}:ro"),
                "-e".into(),
                "PGBACKREST_REPO=2".into(),
            ],
        }
    }

    /// pgBackRest's number of the repository.
    pub fn repo(&self) -> u32 {
        match self {
            Source::Local => 1,
            Source::Offsite { .. } => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(endpoint: &str) -> Remote {
        toml::from_str(&format!(
            "type = \"s3\"\nendpoint = \"{endpoint}\"\nbucket = \"team-backups\"\npath = \"prod\"\n"
        ))
        .unwrap()
    }

    fn conf(repo: &OffsiteRepo) -> &str {
        &repo.files[0].1
    }

    #[test]
    fn s3_settings_name_the_endpoint_bucket_and_folder_and_keep_secrets_listed() {
        let credentials = Credentials::S3 {
            key: "AKIDEXAMPLE".into(),
            secret: "s3cr3t/value".into(),
            ca: Some("-----BEGIN CERTIFICATE-----\n".into()),
        };
        let repo = render(&s3("https://s3.example.org:9000"), "drydock", 3, None, &credentials).unwrap();
        let text = conf(&repo);
        for line in [
            "[global]",
            "repo2-type=s3",
            "repo2-path=/prod/pitr",
            "repo2-s3-endpoint=s3.example.org",
            "repo2-storage-port=9000",
            "repo2-s3-bucket=team-backups",
            "repo2-s3-region=us-east-1",
            "repo2-s3-uri-style=path",
            "repo2-retention-full=3",
            "repo2-bundle=y",
            "repo2-storage-ca-file=/etc/pgbackrest/conf.d/offsite-ca.pem",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in:\n{text}");
        }
        assert_eq!(repo.files[0].0, "offsite.conf");
        assert_eq!(repo.files[1].0, "offsite-ca.pem");
        assert_eq!(repo.secrets, ["AKIDEXAMPLE", "s3cr3t/value"]);
        assert_eq!(
            repo.describe,
            "s3://team-backups/prod/pitr at https://s3.example.org:9000"
        );
        // The database server's own route to the store wins when given.
        let inside = render(
            &s3("https://s3.example.org"),
            "drydock",
            2,
            Some("minio:9000"),
            &credentials,
        )
        .unwrap();
        assert!(conf(&inside).contains("repo2-s3-endpoint=minio\nrepo2-storage-port=9000\n"));
        let default_port = render(&s3("https://s3.example.org/x"), "d", 2, None, &credentials).unwrap();
        assert!(conf(&default_port).contains("repo2-storage-port=443\n"));
    }

    #[test]
    fn sftp_settings_point_at_the_key_and_known_hosts_beside_them() {
        let remote: Remote = toml::from_str(
            "type = \"sftp\"\nhost = \"backup.example.org\"\nport = 2222\nuser = \"bk\"\nkey_file = \"k\"\nknown_hosts_file = \"kh\"\npath = \"/srv/drydock\"\n",
        )
        .unwrap();
        let credentials = Credentials::Sftp {
            private_key: "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n".into(),
            known_hosts: "[backup.example.org]:2222 ssh-ed25519 AAAA\n".into(),
        };
        let repo = render(&remote, "drydock", 2, None, &credentials).unwrap();
        let text = conf(&repo);
        for line in [
            "repo2-type=sftp",
            "repo2-path=/srv/drydock/pitr",
            "repo2-sftp-host=backup.example.org",
            "repo2-sftp-host-port=2222",
            "repo2-sftp-host-user=bk",
            "repo2-sftp-private-key-file=/etc/pgbackrest/conf.d/offsite-key",
            "repo2-sftp-known-host=/etc/pgbackrest/conf.d/offsite-known_hosts",
            "repo2-sftp-host-key-check-type=strict",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in:\n{text}");
        }
        let names: Vec<&str> = repo.files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["offsite.conf", "offsite-key", "offsite-known_hosts"]);
        assert!(
            !text.contains("PRIVATE KEY"),
            "the key is a file of its own, not a setting"
        );
        assert_eq!(repo.secrets, ["-----BEGIN OPENSSH PRIVATE KEY-----\nabc"]);
        let other = render(&remote, "drydock", 2, Some("sftp-inside"), &credentials).unwrap();
        assert!(conf(&other).contains("repo2-sftp-host=sftp-inside\nrepo2-sftp-host-port=22\n"));
        let wrong = Credentials::S3 {
            key: "k".into(),
            secret: "s".into(),
            ca: None,
        };
        assert!(render(&remote, "d", 2, None, &wrong).is_err());
    }

    #[test]
    fn plans_write_as_postgres_from_stdin_and_recoveries_read_repo2_over_the_servers_network() {
        let c = Compose {
            project: "p".into(),
            files: vec!["c.yaml".into()],
            env_file: None,
            env: Vec::new(),
            profiles: Vec::new(),
        };
        let w = write_plan(
            &c,
            "postgres",
            "offsite.conf",
            std::path::Path::new("/tmp/x/offsite.conf"),
        );
        assert_eq!(
            w.argv()[6..],
            [
                "exec",
                "-T",
                "-u",
                "postgres",
                "postgres",
                "sh",
                "-c",
                "umask 077 && cat > \"$1.tmp\" && mv -f \"$1.tmp\" \"$1\"",
                "write",
                "/etc/pgbackrest/conf.d/offsite.conf"
            ]
        );
        assert_eq!(w.stdin, Input::File("/tmp/x/offsite.conf".into()));
        let rm = remove_plan(&c, "postgres");
        let rm = rm.argv();
        assert!(rm.contains(&"/etc/pgbackrest/conf.d/offsite-key"), "{rm:?}");
        assert_eq!(Source::Local.docker_args(), ["--network", "none"]);
        let offsite = Source::Offsite {
            conf_volume: "p_pgbackrest-conf".into(),
            container: "abc".into(),
        };
        assert_eq!(
            offsite.docker_args(),
            [
                "--network",
                "container:abc",
                "-v",
                "p_pgbackrest-conf:/etc/pgbackrest/conf.d:ro",
                "-e",
                "PGBACKREST_REPO=2"
            ]
        );
        assert_eq!(offsite.repo(), 2);
    }
}
