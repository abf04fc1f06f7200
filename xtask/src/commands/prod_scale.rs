//! `cargo xtask prod-scale [service] <n> [--swarm]`: scale a stateless production service; new API replicas get
//! traffic once healthy (on Swarm, `prod::swarm::swarm_scale`).

use anyhow::{Result, bail};
use clap::Args;

use crate::context::Ctx;
use crate::flags::LockFlags;
use crate::prod::audit::Audit;
use crate::prod::compose::{current_compose, scale_cmd};
use crate::prod::containers::{container_ids, promote};
use crate::prod::{lock, swarm};

#[derive(Debug, Clone, Args)]
pub struct ProdScaleArgs {
    /// The service to scale (api or frontend: the databases and the proxy are single instances), then the
    /// number of replicas; with only a number, the API is scaled (`prod-scale 5`).
    #[arg(value_name = "[SERVICE] REPLICAS", num_args = 1..=2, required = true)]
    pub target: Vec<String>,
    /// Seconds to wait for new replicas to become healthy.
    #[arg(long, default_value_t = 180, value_name = "SECONDS")]
    pub timeout: u32,
    /// Scale the service of the Swarm stack (`prod-deploy --swarm`) instead of the compose project.
    #[arg(long)]
    pub swarm: bool,
    #[command(flatten)]
    pub lock: LockFlags,
}

impl ProdScaleArgs {
    /// `(service, replicas)`: `[service] n`, the API when only a number is given.
    pub fn parse(&self, api: &str) -> Result<(String, u32)> {
        let (service, count) = match self.target.as_slice() {
            [count] => (api.to_string(), count),
            [service, count] => (service.clone(), count),
            _ => bail!("expected `[SERVICE] REPLICAS`\n  fix: cargo xtask prod-scale {api} 3"),
        };
        let replicas = count.parse().map_err(|_| {
            anyhow::anyhow!("`{count}` is not a number of replicas\n  fix: cargo xtask prod-scale {service} 3")
        })?;
        Ok((service, replicas))
    }

    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let (service, replicas) = self.parse(&ctx.config.services.api)?;
        // Refused before the lock is taken: a wrong service or count changes nothing and blocks nobody.
        check(ctx, &service, replicas)?;
        let what = format!("{service}={replicas}");
        let target = crate::prod::stack_name(ctx, self.swarm)?;
        let _lock = lock::acquire(ctx, &target, self.swarm, "prod-scale", &what, &self.lock)?;
        let audit = Audit::start(&target, "prod-scale", &what).message(self.lock.message.as_deref());
        let outcome = if self.swarm {
            let timeout = std::time::Duration::from_secs(self.timeout.into());
            swarm::swarm_scale(ctx, &service, replicas, timeout)
        } else {
            self.scale(ctx, service, replicas)
        };
        audit.finish(ctx, outcome)
    }

    fn scale(&self, ctx: &Ctx, service: String, replicas: u32) -> Result<()> {
        let s = &ctx.config.services;
        let compose = current_compose(ctx)?;
        let project = compose.project.clone();
        let before = container_ids(ctx, &project, &service)?;
        let timeout = self.timeout.to_string();
        ctx.say(&format!(
            "scaling {} from {} to {} replica(s)",
            service,
            before.len(),
            replicas
        ));
        ctx.run.run(&scale_cmd(
            &compose,
            &service,
            replicas as usize,
            &["--wait", "--wait-timeout", &timeout],
        ))?;
        if service == s.api {
            let now = container_ids(ctx, &project, &s.api)?;
            for id in now.iter().filter(|id| !before.contains(id)) {
                promote(ctx, &project, id)?;
            }
        }
        if !ctx.run.dry_run {
            let n = container_ids(ctx, &project, &service)?.len();
            ctx.say(&format!("{} now runs {n} healthy replica(s)", service));
        }
        Ok(())
    }
}

/// Only the stateless services, and never to 0.
fn check(ctx: &Ctx, service: &str, replicas: u32) -> Result<()> {
    let s = &ctx.config.services;
    if ![s.api.as_str(), s.frontend.as_str()].contains(&service) {
        bail!(
            "`{}` cannot be scaled: only `{}` and `{}` are stateless replicas (the databases hold data; the proxy owns the published ports)\n  fix: cargo xtask prod-scale {} <n>",
            service,
            s.api,
            s.frontend,
            s.api
        );
    }
    if replicas == 0 {
        bail!(
            "0 replicas would take `{}` offline\n  fix: use prod-down to stop the stack, or at least 1",
            service
        );
    }
    Ok(())
}
