//! `cargo xtask backup-all`: back up every database of the stack; fails if any backup failed.

use anyhow::Result;
use clap::Args;

use crate::backup::take;
use crate::context::Ctx;
use crate::flags::EnvFlag;
use crate::prod::audit::audited;

#[derive(Debug, Clone, Args)]
pub struct BackupAllArgs {
    #[command(flatten)]
    pub env: EnvFlag,
}

impl BackupAllArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        audited(ctx, self.env.env, "backup-all", "", || take::all(ctx, self.env.env))
    }
}
