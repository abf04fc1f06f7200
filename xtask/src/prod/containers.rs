//! The API containers of a compose stack: which run, their state (from `docker inspect`), which receive
//! traffic, promoting a healthy one behind the proxy, and waiting for health.
//!
//! The proxy sends API requests to the network alias `api-live` ([`LIVE_ALIAS`]), which [`promote`] gives a
//! container after its healthcheck passed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::cmd::{Cmd, cmd, shell};
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
    let out = ctx.run.read(&container_ids_cmd(project, service))?;
    let mut rows: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, created)| (created.to_string(), id.to_string()))
        .collect();
    rows.sort();
    Ok(rows.into_iter().map(|(_, id)| id).collect())
}

/// `docker ps` of a compose service's own containers (not one-off `run` ones): full id and creation time.
fn container_ids_cmd(project: &str, service: &str) -> Cmd {
    let sh = shell();
    let format = "{{.ID}} {{.CreatedAt}}";
    let project = format!("label=com.docker.compose.project={project}");
    let service = format!("label=com.docker.compose.service={service}");
    Cmd::from(cmd!(
        sh,
        "docker ps --no-trunc --format {format} --filter {project} --filter {service} --filter label=com.docker.compose.oneoff=False"
    ))
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

/// The part of one `docker inspect` element the deploy logic reads. Every field is required except those
/// docker really leaves out: `State.Health` (an image without a healthcheck) and `Aliases` (`null` on a
/// network the container has no alias on).
#[derive(Debug, Deserialize)]
struct Inspected {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "RestartCount")]
    restart_count: u64,
    #[serde(rename = "State")]
    state: InspectedState,
    #[serde(rename = "Config")]
    config: InspectedConfig,
    #[serde(rename = "NetworkSettings")]
    network_settings: InspectedNetworkSettings,
}

#[derive(Debug, Deserialize)]
struct InspectedState {
    #[serde(rename = "Status")]
    status: String,
    #[serde(rename = "Health")]
    health: Option<InspectedHealth>,
}

#[derive(Debug, Deserialize)]
struct InspectedHealth {
    #[serde(rename = "Status")]
    status: String,
}

#[derive(Debug, Deserialize)]
struct InspectedConfig {
    #[serde(rename = "Image")]
    image: String,
}

#[derive(Debug, Deserialize)]
struct InspectedNetworkSettings {
    #[serde(rename = "Networks")]
    networks: BTreeMap<String, InspectedEndpoint>,
}

#[derive(Debug, Deserialize)]
struct InspectedEndpoint {
    #[serde(rename = "Aliases")]
    aliases: Option<Vec<String>>,
}

impl From<Inspected> for ContainerState {
    fn from(c: Inspected) -> ContainerState {
        ContainerState {
            id: c.id,
            name: c.name.trim_start_matches('/').to_string(),
            status: c.state.status,
            // No healthcheck: no health status (never "healthy").
            health: c.state.health.map(|h| h.status).unwrap_or_default(),
            restarts: c.restart_count,
            image: c.config.image,
            aliases: c
                .network_settings
                .networks
                .into_iter()
                .map(|(net, endpoint)| (net, endpoint.aliases.unwrap_or_default()))
                .collect(),
        }
    }
}

impl ContainerState {
    /// Parses the output of `docker inspect` (a JSON array, one element per container). `cmd` is named in
    /// the error when the output is not what this code reads: a changed shape fails instead of reading as empty.
    pub fn parse_inspect(cmd: &Cmd, stdout: &str) -> Result<Vec<ContainerState>> {
        let parsed: Vec<Inspected> = serde_json::from_str(stdout.trim())
            .with_context(|| format!("`{}` printed output of an unexpected shape", cmd.display()))?;
        Ok(parsed.into_iter().map(ContainerState::from).collect())
    }
}

/// `docker inspect` of containers.
fn inspect_cmd(ids: &[String]) -> Cmd {
    let sh = shell();
    Cmd::from(cmd!(sh, "docker inspect {ids...}"))
}

