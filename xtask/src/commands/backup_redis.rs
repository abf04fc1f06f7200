//! `cargo xtask backup-redis`: back up Redis (a consistent RDB snapshot) to backups/redis/, with a manifest (the work is `backup::take`).

use anyhow::Result;
use clap::Args;

use crate::backup::{Engine, take};
use crate::context::Ctx;
use crate::flags::{EnvFlag, HooksFlag};
use crate::prod::audit::audited;
use crate::prod::hooks::{self, Event, Hook};

#[derive(Debug, Clone, Args)]
pub struct BackupRedisArgs {
    #[command(flatten)]
    pub env: EnvFlag,
    #[command(flatten)]
    pub hooks: HooksFlag,
}

impl BackupRedisArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let event = Event {
            command: "backup-redis",
            target: "redis",
            tag: "",
            result: None,
        };
        audited(ctx, self.env.env, "backup-redis", "", || {
            hooks::around(
                ctx,
                self.hooks.skip_hooks,
                (Hook::PreBackup, Hook::PostBackup),
                event,
                || take::backup(ctx, Engine::Redis, self.env.env),
            )
        })
    }
}
