//! `cargo xtask prod-rollback`: return the API to the image it ran before the last deploy (zero downtime).

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;

use crate::context::Ctx;
use crate::prod::state::DeployState;
use crate::prod::{rolling, swarm};

#[derive(Debug, Clone, Args)]
pub struct ProdRollbackArgs {
    /// Roll back the Swarm stack instead of the compose stack.
    #[arg(long)]
    pub swarm: bool,
    /// Seconds the replicas get to become healthy.
    #[arg(long, default_value_t = 180, value_name = "SECONDS")]
    pub timeout: u32,
}

impl ProdRollbackArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let project = crate::prod::stack_name(ctx, self.swarm)?;
        let state = DeployState::load(ctx, &project)?;
        let Some(previous) = state.and_then(|s| s.previous_api_tag) else {
            bail!(
                "no previous API image is recorded for `{project}` (in {})\n  fix: deploy the tag you want explicitly: cargo xtask prod-deploy --tag <tag>{}",
                DeployState::path(ctx, &project).display(),
                if self.swarm { " --swarm" } else { "" }
            );
        };
        ctx.say(&format!("rolling the API back to {previous}"));
        let timeout = Duration::from_secs(u64::from(self.timeout));
        if self.swarm {
            swarm::swarm_deploy(ctx, &previous, timeout, "prod-rollback")
        } else {
            rolling::rolling(ctx, &previous, timeout, "prod-rollback")
        }
    }
}