/// The state of each of `ids` that still exists: a container removed meanwhile is left out (docker inspect
/// then prints the others and exits non-zero), so callers compare the count.
pub fn inspect(ctx: &Ctx, ids: &[String]) -> Result<Vec<ContainerState>> {
    if ids.is_empty() || ctx.run.dry_run {
        return Ok(Vec::new());
    }
    let cmd = inspect_cmd(ids);
    let Some(probe) = ctx.run.probe(&cmd) else {
        return Ok(Vec::new());
    };
    if !probe.success && probe.stdout.trim().is_empty() {
        // Not even `[]`: docker itself failed (e.g. the daemon is not reachable), not a container gone.
        bail!("`{}` failed: {}", cmd.display(), probe.stderr.trim());
    }
    ContainerState::parse_inspect(&cmd, &probe.stdout)
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
    let [disconnect, connect] = promote_cmds(&net, id, &aliases);
    ctx.run.run(&disconnect)?;
    ctx.run.run(&connect)?;
    Ok(())
}

/// Leaves the network, then joins it again with `aliases` (docker cannot change a connected one's aliases).
fn promote_cmds(net: &str, id: &str, aliases: &[String]) -> [Cmd; 2] {
    let sh = shell();
    let aliases = aliases.iter().flat_map(|a| ["--alias", a.as_str()]);
    [
        Cmd::from(cmd!(sh, "docker network disconnect {net} {id}")),
        Cmd::from(cmd!(sh, "docker network connect {aliases...} {net} {id}")),
    ]
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

    /// `docker inspect` of a healthy compose API replica (Docker 27, trimmed of fields nothing reads, but
    /// shaped exactly as docker prints it), and of a proxy container without a healthcheck.
    const INSPECT: &str = r#"[
    {
        "Id": "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
        "Created": "2025-06-01T10:00:00.123456789Z",
        "Path": "/app/backend",
        "Args": [],
        "State": {
            "Status": "running",
            "Running": true,
            "Paused": false,
            "Restarting": false,
            "OOMKilled": false,
            "Dead": false,
            "Pid": 4242,
            "ExitCode": 0,
            "Error": "",
            "StartedAt": "2025-06-01T10:00:01.5Z",
            "FinishedAt": "0001-01-01T00:00:00Z",
            "Health": {
                "Status": "healthy",
                "FailingStreak": 0,
                "Log": [
                    {"Start": "2025-06-01T10:00:06Z", "End": "2025-06-01T10:00:06.1Z", "ExitCode": 0, "Output": ""}
                ]
            }
        },
        "Image": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
        "Name": "/drydock-prod-api-1",
        "RestartCount": 2,
        "Config": {
            "Hostname": "abcdef012345",
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Image": "drydock/api:sha-1a2b3c4",
            "Labels": {
                "com.docker.compose.project": "drydock-prod",
                "com.docker.compose.service": "api",
                "com.docker.compose.oneoff": "False"
            }
        },
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": "5555555555555555555555555555555555555555555555555555555555555555",
            "Ports": {"8000/tcp": null},
            "Networks": {
                "drydock-prod_backend": {
                    "IPAMConfig": null,
                    "Links": null,
                    "Aliases": ["drydock-prod-api-1", "api"],
                    "MacAddress": "02:42:ac:12:00:03",
                    "NetworkID": "6666666666666666666666666666666666666666666666666666666666666666",
                    "Gateway": "172.18.0.1",
                    "IPAddress": "172.18.0.3",
                    "IPPrefixLen": 16,
                    "DNSNames": ["drydock-prod-api-1", "api", "abcdef012345"]
                },
                "drydock-prod_frontend": {
                    "IPAMConfig": null,
                    "Links": null,
                    "Aliases": ["api", "api-live", "abcdef012345"],
                    "NetworkID": "7777777777777777777777777777777777777777777777777777777777777777",
                    "IPAddress": "172.19.0.4",
                    "DNSNames": ["drydock-prod-api-1", "api", "api-live", "abcdef012345"]
                }
            }
        }
    },
    {
        "Id": "9876543210fedcba9876543210fedcba9876543210fedcba9876543210fedcba",
        "State": {"Status": "exited", "Running": false, "ExitCode": 1, "Error": ""},
        "Name": "/drydock-prod-proxy-1",
        "RestartCount": 0,
        "Config": {"Image": "drydock/proxy:sha-1a2b3c4", "Labels": {}},
        "NetworkSettings": {
            "Networks": {
                "bridge": {"IPAMConfig": null, "Links": null, "Aliases": null, "NetworkID": "8888"}
            }
        }
    }
]
"#;

    fn cmd() -> Cmd {
        inspect_cmd(&["abcdef".to_string(), "987654".to_string()])
    }

    #[test]
    fn inspect_output_is_read() {
        let states = ContainerState::parse_inspect(&cmd(), INSPECT).unwrap();
        let [api, proxy] = states.as_slice() else {
            panic!("{states:?}")
        };
        assert_eq!(
            api.id,
            "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
        );
        assert_eq!(api.name, "drydock-prod-api-1");
        assert_eq!(
            (api.status.as_str(), api.health.as_str(), api.restarts),
            ("running", "healthy", 2)
        );
        assert_eq!(api.image, "drydock/api:sha-1a2b3c4");
        assert_eq!(
            api.aliases["drydock-prod_frontend"],
            ["api", "api-live", "abcdef012345"]
        );
        assert_eq!(api.aliases["drydock-prod_backend"], ["drydock-prod-api-1", "api"]);
        // No healthcheck, no aliases: empty, not an error.
        assert_eq!((proxy.status.as_str(), proxy.health.as_str()), ("exited", ""));
        assert_eq!(proxy.aliases["bridge"], Vec::<String>::new());
        assert!(ContainerState::parse_inspect(&cmd(), "[]\n").unwrap().is_empty());
    }

    #[test]
    fn a_changed_shape_is_an_error_naming_the_command() {
        // `State` as a string (not the object docker prints): must not read as an empty status.
        let wrong = r#"[{"Id":"abc","Name":"/x","RestartCount":0,"State":"running",
            "Config":{"Image":"i"},"NetworkSettings":{"Networks":{}}}]"#;
        let err = ContainerState::parse_inspect(&cmd(), wrong).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("`docker inspect abcdef 987654`"), "{msg}");
        assert!(msg.contains("State") || msg.contains("invalid type"), "{msg}");
        // A required field gone (here `Config.Image`) fails too.
        let missing = r#"[{"Id":"abc","Name":"/x","RestartCount":0,"State":{"Status":"running"},
            "Config":{},"NetworkSettings":{"Networks":{}}}]"#;
        let msg = format!("{:#}", ContainerState::parse_inspect(&cmd(), missing).unwrap_err());
        assert!(msg.contains("missing field `Image`"), "{msg}");
    }

    #[test]
    fn commands_are_written_as_before() {
        assert_eq!(
            container_ids_cmd("drydock-prod", "api").argv(),
            [
                "docker",
                "ps",
                "--no-trunc",
                "--format",
                "{{.ID}} {{.CreatedAt}}",
                "--filter",
                "label=com.docker.compose.project=drydock-prod",
                "--filter",
                "label=com.docker.compose.service=api",
                "--filter",
                "label=com.docker.compose.oneoff=False"
            ]
        );
        assert_eq!(cmd().argv(), ["docker", "inspect", "abcdef", "987654"]);
        let [disconnect, connect] = promote_cmds(
            "drydock-prod_frontend",
            "abc123",
            &["api".to_string(), LIVE_ALIAS.to_string()],
        );
        assert_eq!(
            disconnect.argv(),
            ["docker", "network", "disconnect", "drydock-prod_frontend", "abc123"]
        );
        assert_eq!(
            connect.argv(),
            [
                "docker",
                "network",
                "connect",
                "--alias",
                "api",
                "--alias",
                "api-live",
                "drydock-prod_frontend",
                "abc123"
            ]
        );
    }
}
