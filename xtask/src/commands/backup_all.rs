//! `cargo xtask backup-all`: back up every database of the stack; fails if any backup failed.

use anyhow::Result;
use clap::Args;

use crate::backup::take;
use crate::context::Ctx;
use crate::flags::{EnvFlag, HooksFlag};
use crate::prod::audit::audited;
use crate::prod::hooks::{self, Event, Hook};

#[derive(Debug, Clone, Args)]
pub struct BackupAllArgs {
    #[command(flatten)]
    pub env: EnvFlag,
    #[command(flatten)]
    pub hooks: HooksFlag,
}

impl BackupAllArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let event = Event {
            command: "backup-all",
            target: "all",
            tag: "",
            result: None,
        };
        audited(ctx, self.env.env, "backup-all", "", || {
            hooks::around(
                ctx,
                self.hooks.skip_hooks,
                (Hook::PreBackup, Hook::PostBackup),
                event,
                || take::all(ctx, self.env.env),
            )
        })
    }
}
