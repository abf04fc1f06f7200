//! `cargo xtask prod-down`: stop the production stack (asks first; volumes only with --volumes).

use anyhow::Result;
use clap::Args;

use crate::cmd::{cmd, shell};
use crate::context::Ctx;
use crate::flags::VolumesFlag;
use crate::prod::compose::current_compose;

#[derive(Debug, Clone, Args)]
pub struct ProdDownArgs {
    #[command(flatten)]
    pub volumes: VolumesFlag,
}

impl ProdDownArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let compose = current_compose(ctx)?;
        if self.volumes.volumes {
            ctx.confirm(&format!(
                "stop the production stack `{}` and DELETE its volumes (all production PostgreSQL, Redis and Prometheus data)",
                compose.project
            ))?;
        } else {
            ctx.confirm(&format!(
                "stop the production stack `{}` (the site goes offline)",
                compose.project
            ))?;
        }
        let sh = shell();
        let volumes = self.volumes.volumes.then_some("--volumes");
        ctx.run.run(&compose.cmd(cmd!(
            sh,
            "--profile monitoring --profile grafana down --remove-orphans {volumes...}"
        )))?;
        Ok(())
    }
}
