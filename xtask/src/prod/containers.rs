//! The API containers of a compose stack: which run, their state (from `docker inspect`), which receive
//! traffic, promoting a healthy one behind the proxy, and waiting for health.
//!
//! The proxy sends API requests to the network alias `api-live` ([`LIVE_ALIAS`]), which [`promote`] gives a
//! container after its healthcheck passed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::Value;

use crate::cmd::Cmd;
use crate::context::Ctx;

/// The network alias the edge proxy sends API traffic to (compose.prod.yaml: `API_UPSTREAM=api-live:8000`).
pub const LIVE_ALIAS: &str = "api-live";

/// The compose network the proxy and the API share.
const FRONTEND_NETWORK: &str = "frontend";

/// Running containers of a compose service (full ids, oldest first). Empty in a dry run.
pub fn container_ids(ctx: &Ctx, project: &str, service: &str) -> Result<Vec<String>> {
    if ctx.run.dry_run {
        return Ok(Vec::new());
    }
    let out = ctx.run.read(
        &Cmd::new("docker")
            .args(["ps", "--no-trunc", "--format", "{{.ID}} {{.CreatedAt}}"])
            .arg("--filter")
            .arg(format!("label=com.docker.compose.project={project}"))
            .arg("--filter")
            .arg(format!("label=com.docker.compose.service={service}"))
            .arg("--filter")
            .arg("label=com.docker.compose.oneoff=False"),
    )?;
    let mut rows: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, created)| (created.to_string(), id.to_string()))
        .collect();
    rows.sort();
    Ok(rows.into_iter().map(|(_, id)| id).collect())
}

/// What the deploy logic needs to know about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    pub id: String,
    pub name: String,
    pub status: String,
    pub health: String,
    pub restarts: u64,
    pub image: String,
    /// network name -> aliases
    pub aliases: BTreeMap<String, Vec<String>>,
}

impl ContainerState {
    /// Parses one element of `docker inspect` output.
    pub fn from_inspect(v: &Value) -> ContainerState {
        let s = |ptr: &str| v.pointer(ptr).and_then(Value::as_str).unwrap_or_default().to_string();
        let aliases = v
            .pointer("/NetworkSettings/Networks")
            .and_then(Value::as_object)
            .map(|nets| {
                nets.iter()
                    .map(|(name, n)| {
                        let a = n
                            .get("Aliases")
                            .and_then(Value::as_array)
                            .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
                            .unwrap_or_default();
                        (name.clone(), a)
                    })
                    .collect()
            })
            .unwrap_or_default();
        ContainerState {
            id: s("/Id"),
            name: s("/Name").trim_start_matches('/').to_string(),
            status: s("/State/Status"),
            health: s("/State/Health/Status"),
            restarts: v.get("RestartCount").and_then(Value::as_u64).unwrap_or(0),
            image: s("/Config/Image"),
            aliases,
        }
    }
}

pub fn inspect(ctx: &Ctx, ids: &[String]) -> Result<Vec<ContainerState>> {
    if ids.is_empty() || ctx.run.dry_run {
        return Ok(Vec::new());
    }
    let probe = ctx
        .run
        .probe(&Cmd::new("docker").arg("inspect").args(ids.iter().cloned()));
    let Some(probe) = probe else { return Ok(Vec::new()) };
    // A container removed meanwhile makes inspect fail for it but still print the others.
    let values: Vec<Value> = serde_json::from_str(probe.stdout.trim()).unwrap_or_default();
    Ok(values.iter().map(ContainerState::from_inspect).collect())
}

/// Names of the containers that currently carry the live alias.
pub fn live_containers(ctx: &Ctx, project: &str) -> Result<Vec<String>> {
    let ids = container_ids(ctx, project, &ctx.config.services.api)?;
    let net = format!("{project}_{FRONTEND_NETWORK}");
    Ok(inspect(ctx, &ids)?
        .into_iter()
        .filter(|c| c.aliases.get(&net).is_some_and(|a| a.iter().any(|x| x == LIVE_ALIAS)))
        .map(|c| c.name)
        .collect())
}

