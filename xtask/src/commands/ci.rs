//! `cargo xtask ci`: everything CI checks, as named steps, with a closing `N passed, N failed` line.
//!
//! Each step is the very command a developer would type (`cargo fmt ...`, `cargo xtask dev-up`, ...), run as
//! a child process, so "green here" means "green in CI". The stack steps run on their own compose project
//! (`<name>-ci`) with ephemeral host ports, so `ci` never touches a developer's running dev stack or its data.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::ci_report::{self, StepReport};
use crate::ci_schedule::{self, Event, Node, Outcome};
use crate::cmd::{Cmd, cmd, shell};
use crate::compose::ci_project;
use crate::context::Ctx;
use crate::dev::PORTS;
use crate::files;
use crate::image_source::Source;
use crate::provision::{self, Tool};
use crate::term::Style;

/// Environment that isolates the CI stack from a developer's dev stack: its own project, and every host port
/// the dev stack publishes (one table: `dev::PORTS`) left to the engine.
pub fn ci_env(project: &str) -> Vec<(String, String)> {
    let mut env = vec![("DRYDOCK_PROJECT".to_string(), ci_project(project))];
    for (_, _, variable, ..) in PORTS {
        // 0 = the engine picks a free port; commands discover it with `docker compose port`.
        env.push((variable.to_string(), "0".to_string()));
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
    /// Steps that share something (a compose project, a deploy lock) name one lane: they never overlap.
    pub lane: Option<&'static str>,
}

/// The CI stack's compose project (`<name>-ci`): its images, test databases, running stack and tear-down.
const CI_STACK: Option<&str> = Some("the CI stack");
/// Production on this engine: the prod, proxy, prod-exec and deploy lock tests share project names, loopback
/// ports, image tags and the target's deploy lock (the production and prod-exec tests also take
/// `target/drydock/prodtest.lock`). As a lane, a step that would only wait for the others does not take one of
/// the `--jobs` meanwhile. The Swarm and remote host tests run on engines of their own and share only the release
/// images' test tags, which their preparation never moves once they are right (tests/common/mod.rs).
const THIS_ENGINE_PROD: Option<&str> = Some("production on this engine");

/// The plan, as data: tests assert on it and `--dry-run` prints it.
///
/// Order: the host checks first (seconds to minutes, no engine needed), then images, the container
/// suites, the running stack (health, browser, backups) and its tear-down that always runs, then the real
/// fault and production tests on projects and engines of their own.
pub fn plan(ctx: &Ctx, args: &CiArgs) -> Vec<Step> {
    let sh = shell();
    let cargo = ctx.vars.cargo.clone();
    let root = ctx.root.clone();
    let env = ci_env(&ctx.config.project.name);
    let isolated = |mut cmd: Cmd| {
        for (k, v) in &env {
            cmd = cmd.env(k, v);
        }
        cmd
    };
    // `cargo <subcommand>` at the repository root.
    let cargo_cmd = |subcommand: xshell::Cmd<'_>| Cmd::from(cmd!(sh, "{cargo}")).then(subcommand).cwd(&root);
    // `cargo xtask <command>` on the isolated CI stack (`--offline` last when this run is offline).
    let xtask = |command: xshell::Cmd<'_>| {
        let cmd = cargo_cmd(cmd!(sh, "xtask")).then(command);
        isolated(if ctx.offline {
            cmd.then(cmd!(sh, "--offline"))
        } else {
            cmd
        })
    };
    let mut steps: Vec<Step> = Vec::new();
    // `lane`: None for a step that shares nothing with any other step.
    let mut add = |lane: Option<&'static str>, name: &'static str, cmd: Cmd, needs: Vec<usize>| {
        steps.push(Step {
            name,
            cmd,
            always: false,
            needs,
            lane,
        });
        steps.len() - 1
    };
    add(None, "fmt", cargo_cmd(cmd!(sh, "fmt --all -- --check")), vec![]);
    add(
        None,
        "clippy",
        cargo_cmd(cmd!(
            sh,
            "clippy --workspace --all-targets --all-features --locked -- -D warnings"
        )),
        vec![],
    );
    // The xtask's tests. The backend's (its unit tests and, against real databases, its integration tests) run
    // in their container in the `test` step: compiling them on the host too would build them twice for nothing.
    add(
        None,
        "cargo test",
        cargo_cmd(cmd!(sh, "test -p xtask --locked")),
        vec![],
    );
    let base = if ctx.images().source == Source::Offline {
        let built = add(None, "offline images", xtask(cmd!(sh, "images build-offline")), vec![]);
        // The contracts the offline images promise (postgres init and auth, redis persistence, runtime without
        // a shell, read-only nginx...), checked on containers that publish nothing.
        add(
            None,
            "offline image contracts",
            Cmd::from(cmd!(sh, "bash infra/images/smoke-test.sh")).cwd(&root),
            vec![built],
        );
        vec![built]
    } else {
        vec![]
    };
    let images = add(CI_STACK, "image builds", xtask(cmd!(sh, "dev-build")), base.clone());
    add(None, "lint", xtask(cmd!(sh, "lint")), vec![images]);
    add(CI_STACK, "test", xtask(cmd!(sh, "test")), base.clone());
    let up = add(CI_STACK, "dev-up", xtask(cmd!(sh, "dev-up")), vec![images]);
    add(CI_STACK, "health", xtask(cmd!(sh, "health")), vec![up]);
    add(CI_STACK, "test-e2e", xtask(cmd!(sh, "test-e2e")), vec![up]);
    let backup = add(CI_STACK, "backup-all", xtask(cmd!(sh, "backup-all")), vec![up]);
    add(
        CI_STACK,
        "restore-postgres",
        xtask(cmd!(sh, "restore-postgres --latest --yes")),
        vec![backup],
    );
    add(
        CI_STACK,
        "restore-redis",
        xtask(cmd!(sh, "restore-redis --latest --yes")),
        vec![backup],
    );
    add(
        CI_STACK,
        "backups verify",
        xtask(cmd!(sh, "backups verify --latest")),
        vec![backup],
    );
    // The CI stack's tear-down, which runs even when a stack step failed. No later step uses the stack, and an
    // idle stack is not free (five healthchecks every 2 s, an exec each: about 50 core-seconds over a run), so
    // it goes as soon as the stack's steps have ended rather than after the real tests.
    let down = (!args.keep_stack).then(|| {
        add(
            CI_STACK,
            "dev-down",
            xtask(cmd!(sh, "dev-down --volumes --yes")),
            vec![],
        )
    });
    // The real fault-injection and production tests run their own compose projects; `filter` goes to the
    // test harness. Longest first, so that with `--jobs` the last to end is a short one.
    let real_tests = |test: &str, filter: &[&str]| {
        isolated(cargo_cmd(cmd!(
            sh,
            "test -p xtask --locked --test {test} -- --ignored --test-threads=1 {filter...}"
        )))
    };
    // Production on this engine is the longest chain of the run (production, prod-exec, edge proxy, deploy
    // lock: one at a time), so its steps come first among those that wait for the images: with `--jobs`, the
    // earliest ready step in plan order gets the next free job.
    // --nocapture: the load figures (failed/total requests per deploy) belong in the CI log.
    add(
        THIS_ENGINE_PROD,
        "production tests",
        real_tests("prod_real", &["--nocapture"]),
        vec![images],
    );
    add(
        THIS_ENGINE_PROD,
        "prod-exec test",
        real_tests("prod_exec_real", &["--nocapture"]),
        vec![images],
    );
    // Swarm on three Docker-in-Docker nodes of its own (never this engine's swarm state): safe beside any stack.
    add(
        None,
        "swarm test",
        real_tests("swarm_nodes", &["--nocapture"]),
        vec![images],
    );
    // Production on a remote host over SSH (a Docker-in-Docker node of its own): images streamed, operator
    // files in volumes, backups streamed back.
    add(
        None,
        "remote host test",
        real_tests("remote_real", &["--nocapture"]),
        vec![images],
    );
    add(
        THIS_ENGINE_PROD,
        "edge proxy tests",
        real_tests("proxy_real", &["--nocapture"]),
        vec![images],
    );
    // The deploy lock on this engine, taken by separate processes as different operators (no stack needed).
    add(
        THIS_ENGINE_PROD,
        "deploy lock test",
        real_tests("lock_real", &["--nocapture"]),
        vec![],
    );
    // --nocapture: the PITR figures (round-trip time, measured RPO) belong in the CI log.
    add(
        None,
        "point-in-time recovery tests",
        real_tests("pitr_real", &["--nocapture"]),
        base.clone(),
    );
    // A schedule installed on this host really fires (cron or a systemd timer), and node-exporter serves the
    // freshness metric; --nocapture: how long the ticks took. Alone it takes 108 s, mostly waiting for ticks (11 %
    // of this 2-core machine), so by the longest-first rule it goes before the fault (91 s) and off-site (66 s)
    // tests; it used to end the run, waiting while nothing else was left to overlap it.
    add(
        None,
        "schedule tests",
        real_tests("schedule_real", &["--nocapture"]),
        base.clone(),
    );
    add(None, "backup fault tests", real_tests("backup_real", &[]), base.clone());
    // S3 (moto) and SFTP servers of its own on 127.0.0.1, encryption with age.
    add(
        None,
        "off-site backup tests",
        real_tests("offsite_real", &[]),
        base.clone(),
    );
    add(None, "dev stack checks", real_tests("dev_real", &[]), vec![images]);
    if let Some(down) = down {
        steps[down].always = true;
    }
    steps
}

