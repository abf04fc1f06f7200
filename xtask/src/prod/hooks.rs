//! Project hooks: executables in `infra/hooks/` (or `DRYDOCK_HOOKS_DIR`) named `pre-deploy`, `post-deploy`,
//! `pre-backup` and `post-backup`, run with what is happening in their environment: `DRYDOCK_HOOK`,
//! `DRYDOCK_COMMAND`, `DRYDOCK_TARGET`, `DRYDOCK_TAG`, `DRYDOCK_PERFORMER` (and, after, `DRYDOCK_RESULT`).
//! A failing `pre-*` hook stops the command before anything changes; a failing `post-*` hook fails the command
//! after the work is done (and says so). A hook that is absent is no hook; one that is not executable is an
//! error (it was probably meant to run). `--skip-hooks` skips them.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::cmd::Cmd;
use crate::context::Ctx;
use crate::prod::audit::{self, Who};

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    PreDeploy,
    PostDeploy,
    PreBackup,
    PostBackup,
}

impl Hook {
    pub fn name(self) -> &'static str {
        match self {
            Hook::PreDeploy => "pre-deploy",
            Hook::PostDeploy => "post-deploy",
            Hook::PreBackup => "pre-backup",
            Hook::PostBackup => "post-backup",
        }
    }
}

/// What the hook is told.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub command: &'a str,
    pub target: &'a str,
    pub tag: &'a str,
    /// `ok` or `failed: …` for post hooks.
    pub result: Option<&'a str>,
}

pub fn dir(ctx: &Ctx) -> PathBuf {
    ctx.vars
        .hooks_dir
        .clone()
        .unwrap_or_else(|| ctx.root.join("infra/hooks"))
}

/// Runs the hook if the project has it.
pub fn run(ctx: &Ctx, hook: Hook, event: &Event<'_>) -> Result<()> {
    let path = dir(ctx).join(hook.name());
    let Ok(meta) = std::fs::metadata(&path) else {
        return Ok(());
    };
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        bail!(
            "the {} hook {} is not an executable file\n  fix: chmod +x {}, or remove it (or pass --skip-hooks)",
            hook.name(),
            path.display(),
            path.display()
        );
    }
    let who = Who::now(ctx);
    let mut cmd = Cmd::new(path.display().to_string())
        .cwd(&ctx.root)
        .env("DRYDOCK_HOOK", hook.name())
        .env("DRYDOCK_COMMAND", event.command)
        .env("DRYDOCK_TARGET", event.target)
        .env("DRYDOCK_TAG", event.tag)
        .env("DRYDOCK_PERFORMER", format!("{} ({})", who.user, who.git));
    if let Some(result) = event.result {
        cmd = cmd.env("DRYDOCK_RESULT", result);
    }
    ctx.say(&format!("{} hook: {}", hook.name(), path.display()));
    ctx.run.run(&cmd).map(|_| ()).map_err(|err| {
        let when = match hook {
            Hook::PreDeploy | Hook::PreBackup => "nothing was changed",
            Hook::PostDeploy | Hook::PostBackup => "the work itself was done",
        };
        err.context(format!("the {} hook failed ({when})", hook.name()))
    })
}

/// `pre`, the work, `post` (told the work's result): the shape every hooked command has.
pub fn around<T>(
    ctx: &Ctx,
    skip: bool,
    (pre, post): (Hook, Hook),
    event: Event<'_>,
    work: impl FnOnce() -> Result<T>,
) -> Result<T> {
    if skip {
        return work();
    }
    run(ctx, pre, &event)?;
    let outcome = work();
    let result = audit::summary(&outcome);
    let posted = run(
        ctx,
        post,
        &Event {
            result: Some(&result),
            ..event
        },
    );
    let value = outcome?;
    posted?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_with_hooks(dir: &std::path::Path) -> Ctx {
        let mut ctx = Ctx::for_plan_tests();
        ctx.run.dry_run = false;
        ctx.vars.hooks_dir = Some(dir.to_path_buf());
        ctx
    }

    fn hook(dir: &std::path::Path, name: &str, body: &str) {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn hooks_get_the_event_and_a_failing_pre_hook_stops_the_work() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx_with_hooks(dir.path());
        let log = dir.path().join("log");
        let record = format!(
            "echo \"$DRYDOCK_HOOK $DRYDOCK_COMMAND $DRYDOCK_TARGET $DRYDOCK_TAG ${{DRYDOCK_RESULT:-}}\" >> {}",
            log.display()
        );
        hook(dir.path(), "pre-deploy", &record);
        hook(dir.path(), "post-deploy", &record);
        let event = Event {
            command: "prod-deploy",
            target: "drydock-prod",
            tag: "sha-1",
            result: None,
        };
        let done = around(&ctx, false, (Hook::PreDeploy, Hook::PostDeploy), event.clone(), || {
            Ok(42)
        })
        .unwrap();
        assert_eq!(done, 42);
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "pre-deploy prod-deploy drydock-prod sha-1 \npost-deploy prod-deploy drydock-prod sha-1 ok\n"
        );
        // A failing pre hook: the work never runs.
        hook(dir.path(), "pre-deploy", "echo 'not on a Friday' >&2; exit 3");
        let mut ran = false;
        let err = around(&ctx, false, (Hook::PreDeploy, Hook::PostDeploy), event.clone(), || {
            ran = true;
            Ok(())
        })
        .unwrap_err();
        assert!(!ran, "the work ran despite the failing pre hook");
        let text = format!("{err:#}");
        assert!(
            text.contains("the pre-deploy hook failed (nothing was changed)") && text.contains("not on a Friday"),
            "{text}"
        );
        // --skip-hooks: the work runs, no hook does.
        let mut ran = false;
        around(&ctx, true, (Hook::PreDeploy, Hook::PostDeploy), event.clone(), || {
            ran = true;
            Ok(())
        })
        .unwrap();
        assert!(ran);
        // A hook file that is not executable is an error, not silently skipped.
        std::fs::set_permissions(dir.path().join("pre-deploy"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = run(&ctx, Hook::PreDeploy, &event).unwrap_err().to_string();
        assert!(
            err.contains("is not an executable file") && err.contains("fix: chmod +x"),
            "{err}"
        );
        // No hook at all: nothing to do.
        run(&ctx, Hook::PreBackup, &event).unwrap();
    }
}
