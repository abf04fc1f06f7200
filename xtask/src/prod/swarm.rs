//! Deploying the production compose files to Docker Swarm: `docker compose config` rendered for
//! `docker stack deploy` (start-first updates, automatic rollback, API tasks by DNS round robin), also to a
//! remote manager (`DOCKER_HOST=ssh://...`): bind-mounted files travel as configs/secrets, the databases
//! stay on the node labelled `drydock.db=true`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cmd::{Cmd, cmd, shell};
use crate::context::Ctx;
use crate::prod::compose::prod_compose;
use crate::prod::secrets::check_secrets;
use crate::prod::state::DeployState;
use crate::prod::swarm_registry;
use crate::prod::swarm_stack::{DB_NODE_LABEL, swarm_stack};
use crate::prod::tags::{image, require_images};

/// One Swarm deploy (prod-up, prod-deploy, prod-rollback with `--swarm`).
pub struct SwarmDeploy<'a> {
    /// The API's tag.
    pub api_tag: &'a str,
    /// The frontend's and proxy's tag (None: the deployed one, else `api_tag`).
    pub image_tag: Option<&'a str>,
    /// `--registry`: where the nodes pull every image from (None: the one the last deploy used, if any).
    pub registry: Option<&'a str>,
    pub timeout: Duration,
    /// What the deploy state and audit call it: prod-up, prod-deploy, prod-rollback.
    pub action: &'a str,
}

/// Deploys the prod compose files as the stack `<project>-swarm` with the API at `api_tag`, and waits for the
/// rolling update to finish (or for Swarm to roll it back, which is then an error). With a registry, every
/// image is pushed there from this machine first and the nodes pull it (`prod::swarm_registry`).
pub fn swarm_deploy(ctx: &Ctx, deploy: &SwarmDeploy) -> Result<()> {
    let SwarmDeploy {
        api_tag: tag,
        action,
        timeout,
        ..
    } = *deploy;
    let stack = crate::prod::stack_name(ctx, true)?;
    if !ctx.run.dry_run {
        let sh = shell();
        let state = "{{.Swarm.LocalNodeState}}";
        let node = ctx
            .run
            .probe(&Cmd::from(cmd!(sh, "docker info --format {state}")))
            .map(|p| p.stdout.trim().to_string())
            .unwrap_or_default();
        if node != "active" {
            bail!(
                "this Docker engine is not part of a swarm (state: {node:?})\n  fix: run it against a manager (DOCKER_HOST=ssh://user@manager), or make a single-node swarm: docker swarm init --advertise-addr 127.0.0.1 && docker node update --label-add {DB_NODE_LABEL}=true $(docker info --format '{{{{.Swarm.NodeID}}}}')"
            );
        }
        check_secrets(ctx, false)?;
        // The databases keep their data in named volumes, which live on one node: they are pinned to the
        // one node labelled for them (see `swarm_stack`), and without such a node they would never start.
        let (label, hostname) = (format!("node.label={DB_NODE_LABEL}=true"), "{{.Hostname}}");
        let labelled = ctx.run.read(&Cmd::from(cmd!(
            sh,
            "docker node ls --filter {label} --format {hostname}"
        )))?;
        let labelled: Vec<&str> = labelled.split_whitespace().collect();
        if labelled.len() != 1 {
            bail!(
                "the databases need exactly one swarm node labelled {DB_NODE_LABEL}=true (their volumes live there); found {}: {labelled:?}\n  fix: docker node update --label-add {DB_NODE_LABEL}=true <node>   (`docker node ls` lists the nodes; `--label-rm` takes it off the others)",
                labelled.len()
            );
        }
    }
    let mut state = DeployState::load(ctx, &stack)?.unwrap_or_default();
    let registry = swarm_registry::choose(ctx, deploy.registry, state.registry.as_deref())?;
    let image_tag = match deploy.image_tag {
        Some(t) => t.to_string(),
        None if state.image_tag.is_empty() => tag.to_string(),
        None => state.image_tag.clone(),
    };
    let release = [
        image(ctx, "api", tag),
        image(ctx, "frontend", &image_tag),
        image(ctx, "proxy", &image_tag),
    ];
    if registry.is_none() {
        // The engine deployed to must have them (a remote manager gets them from this machine).
        require_images(ctx, &release)?;
    }
    let compose = prod_compose(ctx, &image_tag, tag)?;
    let sh = shell();
    let rendered = ctx.run.read(&compose.cmd(cmd!(sh, "config --format json")))?;
    let publish = ctx.vars.prod_bind_public;
    let file = ctx.root.join("target/drydock/swarm").join(format!("{stack}.json"));
    let mut pushes = Vec::new();
    if !ctx.run.dry_run {
        let config: Value = serde_json::from_str(&rendered).context("parsing `docker compose config --format json`")?;
        let services = &ctx.config.services;
        let databases = [
            services.postgres.as_str(),
            services.redis.as_str(),
            services.mongo.as_str(),
        ];
        let mut stack_file = swarm_stack(config, publish, &services.api, &databases)?;
        if let Some(r) = &registry {
            pushes = swarm_registry::via_registry(&mut stack_file, r);
        }
        std::fs::create_dir_all(file.parent().expect("has a parent"))?;
        std::fs::write(&file, serde_json::to_string_pretty(&stack_file)?)
            .with_context(|| format!("writing {}", file.display()))?;
        if !publish {
            ctx.say(
                "swarm: ports are not published (Swarm's ingress binds every interface; set DRYDOCK_PROD_BIND=0.0.0.0 on a server to publish 80/443-style ports)",
            );
        }
    } else if let Some(r) = &registry {
        // A dry run renders nothing: the release images stand for the stack file's.
        pushes = release.iter().map(|i| swarm_registry::Push::to(r, i)).collect();
    }
    if let Some(r) = &registry {
        let sources: Vec<String> = pushes.iter().map(|p| p.source.clone()).collect();
        swarm_registry::require_here(ctx, &sources)?;
        swarm_registry::push(ctx, r, &pushes)?;
    }
    let service = format!("{stack}_{}", ctx.config.services.api);
    let before = update_started_at(ctx, &service);
    ctx.say(&format!(
        "deploying stack {stack} with API {tag} (start-first, automatic rollback)"
    ));
    ctx.run.run(&stack_deploy_cmd(&file, &stack, registry.is_some()))?;
    let [api_image, ..] = release;
    let want_image = match &registry {
        Some(r) => swarm_registry::Push::to(r, &api_image).target,
        None => api_image,
    };
    let outcome = wait_swarm(ctx, &stack, &service, &want_image, before.as_deref(), timeout);
    match outcome {
        Ok(()) => {
            state.registry = registry;
            state.deployed(ctx, &stack, action, &image_tag, tag)?;
            ctx.say(&format!("stack {stack}: API {tag} serves all traffic"));
            Ok(())
        }
        Err(why) => {
            state.record(action, tag, &format!("failed: {why:#}"));
            state.save(ctx, &stack)?;
            Err(why)
        }
    }
}

