//! The development stack: `dev-up`, `dev-down`, `dev-restart`, `dev-ps`, `dev-logs`, `dev-shell`, `dev-build`.

use std::time::Instant;

use anyhow::{Result, bail};

use crate::cli::{BuildArgs, DevUpArgs, DownArgs, LogsArgs, ServicesArg, ShellArgs};
use crate::compose::{Compose, ensure_env_file};
use crate::config::Env;
use crate::context::Ctx;
use crate::images;
use crate::process::Style;
use crate::provision::preflight;
use crate::stack::{self, ServiceState};

/// Published ports worth showing after `dev-up`: (service role, container port, what it is).
fn endpoints(ctx: &Ctx) -> Vec<(String, u16, &'static str, &'static str)> {
    let s = &ctx.config.services;
    vec![
        (s.proxy.clone(), 8080, "app (edge proxy)", "http"),
        (s.api.clone(), 8000, "api", "http"),
        (s.frontend.clone(), 8080, "frontend (direct)", "http"),
        (s.postgres.clone(), 5432, "postgres", "postgres"),
        (s.redis.clone(), 6379, "redis", "redis"),
        ("frontend-dev".to_string(), 5173, "vite (hot reload)", "http"),
    ]
}

pub fn up(ctx: &Ctx, args: &DevUpArgs) -> Result<()> {
    preflight(ctx)?;
    ensure_env_file(ctx)?;
    images::ensure(ctx)?;
    let compose = ctx.compose(Env::Dev)?;
    let timeout = args.timeout.to_string();
    // `--watch` adds the `watch` profile: Vite's dev server (frontend-dev) starts with the stack.
    let mut up = if args.watch { vec!["--profile", "watch"] } else { vec![] };
    up.extend([
        "up",
        "--detach",
        "--wait",
        "--wait-timeout",
        &timeout,
        "--remove-orphans",
    ]);
    if args.build {
        up.push("--build");
    }
    ctx.say(&format!("starting the dev stack (project {})", compose.project));
    let started = Instant::now();
    if let Err(err) = ctx.run.run(&compose.cmd(up)) {
        explain_unhealthy(ctx, &compose);
        return Err(err.context(format!(
            "the dev stack did not become healthy within {timeout} s: see the states and logs above\n  fix: correct the failing service, then `cargo xtask dev-up` again (`cargo xtask dev-logs <service>` for more)"
        )));
    }
    if !ctx.run.dry_run {
        ctx.say(&format!(
            "every service is healthy ({:.1} s after start)",
            started.elapsed().as_secs_f64()
        ));
        print_urls(ctx, &compose);
    }
    if args.watch {
        ctx.say("watching backend/ and frontend/ for changes (Ctrl-C stops watching; the stack keeps running)");
        ctx.run
            .run(&compose.cmd(["--profile", "watch", "watch", "--no-up"]).interactive())?;
    }
    Ok(())
}

fn print_urls(ctx: &Ctx, compose: &Compose) {
    let style = Style::stdout();
    for (service, port, what, scheme) in endpoints(ctx) {
        if let Some(addr) = stack::published(ctx, compose, &service, port) {
            println!("  {:<18} {}", what, style.bold(&format!("{scheme}://{addr}")));
        }
    }
}

