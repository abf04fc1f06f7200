//! `cargo xtask prod-deploy`: roll the API to a new image with zero downtime (plain compose: `prod::rolling`;
//! `--swarm`: `prod::swarm`); rolls back by itself if the new replicas never become healthy.

use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::context::Ctx;
use crate::flags::{HooksFlag, LockFlags, RegistryFlag};
use crate::prod::audit::Audit;
use crate::prod::hooks::{self, Event, Hook};
use crate::prod::tags::{check_tag, head_tag, parse_tag};
use crate::prod::{lock, rolling, swarm};

#[derive(Debug, Clone, Args)]
pub struct ProdDeployArgs {
    /// The API image tag to deploy (default: `sha-<HEAD>`, as `cargo xtask build` tags it).
    #[arg(long, value_name = "TAG", value_parser = parse_tag)]
    pub tag: Option<String>,
    /// Deploy to Docker Swarm (`docker stack deploy`: start-first rolling update, automatic rollback).
    #[arg(long)]
    pub swarm: bool,
    /// Seconds the new replicas get to become healthy before the deploy is rolled back.
    #[arg(long, default_value_t = 180, value_name = "SECONDS")]
    pub timeout: u32,
    #[command(flatten)]
    pub registry: RegistryFlag,
    #[command(flatten)]
    pub lock: LockFlags,
    #[command(flatten)]
    pub hooks: HooksFlag,
}

impl ProdDeployArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let tag = match &self.tag {
            Some(t) => t.clone(),
            None => head_tag(ctx)?,
        };
        check_tag(&tag)?;
        let timeout = Duration::from_secs(u64::from(self.timeout));
        let target = crate::prod::stack_name(ctx, self.swarm)?;
        let _lock = lock::acquire(ctx, &target, self.swarm, "prod-deploy", &tag, &self.lock)?;
        let audit = Audit::start(&target, "prod-deploy", &tag).message(self.lock.message.as_deref());
        let event = Event {
            command: "prod-deploy",
            target: &target,
            tag: &tag,
            result: None,
        };
        let hooks = (Hook::PreDeploy, Hook::PostDeploy);
        let outcome = hooks::around(ctx, self.hooks.skip_hooks, hooks, event, || {
            if self.swarm {
                let deploy = swarm::SwarmDeploy {
                    api_tag: &tag,
                    image_tag: None,
                    registry: self.registry.registry.as_deref(),
                    timeout,
                    action: "prod-deploy",
                };
                swarm::swarm_deploy(ctx, &deploy)
            } else {
                rolling::rolling(ctx, &tag, timeout, "prod-deploy")
            }
        });
        audit.finish(ctx, outcome)
    }
}
