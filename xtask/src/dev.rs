//! The dev stack: start it (or complete it) and wait until every service is healthy, then show its URLs.
//! `dev-up` and `test-e2e` both start it this way.

use std::time::Instant;

use anyhow::Result;

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

/// Build what is missing, start the dev stack and wait until every service is healthy.
pub fn start(ctx: &Ctx, opts: &Start) -> Result<()> {
    preflight(ctx)?;
    ensure_env_file(ctx)?;
    check_env_file(ctx)?;
    images::ensure(ctx)?;
    let compose = Compose::for_env(ctx, Env::Dev)?.with_images(ctx);
    let timeout = opts.timeout.to_string();
    // `--watch` adds the `watch` profile: Vite's dev server (frontend-dev) starts with the stack.
    let mut up = if opts.watch { vec!["--profile", "watch"] } else { vec![] };
    up.extend([
        "up",
        "--detach",
        "--wait",
        "--wait-timeout",
        &timeout,
        "--remove-orphans",
    ]);
    if opts.build {
        up.push("--build");
    }
    ctx.say(&format!("starting the dev stack (project {})", compose.project));
    let started = Instant::now();
    if let Err(err) = ctx.run.run(&compose.cmd_args(up)) {
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
        print_urls(ctx, &compose);
    }
    if opts.watch {
        ctx.say("watching backend/ and frontend/ for changes (Ctrl-C stops watching; the stack keeps running)");
        ctx.run.run(
            &compose
                .cmd_args(["--profile", "watch", "watch", "--no-up"])
                .interactive(),
        )?;
    }
    Ok(())
}

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

fn print_urls(ctx: &Ctx, compose: &Compose) {
    let style = Style::stdout();
    for (service, port, what, scheme) in endpoints(ctx) {
        if let Some(addr) = stack::published(ctx, compose, &service, port) {
            println!("  {:<18} {}", what, style.bold(&format!("{scheme}://{addr}")));
        }
    }
}
