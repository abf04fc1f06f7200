//! `cargo xtask prod-rollback`: return the API to the image it ran before the last deploy (zero downtime).

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;

use crate::context::Ctx;
use crate::flags::{HooksFlag, LockFlags, RegistryFlag};
use crate::prod::audit::Audit;
use crate::prod::hooks::{self, Event, Hook};
use crate::prod::state::DeployState;
use crate::prod::tags::{image, parse_tag, require_images};
use crate::prod::{lock, rolling, swarm, swarm_registry};

#[derive(Debug, Clone, Args)]
pub struct ProdRollbackArgs {
    /// Roll back the Swarm stack instead of the compose stack.
    #[arg(long)]
    pub swarm: bool,
    /// Seconds the replicas get to become healthy.
    #[arg(long, default_value_t = 180, value_name = "SECONDS")]
    pub timeout: u32,
    /// The API tag to return to (default: the one before the last deploy); its image must still exist.
    #[arg(long, value_name = "TAG", value_parser = parse_tag)]
    pub to: Option<String>,
    #[command(flatten)]
    pub registry: RegistryFlag,
    #[command(flatten)]
    pub lock: LockFlags,
    #[command(flatten)]
    pub hooks: HooksFlag,
}

impl ProdRollbackArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let project = crate::prod::stack_name(ctx, self.swarm)?;
        let state = DeployState::load(ctx, &project)?.unwrap_or_default();
        let Some(previous) = self.to.clone().or(state.previous_api_tag) else {
            bail!(
                "no previous API image is recorded for `{project}` (in {})\n  fix: deploy the tag you want explicitly: cargo xtask prod-deploy --tag <tag>{}",
                DeployState::path(ctx, &project).display(),
                if self.swarm { " --swarm" } else { "" }
            );
        };
        // A retained version only: refused before anything changes when its image is gone (from this machine,
        // when a registry is pushed to from here; else from the engine deployed to).
        let wanted = [image(ctx, "api", &previous)];
        let registry = self.registry.registry.as_deref().or(state.registry.as_deref());
        let present = match registry {
            Some(_) if self.swarm => swarm_registry::require_here(ctx, &wanted),
            _ => require_images(ctx, &wanted),
        };
        present.map_err(|e| {
            e.context(format!(
                "cannot roll back to {previous}: its API image is not on this engine any more\n  fix: `cargo xtask prod-history` lists the versions and which images remain"
            ))
        })?;
        let _lock = lock::acquire(ctx, &project, self.swarm, "prod-rollback", &previous, &self.lock)?;
        ctx.say(&format!("rolling the API back to {previous}"));
        let timeout = Duration::from_secs(u64::from(self.timeout));
        let audit = Audit::start(&project, "prod-rollback", &previous).message(self.lock.message.as_deref());
        let event = Event {
            command: "prod-rollback",
            target: &project,
            tag: &previous,
            result: None,
        };
        let hooks = (Hook::PreDeploy, Hook::PostDeploy);
        let outcome = hooks::around(ctx, self.hooks.skip_hooks, hooks, event, || {
            if self.swarm {
                let deploy = swarm::SwarmDeploy {
                    api_tag: &previous,
                    image_tag: None,
                    registry: self.registry.registry.as_deref(),
                    timeout,
                    action: "prod-rollback",
                };
                swarm::swarm_deploy(ctx, &deploy)
            } else {
                rolling::rolling(ctx, &previous, timeout, "prod-rollback")
            }
        });
        audit.finish(ctx, outcome)
    }
}
