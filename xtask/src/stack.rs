//! Reading the state of a running stack: services with state and health, and where they are published.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::cmd::{Cmd, cmd, shell};
use crate::compose::Compose;
use crate::context::Ctx;
use crate::flags::LogsArgs;
use crate::term::Style;

/// One compose service's container as `docker compose ps` reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ServiceState {
    pub service: String,
    pub name: String,
    /// running, exited, restarting, created...
    pub state: String,
    /// healthy, unhealthy, starting, or "" when the service has no healthcheck.
    pub health: String,
    pub exit_code: i64,
    pub ports: Vec<String>,
}

impl ServiceState {
    /// Running and healthy (or without a healthcheck), or a one-shot job that finished successfully.
    pub fn ok(&self) -> bool {
        match self.state.as_str() {
            "running" => self.health.is_empty() || self.health == "healthy",
            "exited" => self.exit_code == 0,
            _ => false,
        }
    }
}

/// One object of `docker compose ps --format json`, as Compose writes it (its `ContainerSummary`). Only
/// `Publishers` may be absent (older releases) or `null` (no ports); every other field is always written,
/// so a missing one means the format changed and is an error, not a service that silently "disappeared".
#[derive(Debug, Deserialize)]
struct PsEntry {
    #[serde(rename = "Service")]
    service: String,
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "State")]
    state: String,
    #[serde(rename = "Health")]
    health: String,
    #[serde(rename = "ExitCode")]
    exit_code: i64,
    #[serde(rename = "Publishers", default)]
    publishers: Option<Vec<Publisher>>,
}

/// One port of a [`PsEntry`]: `PublishedPort` is 0 when the target port is exposed but not published.
#[derive(Debug, Deserialize)]
struct Publisher {
    #[serde(rename = "URL")]
    url: String,
    #[serde(rename = "TargetPort")]
    target_port: u64,
    #[serde(rename = "PublishedPort")]
    published_port: u64,
}

impl From<PsEntry> for ServiceState {
    fn from(e: PsEntry) -> ServiceState {
        ServiceState {
            service: e.service,
            name: e.name,
            state: e.state,
            health: e.health,
            exit_code: e.exit_code,
            ports: e
                .publishers
                .unwrap_or_default()
                .into_iter()
                .filter(|p| p.published_port > 0)
                .map(|p| format!("{}:{}->{}", p.url, p.published_port, p.target_port))
                .collect(),
        }
    }
}

/// What `docker compose ps --format json` is called in errors.
const PS_JSON: &str = "`docker compose ps --format json`";

/// Parses `docker compose ps --format json` (one object per line, or one array in older releases). An object
/// of another shape is an error naming the command (and the line), never a service left out.
pub fn parse_ps(text: &str) -> Result<Vec<ServiceState>> {
    let text = text.trim();
    let entries: Vec<PsEntry> = if text.starts_with('[') {
        serde_json::from_str(text).with_context(|| format!("{PS_JSON} printed an array of an unexpected shape"))?
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .with_context(|| format!("{PS_JSON} printed an unexpected object on line {}", i + 1))
            })
            .collect::<Result<_>>()?
    };
    let mut states: Vec<ServiceState> = entries.into_iter().map(ServiceState::from).collect();
    states.sort_by(|a, b| a.service.cmp(&b.service).then(a.name.cmp(&b.name)));
    Ok(states)
}

/// The stack's containers (including finished one-shot jobs).
pub fn services(ctx: &Ctx, compose: &Compose) -> Result<Vec<ServiceState>> {
    let sh = shell();
    let query = compose.cmd(cmd!(sh, "ps --all --format json"));
    let out = ctx.run.read(&query)?;
    parse_ps(&out).with_context(|| format!("reading the stack's containers from `{query}`"))
}

/// `host:port` on which `service`'s `port` is published, if it is.
pub fn published(ctx: &Ctx, compose: &Compose, service: &str, port: u16) -> Option<String> {
    let sh = shell();
    let port = port.to_string();
    let probe = ctx.run.probe(&compose.cmd(cmd!(sh, "port {service} {port}")))?;
    let addr = probe.stdout.trim();
    // A remote engine's loopback is not this machine's: such a port is not reachable from here.
    let remote_loopback = ctx.engine.is_remote() && (addr.starts_with("127.") || addr.starts_with("[::1]"));
    (probe.success && !addr.is_empty() && !addr.ends_with(":0") && !remote_loopback)
        .then(|| reachable(addr, Some(ctx.engine.label.clone())))
}

/// A port published on every interface (`0.0.0.0:P`, only with DRYDOCK_BIND_ADDRESS) is reached on the
/// engine's host: the `tcp://` or `ssh://` host of the engine (Docker-in-Docker, a remote host), else loopback.
fn reachable(addr: &str, docker_host: Option<String>) -> String {
    let Some(port) = addr.strip_prefix("0.0.0.0:").or_else(|| addr.strip_prefix("[::]:")) else {
        return addr.to_string();
    };
    let host = docker_host
        .as_deref()
        .and_then(|h| h.strip_prefix("tcp://").or_else(|| h.strip_prefix("ssh://")))
        .map(|h| h.rsplit_once('@').map_or(h, |(_, host)| host))
        .and_then(|h| h.split(':').next())
        .filter(|h| !h.is_empty())
        .unwrap_or("127.0.0.1")
        .to_string();
    format!("{host}:{port}")
}