/// After a failed start: the states, and the last log lines of every service that is not fine.
fn explain_unhealthy(ctx: &Ctx, compose: &Compose) {
    if ctx.run.dry_run {
        return;
    }
    let Ok(states) = stack::services(ctx, compose) else {
        return;
    };
    print_states(&states);
    let bad: Vec<String> = states.iter().filter(|s| !s.ok()).map(|s| s.service.clone()).collect();
    if !bad.is_empty() {
        let mut args = vec!["logs".to_string(), "--no-color".into(), "--tail".into(), "60".into()];
        args.extend(bad);
        let _ = ctx.run.run(&compose.cmd(args));
    }
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

pub fn down(ctx: &Ctx, args: &DownArgs) -> Result<()> {
    let compose = ctx.compose(Env::Dev)?;
    // Every profile: services started with `--watch` (or `test`) stop too.
    let mut cmd = vec!["--profile", "*", "down", "--remove-orphans"];
    if args.volumes {
        ctx.confirm(&format!(
            "delete every volume of compose project `{}` (all PostgreSQL and Redis data of the dev stack)",
            compose.project
        ))?;
        cmd.push("--volumes");
    }
    ctx.run.run(&compose.cmd(cmd))?;
    Ok(())
}

pub fn restart(ctx: &Ctx, args: &ServicesArg) -> Result<()> {
    let compose = ctx.compose(Env::Dev)?;
    check_services(ctx, &compose, &args.services)?;
    let mut cmd: Vec<String> = vec!["restart".into()];
    cmd.extend(args.services.iter().cloned());
    ctx.run.run(&compose.cmd(cmd))?;
    // `restart` does not wait for health; `up --wait` with nothing to change does.
    let mut wait: Vec<String> = ["up", "--detach", "--wait", "--no-build"].map(String::from).to_vec();
    wait.extend(args.services.iter().cloned());
    ctx.run.run(&compose.cmd(wait))?;
    Ok(())
}

pub fn ps(ctx: &Ctx, json: bool) -> Result<()> {
    let compose = ctx.compose(Env::Dev)?;
    let states = stack::services(ctx, &compose)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&states)?);
    } else if states.is_empty() && !ctx.run.dry_run {
        println!("the dev stack is not running (start it with `cargo xtask dev-up`)");
    } else {
        print_states(&states);
    }
    Ok(())
}

pub fn logs(ctx: &Ctx, args: &LogsArgs) -> Result<()> {
    logs_of(ctx, &ctx.compose(Env::Dev)?, &[], args)
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
    let mut cmd = compose.cmd(cmd);
    if args.follow {
        // Following ends with Ctrl-C; keep the terminal as it is.
        cmd = cmd.interactive();
    }
    ctx.run.run(&cmd)?;
    Ok(())
}

pub fn shell(ctx: &Ctx, args: &ShellArgs) -> Result<()> {
    let compose = ctx.compose(Env::Dev)?;
    check_services(ctx, &compose, std::slice::from_ref(&args.service))?;
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let mut cmd: Vec<String> = vec!["exec".into()];
    if !interactive {
        cmd.push("-T".into());
    }
    cmd.push(args.service.clone());
    if args.command.is_empty() {
        cmd.push("sh".into());
    } else {
        cmd.extend(args.command.iter().cloned());
    }
    let cmd = if interactive {
        compose.cmd(cmd).interactive()
    } else {
        compose.cmd(cmd)
    };
    ctx.run.run(&cmd).map_err(|err| {
        if args.command.is_empty() && args.service == ctx.config.services.api {
            err.context(format!(
                "the `{}` image has no shell (a distroless runtime); run a command instead, e.g. `cargo xtask dev-shell {} -- /app/backend --help`",
                args.service, args.service
            ))
        } else {
            err
        }
    })?;
    Ok(())
}

pub fn build(ctx: &Ctx, args: &BuildArgs) -> Result<()> {
    preflight(ctx)?;
    ensure_env_file(ctx)?;
    images::ensure(ctx)?;
    let compose = ctx.compose(Env::Dev)?;
    check_services(ctx, &compose, &args.services)?;
    let mut cmd: Vec<String> = vec!["build".into()];
    if args.no_cache {
        cmd.push("--no-cache".into());
    }
    cmd.extend(args.services.iter().cloned());
    let started = Instant::now();
    ctx.run.run(&compose.cmd(cmd))?;
    if !ctx.run.dry_run {
        ctx.say(&format!("images built in {:.1} s", started.elapsed().as_secs_f64()));
    }
    Ok(())
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
    let query = compose.cmd(["--profile", "*", "config", "--services"]);
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