/// Lets the proxy route to a (healthy) API container: reconnects it to the frontend network with the live
/// alias, keeping its other aliases. Only ever done to containers that receive no traffic yet.
pub fn promote(ctx: &Ctx, project: &str, id: &str) -> Result<()> {
    let net = format!("{project}_{FRONTEND_NETWORK}");
    let short = &id[..id.len().min(12)];
    let mut aliases: Vec<String> = Vec::new();
    if !ctx.run.dry_run {
        let state = inspect(ctx, &[id.to_string()])?.into_iter().next();
        let Some(state) = state else {
            bail!("container {short} disappeared before it could be promoted")
        };
        let current = state.aliases.get(&net).cloned().unwrap_or_default();
        if current.iter().any(|a| a == LIVE_ALIAS) {
            return Ok(());
        }
        aliases = current
            .into_iter()
            .filter(|a| a != short && !id.starts_with(a.as_str()))
            .collect();
    }
    if !aliases.iter().any(|a| a == &ctx.config.services.api) {
        aliases.push(ctx.config.services.api.clone());
    }
    aliases.push(LIVE_ALIAS.to_string());
    ctx.run
        .run(&Cmd::new("docker").args(["network", "disconnect", &net, id]))?;
    let mut connect = Cmd::new("docker").args(["network", "connect"]);
    for a in &aliases {
        connect = connect.arg("--alias").arg(a.clone());
    }
    ctx.run.run(&connect.arg(&net).arg(id))?;
    Ok(())
}

/// Waits until every container is running and healthy. Fails early when one exits, restarts or is reported
/// unhealthy, and at the deadline.
pub fn wait_healthy(ctx: &Ctx, ids: &[String], timeout: Duration) -> Result<()> {
    if ctx.run.dry_run || ids.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let states = inspect(ctx, ids)?;
        if states.len() < ids.len() {
            bail!("{} of the new container(s) disappeared", ids.len() - states.len());
        }
        for c in &states {
            if c.status != "running" && c.status != "created" {
                bail!("{} is {} (it crashed: see `docker logs {}`)", c.name, c.status, c.name);
            }
            if c.restarts > 0 {
                bail!(
                    "{} restarted {} time(s): it crashes (see `docker logs {}`)",
                    c.name,
                    c.restarts,
                    c.name
                );
            }
            if c.health == "unhealthy" {
                bail!("{} is unhealthy (its healthcheck keeps failing)", c.name);
            }
        }
        let healthy = states
            .iter()
            .filter(|c| c.status == "running" && c.health == "healthy")
            .count();
        if healthy == ids.len() {
            return Ok(());
        }
        let line = format!("{healthy}/{} new replica(s) healthy", ids.len());
        if line != last {
            ctx.say(&line);
            last = line;
        }
        if started.elapsed() > timeout {
            bail!(
                "only {healthy} of {} new replica(s) became healthy within {} s",
                ids.len(),
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_output_is_read() {
        let v: Value = serde_json::from_str(
            r#"{"Id":"abcdef0123456789","Name":"/drydock-prod-api-1","RestartCount":2,
                "State":{"Status":"running","Health":{"Status":"healthy"}},"Config":{"Image":"drydock/api:sha-1"},
                "NetworkSettings":{"Networks":{"drydock-prod_frontend":{"Aliases":["api","api-live","abcdef012345"]}}}}"#,
        )
        .unwrap();
        let c = ContainerState::from_inspect(&v);
        assert_eq!(c.name, "drydock-prod-api-1");
        assert_eq!(
            (c.status.as_str(), c.health.as_str(), c.restarts),
            ("running", "healthy", 2)
        );
        assert!(c.aliases["drydock-prod_frontend"].contains(&LIVE_ALIAS.to_string()));
    }
}
