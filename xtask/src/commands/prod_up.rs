//! `cargo xtask prod-up`: start the hardened production stack (secrets checked, release images, optional
//! monitoring); API containers get traffic once healthy. `--swarm`: the same files as the Swarm stack
//! `<project>-swarm` (`prod::swarm`), under the stack's deploy lock.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::cmd::{Cmd, cmd, shell};
use crate::compose::Compose;
use crate::config::Env;
use crate::context::Ctx;
use crate::flags::{LockFlags, RegistryFlag};
use crate::image_source::Source;
use crate::images;
use crate::prod::audit::Audit;
use crate::prod::compose::{MONITORING_OFFLINE, ensure_monitoring_images, prod_compose};
use crate::prod::containers::{container_ids, promote};
use crate::prod::lock;
use crate::prod::secrets::{check_secrets, generate_secrets, tls_dir};
use crate::prod::state::DeployState;
use crate::prod::swarm::{SwarmDeploy, swarm_deploy};
use crate::prod::tags::{image, parse_tag, require_images, tags_for_up};
use crate::stack;
use crate::term::Style;

#[derive(Debug, Clone, Args)]
pub struct ProdUpArgs {
    /// Release tag to run (default: the deployed one, else `sha-<HEAD>` as `cargo xtask build` tags it).
    #[arg(long, value_name = "TAG", value_parser = parse_tag)]
    pub tag: Option<String>,
    /// Also start the monitoring profile (Prometheus + exporters; Grafana in registry mode only).
    #[arg(long)]
    pub monitoring: bool,
    /// Create missing secret files with random values first (never overwrites an existing one).
    #[arg(long)]
    pub generate_secrets: bool,
    /// Seconds to wait for every service to become healthy.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub timeout: u32,
    /// Start the stack on Docker Swarm (`docker stack deploy` to the engine of the run, a manager).
    #[arg(long)]
    pub swarm: bool,
    #[command(flatten)]
    pub registry: RegistryFlag,
}

impl ProdUpArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        if self.swarm {
            return self.start_swarm(ctx);
        }
        let project = Compose::for_env(ctx, Env::Prod)?.project;
        let audit = Audit::start(&project, "prod-up", self.tag.as_deref().unwrap_or("(deployed or HEAD)"));
        let outcome = self.start(ctx, project);
        audit.finish(ctx, outcome)
    }

    /// The Swarm stack at the deployed tags (else `--tag`, else `sha-<HEAD>`), like `prod-deploy --swarm`.
    fn start_swarm(&self, ctx: &Ctx) -> Result<()> {
        if self.monitoring {
            bail!(
                "--monitoring is not supported with --swarm yet: Prometheus keeps its data in a volume of one node, and its port is published on loopback only, which Swarm's services do not do\n  fix: start the Swarm stack without --monitoring; monitoring runs with the compose stack (cargo xtask prod-up --monitoring, also with --host); nothing was changed"
            );
        }
        if self.generate_secrets {
            generate_secrets(ctx, true)?;
        }
        let stack = crate::prod::stack_name(ctx, true)?;
        let (image_tag, api_tag) = tags_for_up(ctx, &stack, self.tag.as_deref())?;
        let _lock = lock::acquire(ctx, &stack, true, "prod-up", &api_tag, &LockFlags::default())?;
        let audit = Audit::start(&stack, "prod-up", &api_tag);
        let deploy = SwarmDeploy {
            api_tag: &api_tag,
            image_tag: Some(&image_tag),
            registry: self.registry.registry.as_deref(),
            timeout: Duration::from_secs(u64::from(self.timeout)),
            action: "prod-up",
        };
        audit.finish(ctx, swarm_deploy(ctx, &deploy))
    }

    fn start(&self, ctx: &Ctx, project: String) -> Result<()> {
        let source = ctx.images().source;
        let grafana = self.monitoring && source == Source::Registry;
        // Secrets first: a refusal must come before anything is installed, built or started.
        if self.generate_secrets {
            generate_secrets(ctx, true)?;
        }
        let secret_values = if ctx.run.dry_run {
            Vec::new()
        } else {
            check_secrets(ctx, grafana)?
        };
        crate::provision::preflight(ctx)?;
        // The proxy mounts this directory: create it (empty = plain HTTP) so Docker does not create it as root.
        let tls = tls_dir(ctx);
        if !ctx.run.dry_run && !tls.exists() {
            std::fs::create_dir_all(&tls).with_context(|| format!("creating {}", tls.display()))?;
            std::fs::set_permissions(&tls, std::fs::Permissions::from_mode(0o755))?;
        }
        let (image_tag, api_tag) = tags_for_up(ctx, &project, self.tag.as_deref())?;
        let mut wanted = vec![
            image(ctx, "api", &api_tag),
            image(ctx, "frontend", &image_tag),
            image(ctx, "proxy", &image_tag),
        ];
        if ctx.engine.is_remote() {
            // The remote host builds nothing: the base images are made here when missing and travel with the
            // release images (the offline monitoring images too; registry ones the host pulls itself).
            let here = ctx.this_machine();
            images::ensure(&here)?;
            let base = images::BaseImages::for_source(&ctx.config, source);
            wanted.extend([base.postgres, base.redis]);
            if self.monitoring {
                ensure_monitoring_images(&here)?;
                if source == Source::Offline {
                    wanted.extend(MONITORING_OFFLINE.iter().map(|(_, image)| image.to_string()));
                }
            }
        } else {
            images::ensure(ctx)?;
            if self.monitoring {
                ensure_monitoring_images(ctx)?;
            }
        }
        require_images(ctx, &wanted)?;
        if self.monitoring && !grafana {
            ctx.say(
                "Grafana: unavailable in offline mode (it has no Debian package; registry mode only). Prometheus, its alert rules and the exporters start; the dashboard in infra/monitoring/grafana/ needs registry mode.",
            );
        }
        // On a remote engine: the operator's files travel in volumes, not bind mounts (prod/remote.rs).
        let profiles: &[&str] = match (self.monitoring, grafana) {
            (true, true) => &["monitoring", "grafana"],
            (true, false) => &["monitoring"],
            (false, _) => &[],
        };
        let compose = crate::prod::remote::prepare(ctx, prod_compose(ctx, &image_tag, &api_tag)?, profiles)?;
        let timeout = self.timeout.to_string();
        let mut up = up_cmd(&compose, self.monitoring, grafana, &timeout, source);
        ctx.say(&format!(
            "starting the production stack (project {project}, images {image_tag}, api {api_tag})"
        ));
        for v in &secret_values {
            up = up.secret(v.clone());
        }
        if let Err(err) = ctx.run.run(&up) {
            stack::explain_unhealthy(ctx, &compose);
            return Err(err.context(format!(
                "the production stack did not become healthy within {timeout} s (see the states and logs above)\n  fix: correct the failing service, then `cargo xtask prod-up` again"
            )));
        }
        let api = &ctx.config.services.api;
        let ids = if ctx.run.dry_run {
            vec!["<api-container>".to_string()]
        } else {
            container_ids(ctx, &project, api)?
        };
        for id in ids {
            promote(ctx, &project, &id)?;
        }
        let mut state = DeployState::load(ctx, &project)?.unwrap_or_default();
        state.deployed(ctx, &project, "prod-up", &image_tag, &api_tag)?;
        if !ctx.run.dry_run {
            print_urls(ctx, &compose, self.monitoring);
        }
        Ok(())
    }
}