/// `prod-scale --swarm`: sets the replicas of a service of the stack `<project>-swarm` and waits, bounded by
/// `timeout`, until exactly that many of its tasks run (Running comes after the healthcheck passed), the ones
/// scaled away have stopped (gracefully), and no other service of the stack lags.
pub fn swarm_scale(ctx: &Ctx, service: &str, replicas: u32, timeout: Duration) -> Result<()> {
    let stack = crate::prod::stack_name(ctx, true)?;
    let full = format!("{stack}_{service}");
    let sh = shell();
    let target = format!("{full}={replicas}");
    ctx.say(&format!("scaling {full} to {replicas} replica(s)"));
    ctx.run
        .run(&Cmd::from(cmd!(sh, "docker service scale --detach {target}")))
        .with_context(|| {
            format!("`{full}` cannot be scaled\n  fix: deploy the stack first (cargo xtask prod-deploy --swarm)")
        })?;
    if ctx.run.dry_run {
        return Ok(());
    }
    let started = Instant::now();
    loop {
        // Every task that should run, whatever its image (`""` matches all); and no service whose running
        // tasks differ from its replicas, this one included: a task scaled away counts until it has stopped.
        let running = running_tasks(ctx, &full, "");
        let lagging = lagging_services(ctx, &stack);
        if running == u64::from(replicas) && lagging.is_empty() {
            ctx.say(&format!(
                "{full} runs {running} healthy replica(s) after {:.1} s",
                started.elapsed().as_secs_f64()
            ));
            return Ok(());
        }
        if started.elapsed() > timeout {
            let why = last_task_error(ctx, &full)
                .map(|e| format!("\n  last task: {e}"))
                .unwrap_or_default();
            bail!(
                "{full} did not reach {replicas} running replica(s) within {} s ({running} running){}{why}\n  fix: docker service ps --no-trunc {full}",
                timeout.as_secs(),
                if lagging.is_empty() {
                    String::new()
                } else {
                    format!("; not yet running: {}", lagging.join(", "))
                }
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// `prod-ps --swarm`: the stack's services with their replicas, then every task that should run with its node
/// and state (or, with `json`, the services as a JSON array).
pub fn swarm_ps(ctx: &Ctx, json: bool) -> Result<()> {
    let stack = crate::prod::stack_name(ctx, true)?;
    let sh = shell();
    if json {
        let format = "{{json .}}";
        let lines = ctx
            .run
            .read(&Cmd::from(cmd!(sh, "docker stack services {stack} --format {format}")))?;
        let rows: Vec<Value> = lines
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).context("parsing `docker stack services --format json`"))
            .collect::<Result<_>>()?;
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let services = "table {{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Image}}";
    ctx.run
        .run(&Cmd::from(cmd!(
            sh,
            "docker stack services {stack} --format {services}"
        )))
        .with_context(|| format!("no Swarm stack {stack} to show\n  fix: cargo xtask prod-deploy --swarm"))?;
    let tasks = "table {{.Name}}\t{{.Node}}\t{{.CurrentState}}\t{{.Error}}";
    ctx.run.run(&Cmd::from(cmd!(
        sh,
        "docker stack ps {stack} --filter desired-state=running --format {tasks}"
    )))?;
    Ok(())
}

/// `docker stack deploy` of the stack file: with a registry, each service pinned to the digest the registry
/// has (`--resolve-image always`) and this machine's login for it passed on; without one, the images as the
/// engine has them.
fn stack_deploy_cmd(file: &std::path::Path, stack: &str, registry: bool) -> Cmd {
    let sh = shell();
    let resolve: &[&str] = if registry {
        &["always", "--with-registry-auth"]
    } else {
        &["never"]
    };
    Cmd::from(cmd!(
        sh,
        "docker stack deploy --prune --resolve-image {resolve...} --compose-file {file} {stack}"
    ))
}

/// `UpdateStatus.StartedAt` of a service (None before its first update or when it does not exist).
fn update_started_at(ctx: &Ctx, service: &str) -> Option<String> {
    let sh = shell();
    let p = ctx
        .run
        .probe(&Cmd::from(cmd!(sh, "docker service inspect {service}")))?;
    let v: Value = serde_json::from_str(p.stdout.trim()).ok()?;
    v.pointer("/0/UpdateStatus/StartedAt")
        .and_then(Value::as_str)
        .map(String::from)
}

fn wait_swarm(
    ctx: &Ctx,
    stack: &str,
    service: &str,
    want_image: &str,
    before: Option<&str>,
    timeout: Duration,
) -> Result<()> {
    if ctx.run.dry_run {
        return Ok(());
    }
    let sh = shell();
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let p = ctx.run.probe(&Cmd::from(cmd!(sh, "docker service inspect {service}")));
        let v: Value = p
            .and_then(|p| serde_json::from_str(p.stdout.trim()).ok())
            .unwrap_or(Value::Null);
        let svc = v.get(0).cloned().unwrap_or(Value::Null);
        let spec_image = svc
            .pointer("/Spec/TaskTemplate/ContainerSpec/Image")
            .and_then(Value::as_str)
            .unwrap_or("");
        let replicas = svc
            .pointer("/Spec/Mode/Replicated/Replicas")
            .and_then(Value::as_u64)
            .unwrap_or(1);
        let update_state = svc.pointer("/UpdateStatus/State").and_then(Value::as_str).unwrap_or("");
        let update_started = svc.pointer("/UpdateStatus/StartedAt").and_then(Value::as_str);
        let fresh_update = update_started.is_some() && update_started != before;
        let message = svc
            .pointer("/UpdateStatus/Message")
            .and_then(Value::as_str)
            .unwrap_or("");
        if fresh_update && update_state.starts_with("rollback") && update_state != "rollback_started" {
            bail!(
                "Swarm rolled the API back ({update_state}: {message})\n  the previous image kept serving; fix: `docker service ps --no-trunc {service}` shows why the new tasks failed"
            );
        }
        if fresh_update && update_state == "paused" {
            bail!("the Swarm update of {service} is paused: {message}\n  fix: docker service ps --no-trunc {service}");
        }
        let running = running_tasks(ctx, service, want_image);
        let api_done =
            spec_image.starts_with(want_image) && running >= replicas && (!fresh_update || update_state == "completed");
        // The whole stack, not only the API: a service whose tasks are rejected (a missing image on a node, a
        // mount the node cannot make) must be named, or the deploy waits for the API alone and says nothing.
        let lagging = if api_done {
            lagging_services(ctx, stack)
        } else {
            Vec::new()
        };
        if api_done && lagging.is_empty() {
            return Ok(());
        }
        let line = format!(
            "swarm: {running}/{replicas} API task(s) on {want_image}{}{}",
            if update_state.is_empty() {
                String::new()
            } else {
                format!(" (update {update_state})")
            },
            if lagging.is_empty() {
                String::new()
            } else {
                format!("; not yet running: {}", lagging.join(", "))
            }
        );
        if line != last {
            ctx.say(&line);
            last = line.clone();
        }
        if started.elapsed() > timeout {
            let why: Vec<String> = lagging
                .iter()
                .filter_map(|l| l.split_whitespace().next())
                .filter_map(|name| last_task_error(ctx, &format!("{stack}_{name}")).map(|e| format!("\n  {name}: {e}")))
                .collect();
            bail!(
                "the stack did not converge within {} s ({line}){}\n  fix: docker stack ps {stack} --no-trunc",
                timeout.as_secs(),
                why.concat()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Tasks of `service` running `image` (healthy: Swarm reports Running only after the healthcheck passed).
fn running_tasks(ctx: &Ctx, service: &str, image: &str) -> u64 {
    let sh = shell();
    let format = "{{.Image}} {{.CurrentState}}";
    let p = ctx.run.probe(&Cmd::from(cmd!(
        sh,
        "docker service ps {service} --filter desired-state=running --format {format}"
    )));
    p.map(|p| {
        p.stdout
            .lines()
            .filter(|l| l.starts_with(image) || l.starts_with(image.split('/').next_back().unwrap_or(image)))
            .filter(|l| l.contains(" Running"))
            .count() as u64
    })
    .unwrap_or(0)
}

/// The long-running services of the stack (without the stack prefix) that do not have all their replicas
/// running, as `name have/want`; the one-shot `migrate` does not count. A stack that cannot be listed is
/// reported as such (never as converged).
fn lagging_services(ctx: &Ctx, stack: &str) -> Vec<String> {
    let sh = shell();
    let format = "{{.Name}} {{.Replicas}}";
    let Some(p) = ctx
        .run
        .probe(&Cmd::from(cmd!(sh, "docker stack services {stack} --format {format}")))
    else {
        return vec!["(docker stack services failed)".into()];
    };
    if !p.success || p.stdout.trim().is_empty() {
        return vec![format!("(docker stack services {stack}: {})", p.stderr.trim())];
    }
    let prefix = format!("{stack}_");
    p.stdout
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next()?;
            let name = name.strip_prefix(&prefix).unwrap_or(name);
            let replicas = words.next().unwrap_or("0/1");
            let (have, want) = replicas.split_once('/').unwrap_or(("0", "1"));
            (name != "migrate" && have != want).then(|| format!("{name} {have}/{want}"))
        })
        .collect()
}

/// The newest error Swarm recorded for a task of `service` (e.g. "No such image", "invalid mount config").
fn last_task_error(ctx: &Ctx, service: &str) -> Option<String> {
    let sh = shell();
    let format = "{{.Node}}: {{.CurrentState}}: {{.Error}}";
    let p = ctx.run.probe(&Cmd::from(cmd!(
        sh,
        "docker service ps {service} --no-trunc --format {format}"
    )))?;
    p.stdout
        .lines()
        .find(|l| !l.trim_end().ends_with(':'))
        .map(|l| l.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_deploy_pins_digests_and_passes_the_login() {
        let file = std::path::Path::new("/r/s.json");
        assert_eq!(
            stack_deploy_cmd(file, "dd-swarm", true).argv(),
            [
                "docker",
                "stack",
                "deploy",
                "--prune",
                "--resolve-image",
                "always",
                "--with-registry-auth",
                "--compose-file",
                "/r/s.json",
                "dd-swarm"
            ]
        );
        assert_eq!(
            stack_deploy_cmd(file, "dd-swarm", false).argv()[3..7],
            ["--prune", "--resolve-image", "never", "--compose-file"]
        );
    }
}
