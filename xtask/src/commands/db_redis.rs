//! `cargo xtask db-redis`: a Redis shell (password from the container), or a one-off with args after `--`.

use anyhow::Result;
use clap::Args;

use crate::backup::{self, Engine, plans};
use crate::config::Env;
use crate::context::Ctx;

#[derive(Debug, Clone, Args)]
pub struct DbRedisArgs {
    /// Which stack.
    #[arg(long, value_enum, default_value = "dev")]
    pub env: Env,
    /// Arguments for the client (after `--`); with them it runs non-interactively.
    #[arg(last = true)]
    pub args: Vec<String>,
}

impl DbRedisArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let compose = crate::prod::stack_compose(ctx, self.env)?;
        let service = Engine::Redis.service(ctx);
        let tty = backup::tty(&self.args);
        let cmd = plans::redis_cli(&compose, &service, &self.args, tty);
        ctx.run.run(&backup::shell(cmd, tty))?;
        Ok(())
    }
}
