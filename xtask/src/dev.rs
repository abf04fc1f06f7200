//! The dev stack: start it (or complete it) and wait until every service is healthy, then show its URLs.
//! `dev-up` and `test-e2e` both start it this way.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::cmd::{Cmd, cmd, shell};

use crate::compose::{Compose, check_env_file, ensure_env_file};
use crate::config::Env;
use crate::context::Ctx;
use crate::images;
use crate::provision::preflight;
use crate::stack;
use crate::term::Style;

/// How to start the dev stack.
#[derive(Debug, Clone)]
pub struct Start {
    /// Rebuild our images even when they exist.
    pub build: bool,
    /// Seconds to wait for every service to become healthy.
    pub timeout: u32,
    /// Also start Vite's dev server, then watch the sources until Ctrl-C.
    pub watch: bool,
}

/// The dev stack's published ports: (service role, container port, the variable that sets the host port,
/// what it is, URL scheme). One table for the URLs shown, the port check and the CI's ephemeral ports.
pub const PORTS: &[(Role, u16, &str, &str, &str)] = &[
    (Role::Proxy, 8080, "DRYDOCK_APP_PORT", "app (edge proxy)", "http"),
    (Role::Api, 8000, "DRYDOCK_API_PORT", "api", "http"),
    (Role::Api, 9100, "DRYDOCK_API_METRICS_PORT", "api metrics", "http"),
    (
        Role::Frontend,
        8080,
        "DRYDOCK_FRONTEND_PORT",
        "frontend (direct)",
        "http",
    ),
    (Role::Postgres, 5432, "DRYDOCK_POSTGRES_PORT", "postgres", "postgres"),
    (Role::Redis, 6379, "DRYDOCK_REDIS_PORT", "redis", "redis"),
    (Role::Vite, 5173, "DRYDOCK_VITE_PORT", "vite (hot reload)", "http"),
];

/// A service of the dev stack, by the role infra/stack.toml names it for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Proxy,
    Api,
    Frontend,
    Postgres,
    Redis,
    /// Vite's dev server (`--watch` only).
    Vite,
}

impl Role {
    pub fn service(self, ctx: &Ctx) -> String {
        let s = &ctx.config.services;
        match self {
            Role::Proxy => s.proxy.clone(),
            Role::Api => s.api.clone(),
            Role::Frontend => s.frontend.clone(),
            Role::Postgres => s.postgres.clone(),
            Role::Redis => s.redis.clone(),
            Role::Vite => "frontend-dev".to_string(),
        }
    }
}

/// Build what is missing, start the dev stack and wait until every service is healthy; ends with the time
/// each phase took.
pub fn start(ctx: &Ctx, opts: &Start) -> Result<()> {
    let mut phases = Phases::default();
    preflight(ctx)?;
    ensure_env_file(ctx)?;
    check_env_file(ctx)?;
    phases.done("provision and checks");
    images::ensure(ctx)?;
    phases.done("base images");
    let compose = Compose::for_env(ctx, Env::Dev)?.with_images(ctx);
    let sh = shell();
    let timeout = opts.timeout.to_string();
    // `--watch` adds the watch overlay (the API's incremental `watch` build, image `api-watch`) and the `watch`
    // profile (Vite's dev server, frontend-dev).
    let compose = if opts.watch {
        compose.watching(&ctx.root)
    } else {
        compose
    };
    let rendered = render(ctx, &compose)?;
    check_ports(ctx, &compose, &rendered)?;
    // Our images, built before `up` so the phase is timed on its own (and `up` only starts containers). Under
    // --watch the watched services are always built: Compose rebuilds them only on the next change, so an image
    // from an earlier session would serve older sources until then (unchanged sources make it a cached no-op).
    let to_build: Vec<&String> = rendered
        .services
        .iter()
        .filter(|(_, s)| s.needs_build(opts, |image| images::exists(ctx, image)))
        .map(|(name, _)| name)
        .collect();
    if !to_build.is_empty() || ctx.run.dry_run {
        ctx.say(&format!(
            "building the stack's images: {}",
            if to_build.is_empty() {
                "(those missing)".to_string()
            } else {
                to_build.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            }
        ));
        ctx.run.run(&compose.cmd(cmd!(sh, "build {to_build...}")))?;
    }
    phases.done("app images");
    ctx.say(&format!("starting the dev stack (project {})", compose.project));
    let started = Instant::now();
    let up = compose.cmd(cmd!(
        sh,
        "up --detach --wait --wait-timeout {timeout} --remove-orphans --no-build"
    ));
    if let Err(err) = ctx.run.run(&up) {
        stack::explain_unhealthy(ctx, &compose);
        return Err(err.context(format!(
            "the dev stack did not become healthy within {timeout} s: see the states and logs above\n  fix: correct the failing service, then `cargo xtask dev-up` again (`cargo xtask dev-logs <service>` for more)"
        )));
    }
    if !ctx.run.dry_run {
        ctx.say(&format!(
            "every service is healthy ({:.1} s after start)",
            started.elapsed().as_secs_f64()
        ));
        phases.done("start to healthy");
        print_urls(ctx, &compose);
        phases.print();
    }
    if opts.watch {
        ctx.say("watching backend/ and frontend/ for changes (Ctrl-C stops watching; the stack keeps running)");
        ctx.say(
            "a backend edit rebuilds the API's watch image and replaces its container; a compile error is printed here and the running API keeps serving",
        );
        ctx.run.run(&compose.cmd(cmd!(sh, "watch --no-up")).interactive())?;
    }
    Ok(())
}

