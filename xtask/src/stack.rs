//! Reading the state of a running stack: services with state and health, and where they are published.

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::Value;

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

/// Parses `docker compose ps --format json` (one object per line, or one array in older releases).
pub fn parse_ps(text: &str) -> Result<Vec<ServiceState>> {
    let text = text.trim();
    let values: Vec<Value> = if text.starts_with('[') {
        serde_json::from_str(text).context("parsing `docker compose ps` JSON")?
    } else {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
            .context("parsing `docker compose ps` JSON lines")?
    };
    let str_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let mut states: Vec<ServiceState> = values
        .iter()
        .map(|v| ServiceState {
            service: str_of(v, "Service"),
            name: str_of(v, "Name"),
            state: str_of(v, "State"),
            health: str_of(v, "Health"),
            exit_code: v.get("ExitCode").and_then(Value::as_i64).unwrap_or(0),
            ports: v
                .get("Publishers")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p.get("PublishedPort").and_then(Value::as_u64).unwrap_or(0) > 0)
                        .map(|p| {
                            format!(
                                "{}:{}->{}",
                                p.get("URL").and_then(Value::as_str).unwrap_or(""),
                                p.get("PublishedPort").and_then(Value::as_u64).unwrap_or(0),
                                p.get("TargetPort").and_then(Value::as_u64).unwrap_or(0)
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    states.sort_by(|a, b| a.service.cmp(&b.service).then(a.name.cmp(&b.name)));
    Ok(states)
}

/// The stack's containers (including finished one-shot jobs).
pub fn services(ctx: &Ctx, compose: &Compose) -> Result<Vec<ServiceState>> {
    let out = ctx.run.read(&compose.cmd_args(["ps", "--all", "--format", "json"]))?;
    parse_ps(&out)
}

/// `host:port` on which `service`'s `port` is published, if it is.
pub fn published(ctx: &Ctx, compose: &Compose, service: &str, port: u16) -> Option<String> {
    let probe = ctx.run.probe(&compose.cmd_args(["port", service, &port.to_string()]))?;
    let addr = probe.stdout.trim();
    (probe.success && !addr.is_empty() && !addr.ends_with(":0"))
        .then(|| reachable(addr, std::env::var("DOCKER_HOST").ok()))
}

/// A port published on every interface (`0.0.0.0:P`, only with DRYDOCK_BIND_ADDRESS) is reached on the
/// engine's host: the `tcp://` host of DOCKER_HOST (Docker-in-Docker), else loopback.
fn reachable(addr: &str, docker_host: Option<String>) -> String {
    let Some(port) = addr.strip_prefix("0.0.0.0:").or_else(|| addr.strip_prefix("[::]:")) else {
        return addr.to_string();
    };
    let host = docker_host
        .as_deref()
        .and_then(|h| h.strip_prefix("tcp://"))
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
        let mut args = vec!["logs".to_string(), "--no-color".into(), "--tail".into(), "60".into()];
        args.extend(bad);
        let _ = ctx.run.run(&compose.cmd_args(args));
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
    let query = compose.cmd_args(["--profile", "*", "config", "--services"]);
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
pub fn logs_of(ctx: &Ctx, compose: &Compose, global: &[&str], args: &LogsArgs) -> Result<()> {
    check_services(ctx, compose, &args.services)?;
    let mut cmd: Vec<String> = global.iter().map(|a| a.to_string()).collect();
    cmd.extend(["logs".into(), "--tail".into(), args.tail.clone()]);
    if args.follow {
        cmd.push("--follow".into());
    }
    cmd.extend(args.services.iter().cloned());
    let mut cmd = compose.cmd_args(cmd);
    if args.follow {
        // Following ends with Ctrl-C; keep the terminal as it is.
        cmd = cmd.interactive();
    }
    ctx.run.run(&cmd)?;
    Ok(())
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
            reachable("0.0.0.0:8080", Some("unix:///var/run/docker.sock".into())),
            "127.0.0.1:8080"
        );
    }

    #[test]
    fn empty_output_is_no_services() {
        assert!(parse_ps("").unwrap().is_empty());
    }
}
