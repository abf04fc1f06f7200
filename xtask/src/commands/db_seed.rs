//! `cargo xtask db-seed`: load the demo data (idempotent; `migrate seed`).

use anyhow::Result;
use clap::Args;

use crate::cmd::{cmd, shell};
use crate::compose::ensure_env_file;
use crate::config::Env;
use crate::context::Ctx;

#[derive(Debug, Clone, Args)]
pub struct DbSeedArgs {
    /// Which stack.
    #[arg(long, value_enum, default_value = "dev")]
    pub env: Env,
}

impl DbSeedArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        if self.env == Env::Dev {
            ensure_env_file(ctx)?;
        }
        let compose = crate::prod::stack_compose(ctx, self.env)?;
        let sh = shell();
        ctx.run.run(&compose.cmd(cmd!(sh, "run --rm migrate seed")))?;
        Ok(())
    }
}
