//! `cargo xtask prod-exec <service> -- <cmd>`: a one-off command in production, echoed and audited.
//!
//! In a running service the command runs inside its oldest container (`docker compose exec`); when the
//! service runs no container, or with `--fresh`, it runs in a fresh container of the service's image with the
//! service's networks, secrets and settings (`docker compose run --rm --no-deps`), which never receives traffic
//! (it gets no `api-live` alias) and is removed afterwards. Which of the two happens is said before it runs.
//! The release API image is distroless (no shell): run its binary (`-- /app/backend --help`), not `sh`.

use anyhow::{Result, bail};
use clap::Args;

use crate::cmd::{Cmd, cmd, shell, shell_quote};
use crate::compose::Compose;
use crate::context::Ctx;
use crate::prod::audit::Audit;
use crate::prod::compose::current_compose;
use crate::prod::containers::container_ids;
use crate::stack;

#[derive(Debug, Clone, Args)]
pub struct ProdExecArgs {
    /// The production service to run the command in (e.g. api, postgres, redis, proxy).
    pub service: String,
    /// Run in a fresh container of the service's image even when the service is running (not for the
    /// databases: a second container on their data volume is refused).
    #[arg(long)]
    pub fresh: bool,
    /// The command and its arguments (after `--`), e.g. `-- /app/backend --help`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Where the command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Inside the service's running container.
    Exec,
    /// In a fresh, removed-afterwards container of the service's image.
    Fresh,
}

impl ProdExecArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let compose = current_compose(ctx)?;
        let stateful = self.stateful(ctx);
        if self.fresh && stateful {
            bail!(
                "refusing a fresh container of `{}`: it would mount the database's data volume beside its server\n  fix: run the command in the running service: cargo xtask prod-exec {} -- {}",
                self.service,
                self.service,
                self.shown()
            );
        }
        stack::check_services(ctx, &compose, std::slice::from_ref(&self.service))?;
        let running = !ctx.run.dry_run && !container_ids(ctx, &compose.project, &self.service)?.is_empty();
        let mode = if self.fresh {
            Mode::Fresh
        } else if running || ctx.run.dry_run {
            Mode::Exec
        } else if stateful {
            bail!(
                "`{}` is not running in `{}`, and a fresh database container would start beside its data\n  fix: cargo xtask prod-up, then run the command again",
                self.service,
                compose.project
            );
        } else {
            Mode::Fresh
        };
        ctx.say(&match (mode, self.fresh) {
            (Mode::Exec, _) if ctx.run.dry_run => format!(
                "dry run: showing the command for a running `{}` (a stopped one gets a fresh container)",
                self.service
            ),
            (Mode::Exec, _) => format!(
                "running in the running `{}` container of {}",
                self.service, compose.project
            ),
            (Mode::Fresh, true) => format!("running in a fresh container of `{}`'s image (--fresh)", self.service),
            (Mode::Fresh, false) => format!(
                "`{}` is not running: running in a fresh container of its image (removed afterwards)",
                self.service
            ),
        });
        let tty = std::io::IsTerminal::is_terminal(&std::io::stdin());
        let plan = plan(&compose, &self.service, &self.command, mode, tty);
        let target = crate::prod::stack_name(ctx, false)?;
        let what = format!("{}: {}", self.service, self.shown());
        let audit = Audit::start(&target, "prod-exec", &what);
        let outcome = ctx.run.run(&plan).map(|_| ()).map_err(|err| self.explain(ctx, err));
        audit.finish(ctx, outcome)
    }

    fn stateful(&self, ctx: &Ctx) -> bool {
        let s = &ctx.config.services;
        [&s.postgres, &s.redis, &s.mongo].contains(&&self.service)
    }

    fn shown(&self) -> String {
        self.command
            .iter()
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A shell asked of the distroless API image gets the reason and a command that works.
    fn explain(&self, ctx: &Ctx, err: anyhow::Error) -> anyhow::Error {
        let program = self.command[0].rsplit('/').next().unwrap_or_default();
        if self.service == ctx.config.services.api && ["sh", "bash", "ash"].contains(&program) {
            err.context(format!(
                "the `{}` image has no shell (a distroless runtime)\n  fix: run its binary instead, e.g. cargo xtask prod-exec {} -- /app/backend --help",
                self.service, self.service
            ))
        } else {
            err
        }
    }
}

/// The compose command of a one-off: `exec` in the running container or `run --rm --no-deps` of the image;
/// with a terminal it keeps the TTY, without one it reads piped input (`-T`).
pub fn plan(compose: &Compose, service: &str, command: &[String], mode: Mode, tty: bool) -> Cmd {
    let sh = shell();
    let no_tty = (!tty).then_some("-T");
    let cmd = match mode {
        Mode::Exec => compose.cmd(cmd!(sh, "exec {no_tty...} {service} {command...}")),
        // `--entrypoint`: the command runs as given, as with exec (not as arguments of the image's entrypoint).
        Mode::Fresh => {
            let (program, args) = command.split_first().expect("clap requires a command");
            compose.cmd(cmd!(
                sh,
                "run --rm --no-deps --pull never {no_tty...} --entrypoint {program} {service} {args...}"
            ))
        }
    };
    if tty {
        cmd.interactive()
    } else {
        cmd.stdin(crate::cmd::Input::Inherit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;

    fn words(cmd: &Cmd) -> String {
        cmd.argv().join(" ")
    }

    #[test]
    fn exec_and_fresh_plans() {
        let ctx = Ctx::for_plan_tests();
        let compose = Compose::for_env(&ctx, Env::Prod).unwrap();
        let command = vec!["/app/backend".to_string(), "--help".to_string()];
        let exec = plan(&compose, "api", &command, Mode::Exec, false);
        assert!(
            words(&exec).ends_with(" exec -T api /app/backend --help"),
            "{}",
            words(&exec)
        );
        assert_eq!(exec.stdin, crate::cmd::Input::Inherit);
        assert!(!exec.interactive);
        let fresh = plan(&compose, "api", &command, Mode::Fresh, true);
        assert!(
            words(&fresh).ends_with(" run --rm --no-deps --pull never --entrypoint /app/backend api --help"),
            "{}",
            words(&fresh)
        );
        assert!(fresh.interactive, "a terminal stays a terminal");
    }
}