pub fn print_states(states: &[ServiceState]) {
    let style = Style::stdout();
    println!("{:<12} {:<10} {:<10} ports", "service", "state", "health");
    for s in states {
        let health = if s.health.is_empty() {
            "-".to_string()
        } else {
            s.health.clone()
        };
        let state = if s.state == "exited" {
            format!("exited({})", s.exit_code)
        } else {
            s.state.clone()
        };
        let line = format!("{:<12} {:<10} {:<10} {}", s.service, state, health, s.ports.join(", "));
        println!("{}", if s.ok() { line } else { style.red(&line) });
    }
}

/// After a failed start: the states, and the last log lines of every service that is not fine.
pub fn explain_unhealthy(ctx: &Ctx, compose: &Compose) {
    if ctx.run.dry_run {
        return;
    }
    let Ok(states) = services(ctx, compose) else {
        return;
    };
    print_states(&states);
    let bad: Vec<String> = states.iter().filter(|s| !s.ok()).map(|s| s.service.clone()).collect();
    if !bad.is_empty() {
        let sh = shell();
        let _ = ctx
            .run
            .run(&compose.cmd(cmd!(sh, "logs --no-color --tail 60 {bad...}")));
    }
}

/// Rejects service names the compose files do not define, before anything runs.
pub fn check_services(ctx: &Ctx, compose: &Compose, wanted: &[String]) -> Result<()> {
    if wanted.is_empty() || ctx.run.dry_run {
        return Ok(());
    }
    let defined = defined_services(ctx, compose)?;
    for name in wanted {
        if !defined.iter().any(|d| d == name) {
            bail!("unknown service `{name}`\n  fix: use one of: {}", defined.join(", "));
        }
    }
    Ok(())
}

fn defined_services(ctx: &Ctx, compose: &Compose) -> Result<Vec<String>> {
    let sh = shell();
    let query = compose.clone().with_profiles(&["*"]).cmd(cmd!(sh, "config --services"));
    match ctx.run.probe(&query) {
        Some(p) if p.success => Ok(p
            .stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()),
        Some(p) => bail!("the compose files are not valid:\n  $ {query}\n{}", p.stderr.trim_end()),
        None => Ok(Vec::new()),
    }
}

/// `docker compose [global args] logs` of a stack (dev-logs, prod-logs). `--tail` was checked by the CLI;
/// unknown service names are refused before anything runs.
pub fn logs_of(ctx: &Ctx, compose: &Compose, args: &LogsArgs) -> Result<()> {
    check_services(ctx, compose, &args.services)?;
    ctx.run.run(&logs_cmd(compose, args))?;
    Ok(())
}

