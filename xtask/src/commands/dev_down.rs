//! `cargo xtask dev-down`: stop and remove the dev stack (volumes only with --volumes, after asking).

use anyhow::Result;
use clap::Args;

use crate::cmd::{cmd, shell};
use crate::compose::Compose;
use crate::config::Env;
use crate::context::Ctx;
use crate::flags::VolumesFlag;

#[derive(Debug, Clone, Args)]
pub struct DevDownArgs {
    #[command(flatten)]
    pub volumes: VolumesFlag,
}

impl DevDownArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let compose = Compose::for_env(ctx, Env::Dev)?;
        // Every profile: services started with `--watch` (or `test`) stop too.
        if self.volumes.volumes {
            ctx.confirm(&format!(
                "delete every volume of compose project `{}` (all PostgreSQL and Redis data of the dev stack)",
                compose.project
            ))?;
        }
        let sh = shell();
        let volumes = self.volumes.volumes.then_some("--volumes");
        ctx.run
            .run(&compose.cmd(cmd!(sh, "--profile * down --remove-orphans {volumes...}")))?;
        Ok(())
    }
}
