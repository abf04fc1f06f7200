//! The container gates: hadolint on the Dockerfiles, `docker compose config` of every environment, compose-lint
//! on the production stack as it runs.

use anyhow::{Context, Result};
use serde_json::Value;

use super::files::{files, is_dockerfile};
use super::{Outcome, check, line_findings, need};
use crate::cmd::{Cmd, cmd, shell};
use crate::compose::Compose;
use crate::config::Env;
use crate::context::Ctx;
use crate::prod::compose::prod_compose;
use crate::prod::tags::head_tag;

pub const COMPOSE_LINT_CONFIG: &str = "infra/lint/compose-lint.yml";

pub fn hadolint(ctx: &Ctx) -> Result<Outcome> {
    need("hadolint")?;
    let dockerfiles = &files(&ctx.root, &is_dockerfile);
    let sh = shell();
    let config = ctx.path(".hadolint.yaml");
    let cmd = Cmd::from(cmd!(sh, "hadolint --no-color --config {config} {dockerfiles...}"));
    let Some((ok, stdout, stderr)) = check(ctx, &cmd) else {
        return Ok(Outcome::skip("dry run"));
    };
    let (passed, findings) = line_findings(ok, &stdout);
    Ok(Outcome {
        skipped: false,
        passed,
        findings,
        note: if passed {
            format!("{} Dockerfile(s) clean", dockerfiles.len())
        } else {
            format!(
                "{findings} finding(s) in {} Dockerfile(s) {}",
                dockerfiles.len(),
                stderr.trim()
            )
        },
    })
}

/// The merged production stack with every profile and the release tag, as compose-lint and `config` see it.
pub fn prod_rendered(ctx: &Ctx) -> Result<Compose> {
    let tag = head_tag(ctx).unwrap_or_else(|_| "sha-0000000".into());
    Ok(prod_compose(ctx, &tag, &tag)?.with_profiles(&["*"]))
}

pub fn compose_config(ctx: &Ctx) -> Result<Outcome> {
    let example = ctx.path(&ctx.config.compose.env_example);
    let mut dev = Compose::for_env(ctx, Env::Dev)?;
    // The files are checked against the example settings, not whatever a developer's .env holds.
    dev.env_file = Some(example);
    let prod = prod_rendered(ctx)?;
    let sh = shell();
    let checks: Vec<(&str, Cmd)> = vec![
        (
            "dev --watch",
            dev.clone().watching(&ctx.root).cmd(cmd!(sh, "config --quiet")),
        ),
        ("dev", dev.with_profiles(&["*"]).cmd(cmd!(sh, "config --quiet"))),
        ("prod", prod.cmd(cmd!(sh, "config --quiet"))),
        (
            "offline images",
            crate::images::offline_compose(ctx).then(cmd!(sh, "config --quiet")),
        ),
    ];
    let mut bad = Vec::new();
    for (name, cmd) in &checks {
        if let Some((false, _, stderr)) = check(ctx, cmd) {
            bad.push(format!("{name}: {}", stderr.trim()));
        }
    }
    Ok(Outcome {
        skipped: false,
        passed: bad.is_empty(),
        findings: bad.len(),
        note: if bad.is_empty() {
            format!("{} environment(s) valid", checks.len())
        } else {
            bad.join("\n")
        },
    })
}

pub fn compose_lint(ctx: &Ctx) -> Result<Outcome> {
    need("compose-lint")?;
    let prod = prod_rendered(ctx)?;
    let sh = shell();
    let rendered = ctx.run.read(&prod.cmd(cmd!(sh, "config")))?;
    if ctx.run.dry_run {
        return Ok(Outcome::skip("dry run"));
    }
    let dir = ctx.root.join("target/drydock/lint");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("compose.prod.rendered.yaml");
    std::fs::write(&file, &rendered).with_context(|| format!("writing {}", file.display()))?;
    let config = ctx.path(COMPOSE_LINT_CONFIG);
    let cmd = Cmd::from(cmd!(
        sh,
        "compose-lint check --format json --fail-on medium --strict-config --config {config} {file}"
    ));
    let Some((ok, stdout, stderr)) = check(ctx, &cmd) else {
        return Ok(Outcome::skip("dry run"));
    };
    let report: Value = serde_json::from_str(stdout.trim())
        .with_context(|| format!("compose-lint printed no JSON report: {}", stderr.trim()))?;
    let (open, suppressed) = count_compose_lint(&report);
    for f in report.get("findings").and_then(Value::as_array).into_iter().flatten() {
        if f.get("suppressed").and_then(Value::as_bool) != Some(true) {
            println!(
                "  {} {} {}: {}",
                f.get("severity").and_then(Value::as_str).unwrap_or("?"),
                f.get("rule_id").and_then(Value::as_str).unwrap_or("?"),
                f.get("service").and_then(Value::as_str).unwrap_or("-"),
                f.get("message").and_then(Value::as_str).unwrap_or("")
            );
        }
    }
    let errors = report.get("errors").and_then(Value::as_array).map_or(0, Vec::len);
    Ok(Outcome {
        skipped: false,
        passed: ok && open == 0 && errors == 0,
        findings: open,
        note: format!(
            "{open} open medium+ finding(s), {suppressed} accepted with a justification in {COMPOSE_LINT_CONFIG}{}",
            if errors > 0 {
                format!(", {errors} error(s): {}", stderr.trim())
            } else {
                String::new()
            }
        ),
    })
}

/// (open findings at medium or above, suppressed findings) of a compose-lint JSON report.
pub fn count_compose_lint(report: &Value) -> (usize, usize) {
    let findings = report
        .get("findings")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let suppressed = findings
        .iter()
        .filter(|f| f.get("suppressed").and_then(Value::as_bool) == Some(true))
        .count();
    let open = findings
        .iter()
        .filter(|f| f.get("suppressed").and_then(Value::as_bool) != Some(true))
        .filter(|f| {
            matches!(
                f.get("severity").and_then(Value::as_str),
                Some("medium" | "high" | "critical")
            )
        })
        .count();
    (open, suppressed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_lint_report_is_counted() {
        let report: Value = serde_json::from_str(
            r#"{"findings":[{"severity":"medium","suppressed":true},{"severity":"high"},{"severity":"low"},{"severity":"medium","suppressed":false}],"errors":[]}"#,
        )
        .unwrap();
        assert_eq!(count_compose_lint(&report), (2, 1));
    }
}
