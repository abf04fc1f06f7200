//! `cargo xtask backup-postgres`: back up PostgreSQL (pg_dump -Fc + roles) to backups/postgres/, with a manifest (the work is `backup::take`).

use anyhow::Result;
use clap::Args;

use crate::backup::{Engine, take};
use crate::context::Ctx;
use crate::flags::{EnvFlag, HooksFlag};
use crate::prod::audit::audited;
use crate::prod::hooks::{self, Event, Hook};

#[derive(Debug, Clone, Args)]
pub struct BackupPostgresArgs {
    #[command(flatten)]
    pub env: EnvFlag,
    #[command(flatten)]
    pub hooks: HooksFlag,
}

impl BackupPostgresArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let event = Event {
            command: "backup-postgres",
            target: "postgres",
            tag: "",
            result: None,
        };
        audited(ctx, self.env.env, "backup-postgres", "", || {
            hooks::around(
                ctx,
                self.hooks.skip_hooks,
                (Hook::PreBackup, Hook::PostBackup),
                event,
                || take::backup(ctx, Engine::Postgres, self.env.env),
            )
        })
    }
}
