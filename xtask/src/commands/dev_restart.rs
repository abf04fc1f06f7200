//! `cargo xtask dev-restart`: restart dev services and wait until they are healthy.

use anyhow::Result;
use clap::Args;

use crate::cmd::{cmd, shell};
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
        let sh = shell();
        let services = &self.services;
        ctx.run.run(&compose.cmd(cmd!(sh, "restart {services...}")))?;
        // `restart` does not wait for health; `up --wait` with nothing to change does.
        ctx.run
            .run(&compose.cmd(cmd!(sh, "up --detach --wait --no-build {services...}")))?;
        Ok(())
    }
}
