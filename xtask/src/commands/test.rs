//! `cargo xtask test`: the test suites inside containers — the backend's unit and integration tests on the
//! compose network against real PostgreSQL and Redis, and the frontend's unit tests in a Node container.

use anyhow::{Result, bail};

use clap::Args;

use crate::cmd::{Cmd, cmd, shell};
use crate::compose::{Compose, ensure_env_file};
use crate::config::Env;
use crate::context::Ctx;
use crate::images;
use crate::provision::preflight;

/// The suites, in order: (name, compose service in the `test` profile).
pub const SUITES: [(&str, &str); 2] = [("backend", "backend-test"), ("frontend", "frontend-test")];

/// What runs, as data: build the test images, start the databases, run each suite.
pub fn plan(compose: &Compose, args: &TestArgs) -> Vec<(String, Cmd)> {
    let suites: Vec<(&str, &str)> = SUITES
        .iter()
        .copied()
        .filter(|(name, _)| args.suite.as_deref().is_none_or(|s| s == *name))
        .collect();
    let sh = shell();
    let tests = compose.clone().with_profiles(&["test"]);
    let mut steps = Vec::new();
    let services = suites.iter().map(|(_, service)| service);
    steps.push((
        "build test images".to_string(),
        tests.cmd(cmd!(sh, "build {services...}")),
    ));
    if suites.iter().any(|(name, _)| *name == "backend") {
        steps.push((
            "start postgres and redis".to_string(),
            compose.cmd(cmd!(sh, "up --detach --wait postgres redis")),
        ));
    }
    let runner_args = &args.args;
    for (name, service) in suites {
        steps.push((
            format!("{name} tests"),
            tests.cmd(cmd!(sh, "run --rm {service} {runner_args...}")),
        ));
    }
    steps
}

#[derive(Debug, Clone, Args)]
pub struct TestArgs {
    /// Run one suite only.
    #[arg(long, value_parser = ["backend", "frontend"])]
    pub suite: Option<String>,
    /// Arguments for that suite's test runner (after `--`; needs --suite).
    #[arg(last = true, requires = "suite")]
    pub args: Vec<String>,
}

impl TestArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        run(ctx, self)
    }
}

fn run(ctx: &Ctx, args: &TestArgs) -> Result<()> {
    if let Some(suite) = &args.suite
        && !SUITES.iter().any(|(name, _)| name == suite)
    {
        bail!("unknown test suite `{suite}`\n  fix: use one of: backend, frontend (or no --suite for both)");
    }
    if !args.args.is_empty() && args.suite.is_none() {
        bail!("arguments after `--` go to one suite's test runner\n  fix: add --suite backend or --suite frontend");
    }
    preflight(ctx)?;
    ensure_env_file(ctx)?;
    images::ensure(ctx)?;
    let compose = Compose::for_env(ctx, Env::Dev)?;
    let mut failed = Vec::new();
    for (name, cmd) in plan(&compose, args) {
        ctx.say(&name);
        let is_suite = name.ends_with(" tests");
        match ctx.run.run(&cmd) {
            Ok(_) => {}
            // Every suite runs even when another failed: one run shows every failure.
            Err(err) if is_suite => {
                eprintln!("{name} failed: {err:#}");
                failed.push(name);
            }
            Err(err) => return Err(err),
        }
    }
    if !failed.is_empty() {
        bail!("{} failed (see the test output above)", failed.join(" and "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compose() -> Compose {
        Compose {
            project: "drydock".into(),
            files: vec!["c.yaml".into()],
            env_file: None,
            env: vec![],
            profiles: vec![],
        }
    }

    #[test]
    fn both_suites_by_default() {
        let steps = plan(
            &compose(),
            &TestArgs {
                suite: None,
                args: vec![],
            },
        );
        let names: Vec<&str> = steps.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "build test images",
                "start postgres and redis",
                "backend tests",
                "frontend tests"
            ]
        );
        assert_eq!(
            steps[2].1.argv(),
            [
                "docker",
                "compose",
                "-p",
                "drydock",
                "-f",
                "c.yaml",
                "--profile",
                "test",
                "run",
                "--rm",
                "backend-test"
            ]
        );
    }

    #[test]
    fn frontend_only_needs_no_databases() {
        let steps = plan(
            &compose(),
            &TestArgs {
                suite: Some("frontend".into()),
                args: vec!["--reporter=dot".into()],
            },
        );
        let names: Vec<&str> = steps.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["build test images", "frontend tests"]);
        assert_eq!(steps[1].1.argv().last(), Some(&"--reporter=dot"));
    }
}
