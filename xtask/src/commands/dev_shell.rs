//! `cargo xtask dev-shell`: a shell (or a command) in a dev service.

use anyhow::Result;
use clap::Args;

use crate::cmd::{cmd, shell};
use crate::compose::Compose;
use crate::config::Env;
use crate::context::Ctx;
use crate::stack;

#[derive(Debug, Clone, Args)]
pub struct DevShellArgs {
    /// The service to enter.
    #[arg(default_value = "api")]
    pub service: String,
    /// Command to run instead of a shell (after `--`).
    #[arg(last = true)]
    pub command: Vec<String>,
}

impl DevShellArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let compose = Compose::for_env(ctx, Env::Dev)?;
        stack::check_services(ctx, &compose, std::slice::from_ref(&self.service))?;
        let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
        let sh = shell();
        let no_tty = (!interactive).then_some("-T");
        let service = &self.service;
        let default_shell = ["sh".to_string()];
        let command: &[String] = if self.command.is_empty() {
            &default_shell
        } else {
            &self.command
        };
        let cmd = compose.cmd(cmd!(sh, "exec {no_tty...} {service} {command...}"));
        let cmd = if interactive { cmd.interactive() } else { cmd };
        ctx.run.run(&cmd).map_err(|err| {
            if self.command.is_empty() && self.service == ctx.config.services.api {
                err.context(format!(
                    "the `{}` image has no shell (a distroless runtime); run a command instead, e.g. `cargo xtask dev-shell {} -- /app/backend --help`",
                    self.service, self.service
                ))
            } else {
                err
            }
        })?;
        Ok(())
    }
}