/// `up` of the whole stack, waiting for health; pulling only in registry mode (offline images are built).
fn up_cmd(compose: &Compose, monitoring: bool, grafana: bool, timeout: &str, source: Source) -> Cmd {
    let sh = shell();
    let pull = if source == Source::Registry { "missing" } else { "never" };
    let up = cmd!(
        sh,
        "up --detach --wait --wait-timeout {timeout} --remove-orphans --no-build --pull {pull}"
    );
    let profiles: &[&str] = match (monitoring, grafana) {
        (true, true) => &["monitoring", "grafana"],
        (true, false) => &["monitoring"],
        (false, _) => &[],
    };
    compose.clone().with_profiles(profiles).cmd(up)
}

fn print_urls(ctx: &Ctx, compose: &Compose, monitoring: bool) {
    let style = Style::stdout();
    let s = &ctx.config.services;
    let tls = tls_dir(ctx).join("tls.crt").is_file();
    let mut rows: Vec<(String, u16, &str, &str)> = vec![(s.proxy.clone(), 8080, "app (edge proxy)", "http")];
    if tls {
        rows.push((s.proxy.clone(), 8443, "app (TLS)", "https"));
    }
    if monitoring {
        rows.push(("prometheus".into(), 9090, "prometheus", "http"));
        rows.push(("grafana".into(), 3000, "grafana", "http"));
    }
    for (service, port, what, scheme) in rows {
        if let Some(addr) = stack::published(ctx, compose, &service, port) {
            println!("  {what:<18} {}", style.bold(&format!("{scheme}://{addr}")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_puts_the_profiles_before_the_subcommand() {
        let compose = Compose {
            project: "dd-prod".into(),
            files: vec!["/r/c.yaml".into()],
            env_file: None,
            env: vec![],
            profiles: vec![],
        };
        let tail = |cmd: Cmd| cmd.argv()[6..].join(" ");
        let up = "up --detach --wait --wait-timeout 300 --remove-orphans --no-build";
        assert_eq!(
            tail(up_cmd(&compose, false, false, "300", Source::Offline)),
            format!("{up} --pull never")
        );
        assert_eq!(
            tail(up_cmd(&compose, true, false, "300", Source::Offline)),
            format!("--profile monitoring {up} --pull never")
        );
        assert_eq!(
            tail(up_cmd(&compose, true, true, "300", Source::Registry)),
            format!("--profile monitoring --profile grafana {up} --pull missing")
        );
        assert_eq!(
            up_cmd(&compose, false, false, "300", Source::Offline).argv()[..6],
            ["docker", "compose", "-p", "dd-prod", "-f", "/r/c.yaml"]
        );
    }
}
