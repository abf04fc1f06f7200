//! `cargo xtask db-migrate`: apply the database migrations (the backend's one-shot `migrate` service).

use anyhow::Result;
use clap::Args;

use crate::cmd::{cmd, shell};
use crate::compose::ensure_env_file;
use crate::config::Env;
use crate::context::Ctx;

#[derive(Debug, Clone, Args)]
pub struct DbMigrateArgs {
    /// Which stack.
    #[arg(long, value_enum, default_value = "dev")]
    pub env: Env,
}

impl DbMigrateArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        if self.env == Env::Dev {
            ensure_env_file(ctx)?;
        }
        let compose = crate::prod::stack_compose(ctx, self.env)?;
        let sh = shell();
        ctx.run.run(&compose.cmd(cmd!(sh, "run --rm migrate")))?;
        Ok(())
    }
}
