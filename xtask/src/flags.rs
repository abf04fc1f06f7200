//! Flag groups several commands share (each command's own Args live beside its `run` in `commands/`).

use std::path::PathBuf;

use clap::Args;

use crate::config::Env;

/// `--json`: machine-readable output on stdout.
#[derive(Debug, Clone, Args)]
pub struct JsonFlag {
    /// Print machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `--skip-hooks`: do not run the project's hooks (`infra/hooks/`) around this command.
#[derive(Debug, Clone, Args)]
pub struct HooksFlag {
    /// Do not run the project's pre/post hooks (infra/hooks/) around this command.
    #[arg(long)]
    pub skip_hooks: bool,
}

/// `--registry host[:port]` of a Swarm deploy: every node pulls the stack's images from there.
#[derive(Debug, Clone, Args)]
pub struct RegistryFlag {
    /// With --swarm: push every image of the stack to this registry (`host[:port]`) from this machine, and let
    /// each node pull it there (default: the registry the stack's last deploy used).
    #[arg(long, value_name = "HOST", requires = "swarm", value_parser = parse_registry)]
    pub registry: Option<String>,
}

/// `--env dev|prod`: which stack a command addresses.
#[derive(Debug, Clone, Args)]
pub struct EnvFlag {
    /// Which stack.
    #[arg(long, value_enum, default_value = "dev")]
    pub env: Env,
}

#[derive(Debug, Clone, Args)]
pub struct VolumesFlag {
    /// Also delete the named volumes (all database data); asks first unless --yes.
    #[arg(long)]
    pub volumes: bool,
}

#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// Keep following new output.
    #[arg(short, long)]
    pub follow: bool,
    /// Lines to show from the end of each service's log.
    #[arg(long, default_value = "200", value_name = "N|all", value_parser = parse_tail)]
    pub tail: String,
    /// Compose service names (default: all).
    pub services: Vec<String>,
}

/// `--tail`: a number of lines or `all`. Checked by clap, so a bad value is a usage error (exit 2).
fn parse_tail(value: &str) -> Result<String, String> {
    if value == "all" || value.parse::<u32>().is_ok() {
        Ok(value.to_string())
    } else {
        Err("not a number of lines; use a number such as 100, or `all`".to_string())
    }
}

/// Which backup a `restore-*` command restores, and into which stack.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).multiple(true).args(["file", "latest", "from_remote"])))]
pub struct RestoreArgs {
    /// The backup to restore: its data file or its manifest (`backups/<service>/<name>.<ext>|.json`).
    #[arg(conflicts_with_all = ["latest", "from_remote"])]
    pub file: Option<PathBuf>,
    /// Restore the newest complete backup of this compose project's service (safety backups are skipped).
    #[arg(long)]
    pub latest: bool,
    /// Which stack to restore into.
    #[arg(long, value_enum, default_value = "dev")]
    pub env: Env,
    /// The age identity file that decrypts an encrypted backup (else DRYDOCK_AGE_IDENTITY_FILE or
    /// backups.encryption.identity_file).
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Restore from the off-site store ([backups.remote]): the backup NAME (`backups list --remote`), or
    /// without a name the newest finished one. It is downloaded and checked first, then restored as usual.
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
    pub from_remote: Option<String>,
}

impl RestoreArgs {
    /// What is restored, for the audit log: the file, `--from-remote <name>`, or `--latest`.
    pub fn what(&self) -> String {
        match (&self.from_remote, &self.file) {
            (Some(name), _) if !name.is_empty() => format!("--from-remote {name}"),
            (Some(_), _) => "--from-remote (newest)".to_string(),
            (None, Some(file)) => file.display().to_string(),
            (None, None) => "--latest".to_string(),
        }
    }
}

/// `--force` and `--message`: how `prod-deploy`, `prod-rollback` and `prod-scale` take the target's deploy lock.
#[derive(Debug, Clone, Default, Args)]
pub struct LockFlags {
    /// Take the target's deploy lock although another command holds it: asks first, then replaces it.
    #[arg(long)]
    pub force: bool,
    /// Why: recorded in the deploy lock (whoever it blocks reads it) and in the audit log.
    #[arg(long, value_name = "TEXT", value_parser = parse_message)]
    pub message: Option<String>,
}

/// A lock message: one line of at most 200 characters (it travels as a container label and in refusals).
fn parse_message(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > 200 || value.chars().any(char::is_control) {
        Err("a message is one line of 1 to 200 characters; fix: --message \"hotfix for the login bug\"".to_string())
    } else {
        Ok(value.to_string())
    }
}

/// `--registry` as clap checks it (a usage error, exit 2, before anything runs).
pub fn parse_registry(host: &str) -> Result<String, String> {
    check_registry(host)
        .map(|()| host.to_string())
        .map_err(|e| format!("{e:#}"))
}

/// Checks `host[:port]`: no scheme, no path.
pub fn check_registry(host: &str) -> anyhow::Result<()> {
    let ok = !host.is_empty()
        && !host.contains("://")
        && !host.contains('/')
        && host.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    if !ok {
        anyhow::bail!(
            "--registry {host:?} is not a registry host\n  fix: give host[:port] only, e.g. registry.example.com or 127.0.0.1:5000"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_hosts_are_checked() {
        assert!(check_registry("127.0.0.1:5000").is_ok());
        assert!(check_registry("registry.example.com").is_ok());
        assert!(check_registry("https://r.example.com").is_err());
        assert!(check_registry("r.example.com/team").is_err());
    }

    #[test]
    fn a_lock_message_is_one_short_line() {
        assert_eq!(parse_message("  hotfix #12 "), Ok("hotfix #12".to_string()));
        for bad in ["", "   ", "two\nlines", &"x".repeat(201)] {
            let err = parse_message(bad).unwrap_err();
            assert!(err.contains("fix: --message"), "{bad:?}: {err}");
        }
    }
}
