//! `cargo xtask ci`: everything CI checks, as named steps, with a closing `N passed, N failed` line.
//!
//! Each step is the very command a developer would type (`cargo fmt ...`, `cargo xtask dev-up`, ...), run as
//! a child process, so "green here" means "green in CI". The stack steps run on their own compose project
//! (`<name>-ci`) with ephemeral host ports, so `ci` never touches a developer's running dev stack or its data.

use std::time::Instant;

use anyhow::{Result, bail};

use crate::cli::CiArgs;
use crate::context::Ctx;
use crate::images::Source;
use crate::process::{Cmd, Style};

/// The compose project CI's stack runs on.
pub fn ci_project(name: &str) -> String {
    format!("{name}-ci")
}

/// Environment that isolates the CI stack from a developer's dev stack.
pub fn ci_env(project: &str) -> Vec<(String, String)> {
    let mut env = vec![("DRYDOCK_PROJECT".to_string(), ci_project(project))];
    for port in [
        "DRYDOCK_APP_PORT",
        "DRYDOCK_API_PORT",
        "DRYDOCK_FRONTEND_PORT",
        "DRYDOCK_POSTGRES_PORT",
        "DRYDOCK_REDIS_PORT",
    ] {
        // 0 = the engine picks a free port; commands discover it with `docker compose port`.
        env.push((port.to_string(), "0".to_string()));
    }
    env
}

/// One named CI step.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: &'static str,
    pub cmd: Cmd,
    /// Runs even when an earlier step failed (clean-up).
    pub always: bool,
    /// Skipped when a step it needs failed: the indexes of those steps.
    pub needs: Vec<usize>,
}

/// The plan, as data: tests assert on it and `--dry-run` prints it.
pub fn plan(ctx: &Ctx, args: &CiArgs) -> Vec<Step> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let root = ctx.root.clone();
    let env = ci_env(&ctx.config.project.name);
    let cargo_cmd = |args: &[&str]| Cmd::new(&cargo).args(args.iter().copied()).cwd(&root);
    let xtask = |args: &[&str]| {
        let mut cmd = Cmd::new(&cargo).arg("xtask").args(args.iter().copied()).cwd(&root);
        if ctx.offline {
            cmd = cmd.arg("--offline");
        }
        for (k, v) in &env {
            cmd = cmd.env(k, v);
        }
        cmd
    };
    let mut steps = vec![
        Step {
            name: "fmt",
            cmd: cargo_cmd(&["fmt", "--all", "--", "--check"]),
            always: false,
            needs: vec![],
        },
        Step {
            name: "clippy",
            cmd: cargo_cmd(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--locked",
                "--",
                "-D",
                "warnings",
            ]),
            always: false,
            needs: vec![],
        },
        Step {
            name: "cargo test",
            cmd: cargo_cmd(&["test", "--workspace", "--locked"]),
            always: false,
            needs: vec![],
        },
    ];
    if ctx.images().source == Source::Offline {
        steps.push(Step {
            name: "offline images",
            cmd: xtask(&["images", "build-offline"]),
            always: false,
            needs: vec![],
        });
    }
    let images_step = steps.len();
    steps.push(Step {
        name: "image builds",
        cmd: xtask(&["dev-build"]),
        always: false,
        needs: vec![],
    });
    let up = steps.len();
    steps.push(Step {
        name: "dev-up",
        cmd: xtask(&["dev-up"]),
        always: false,
        needs: vec![images_step],
    });
    steps.push(Step {
        name: "health",
        cmd: xtask(&["health"]),
        always: false,
        needs: vec![up],
    });
    if !args.keep_stack {
        steps.push(Step {
            name: "dev-down",
            cmd: xtask(&["dev-down", "--volumes", "--yes"]),
            always: true,
            needs: vec![],
        });
    }
    steps
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Passed,
    Failed,
    Skipped,
}

pub fn run(ctx: &Ctx, args: &CiArgs) -> Result<()> {
    let steps = plan(ctx, args);
    let style = Style::stderr();
    let mut results: Vec<(Outcome, f64)> = Vec::new();
    let started = Instant::now();
    for (i, step) in steps.iter().enumerate() {
        let blocked = step
            .needs
            .iter()
            .any(|&n| results.get(n).is_some_and(|(o, _)| *o != Outcome::Passed));
        if blocked && !step.always {
            ctx.say(&format!(
                "step {}/{}: {} — skipped (a step it needs did not pass)",
                i + 1,
                steps.len(),
                step.name
            ));
            results.push((Outcome::Skipped, 0.0));
            continue;
        }
        ctx.say(&format!("step {}/{}: {}", i + 1, steps.len(), step.name));
        let t = Instant::now();
        let outcome = match ctx.run.run(&step.cmd) {
            Ok(_) => Outcome::Passed,
            Err(err) => {
                eprintln!("{}", style.red(&format!("step {} failed: {err:#}", step.name)));
                if step.name == "dev-up" || step.name == "health" {
                    // The stack's own words are the fastest way to the cause.
                    let mut logs = step.cmd.clone();
                    logs.args = vec!["xtask".into(), "dev-logs".into(), "--tail".into(), "80".into()];
                    let _ = ctx.run.run(&logs);
                }
                Outcome::Failed
            }
        };
        results.push((outcome, t.elapsed().as_secs_f64()));
    }
    if ctx.run.dry_run {
        return Ok(());
    }
    let passed = results.iter().filter(|(o, _)| *o == Outcome::Passed).count();
    let failed = results.iter().filter(|(o, _)| *o == Outcome::Failed).count();
    let skipped = results.iter().filter(|(o, _)| *o == Outcome::Skipped).count();
    println!();
    println!("ci summary ({:.0} s):", started.elapsed().as_secs_f64());
    let out = Style::stdout();
    for (step, (outcome, secs)) in steps.iter().zip(&results) {
        let (mark, line) = match outcome {
            Outcome::Passed => (out.green("passed "), format!("{secs:>7.1} s")),
            Outcome::Failed => (out.red("FAILED "), format!("{secs:>7.1} s")),
            Outcome::Skipped => (out.yellow("skipped"), String::new()),
        };
        println!("  {mark} {:<16} {line}", step.name);
    }
    if skipped > 0 {
        println!("{passed} passed, {failed} failed, {skipped} skipped");
    } else {
        println!("{passed} passed, {failed} failed");
    }
    if failed + skipped > 0 {
        bail!(
            "ci: {failed} step(s) failed{}",
            if skipped > 0 {
                format!(", {skipped} skipped")
            } else {
                String::new()
            }
        );
    }
    Ok(())
}
