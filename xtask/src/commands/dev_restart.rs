//! `cargo xtask dev-restart`: restart dev services and wait until they are healthy.

use anyhow::Result;
use clap::Args;

use crate::compose::Compose;
use crate::config::Env;
use crate::context::Ctx;
use crate::stack;

#[derive(Debug, Clone, Args)]
pub struct DevRestartArgs {
    /// Compose service names (default: all).
    pub services: Vec<String>,
}

impl DevRestartArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let compose = Compose::for_env(ctx, Env::Dev)?.with_images(ctx);
        stack::check_services(ctx, &compose, &self.services)?;
        let mut cmd: Vec<String> = vec!["restart".into()];
        cmd.extend(self.services.iter().cloned());
        ctx.run.run(&compose.cmd_args(cmd))?;
        // `restart` does not wait for health; `up --wait` with nothing to change does.
        let mut wait: Vec<String> = ["up", "--detach", "--wait", "--no-build"].map(String::from).to_vec();
        wait.extend(self.services.iter().cloned());
        ctx.run.run(&compose.cmd_args(wait))?;
        Ok(())
    }
}
