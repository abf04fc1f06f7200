//! `cargo xtask restore-mongodb`: restore MongoDB from a backup (checksum first, asks, safety backup; the work is
//! `backup::restore`).

use anyhow::Result;
use clap::Args;

use crate::backup::{Engine, restore};
use crate::context::Ctx;
use crate::flags::RestoreArgs;
use crate::prod::audit::audited;

#[derive(Debug, Clone, Args)]
pub struct RestoreMongodbArgs {
    #[command(flatten)]
    pub restore: RestoreArgs,
}

impl RestoreMongodbArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let what = self.restore.what();
        audited(ctx, self.restore.env, "restore-mongodb", &what, || {
            restore::restore(ctx, Engine::Mongodb, &self.restore)
        })
    }
}