/// `cargo xtask dev-logs --tail 80` with the same cargo, cwd and environment as a failed stack step.
fn stack_logs(step: &Cmd) -> Cmd {
    let sh = shell();
    let cargo = &step.program;
    Cmd {
        args: Cmd::from(cmd!(sh, "{cargo} xtask dev-logs --tail 80")).args,
        ..step.clone()
    }
}

#[derive(Debug, Clone, Args)]
pub struct CiArgs {
    /// Leave the stack running after the checks (for debugging a failure).
    #[arg(long)]
    pub keep_stack: bool,
    /// Also write a report, one entry per step (repeatable): `--report junit ci.xml` (GitLab and most CI
    /// servers show JUnit natively), `--report json ci.json`, or `--report markdown "$GITHUB_STEP_SUMMARY"`
    /// (a GitHub Actions job summary).
    #[arg(long, num_args = 2, value_names = ["junit|json|markdown", "FILE"], action = clap::ArgAction::Append)]
    pub report: Vec<String>,
    /// Run only these steps (repeatable; names as in the summary, e.g. `--only lint --only "cargo test"`), in
    /// the usual order. A selected step does not wait for an unselected step it needs: it expects what that
    /// step makes (images, a running stack) to be there already.
    #[arg(long, value_name = "STEP")]
    pub only: Vec<String>,
    /// How many steps may run at once (default: the cores + 1, as most steps wait on containers more than
    /// they compute). With more than one, each step's output goes to its log under target/drydock/ci-logs/
    /// and is shown whole when the step ends; with `--jobs 1` it streams live and the plan runs in order.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: Option<u16>,
}

