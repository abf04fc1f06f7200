//! One deploy at a time per target: `prod-deploy`, `prod-rollback` and `prod-scale` hold
//! `.drydock/lock-<target>` for their whole run.
//!
//! The lock is the kernel's (an advisory file lock, released when the process ends however it ends), and the file
//! says who holds it: user, git identity, machine, pid, since when, what and which tag. A second command refuses
//! at once naming the holder. A file that still names a holder while nobody holds the lock was left by a process
//! that died mid-deploy: that is said, and the lock is taken over. `--force` (asked first) goes ahead beside a
//! live holder. The lock guards this operator machine's checkout; two operators on two machines do not see
//! each other's locks.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::context::Ctx;
use crate::prod::audit::Who;
use crate::time::Timestamp;

/// What the lock file says about its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    #[serde(flatten)]
    pub who: Who,
    pub pid: u32,
    pub since: String,
    pub action: String,
    pub tag: String,
    /// Where: the engine the holder acts on (`local engine`, `ssh://user@host:port`, ...).
    #[serde(default)]
    pub engine: String,
}

impl Holder {
    fn describe(&self) -> String {
        format!(
            "{} ({}) on {}, pid {}, since {}: {} {} on {}",
            self.who.user,
            self.who.git,
            self.who.machine,
            self.pid,
            self.since,
            self.action,
            self.tag,
            if self.engine.is_empty() {
                "local engine"
            } else {
                &self.engine
            }
        )
    }
}

/// Held until dropped (then the file is emptied, and the kernel releases the lock).
#[derive(Debug)]
pub struct DeployLock {
    file: Option<File>,
}

impl Drop for DeployLock {
    fn drop(&mut self) {
        if let Some(file) = &mut self.file {
            // Empty: the next taker must not mistake a finished run for a dead one.
            let _ = file.set_len(0);
        }
    }
}

pub fn path(ctx: &Ctx, target: &str) -> PathBuf {
    ctx.root
        .join(".drydock")
        .join(format!("lock-{}", ctx.engine.key(target)))
}

/// Takes the target's lock for `action` of `tag`, or refuses naming its holder (see the module docs).
pub fn acquire(ctx: &Ctx, target: &str, action: &str, tag: &str, force: bool) -> Result<DeployLock> {
    if ctx.run.dry_run {
        return Ok(DeployLock { file: None });
    }
    let path = path(ctx, target);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening the deploy lock {}", path.display()))?;
    let mut previous = String::new();
    file.read_to_string(&mut previous)
        .with_context(|| format!("reading {}", path.display()))?;
    let previous: Option<Holder> = serde_json::from_str(previous.trim()).ok();
    match file.try_lock() {
        Ok(()) => {
            if let Some(dead) = &previous {
                ctx.say(&format!(
                    "the deploy lock of `{target}` was left by a process that ended without releasing it ({}): taking it over",
                    dead.describe()
                ));
            }
        }
        Err(TryLockError::WouldBlock) => {
            let holder = previous.map_or_else(
                || "another process (it has not written its name yet)".into(),
                |h| h.describe(),
            );
            if !force {
                bail!(
                    "`{target}` is locked by {holder}\n  fix: wait for it to finish, or run again with --force if you know it is stuck (asks first)"
                );
            }
            ctx.confirm(&format!(
                "{action} `{target}` although {holder} holds its deploy lock (two deploys at once can leave a mixed state)"
            ))?;
            return Ok(DeployLock { file: None });
        }
        Err(TryLockError::Error(err)) => {
            return Err(err).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    let holder = Holder {
        who: Who::now(ctx),
        pid: std::process::id(),
        since: Timestamp::now().rfc3339(),
        action: action.to_string(),
        tag: tag.to_string(),
        engine: ctx.engine.label.clone(),
    };
    file.set_len(0)?;
    file.rewind()?;
    file.write_all((serde_json::to_string(&holder)? + "\n").as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(DeployLock { file: Some(file) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_in(dir: &std::path::Path) -> Ctx {
        let mut ctx = Ctx::for_plan_tests();
        ctx.root = dir.to_path_buf();
        ctx.run.dry_run = false;
        ctx
    }

    #[test]
    fn a_second_taker_is_refused_naming_the_holder_and_a_dead_holder_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx_in(dir.path());
        let first = acquire(&ctx, "drydock-prod", "prod-deploy", "sha-1", false).unwrap();
        let err = acquire(&ctx, "drydock-prod", "prod-scale", "api=3", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`drydock-prod` is locked by"), "{err}");
        assert!(
            err.contains("prod-deploy sha-1") && err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("fix:"), "{err}");
        // Without a terminal, --force still asks: refused, nothing taken.
        let err = acquire(&ctx, "drydock-prod", "prod-scale", "api=3", true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("refusing to"), "{err}");
        drop(first);
        assert_eq!(
            std::fs::read_to_string(path(&ctx, "drydock-prod")).unwrap(),
            "",
            "released: emptied"
        );
        // Another target is independent.
        let _other = acquire(&ctx, "drydock-prod-swarm", "prod-deploy", "sha-1", false).unwrap();
        // A holder written by a process that died (the kernel released its lock, the file still names it).
        let stale = Holder {
            who: Who::now(&ctx),
            pid: 999_999,
            since: "2026-01-01T00:00:00Z".into(),
            action: "prod-deploy".into(),
            tag: "sha-0".into(),
            engine: String::new(),
        };
        std::fs::write(path(&ctx, "drydock-prod"), serde_json::to_string(&stale).unwrap()).unwrap();
        let taken = acquire(&ctx, "drydock-prod", "prod-rollback", "sha-2", false).unwrap();
        let now: Holder = serde_json::from_str(&std::fs::read_to_string(path(&ctx, "drydock-prod")).unwrap()).unwrap();
        assert_eq!((now.action.as_str(), now.tag.as_str()), ("prod-rollback", "sha-2"));
        drop(taken);
    }

    #[test]
    fn a_remote_engine_has_its_own_lock_named_in_the_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = ctx_in(dir.path());
        let _local = acquire(&ctx, "drydock-prod", "prod-deploy", "sha-1", false).unwrap();
        let selectors = crate::target::Selectors {
            host_flag: Some("ssh://root@127.0.0.1:40022".into()),
            ..Default::default()
        };
        ctx.engine = crate::target::resolve(&selectors, &Default::default(), "stack.toml").unwrap();
        assert!(path(&ctx, "drydock-prod").ends_with("lock-drydock-prod@root_127.0.0.1_40022"));
        let _remote =
            acquire(&ctx, "drydock-prod", "prod-deploy", "sha-1", false).expect("another engine, another lock");
        let err = acquire(&ctx, "drydock-prod", "prod-scale", "api=3", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("prod-deploy sha-1 on ssh://root@127.0.0.1:40022"), "{err}");
    }
}
