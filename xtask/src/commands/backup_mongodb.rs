//! `cargo xtask backup-mongodb`: back up MongoDB (mongodump --archive --gzip) to backups/mongo/, with a manifest (the work is `backup::take`).

use anyhow::Result;
use clap::Args;

use crate::backup::{Engine, take};
use crate::context::Ctx;
use crate::flags::EnvFlag;
use crate::prod::audit::audited;

#[derive(Debug, Clone, Args)]
pub struct BackupMongodbArgs {
    #[command(flatten)]
    pub env: EnvFlag,
}

impl BackupMongodbArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        audited(ctx, self.env.env, "backup-mongodb", "", || {
            take::backup(ctx, Engine::Mongodb, self.env.env)
        })
    }
}