/// `--jobs` when it is not given: one more than the cores.
pub fn default_jobs(cores: usize) -> usize {
    cores + 1
}

/// Where the steps' logs go when steps run side by side.
fn logs_dir(root: &Path) -> PathBuf {
    root.join("target/drydock/ci-logs")
}

/// `target/drydock/ci-logs/07-lint.log`: step `i`'s log when steps run side by side.
fn log_path(root: &Path, i: usize, name: &str) -> PathBuf {
    let slug: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    logs_dir(root).join(format!("{:02}-{slug}.log", i + 1))
}

/// The steps `--only` names, in plan order, their `needs` renumbered and those on unselected steps dropped.
/// Every name is checked before anything runs; an unknown one is named with the list of steps.
pub fn select(steps: Vec<Step>, only: &[String]) -> Result<Vec<Step>> {
    if only.is_empty() {
        return Ok(steps);
    }
    if let Some(unknown) = only.iter().find(|name| !steps.iter().any(|s| s.name == name.as_str())) {
        let names: Vec<&str> = steps.iter().map(|s| s.name).collect();
        bail!(
            "--only {unknown:?}: ci has no such step\n  fix: one of {}",
            names.join(", ")
        );
    }
    let kept: Vec<usize> = (0..steps.len())
        .filter(|&i| only.iter().any(|name| name == steps[i].name))
        .collect();
    let new_index = |old: usize| kept.iter().position(|&k| k == old);
    Ok(kept
        .iter()
        .map(|&i| {
            let step = &steps[i];
            Step {
                needs: step.needs.iter().filter_map(|&n| new_index(n)).collect(),
                ..step.clone()
            }
        })
        .collect())
}

