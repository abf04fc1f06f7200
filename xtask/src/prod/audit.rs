//! The append-only audit log of a target: `.drydock/audit-<target>.jsonl`, one JSON object per line — who
//! (user and git identity, from which machine), where (the engine: `DOCKER_HOST` or the local one), what
//! (command, tag, result, seconds). Deploys, rollbacks, scaling and `prod-up` write it; `prod-history` reads it.
//! Lines are only ever appended (O_APPEND, fsynced), never rewritten.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::cmd::{Cmd, cmd, shell};
use crate::config::Env;
use crate::context::Ctx;
use crate::time::Timestamp;

/// Who acts, from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Who {
    /// The login (`USER`, else `LOGNAME`).
    pub user: String,
    /// `git config user.name <user.email>` of the checkout, or "unknown".
    pub git: String,
    /// This machine's hostname (or `DRYDOCK_OPERATOR_MACHINE`).
    pub machine: String,
}

impl Who {
    pub fn now(ctx: &Ctx) -> Who {
        let user = ["USER", "LOGNAME"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
            .or_else(login_of_this_process)
            .unwrap_or_else(|| "unknown".into());
        let sh = shell();
        let config = |key: &str| {
            ctx.run
                .probe(&Cmd::from(cmd!(sh, "git config --get {key}")).cwd(&ctx.root))
                .filter(|p| p.success)
                .map(|p| p.stdout.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let git = match (config("user.name"), config("user.email")) {
            (Some(name), Some(email)) => format!("{name} <{email}>"),
            (Some(name), None) => name,
            (None, Some(email)) => format!("<{email}>"),
            (None, None) => "unknown".into(),
        };
        let machine = ctx.vars.operator_machine.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "unknown".into())
        });
        Who { user, git, machine }
    }
}

/// The login of this process's uid from /etc/passwd (CI runners and `sudo -i` shells often set no `USER`).
fn login_of_this_process() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut fields = l.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid).then(|| name.to_string())
    })
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub at: String,
    #[serde(flatten)]
    pub who: Who,
    /// The engine acted on: `ssh://user@host:port`, `DOCKER_HOST`'s value, `docker context <name>`, or "local engine".
    pub engine: String,
    pub command: String,
    pub tag: String,
    pub result: String,
    pub seconds: f64,
    /// Why, as the operator said it (`--message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

pub fn path(ctx: &Ctx, target: &str) -> PathBuf {
    ctx.root
        .join(".drydock")
        .join(format!("audit-{}.jsonl", ctx.engine.key(target)))
}

/// How an action ended, in one line: `ok`, or `failed: <the first line of the error>`.
pub fn summary<T>(outcome: &Result<T>) -> String {
    match outcome {
        Ok(_) => "ok".to_string(),
        Err(err) => format!("failed: {}", format!("{err:#}").lines().next().unwrap_or_default()),
    }
}

/// Measures one audited action: `Audit::start`, then `finish` with its outcome.
pub struct Audit {
    target: String,
    command: String,
    tag: String,
    message: Option<String>,
    started: Instant,
}

impl Audit {
    pub fn start(target: &str, command: &str, tag: &str) -> Audit {
        Audit {
            target: target.to_string(),
            command: command.to_string(),
            tag: tag.to_string(),
            message: None,
            started: Instant::now(),
        }
    }

    /// Records why (`--message`) with the entry.
    pub fn message(mut self, message: Option<&str>) -> Audit {
        self.message = message.map(String::from);
        self
    }

    /// Appends the entry (not in a dry run) and hands the outcome back unchanged.
    pub fn finish<T>(self, ctx: &Ctx, outcome: Result<T>) -> Result<T> {
        let result = summary(&outcome);
        let entry = Entry {
            at: Timestamp::now().rfc3339(),
            who: Who::now(ctx),
            engine: ctx.engine.label.clone(),
            command: self.command,
            tag: self.tag,
            result,
            seconds: (self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            message: self.message,
        };
        if !ctx.run.dry_run {
            // The action's own outcome wins; a log that cannot be written is said, not hidden.
            if let Err(err) = append(ctx, &self.target, &entry) {
                ctx.say(&format!("warning: the audit log was not written: {err:#}"));
            }
        }
        outcome
    }
}

/// Runs `action` and records it in the audit log of the stack `env` addresses (its compose project): what
/// backups and restores use, for the dev stack and production alike.
pub fn audited<T>(ctx: &Ctx, env: Env, command: &str, what: &str, action: impl FnOnce() -> Result<T>) -> Result<T> {
    let target = crate::compose::Compose::for_env(ctx, env)?.project;
    let audit = Audit::start(&target, command, what);
    let outcome = action();
    audit.finish(ctx, outcome)
}

fn append(ctx: &Ctx, target: &str, entry: &Entry) -> Result<()> {
    let path = path(ctx, target);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.write_all((serde_json::to_string(entry)? + "\n").as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("appending to {}", path.display()))
}

/// Every entry of a target's log, oldest first (a line that does not parse is an error naming it).
pub fn read(ctx: &Ctx, target: &str) -> Result<Vec<Entry>> {
    let path = path(ctx, target);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{} line {} is not an audit entry", path.display(), i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_appended_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = Ctx::for_plan_tests();
        ctx.root = dir.path().to_path_buf();
        ctx.run.dry_run = false;
        let ok: Result<()> = Audit::start("t", "prod-deploy", "sha-1").finish(&ctx, Ok(()));
        assert!(ok.is_ok());
        let failed: Result<()> =
            Audit::start("t", "prod-rollback", "sha-0").finish(&ctx, Err(anyhow::anyhow!("no previous tag\n  fix: x")));
        assert!(failed.is_err(), "the outcome is handed back unchanged");
        let entries = read(&ctx, "t").unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            (entries[0].command.as_str(), entries[0].result.as_str()),
            ("prod-deploy", "ok")
        );
        assert_eq!(entries[1].result, "failed: no previous tag");
        assert!(!entries[0].who.user.is_empty() && !entries[0].who.machine.is_empty());
        // Without USER/LOGNAME the login still comes from the uid (root here, or whoever runs the tests).
        assert!(login_of_this_process().is_some_and(|l| !l.is_empty()));
        std::fs::write(path(&ctx, "t"), "{not json}\n").unwrap();
        assert!(
            read(&ctx, "t")
                .unwrap_err()
                .to_string()
                .contains("line 1 is not an audit entry")
        );
    }
}
