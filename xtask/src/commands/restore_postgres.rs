//! `cargo xtask restore-postgres`: restore PostgreSQL from a backup (checksum first, asks, safety backup; the work is
//! `backup::restore`), or recover it to a point in time from the WAL archive (`--to-time`, `backup::pitr`).

use anyhow::{Result, bail};
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
    /// With `--from-remote` (no name): from the off-site pgBackRest repository ([backups.pitr] offsite).
    #[arg(long, value_name = "RFC3339", group = "which", conflicts_with_all = ["file", "latest"])]
    pub to_time: Option<String>,
}

impl RestorePostgresArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        if let Some(time) = &self.to_time {
            let from_remote = match self.restore.from_remote.as_deref() {
                None => false,
                Some("") => true,
                Some(name) => bail!(
                    "--to-time recovers from pgBackRest's repositories, not from the dump {name:?}: nothing was changed\n  fix: --to-time {time} --from-remote (no name: the off-site repository), or restore the dump without --to-time"
                ),
            };
            let what = format!("--to-time {time}{}", if from_remote { " --from-remote" } else { "" });
            return audited(ctx, self.restore.env, "restore-postgres", &what, || {
                pitr::restore_to_time(ctx, self.restore.env, time, from_remote)
            });
        }
        let what = self.restore.what();
        audited(ctx, self.restore.env, "restore-postgres", &what, || {
            restore::restore(ctx, Engine::Postgres, &self.restore)
        })
    }
}
