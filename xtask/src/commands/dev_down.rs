//! `cargo xtask dev-down`: stop and remove the dev stack (volumes only with --volumes, after asking).

use anyhow::Result;
use clap::Args;

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
        let mut cmd = vec!["--profile", "*", "down", "--remove-orphans"];
        if self.volumes.volumes {
            ctx.confirm(&format!(
                "delete every volume of compose project `{}` (all PostgreSQL and Redis data of the dev stack)",
                compose.project
            ))?;
            cmd.push("--volumes");
        }
        ctx.run.run(&compose.cmd_args(cmd))?;
        Ok(())
    }
}
