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
    /// A condition checked just before the step: `Err(reason)` skips it, reported as skipped with the reason.
    pub guard: Option<Guard>,
}

/// See [`Step::guard`].
pub type Guard = fn(&Ctx) -> Result<(), String>;

/// The plan, as data: tests assert on it and `--dry-run` prints it.
///
/// Order: the host checks first (seconds to minutes, no engine needed), then images, the container
/// suites, the running stack (health, browser, backups), the real fault and production tests, and the
/// tear-down that always runs.
pub fn plan(ctx: &Ctx, args: &CiArgs) -> Vec<Step> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let root = ctx.root.clone();
    let env = ci_env(&ctx.config.project.name);
    let isolated = |mut cmd: Cmd| {
        for (k, v) in &env {
            cmd = cmd.env(k, v);
        }
        cmd
    };
    let cargo_cmd = |args: &[&str]| Cmd::new(&cargo).args(args.iter().copied()).cwd(&root);
    let xtask = |args: &[&str]| {
        let cmd = Cmd::new(&cargo).arg("xtask").args(args.iter().copied()).cwd(&root);
        isolated(if ctx.offline { cmd.arg("--offline") } else { cmd })
    };
    let mut steps: Vec<Step> = Vec::new();
    let mut add = |name: &'static str, cmd: Cmd, needs: Vec<usize>| {
        steps.push(Step {
            name,
            cmd,
            always: false,
            needs,
            guard: None,
        });
        steps.len() - 1
    };
    add("fmt", cargo_cmd(&["fmt", "--all", "--", "--check"]), vec![]);
    add(
        "clippy",
        cargo_cmd(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
        vec![],
    );
    add("cargo test", cargo_cmd(&["test", "--workspace", "--locked"]), vec![]);
    let base = if ctx.images().source == Source::Offline {
        let built = add("offline images", xtask(&["images", "build-offline"]), vec![]);
        // The contracts the offline images promise (postgres init and auth, redis persistence, runtime without
        // a shell, read-only nginx...), checked on containers that publish nothing.
        add(
            "offline image contracts",
            Cmd::new("bash").arg("infra/images/smoke-test.sh").cwd(&root),
            vec![built],
        );
        vec![built]
    } else {
        vec![]
    };
    let images = add("image builds", xtask(&["dev-build"]), base.clone());
    add("lint", xtask(&["lint"]), vec![images]);
    add("test", xtask(&["test"]), base.clone());
    let up = add("dev-up", xtask(&["dev-up"]), vec![images]);
    add("health", xtask(&["health"]), vec![up]);
    add("test-e2e", xtask(&["test-e2e"]), vec![up]);
    let backup = add("backup-all", xtask(&["backup-all"]), vec![up]);
    add(
        "restore-postgres",
        xtask(&["restore-postgres", "--latest", "--yes"]),
        vec![backup],
    );
    add(
        "restore-redis",
        xtask(&["restore-redis", "--latest", "--yes"]),
        vec![backup],
    );
    add(
        "backups verify",
        xtask(&["backups", "verify", "--latest"]),
        vec![backup],
    );
    // The real fault-injection and production tests run their own compose projects.
    let real_tests = |test: &str, filter: &[&str]| {
        isolated(cargo_cmd(&[
            "test",
            "-p",
            "xtask",
            "--locked",
            "--test",
            test,
            "--",
            "--ignored",
            "--test-threads=1",
        ]))
        .args(filter.iter().copied())
    };
    add("backup fault tests", real_tests("backup_real", &[]), base.clone());
    // --nocapture: the load figures (failed/total requests per deploy) belong in the CI log.
    add(
        "production tests",
        real_tests("prod_real", &["--nocapture"]),
        vec![images],
    );
    // Swarm on three Docker-in-Docker nodes of its own (never this engine's swarm state): safe beside any stack.
    add("swarm test", real_tests("swarm_nodes", &["--nocapture"]), vec![images]);
    if !args.keep_stack {
        steps.push(Step {
            name: "dev-down",
            cmd: xtask(&["dev-down", "--volumes", "--yes"]),
            always: true,
            needs: vec![],
            guard: None,
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
        if let Some(guard) = step.guard
            && !ctx.run.dry_run
            && let Err(reason) = guard(ctx)
        {
            ctx.say(&format!(
                "step {}/{}: {} — skipped: {reason}",
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
        println!("  {mark} {:<24} {line}", step.name);
    }
    if skipped > 0 {
        println!("{passed} passed, {failed} failed, {skipped} skipped");
    } else {
        println!("{passed} passed, {failed} failed");
    }
    // A step skipped because another failed is covered by that failure; a guarded skip says why above.
    if failed > 0 {
        bail!("ci: {failed} step(s) failed");
    }
    Ok(())
}
