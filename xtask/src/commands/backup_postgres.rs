//! `cargo xtask backup-postgres`: back up PostgreSQL (pg_dump -Fc + roles) to backups/postgres/, with a manifest (the work is `backup::take`).

use anyhow::Result;
use clap::Args;

use crate::backup::{Engine, take};
use crate::context::Ctx;
use crate::flags::EnvFlag;
use crate::prod::audit::audited;

#[derive(Debug, Clone, Args)]
pub struct BackupPostgresArgs {
    #[command(flatten)]
    pub env: EnvFlag,
}

impl BackupPostgresArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        audited(ctx, self.env.env, "backup-postgres", "", || {
            take::backup(ctx, Engine::Postgres, self.env.env)
        })
    }
}
