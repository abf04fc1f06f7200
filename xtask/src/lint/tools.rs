//! The script and configuration gates: shellcheck, promtool, actionlint and yamllint.

use std::path::PathBuf;

use anyhow::{Result, bail};

use super::files::{GITHUB_WORKFLOWS, YAMLLINT_CONFIG, ci_files, files, github_workflows, is_shell_script, rel};
use super::{Outcome, check, line_findings, need};
use crate::cmd::{Cmd, cmd, program_exists, shell};
use crate::context::Ctx;
use crate::prod::compose::{MONITORING_OFFLINE, monitoring_images};

pub const PROMETHEUS_CONFIG: &str = "infra/monitoring/prometheus.yml";

pub const PROMETHEUS_RULES: &str = "infra/monitoring/alerts.yml";

/// The alert rules' unit tests (`promtool test rules`), beside the rules.
pub const PROMETHEUS_RULE_TESTS: &str = "infra/monitoring/alerts.test.yml";

pub fn shellcheck(ctx: &Ctx) -> Result<Outcome> {
    need("shellcheck")?;
    let scripts = &files(&ctx.root, &is_shell_script);
    if scripts.is_empty() {
        return Ok(Outcome::skip("no shell scripts"));
    }
    let sh = shell();
    let cmd = Cmd::from(cmd!(sh, "shellcheck --format gcc --external-sources {scripts...}"));
    let Some((ok, stdout, _)) = check(ctx, &cmd) else {
        return Ok(Outcome::skip("dry run"));
    };
    let (passed, findings) = line_findings(ok, &stdout);
    Ok(Outcome {
        skipped: false,
        passed,
        findings,
        note: format!(
            "{} script(s): {}",
            scripts.len(),
            scripts.iter().map(|p| rel(ctx, p)).collect::<Vec<_>>().join(", ")
        ),
    })
}

pub fn promtool(ctx: &Ctx) -> Result<Outcome> {
    let config = ctx.path(PROMETHEUS_CONFIG);
    let rules = ctx.path(PROMETHEUS_RULES);
    let tests = ctx.path(PROMETHEUS_RULE_TESTS);
    let sh = shell();
    let checks: Vec<Cmd> = if program_exists("promtool") {
        vec![
            Cmd::from(cmd!(sh, "promtool check config {config}")),
            Cmd::from(cmd!(sh, "promtool check rules {rules}")),
            Cmd::from(cmd!(sh, "promtool test rules {tests}")),
        ]
    } else {
        // promtool from the Prometheus image (offline: Debian's `prometheus` package), files mounted read-only;
        // `test rules` keeps its scratch TSDB in a tmpfs.
        let image = monitoring_images(ctx).prometheus;
        if ctx.images().source == crate::image_source::Source::Offline && !crate::images::exists(ctx, &image) {
            let role = MONITORING_OFFLINE[0].0;
            crate::images::build_offline(ctx, &[role], false)?;
        }
        let dir = config.parent().expect("has a parent");
        let promtool = || {
            Cmd::from(cmd!(
                sh,
                "docker run --rm --network none --read-only --tmpfs /tmp --entrypoint promtool -v {dir}:/etc/prometheus:ro {image}"
            ))
        };
        vec![
            promtool().then(cmd!(sh, "check config /etc/prometheus/prometheus.yml")),
            promtool().then(cmd!(sh, "check rules /etc/prometheus/alerts.yml")),
            promtool().then(cmd!(sh, "test rules /etc/prometheus/alerts.test.yml")),
        ]
    };
    let mut bad = Vec::new();
    let mut notes = Vec::new();
    for cmd in &checks {
        if let Some((ok, stdout, stderr)) = check(ctx, cmd) {
            let text = format!("{stdout}{stderr}");
            if ok {
                notes.extend(
                    text.lines()
                        .filter(|l| l.contains("SUCCESS"))
                        .map(|l| l.trim().to_string()),
                );
            } else {
                bad.push(text.trim().to_string());
            }
        }
    }
    Ok(Outcome {
        skipped: false,
        passed: bad.is_empty(),
        findings: bad.len(),
        note: if bad.is_empty() {
            notes.join("; ")
        } else {
            bad.join("\n")
        },
    })
}

/// The outcome of a checker run over `targets` that prints one finding per line.
pub fn file_checker(ctx: &Ctx, cmd: &Cmd, targets: &[PathBuf]) -> Outcome {
    let Some((ok, stdout, stderr)) = check(ctx, cmd) else {
        return Outcome::skip("dry run");
    };
    let (passed, findings) = line_findings(ok, &stdout);
    let names = targets.iter().map(|p| rel(ctx, p)).collect::<Vec<_>>().join(", ");
    Outcome {
        skipped: false,
        passed,
        findings,
        note: if passed {
            format!("clean: {names}")
        } else {
            format!("{findings} finding(s) in {names}\n{}", stderr.trim())
                .trim_end()
                .to_string()
        },
    }
}

/// actionlint on the GitHub Actions workflows (expressions, action inputs, `run:` scripts via shellcheck).
pub fn actionlint(ctx: &Ctx) -> Result<Outcome> {
    let workflows = &github_workflows(&ctx.root);
    if workflows.is_empty() {
        return Ok(Outcome::skip(format!("no workflow in {GITHUB_WORKFLOWS}")));
    }
    need("actionlint")?;
    let sh = shell();
    let cmd = Cmd::from(cmd!(sh, "actionlint -no-color -oneline {workflows...}")).cwd(&ctx.root);
    Ok(file_checker(ctx, &cmd, workflows))
}

/// yamllint (repo config `.yamllint.yaml`, warnings count) on every hosted-CI file.
pub fn yamllint(ctx: &Ctx) -> Result<Outcome> {
    let targets = &ci_files(&ctx.root);
    if targets.is_empty() {
        return Ok(Outcome::skip("no CI files"));
    }
    need("yamllint")?;
    let config = ctx.path(YAMLLINT_CONFIG);
    if !config.is_file() {
        bail!(
            "{} is missing\n  fix: restore it (`git checkout -- {YAMLLINT_CONFIG}`); it holds the rules the CI files follow",
            config.display()
        );
    }
    let sh = shell();
    let cmd = Cmd::from(cmd!(
        sh,
        "yamllint --format parsable --strict --config-file {config} {targets...}"
    ));
    Ok(file_checker(ctx, &cmd, targets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_findings_count_non_empty_lines_and_need_exit_0() {
        assert_eq!(line_findings(true, ""), (true, 0));
        assert_eq!(line_findings(true, "a.yml:1:1: x\n\n"), (false, 1));
        assert_eq!(line_findings(false, ""), (false, 0));
    }
}
