//! `cargo xtask restore-postgres`: restore PostgreSQL from a backup (checksum first, asks, safety backup; the work is
//! `backup::restore`), or recover it to a point in time from the WAL archive (`--to-time`, `backup::pitr`).

use anyhow::Result;
use clap::Args;

use crate::backup::{Engine, pitr, restore};
use crate::context::Ctx;
use crate::flags::RestoreArgs;
use crate::prod::audit::audited;

#[derive(Debug, Clone, Args)]
pub struct RestorePostgresArgs {
    #[command(flatten)]
    pub restore: RestoreArgs,
    /// Recover to this moment (RFC 3339, e.g. 2026-12-02T03:50:58Z) from the base backups and the WAL
    /// archive, instead of restoring a dump; `cargo xtask backups list` shows the recoverable window.
    #[arg(long, value_name = "RFC3339", group = "which", conflicts_with_all = ["file", "latest", "from_remote"])]
    pub to_time: Option<String>,
}

impl RestorePostgresArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        if let Some(time) = &self.to_time {
            let what = format!("--to-time {time}");
            return audited(ctx, self.restore.env, "restore-postgres", &what, || {
                pitr::restore_to_time(ctx, self.restore.env, time)
            });
        }
        let what = self.restore.what();
        audited(ctx, self.restore.env, "restore-postgres", &what, || {
            restore::restore(ctx, Engine::Postgres, &self.restore)
        })
    }
}
