//! `cargo xtask prod-down`: stop the production stack (asks first; volumes only with --volumes).

use anyhow::Result;
use clap::Args;

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
        let mut cmd = vec![
            "--profile",
            "monitoring",
            "--profile",
            "grafana",
            "down",
            "--remove-orphans",
        ];
        if self.volumes.volumes {
            ctx.confirm(&format!(
                "stop the production stack `{}` and DELETE its volumes (all production PostgreSQL, Redis and Prometheus data)",
                compose.project
            ))?;
            cmd.push("--volumes");
        } else {
            ctx.confirm(&format!(
                "stop the production stack `{}` (the site goes offline)",
                compose.project
            ))?;
        }
        ctx.run.run(&compose.cmd_args(cmd))?;
        Ok(())
    }
}
