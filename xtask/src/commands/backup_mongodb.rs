//! `cargo xtask backup-mongodb`: back up MongoDB (mongodump --archive --gzip) to backups/mongo/, with a manifest (the work is `backup::take`).

use anyhow::Result;
use clap::Args;

use crate::backup::{Engine, take};
use crate::context::Ctx;
use crate::flags::{EnvFlag, HooksFlag};
use crate::prod::audit::audited;
use crate::prod::hooks::{self, Event, Hook};

#[derive(Debug, Clone, Args)]
pub struct BackupMongodbArgs {
    #[command(flatten)]
    pub env: EnvFlag,
    #[command(flatten)]
    pub hooks: HooksFlag,
}

impl BackupMongodbArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let event = Event {
            command: "backup-mongodb",
            target: "mongodb",
            tag: "",
            result: None,
        };
        audited(ctx, self.env.env, "backup-mongodb", "", || {
            hooks::around(
                ctx,
                self.hooks.skip_hooks,
                (Hook::PreBackup, Hook::PostBackup),
                event,
                || take::backup(ctx, Engine::Mongodb, self.env.env),
            )
        })
    }
}