impl CiArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        // What the steps use beyond the engine (browser, lint tools, the test hosts' SSH, rclone and age), before the clock
        // of any step starts; each step provisions the engine itself.
        let reports = ci_report::parse_flags(&self.report)?;
        let steps = select(plan(ctx, self), &self.only)?;
        provision::ensure_tools(
            ctx,
            &[Tool::Browser, Tool::Lint, Tool::TestHosts, Tool::Rclone, Tool::Age],
        )?;
        let style = Style::stderr();
        // A dry run prints the plan in order.
        let jobs = match self.jobs {
            _ if ctx.run.dry_run => 1,
            Some(n) => usize::from(n),
            None => default_jobs(std::thread::available_parallelism().map_or(1, |n| n.get())),
        };
        let logged = jobs > 1;
        if logged {
            let dir = logs_dir(&ctx.root);
            // Only this run's logs: a step that did not run this time has none.
            if dir.exists() {
                std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
            }
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            ctx.say(&format!(
                "{} steps, up to {jobs} at a time (--jobs); each step's log is shown whole when it ends",
                steps.len()
            ));
        }
        let nodes: Vec<Node> = steps
            .iter()
            .map(|s| Node {
                needs: s.needs.clone(),
                lane: s.lane,
                always: s.always,
            })
            .collect();
        let total_steps = steps.len();
        // Only the runner and the root go to the steps' threads (the context is not shared between threads).
        let (runner, root) = (ctx.run, ctx.root.as_path());
        let run_step = |i: usize| {
            let step = &steps[i];
            let result = if logged {
                runner.run_to_log(&step.cmd, &log_path(root, i, step.name))
            } else {
                runner.run(&step.cmd).map(|_| ())
            };
            result.map_err(|err| format!("{err:#}"))
        };
        let started = Instant::now();
        let show = |event: Event| match event {
            Event::Started(i) if logged => ctx.say(&format!(
                "step {}/{total_steps}: {} — started ({:.0} s in)",
                i + 1,
                steps[i].name,
                started.elapsed().as_secs_f64()
            )),
            Event::Started(i) => ctx.say(&format!("step {}/{total_steps}: {}", i + 1, steps[i].name)),
            Event::Skipped(i) => ctx.say(&format!(
                "step {}/{total_steps}: {} — skipped (a step it needs did not pass)",
                i + 1,
                steps[i].name
            )),
            Event::Finished(i, secs, failure) => {
                let step = &steps[i];
                if logged {
                    let path = log_path(root, i, step.name);
                    let verdict = if failure.is_some() { "FAILED" } else { "passed" };
                    let rule = format!(
                        "── step {}/{total_steps}: {} {verdict} in {secs:.1} s",
                        i + 1,
                        step.name
                    );
                    eprintln!("{}", style.dim(&format!("{rule} ── its log ({}):", path.display())));
                    match std::fs::read(&path) {
                        Ok(text) => eprint!("{}", String::from_utf8_lossy(&text)),
                        Err(err) => eprintln!("(no log: {err})"),
                    }
                    eprintln!("{}", style.dim(&format!("{rule} ── end of its log")));
                }
                if let Some(report) = failure {
                    eprintln!("{}", style.red(&format!("step {} failed: {report}", step.name)));
                    if step.name == "dev-up" || step.name == "health" {
                        // The stack's own words are the fastest way to the cause.
                        let _ = ctx.run.run(&stack_logs(&step.cmd));
                    }
                }
            }
        };
        let results = ci_schedule::run_all(&nodes, jobs, run_step, show);
        let details: Vec<StepReport> = steps
            .iter()
            .zip(&results)
            .map(|(step, ran)| {
                let failure = ran.failure.as_deref();
                StepReport {
                    name: step.name.to_string(),
                    result: match ran.outcome {
                        Outcome::Passed => "passed",
                        Outcome::Failed => "failed",
                        Outcome::Skipped => "skipped",
                    },
                    seconds: ran.seconds,
                    command: failure.map(|_| step.cmd.display()),
                    stderr_tail: failure.map(ci_report::stderr_tail).unwrap_or_default(),
                    reason: match ran.outcome {
                        Outcome::Skipped => Some("a step it needs did not pass".into()),
                        _ => failure.and_then(|r| r.lines().next()).map(String::from),
                    },
                }
            })
            .collect();
        if ctx.run.dry_run {
            return Ok(());
        }
        let count = |o: Outcome| results.iter().filter(|r| r.outcome == o).count();
        let (passed, failed, skipped) = (count(Outcome::Passed), count(Outcome::Failed), count(Outcome::Skipped));
        println!();
        println!(
            "ci summary ({:.0} s, up to {jobs} step(s) at a time):",
            started.elapsed().as_secs_f64()
        );
        let out = Style::stdout();
        for (step, ran) in steps.iter().zip(&results) {
            let secs = ran.seconds;
            // Side by side, when each step began tells where the time went.
            let from = if logged {
                format!("   from {:>6.1} s", ran.started_at)
            } else {
                String::new()
            };
            let (mark, line) = match ran.outcome {
                Outcome::Passed => (out.green("passed "), format!("{secs:>7.1} s{from}")),
                Outcome::Failed => (out.red("FAILED "), format!("{secs:>7.1} s{from}")),
                Outcome::Skipped => (out.yellow("skipped"), String::new()),
            };
            println!("  {mark} {:<28} {line}", step.name);
        }
        let total = started.elapsed().as_secs_f64();
        for (format, file) in &reports {
            let text = ci_report::render(*format, &details, total)?;
            // Reports are for the CI system and people: readable by all, like any build artifact.
            files::replace(&ctx.root.join(file), text.as_bytes(), 0o644)?;
            ctx.say(&format!("report written: {}", file.display()));
        }
        if skipped > 0 {
            println!("{passed} passed, {failed} failed, {skipped} skipped");
        } else {
            println!("{passed} passed, {failed} failed");
        }
        // A step is only ever skipped because a step it needs failed: that failure fails the run.
        if failed > 0 {
            bail!("ci: {failed} step(s) failed");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Ctx {
        Ctx::for_plan_tests()
    }

    #[test]
    fn plan_runs_cargo_at_the_root_and_xtask_on_the_isolated_stack() {
        let ctx = ctx();
        let steps = plan(
            &ctx,
            &CiArgs {
                keep_stack: false,
                report: vec![],
                only: vec![],
                jobs: None,
            },
        );
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let step = |name: &str| {
            steps
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("{name}"))
        };
        let fmt = &step("fmt").cmd;
        assert_eq!(fmt.argv(), [cargo.as_str(), "fmt", "--all", "--", "--check"]);
        assert_eq!(fmt.cwd.as_ref(), Some(&ctx.root));
        assert!(fmt.env.is_empty(), "host checks run in the developer's environment");
        let restore = &step("restore-postgres").cmd;
        assert_eq!(
            restore.argv(),
            [
                cargo.as_str(),
                "xtask",
                "restore-postgres",
                "--latest",
                "--yes",
                "--offline"
            ]
        );
        assert_eq!(restore.env, ci_env(&ctx.config.project.name));
        let smoke = &step("offline image contracts").cmd;
        assert_eq!(smoke.argv(), ["bash", "infra/images/smoke-test.sh"]);
        assert_eq!(smoke.cwd.as_ref(), Some(&ctx.root));
        let swarm = step("swarm test");
        assert_eq!(
            swarm.cmd.argv()[1..],
            [
                "test",
                "-p",
                "xtask",
                "--locked",
                "--test",
                "swarm_nodes",
                "--",
                "--ignored",
                "--test-threads=1",
                "--nocapture"
            ]
        );
        // The tear-down always runs, right after the last step on the CI stack (no later step is on it).
        let down = steps.iter().position(|s| s.name == "dev-down").unwrap();
        assert!(steps[down].always);
        let last_on_stack = steps.iter().rposition(|s| s.lane == CI_STACK && s.name != "dev-down");
        assert_eq!(last_on_stack, Some(down - 1));
        let logs = stack_logs(&step("dev-up").cmd);
        assert_eq!(logs.argv(), [cargo.as_str(), "xtask", "dev-logs", "--tail", "80"]);
        assert_eq!((&logs.env, &logs.cwd), (&restore.env, &restore.cwd));
    }

    #[test]
    fn only_keeps_the_named_steps_in_order_and_drops_needs_on_the_others() {
        let ctx = ctx();
        let args = CiArgs {
            keep_stack: false,
            report: vec![],
            only: vec![],
            jobs: None,
        };
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let steps = select(plan(&ctx, &args), &names(&["test-e2e", "dev-up", "dev-down"])).unwrap();
        let got: Vec<(&str, &[usize])> = steps.iter().map(|s| (s.name, s.needs.as_slice())).collect();
        // dev-up needed "image builds" (not selected); test-e2e still waits for dev-up, now step 0.
        assert_eq!(
            got,
            [("dev-up", &[][..]), ("test-e2e", &[0][..]), ("dev-down", &[][..])]
        );
        let err = select(plan(&ctx, &args), &names(&["lint", "e2e"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(r#"--only "e2e": ci has no such step"#) && err.contains("test-e2e"),
            "{err}"
        );
        assert_eq!(select(plan(&ctx, &args), &[]).unwrap().len(), plan(&ctx, &args).len());
    }
}
