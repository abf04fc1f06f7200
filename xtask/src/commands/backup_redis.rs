//! `cargo xtask backup-redis`: back up Redis (a consistent RDB snapshot) to backups/redis/, with a manifest (the work is `backup::take`).

use anyhow::Result;
use clap::Args;

use crate::backup::{Engine, take};
use crate::context::Ctx;
use crate::flags::EnvFlag;
use crate::prod::audit::audited;

#[derive(Debug, Clone, Args)]
pub struct BackupRedisArgs {
    #[command(flatten)]
    pub env: EnvFlag,
}

impl BackupRedisArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        audited(ctx, self.env.env, "backup-redis", "", || {
            take::backup(ctx, Engine::Redis, self.env.env)
        })
    }
}
