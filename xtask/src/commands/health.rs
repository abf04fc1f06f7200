//! `cargo xtask health`: each service's state and health, and the API's own readiness report.

use std::time::Duration;

use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::Value;

use crate::compose::Compose;
use crate::config::Env;
use clap::Args;

use crate::context::Ctx;
use crate::http;
use crate::stack::{self, ServiceState};
use crate::term::Style;

#[derive(Debug, Serialize)]
pub struct Report {
    pub env: &'static str,
    pub project: String,
    pub services: Vec<ServiceState>,
    pub api: Option<ApiReport>,
    pub healthy: bool,
    pub problems: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ApiReport {
    pub url: String,
    pub health_status: Option<u16>,
    pub ready_status: Option<u16>,
    pub ready: Option<Value>,
}

/// Gathers the report: compose state plus `/health` and `/health/ready` of the API.
pub fn gather(ctx: &Ctx, env: Env) -> Result<Report> {
    let compose = crate::prod::stack_compose(ctx, env)?;
    let services = stack::services(ctx, &compose)?;
    let mut problems: Vec<String> = services
        .iter()
        .filter(|s| !s.ok())
        .map(|s| {
            format!(
                "service {} is {}{}",
                s.service,
                s.state,
                if s.health.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", s.health)
                }
            )
        })
        .collect();
    if services.is_empty() && !ctx.run.dry_run {
        problems.push(format!(
            "the {} stack is not running (project {})",
            env.name(),
            compose.project
        ));
    }
    let api = api_report(ctx, &compose, &mut problems);
    edge_check(ctx, &compose, &mut problems);
    Ok(Report {
        env: env.name(),
        project: compose.project.clone(),
        healthy: problems.is_empty(),
        services,
        api,
        problems,
    })
}

/// The API is reached directly where it is published (dev) and through the edge proxy otherwise (prod).
fn api_base(ctx: &Ctx, compose: &Compose) -> Option<String> {
    let s = &ctx.config.services;
    stack::published(ctx, compose, &s.api, 8000)
        .or_else(|| stack::published(ctx, compose, &s.proxy, 8080))
        .map(|addr| format!("http://{addr}"))
}

/// Users arrive through the edge proxy: `/health` must also answer there (proxy → API routing and DNS).
fn edge_check(ctx: &Ctx, compose: &Compose, problems: &mut Vec<String>) {
    if ctx.run.dry_run {
        return;
    }
    let Some(addr) = stack::published(ctx, compose, &ctx.config.services.proxy, 8080) else {
        return;
    };
    match http::get(&format!("http://{addr}/health"), Duration::from_secs(5)) {
        Ok(r) if r.status == 200 => {}
        Ok(r) => problems.push(format!(
            "through the edge proxy, GET http://{addr}/health answered {} (the proxy cannot reach the API)",
            r.status
        )),
        Err(e) => problems.push(format!("the edge proxy at http://{addr} does not answer: {e:#}")),
    }
}

fn api_report(ctx: &Ctx, compose: &Compose, problems: &mut Vec<String>) -> Option<ApiReport> {
    if ctx.run.dry_run {
        return None;
    }
    let Some(base) = api_base(ctx, compose) else {
        problems.push("the API is not published on the host (neither the api nor the proxy service has a port)".into());
        return None;
    };
    let timeout = Duration::from_secs(5);
    let health = http::get(&format!("{base}/health"), timeout);
    let health_status = match &health {
        Ok(r)
            if r.status == 200
                && r.header("content-type")
                    .is_some_and(|t| t.starts_with("application/json"))
                && serde_json::from_str::<Value>(&r.body).ok() == Some(serde_json::json!({"status": "ok"})) =>
        {
            Some(200)
        }
        Ok(r) => {
            problems.push(format!("GET {base}/health answered {} {}", r.status, r.body.trim()));
            Some(r.status)
        }
        Err(e) => {
            problems.push(format!("GET {base}/health failed: {e:#}"));
            None
        }
    };
    let ready = http::get(&format!("{base}/health/ready"), timeout);
    let (ready_status, ready_body) = match ready {
        Ok(r) => {
            let body = serde_json::from_str::<Value>(&r.body).ok();
            if r.status != 200 {
                problems.push(format!(
                    "GET {base}/health/ready answered {}: {}",
                    r.status,
                    r.body.trim()
                ));
            } else if body.as_ref().and_then(|b| b.get("status")).and_then(Value::as_str) != Some("ok") {
                problems.push(format!("the API reports itself degraded: {}", r.body.trim()));
            }
            (Some(r.status), body)
        }
        Err(e) => {
            problems.push(format!("GET {base}/health/ready failed: {e:#}"));
            (None, None)
        }
    };
    Some(ApiReport {
        url: base,
        health_status,
        ready_status,
        ready: ready_body,
    })
}

#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// Which stack to check.
    #[arg(long, value_enum, default_value = "dev")]
    pub env: Env,
    /// Print machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

impl HealthArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        run(ctx, self.env, self.json)
    }
}

fn run(ctx: &Ctx, env: Env, json: bool) -> Result<()> {
    let report = gather(ctx, env)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !ctx.run.dry_run {
        print_report(&report);
    }
    if !report.healthy {
        bail!(
            "the {} stack is not healthy: {}",
            report.env,
            report.problems.join("; ")
        );
    }
    Ok(())
}

fn print_report(report: &Report) {
    let style = Style::stdout();
    stack::print_states(&report.services);
    if let Some(api) = &report.api {
        println!();
        println!(
            "api readiness ({}/health/ready): {}",
            api.url,
            api.ready_status.map_or("no answer".into(), |s| s.to_string())
        );
        if let Some(checks) = api
            .ready
            .as_ref()
            .and_then(|r| r.get("checks"))
            .and_then(Value::as_object)
        {
            for (name, check) in checks {
                let status = check.get("status").and_then(Value::as_str).unwrap_or("?");
                let latency = check
                    .get("latency_ms")
                    .and_then(Value::as_f64)
                    .map_or(String::new(), |l| format!(" {l:.1} ms"));
                let line = format!("  {name:<10} {status}{latency}");
                println!("{}", if status == "up" { line } else { style.red(&line) });
            }
        }
    }
    println!();
    if report.healthy {
        println!("{}", style.green(&format!("{} stack healthy", report.env)));
    } else {
        for p in &report.problems {
            println!("{}", style.red(&format!("problem: {p}")));
        }
    }
}