/// The `logs` command of [`logs_of`].
fn logs_cmd(compose: &Compose, args: &LogsArgs) -> Cmd {
    let sh = shell();
    let (tail, services) = (&args.tail, &args.services);
    let follow = args.follow.then_some("--follow");
    let cmd = compose.cmd(cmd!(sh, "logs --tail {tail} {follow...} {services...}"));
    if args.follow {
        // Following ends with Ctrl-C; keep the terminal as it is.
        cmd.interactive()
    } else {
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PS: &str = r#"{"Service":"api","Name":"drydock-api-1","State":"running","Health":"healthy","ExitCode":0,"Publishers":[{"URL":"127.0.0.1","TargetPort":8000,"PublishedPort":8000,"Protocol":"tcp"},{"URL":"","TargetPort":9100,"PublishedPort":0,"Protocol":"tcp"}]}
{"Service":"migrate","Name":"drydock-migrate-1","State":"exited","Health":"","ExitCode":0,"Publishers":[]}
{"Service":"redis","Name":"drydock-redis-1","State":"running","Health":"starting","ExitCode":0,"Publishers":null}"#;

    #[test]
    fn parses_json_lines() {
        let states = parse_ps(PS).unwrap();
        assert_eq!(states.len(), 3);
        assert_eq!(states[0].ports, vec!["127.0.0.1:8000->8000"]);
        assert!(states[0].ok());
        assert!(states[1].ok(), "a finished one-shot job is fine");
        assert!(!states[2].ok(), "starting is not healthy yet");
    }

    #[test]
    fn parses_an_array_and_flags_failed_jobs() {
        let states =
            parse_ps(r#"[{"Service":"migrate","Name":"m","State":"exited","Health":"","ExitCode":1}]"#).unwrap();
        assert!(!states[0].ok());
    }

    #[test]
    fn wildcard_addresses_map_to_the_engine_host() {
        assert_eq!(reachable("127.0.0.1:8080", None), "127.0.0.1:8080");
        assert_eq!(reachable("0.0.0.0:8080", None), "127.0.0.1:8080");
        assert_eq!(
            reachable("0.0.0.0:8080", Some("tcp://docker:2375".into())),
            "docker:8080"
        );
        assert_eq!(
            reachable("0.0.0.0:19380", Some("ssh://root@203.0.113.7:2222".into())),
            "203.0.113.7:19380"
        );
        assert_eq!(
            reachable("0.0.0.0:8080", Some("unix:///var/run/docker.sock".into())),
            "127.0.0.1:8080"
        );
    }

    #[test]
    fn logs_put_global_flags_before_the_subcommand() {
        let compose = Compose {
            project: "dd".into(),
            files: vec!["c.yaml".into()],
            env_file: None,
            env: vec![],
            profiles: vec![],
        };
        let args = LogsArgs {
            follow: true,
            tail: "5".into(),
            services: vec!["api".into(), "proxy".into()],
        };
        let cmd = logs_cmd(&compose.clone().with_profiles(&["*"]), &args);
        assert_eq!(
            cmd.argv(),
            [
                "docker",
                "compose",
                "-p",
                "dd",
                "-f",
                "c.yaml",
                "--profile",
                "*",
                "logs",
                "--tail",
                "5",
                "--follow",
                "api",
                "proxy"
            ]
        );
        assert!(cmd.interactive);
        let args = LogsArgs {
            follow: false,
            tail: "all".into(),
            services: vec![],
        };
        let cmd = logs_cmd(&compose, &args);
        assert_eq!(
            cmd.argv(),
            ["docker", "compose", "-p", "dd", "-f", "c.yaml", "logs", "--tail", "all"]
        );
        assert!(!cmd.interactive);
    }

    #[test]
    fn empty_output_is_no_services() {
        assert!(parse_ps("").unwrap().is_empty());
    }

    /// What Compose 2.40 prints: every field of its container summary, most of them as display strings.
    const PS_REAL: &str = r#"{"Command":"\"docker-entrypoint.s…\"","CreatedAt":"2025-06-02 09:14:03 +0000 UTC","ExitCode":0,"Health":"healthy","ID":"5f0c1e2d3b4a","Image":"drydock/postgres:17","Labels":"com.docker.compose.project=drydock,com.docker.compose.service=postgres","LocalVolumes":"1","Mounts":"drydock_pgdata","Name":"drydock-postgres-1","Names":"drydock-postgres-1","Networks":"drydock_default","Ports":"127.0.0.1:5432->5432/tcp","Project":"drydock","Publishers":[{"URL":"127.0.0.1","TargetPort":5432,"PublishedPort":5432,"Protocol":"tcp"}],"RunningFor":"3 minutes ago","Service":"postgres","Size":"0B","State":"running","Status":"Up 3 minutes (healthy)"}
{"Command":"\"/usr/local/bin/api …\"","CreatedAt":"2025-06-02 09:14:03 +0000 UTC","ExitCode":0,"Health":"","ID":"9a8b7c6d5e4f","Image":"drydock/api:dev","Labels":"com.docker.compose.project=drydock","LocalVolumes":"0","Mounts":"","Name":"drydock-migrate-1","Names":"drydock-migrate-1","Networks":"drydock_default","Ports":"","Project":"drydock","Publishers":null,"RunningFor":"3 minutes ago","Service":"migrate","Size":"0B","State":"exited","Status":"Exited (0) 2 minutes ago"}
"#;

    #[test]
    fn parses_what_compose_really_prints() {
        let states = parse_ps(PS_REAL).unwrap();
        assert_eq!(
            states,
            [
                ServiceState {
                    service: "migrate".into(),
                    name: "drydock-migrate-1".into(),
                    state: "exited".into(),
                    health: "".into(),
                    exit_code: 0,
                    ports: vec![],
                },
                ServiceState {
                    service: "postgres".into(),
                    name: "drydock-postgres-1".into(),
                    state: "running".into(),
                    health: "healthy".into(),
                    exit_code: 0,
                    ports: vec!["127.0.0.1:5432->5432".into()],
                },
            ]
        );
    }

    #[test]
    fn another_shape_is_an_error_naming_the_command() {
        // `State` renamed (a changed format): an error, not a container that is silently not there.
        let lines = PS_REAL.replacen("\"State\"", "\"Status2\"", 1);
        let err = format!("{:#}", parse_ps(&lines).unwrap_err());
        assert!(
            err.contains("`docker compose ps --format json`") && err.contains("line 1") && err.contains("State"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            parse_ps(r#"[{"Service":"api","Name":"a","State":"running"}]"#).unwrap_err()
        );
        assert!(
            err.contains("`docker compose ps --format json`") && err.contains("Health"),
            "{err}"
        );
        let err = parse_ps(r#"{"Service":"api","Name":"a","State":"running","Health":"","ExitCode":0,"Publishers":[{"URL":"","TargetPort":"80/tcp","PublishedPort":8080}]}"#)
            .unwrap_err();
        assert!(format!("{err:#}").contains("invalid type"), "{err:#}");
        assert!(parse_ps("not json").is_err());
    }
}