fn print_urls(ctx: &Ctx, compose: &Compose) {
    let style = Style::stdout();
    for (role, port, _, what, scheme) in PORTS {
        if let Some(addr) = stack::published(ctx, compose, &role.service(ctx), *port) {
            println!("  {:<18} {}", what, style.bold(&format!("{scheme}://{addr}")));
        }
    }
}

/// How long each phase of `dev-up` took (printed at the end: where a first run's minutes go).
#[derive(Debug)]
struct Phases {
    last: Instant,
    took: Vec<(&'static str, f64)>,
}

impl Default for Phases {
    fn default() -> Phases {
        Phases {
            last: Instant::now(),
            took: Vec::new(),
        }
    }
}

impl Phases {
    fn done(&mut self, phase: &'static str) {
        self.took.push((phase, self.last.elapsed().as_secs_f64()));
        self.last = Instant::now();
    }

    fn print(&self) {
        let total: f64 = self.took.iter().map(|(_, s)| s).sum();
        eprintln!();
        for (phase, secs) in &self.took {
            eprintln!("  {phase:<22} {secs:>7.1} s");
        }
        eprintln!("  {:<22} {total:>7.1} s", "dev-up");
    }
}

/// `docker compose config --format json`, as far as dev-up reads it (ports, our images, what is watched).
#[derive(Debug, Deserialize)]
struct Rendered {
    services: BTreeMap<String, RenderedService>,
}

#[derive(Debug, Deserialize)]
struct RenderedService {
    #[serde(default)]
    ports: Vec<RenderedPort>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    build: Option<serde_json::Value>,
    /// `develop.watch`: what `compose watch` rebuilds or syncs.
    #[serde(default)]
    develop: Option<serde_json::Value>,
}

impl RenderedService {
    /// Whether `dev-up` builds this service's image: ours (it has a build), and forced, missing, or watched
    /// under --watch (`exists` says whether an image is present).
    fn needs_build(&self, opts: &Start, exists: impl Fn(&str) -> bool) -> bool {
        self.build.is_some()
            && (opts.build
                || (opts.watch && self.develop.is_some())
                || self.image.as_deref().is_none_or(|image| !exists(image)))
    }
}

/// The stack as compose renders it (empty in a dry run).
fn render(ctx: &Ctx, compose: &Compose) -> Result<Rendered> {
    if ctx.run.dry_run {
        return Ok(Rendered {
            services: BTreeMap::new(),
        });
    }
    let sh = shell();
    let text = ctx.run.read(&compose.cmd(cmd!(sh, "config --format json")))?;
    serde_json::from_str(&text).context("reading `docker compose config --format json`")
}

#[derive(Debug, Deserialize)]
struct RenderedPort {
    target: u16,
    /// Compose renders it as a string ("8080"); empty or "0" means "any free port".
    #[serde(default)]
    published: Option<String>,
    #[serde(default)]
    host_ip: Option<String>,
}

/// Refuses, before anything is created, host ports the stack would publish that something else holds: names
/// the port, its holder (a container and its compose project, or a process) and the variable to change.
/// Ports this stack's own running containers hold are fine (`dev-up` on a running stack).
fn check_ports(ctx: &Ctx, compose: &Compose, rendered: &Rendered) -> Result<()> {
    if ctx.run.dry_run {
        return Ok(());
    }
    let sh = shell();
    let project = &compose.project;
    let ports = "{{.Ports}}";
    let ours = ctx.run.read(&Cmd::from(cmd!(
        sh,
        "docker ps --filter label=com.docker.compose.project={project} --format {ports}"
    )))?;
    let mut taken = Vec::new();
    for (service, config) in &rendered.services {
        for port in &config.ports {
            let Some(host) = port
                .published
                .as_deref()
                .and_then(|p| p.parse::<u16>().ok())
                .filter(|p| *p != 0)
            else {
                continue;
            };
            let ip = port
                .host_ip
                .clone()
                .filter(|ip| !ip.is_empty())
                .unwrap_or_else(|| "0.0.0.0".into());
            if ours.contains(&format!(":{host}->")) || TcpListener::bind((ip.as_str(), host)).is_ok() {
                continue;
            }
            let variable = PORTS
                .iter()
                .find(|(role, target, ..)| role.service(ctx) == *service && *target == port.target)
                .map_or_else(
                    || format!("the `{service}` ports in the compose files"),
                    |(_, _, var, ..)| format!("{var} in .env (0 = any free port)"),
                );
            taken.push(format!(
                "{ip}:{host} (`{service}` port {}) is held by {}\n    fix: stop that, or set {variable}",
                port.target,
                port_holder(ctx, host)
            ));
        }
    }
    if !taken.is_empty() {
        bail!(
            "the dev stack cannot start: {} host port(s) taken (nothing was started)\n  - {}",
            taken.len(),
            taken.join("\n  - ")
        );
    }
    Ok(())
}

/// Who holds a host port: a container (with its compose project) or, failing that, a local process.
fn port_holder(ctx: &Ctx, port: u16) -> String {
    let sh = shell();
    let format = r#"{{.Names}} (compose project {{.Label "com.docker.compose.project"}})"#;
    let published = port.to_string();
    let probe = ctx.run.probe(&Cmd::from(cmd!(
        sh,
        "docker ps --filter publish={published} --format {format}"
    )));
    if let Some(line) = probe
        .filter(|p| p.success)
        .and_then(|p| p.stdout.lines().next().map(String::from))
    {
        return format!(
            "container {}",
            line.replace("(compose project )", "(not a compose project)")
        );
    }
    process_listening(port).unwrap_or_else(|| "another process".to_string())
}

/// The process listening on a TCP port, from /proc (Linux): `pid 123 (nginx)`.
fn process_listening(port: u16) -> Option<String> {
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"].iter().find_map(|table| {
        let text = std::fs::read_to_string(table).ok()?;
        text.lines().skip(1).find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit(':').next()?;
            // State 0A = LISTEN.
            (u16::from_str_radix(local_port, 16).ok()? == port && fields.get(3)? == &"0A")
                .then(|| fields.get(9).map(|s| s.to_string()))
                .flatten()
        })
    })?;
    let socket = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = entry.file_name().to_string_lossy().to_string();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == socket))
        {
            let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            return Some(format!("process {pid} ({})", name.trim()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(json: &str) -> RenderedService {
        serde_json::from_str(json).unwrap()
    }

    fn start(build: bool, watch: bool) -> Start {
        Start {
            build,
            timeout: 300,
            watch,
        }
    }

    #[test]
    fn watched_services_are_built_under_watch_even_when_their_image_exists() {
        let api = service(
            r#"{"image": "drydock/api-watch:dev", "build": {"target": "watch"}, "develop": {"watch": [{"action": "rebuild", "path": "/r/backend"}]}}"#,
        );
        let frontend = service(r#"{"image": "drydock/frontend:dev", "build": {"context": "/r/frontend"}}"#);
        let postgres = service(r#"{"image": "drydock/postgres:17"}"#);
        let present = |_: &str| true;
        assert!(api.needs_build(&start(false, true), present));
        assert!(
            !api.needs_build(&start(false, false), present),
            "plain dev-up: only missing images"
        );
        assert!(
            !frontend.needs_build(&start(false, true), present),
            "not watched: built when missing"
        );
        assert!(frontend.needs_build(&start(false, true), |_: &str| false));
        assert!(frontend.needs_build(&start(true, false), present), "--build forces");
        assert!(
            !postgres.needs_build(&start(true, true), |_: &str| false),
            "not ours: never built"
        );
    }
}
