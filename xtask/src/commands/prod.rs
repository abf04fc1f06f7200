//! The production stack: `prod-up`, `prod-down`, `prod-ps`, `prod-logs`, `prod-scale` (deploys and rollbacks
//! are in `deploy.rs`).
//!
//! Production differs from dev in what the xtask guarantees before anything starts: the secret files exist,
//! are not the example passwords and are readable by the containers' non-root users; the release images exist;
//! and API containers receive traffic only once healthy. The proxy sends API requests to the network alias
//! `api-live` ([`LIVE_ALIAS`]), which [`promote`] gives a container after its healthcheck passed.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cli::{DownArgs, LogsArgs};
use crate::compose::{Compose, git_revision};
use crate::config::Env;
use crate::context::Ctx;
use crate::images::{self, Source};
use crate::process::{Cmd, Style};
use crate::stack;

/// The network alias the edge proxy sends API traffic to (compose.prod.yaml: `API_UPSTREAM=api-live:8000`).
pub const LIVE_ALIAS: &str = "api-live";
/// The compose network the proxy and the API share.
const FRONTEND_NETWORK: &str = "frontend";

/// One secret file: compose secret name, file name, and whether only Grafana needs it.
#[derive(Debug, Clone, Copy)]
pub struct SecretSpec {
    pub name: &'static str,
    pub file: &'static str,
    pub grafana_only: bool,
}

pub const SECRETS: &[SecretSpec] = &[
    SecretSpec {
        name: "postgres_password",
        file: "postgres_password.txt",
        grafana_only: false,
    },
    SecretSpec {
        name: "redis_password",
        file: "redis_password.txt",
        grafana_only: false,
    },
    SecretSpec {
        name: "grafana_admin_password",
        file: "grafana_admin_password.txt",
        grafana_only: true,
    },
];

/// Values no production secret may have: weak defaults, whatever the project's examples contain.
const WEAK: &[&str] = &[
    "password",
    "changeme",
    "changethis",
    "secret",
    "postgres",
    "redis",
    "admin",
    "drydock",
];
const MIN_SECRET_LEN: usize = 16;

#[derive(Debug, Clone, Args)]
pub struct ProdUpArgs {
    /// Release tag to run (default: the deployed one, else `sha-<HEAD>` as `cargo xtask build` tags it).
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
    /// Also start the monitoring profile (Prometheus + exporters; Grafana in registry mode only).
    #[arg(long)]
    pub monitoring: bool,
    /// Create missing secret files with random values first (never overwrites an existing one).
    #[arg(long)]
    pub generate_secrets: bool,
    /// Seconds to wait for every service to become healthy.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub timeout: u32,
}

#[derive(Debug, Clone, Args)]
pub struct ProdScaleArgs {
    /// The service to scale (api or frontend: the databases and the proxy are single instances).
    pub service: String,
    /// The number of replicas wanted.
    pub replicas: u32,
    /// Seconds to wait for new replicas to become healthy.
    #[arg(long, default_value_t = 180, value_name = "SECONDS")]
    pub timeout: u32,
}

/// What is deployed, remembered between commands (`.drydock/deploy-<project>.json`, git-ignored).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeployState {
    /// Tag of the frontend and proxy images (and of the API unless `api_tag` differs).
    pub image_tag: String,
    /// Tag of the API image that serves traffic.
    pub api_tag: String,
    /// The API tag before the last deploy: what `prod-rollback` returns to.
    #[serde(default)]
    pub previous_api_tag: Option<String>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HistoryEntry {
    pub at: String,
    pub action: String,
    pub api_tag: String,
    pub result: String,
}

impl DeployState {
    pub fn path(ctx: &Ctx, project: &str) -> PathBuf {
        ctx.root.join(".drydock").join(format!("deploy-{project}.json"))
    }

    pub fn load(ctx: &Ctx, project: &str) -> Result<Option<DeployState>> {
        let path = Self::path(ctx, project);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not valid deploy state\n  fix: delete it and pass --tag explicitly",
                    path.display()
                )
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn save(&mut self, ctx: &Ctx, project: &str) -> Result<()> {
        if ctx.run.dry_run {
            return Ok(());
        }
        // Keep the file small: the last 50 actions.
        let excess = self.history.len().saturating_sub(50);
        self.history.drain(..excess);
        let path = Self::path(ctx, project);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let tmp = path.with_extension("json.partial");
        std::fs::write(&tmp, serde_json::to_string_pretty(self)? + "\n")
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        Ok(())
    }

    pub fn record(&mut self, action: &str, api_tag: &str, result: &str) {
        self.history.push(HistoryEntry {
            at: utc_now_rfc3339(),
            action: action.to_string(),
            api_tag: api_tag.to_string(),
            result: result.to_string(),
        });
    }
}

/// `sha-<first 7 hex digits of HEAD>`: the tag `cargo xtask build` gives every release.
pub fn head_tag(ctx: &Ctx) -> Result<String> {
    let sha = git_revision(ctx).filter(|s| s.len() >= 7 && s.chars().all(|c| c.is_ascii_hexdigit())).context(
        "cannot read the current git commit (is this a git checkout with at least one commit?)\n  fix: pass --tag <tag> explicitly",
    )?;
    Ok(format!("sha-{}", &sha[..7]))
}

/// The image `<prefix>/<name>:<tag>`.
pub fn image(ctx: &Ctx, name: &str, tag: &str) -> String {
    format!("{}/{name}:{tag}", ctx.config.images.prefix)
}

/// The directory holding the secret files (`DRYDOCK_SECRETS_DIR` or infra/secrets).
pub fn secrets_dir(ctx: &Ctx) -> PathBuf {
    match std::env::var("DRYDOCK_SECRETS_DIR") {
        Ok(d) if !d.trim().is_empty() => PathBuf::from(d.trim()),
        _ => ctx.root.join("infra/secrets"),
    }
}

/// The directory the proxy's certificate is mounted from (`DRYDOCK_TLS_DIR` or infra/secrets/tls).
pub fn tls_dir(ctx: &Ctx) -> PathBuf {
    match std::env::var("DRYDOCK_TLS_DIR") {
        Ok(d) if !d.trim().is_empty() => PathBuf::from(d.trim()),
        _ => secrets_dir(ctx).join("tls"),
    }
}

/// `KEY=VALUE` lines of an env file (comments and blanks skipped, surrounding quotes removed).
pub fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("export ").unwrap_or(l).split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
            let v = v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')).unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

/// The example/default passwords production must never use: every `*PASSWORD*`/`*SECRET*`/`*TOKEN*` value of
/// the example env file.
pub fn example_secrets(ctx: &Ctx) -> Vec<String> {
    let path = ctx.path(&ctx.config.compose.env_example);
    let text = std::fs::read_to_string(path).unwrap_or_default();
    parse_env_file(&text)
        .into_iter()
        .filter(|(k, v)| {
            let k = k.to_ascii_uppercase();
            (k.contains("PASSWORD") || k.contains("SECRET") || k.contains("TOKEN")) && !v.is_empty()
        })
        .map(|(_, v)| v)
        .collect()
}

/// Why a secret value is not acceptable for production, if it is not.
pub fn secret_problem(value: &str, examples: &[String]) -> Option<String> {
    if value.is_empty() {
        return Some("is empty".into());
    }
    if examples.iter().any(|e| e == value) {
        return Some("is the example password from .env.example".into());
    }
    if WEAK.iter().any(|w| value.eq_ignore_ascii_case(w)) {
        return Some("is a well-known default password".into());
    }
    if value.len() < MIN_SECRET_LEN {
        return Some(format!("is shorter than {MIN_SECRET_LEN} characters"));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '\\' | '`' | '$'))
    {
        return Some("contains whitespace, quotes, `\\`, `` ` `` or `$` (use letters, digits and punctuation)".into());
    }
    None
}

/// A random password: 32 letters and digits from the kernel's CSPRNG.
pub fn random_secret() -> Result<String> {
    use std::io::Read;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(32);
    let mut urandom = std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?;
    let mut byte = [0u8; 1];
    while out.len() < 32 {
        urandom.read_exact(&mut byte).context("reading /dev/urandom")?;
        // Rejection sampling keeps the choice uniform (248 = 4 * 62).
        if byte[0] < 248 {
            out.push(ALPHABET[(byte[0] % 62) as usize] as char);
        }
    }
    Ok(out)
}

/// Creates missing secret files (0444 in a 0700 directory). Existing files are never touched.
pub fn generate_secrets(ctx: &Ctx, with_grafana: bool) -> Result<()> {
    let dir = secrets_dir(ctx);
    if ctx.run.dry_run {
        ctx.say(&format!(
            "(dry-run) would create missing secret files in {}",
            dir.display()
        ));
        return Ok(());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 0700 {}", dir.display()))?;
    for spec in SECRETS.iter().filter(|s| with_grafana || !s.grafana_only) {
        let path = dir.join(spec.file);
        if path.exists() {
            continue;
        }
        let tmp = dir.join(format!(".{}.partial", spec.file));
        std::fs::write(&tmp, random_secret()? + "\n").with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o444))
            .with_context(|| format!("chmod 0444 {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("creating {}", path.display()))?;
        ctx.say(&format!("created {} (random, 32 characters)", path.display()));
    }
    Ok(())
}

/// Refuses missing, unreadable, example or weak secrets, each with its fix. Returns the values (to mask).
pub fn check_secrets(ctx: &Ctx, with_grafana: bool) -> Result<Vec<String>> {
    let dir = secrets_dir(ctx);
    let examples = example_secrets(ctx);
    let mut problems = Vec::new();
    let mut values = Vec::new();
    let dir_mode = std::fs::metadata(&dir).map(|m| m.permissions().mode()).unwrap_or(0o700);
    if dir_mode & 0o077 != 0 {
        problems.push(format!(
            "{} is accessible to other users (mode {:o})\n    fix: chmod 0700 {}",
            dir.display(),
            dir_mode & 0o777,
            dir.display()
        ));
    }
    for spec in SECRETS.iter().filter(|s| with_grafana || !s.grafana_only) {
        let path = dir.join(spec.file);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                problems.push(format!(
                    "{} (compose secret `{}`) is missing\n    fix: cargo xtask prod-up --generate-secrets   (or write a password into it; see infra/secrets/README.md)",
                    path.display(),
                    spec.name
                ));
                continue;
            }
            Err(e) => {
                problems.push(format!("cannot read {}: {e}", path.display()));
                continue;
            }
        };
        let value = text.trim_end_matches(['\n', '\r']).to_string();
        if let Some(problem) = secret_problem(&value, &examples) {
            problems.push(format!(
                "{} {problem}: production refuses it\n    fix: replace it with a random password, e.g. `rm {}` then `cargo xtask prod-up --generate-secrets` (a new postgres password also needs ALTER ROLE on an existing database)",
                path.display(),
                path.display()
            ));
        }
        let mode = std::fs::metadata(&path)
            .map(|m| m.permissions().mode())
            .unwrap_or(0o444);
        if mode & 0o004 == 0 {
            problems.push(format!(
                "{} is not readable by the containers' non-root users (mode {:o}): compose mounts it as it is\n    fix: chmod 0444 {}   (the directory, mode 0700, keeps other host users out)",
                path.display(),
                mode & 0o777,
                path.display()
            ));
        }
        values.push(value);
    }
    if !problems.is_empty() {
        bail!("the production secrets are not ready:\n  - {}", problems.join("\n  - "));
    }
    Ok(values)
}

/// The production compose invocation with the image tags and the variables the base file interpolates.
/// Passwords are passed empty: the prod overlay removes them and mounts secret files instead.
pub fn prod_compose(ctx: &Ctx, image_tag: &str, api_tag: &str) -> Result<Compose> {
    let mut compose = ctx.compose(Env::Prod)?;
    let env_file = compose
        .env_file
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let from_file = parse_env_file(&env_file);
    let mut env: Vec<(String, String)> = vec![
        ("POSTGRES_PASSWORD".into(), String::new()),
        ("REDIS_PASSWORD".into(), String::new()),
        ("DRYDOCK_IMAGE_TAG".into(), image_tag.into()),
        ("DRYDOCK_API_TAG".into(), api_tag.into()),
    ];
    for (key, default) in [("POSTGRES_USER", "drydock"), ("POSTGRES_DB", "drydock")] {
        if std::env::var(key).is_err() && !from_file.contains_key(key) {
            env.push((key.into(), default.into()));
        }
    }
    env.extend(monitoring_env(ctx));
    compose.env.extend(env);
    Ok(compose)
}

/// Image variables of the monitoring profile for the current image source.
pub fn monitoring_env(ctx: &Ctx) -> Vec<(String, String)> {
    let m = monitoring_images(ctx);
    vec![
        ("DRYDOCK_PROMETHEUS_IMAGE".into(), m.prometheus),
        ("DRYDOCK_POSTGRES_EXPORTER_IMAGE".into(), m.postgres_exporter),
        ("DRYDOCK_REDIS_EXPORTER_IMAGE".into(), m.redis_exporter),
        ("DRYDOCK_NODE_EXPORTER_IMAGE".into(), m.node_exporter),
        (
            "DRYDOCK_GRAFANA_IMAGE".into(),
            // Never started offline (its profile stays off); named for `compose config` and lint.
            m.grafana.unwrap_or_else(|| GRAFANA_REGISTRY_IMAGE.into()),
        ),
    ]
}

/// The monitoring images: offline ones are built from Debian (infra/images/), registry ones are pinned.
#[derive(Debug, Clone)]
pub struct MonitoringImages {
    pub prometheus: String,
    pub postgres_exporter: String,
    pub redis_exporter: String,
    pub node_exporter: String,
    /// Grafana has no Debian package: `None` in offline mode.
    pub grafana: Option<String>,
}

/// Grafana's pinned registry image (there is no offline one: no Debian package).
pub const GRAFANA_REGISTRY_IMAGE: &str = "grafana/grafana-oss:12.1.1";

/// (offline recipe in infra/images/compose.yaml, offline image) of the monitoring profile.
pub const MONITORING_OFFLINE: &[(&str, &str)] = &[
    ("prometheus", "drydock/prometheus:2.53"),
    ("postgres-exporter", "drydock/postgres-exporter:trixie"),
    ("redis-exporter", "drydock/redis-exporter:trixie"),
    ("node-exporter", "drydock/node-exporter:trixie"),
];

pub fn monitoring_images(ctx: &Ctx) -> MonitoringImages {
    match ctx.images().source {
        Source::Offline => MonitoringImages {
            prometheus: MONITORING_OFFLINE[0].1.into(),
            postgres_exporter: MONITORING_OFFLINE[1].1.into(),
            redis_exporter: MONITORING_OFFLINE[2].1.into(),
            node_exporter: MONITORING_OFFLINE[3].1.into(),
            grafana: None,
        },
        Source::Registry => MonitoringImages {
            prometheus: "prom/prometheus:v2.53.5".into(),
            postgres_exporter: "quay.io/prometheuscommunity/postgres-exporter:v0.17.1".into(),
            redis_exporter: "oliver006/redis_exporter:v1.74.0-alpine".into(),
            node_exporter: "prom/node-exporter:v1.9.1".into(),
            grafana: Some(GRAFANA_REGISTRY_IMAGE.into()),
        },
    }
}

/// Builds the offline monitoring images that are missing.
pub fn ensure_monitoring_images(ctx: &Ctx) -> Result<()> {
    if ctx.images().source != Source::Offline {
        return Ok(());
    }
    let missing: Vec<&str> = MONITORING_OFFLINE
        .iter()
        .filter(|(_, image)| !images::exists(ctx, image))
        .map(|(role, _)| *role)
        .collect();
    if missing.is_empty() && !ctx.run.dry_run {
        return Ok(());
    }
    let roles: Vec<&str> = if ctx.run.dry_run {
        MONITORING_OFFLINE.iter().map(|(r, _)| *r).collect()
    } else {
        missing
    };
    images::build_offline(ctx, &roles, false)
}

/// Which tags to run: `--tag`, else the deployed ones, else `sha-<HEAD>`.
fn tags_for_up(ctx: &Ctx, project: &str, tag: Option<&str>) -> Result<(String, String)> {
    if let Some(t) = tag {
        check_tag(t)?;
        return Ok((t.to_string(), t.to_string()));
    }
    if let Some(state) = DeployState::load(ctx, project)? {
        return Ok((state.image_tag, state.api_tag));
    }
    let t = head_tag(ctx)?;
    Ok((t.clone(), t))
}

/// Docker tag syntax: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn check_tag(tag: &str) -> Result<()> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !ok {
        bail!(
            "{tag:?} is not a valid image tag\n  fix: use letters, digits, `_`, `.` and `-` (e.g. sha-1a2b3c4, staging)"
        );
    }
    Ok(())
}

/// Fails unless every image exists locally, naming the command that makes them.
pub fn require_images(ctx: &Ctx, wanted: &[String]) -> Result<()> {
    if ctx.run.dry_run {
        return Ok(());
    }
    let missing: Vec<&String> = wanted.iter().filter(|i| !images::exists(ctx, i)).collect();
    if !missing.is_empty() {
        let list = missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
        bail!(
            "missing release image(s): {list}\n  fix: cargo xtask build   (tags sha-<HEAD>), or pass --tag <tag> of images you built or pulled (`cargo xtask images`)"
        );
    }
    Ok(())
}

pub fn up(ctx: &Ctx, args: &ProdUpArgs) -> Result<()> {
    let project = ctx.compose(Env::Prod)?.project;
    let source = ctx.images().source;
    let grafana = args.monitoring && source == Source::Registry;
    // Secrets first: a refusal must come before anything is installed, built or started.
    if args.generate_secrets {
        generate_secrets(ctx, true)?;
    }
    let secret_values = if ctx.run.dry_run {
        Vec::new()
    } else {
        check_secrets(ctx, grafana)?
    };
    crate::provision::preflight(ctx)?;
    // The proxy mounts this directory: create it (empty = plain HTTP) so Docker does not create it as root.
    let tls = tls_dir(ctx);
    if !ctx.run.dry_run && !tls.exists() {
        std::fs::create_dir_all(&tls).with_context(|| format!("creating {}", tls.display()))?;
        std::fs::set_permissions(&tls, std::fs::Permissions::from_mode(0o755))?;
    }
    let (image_tag, api_tag) = tags_for_up(ctx, &project, args.tag.as_deref())?;
    images::ensure(ctx)?;
    require_images(
        ctx,
        &[
            image(ctx, "api", &api_tag),
            image(ctx, "frontend", &image_tag),
            image(ctx, "proxy", &image_tag),
        ],
    )?;
    let mut profiles: Vec<&str> = Vec::new();
    if args.monitoring {
        profiles.push("monitoring");
        ensure_monitoring_images(ctx)?;
        if grafana {
            profiles.push("grafana");
        } else {
            ctx.say(
                "Grafana: unavailable in offline mode (it has no Debian package; registry mode only). Prometheus, its alert rules and the exporters start; the dashboard in infra/monitoring/grafana/ needs registry mode.",
            );
        }
    }
    let compose = prod_compose(ctx, &image_tag, &api_tag)?;
    let timeout = args.timeout.to_string();
    let mut cmd: Vec<String> = Vec::new();
    for p in &profiles {
        cmd.extend(["--profile".to_string(), p.to_string()]);
    }
    let pull = if source == Source::Registry { "missing" } else { "never" };
    cmd.extend(
        [
            "up",
            "--detach",
            "--wait",
            "--wait-timeout",
            &timeout,
            "--remove-orphans",
            "--no-build",
            "--pull",
            pull,
        ]
        .map(String::from),
    );
    ctx.say(&format!(
        "starting the production stack (project {project}, images {image_tag}, api {api_tag})"
    ));
    let mut up = compose.cmd(cmd);
    for v in &secret_values {
        up = up.secret(v.clone());
    }
    if let Err(err) = ctx.run.run(&up) {
        explain_unhealthy(ctx, &compose);
        return Err(err.context(format!(
            "the production stack did not become healthy within {timeout} s (see the states and logs above)\n  fix: correct the failing service, then `cargo xtask prod-up` again"
        )));
    }
    let api = &ctx.config.services.api;
    let ids = if ctx.run.dry_run {
        vec!["<api-container>".to_string()]
    } else {
        container_ids(ctx, &project, api)?
    };
    for id in ids {
        promote(ctx, &project, &id)?;
    }
    let mut state = DeployState::load(ctx, &project)?.unwrap_or_default();
    if state.api_tag != api_tag {
        state.previous_api_tag = (!state.api_tag.is_empty()).then(|| state.api_tag.clone());
    }
    state.image_tag = image_tag;
    state.api_tag = api_tag.clone();
    state.record("prod-up", &api_tag, "ok");
    state.save(ctx, &project)?;
    if !ctx.run.dry_run {
        print_urls(ctx, &compose, args.monitoring);
    }
    Ok(())
}

fn print_urls(ctx: &Ctx, compose: &Compose, monitoring: bool) {
    let style = Style::stdout();
    let s = &ctx.config.services;
    let tls = tls_dir(ctx).join("tls.crt").is_file();
    let mut rows: Vec<(String, u16, &str, &str)> = vec![(s.proxy.clone(), 8080, "app (edge proxy)", "http")];
    if tls {
        rows.push((s.proxy.clone(), 8443, "app (TLS)", "https"));
    }
    if monitoring {
        rows.push(("prometheus".into(), 9090, "prometheus", "http"));
        rows.push(("grafana".into(), 3000, "grafana", "http"));
    }
    for (service, port, what, scheme) in rows {
        if let Some(addr) = stack::published(ctx, compose, &service, port) {
            println!("  {what:<18} {}", style.bold(&format!("{scheme}://{addr}")));
        }
    }
}

fn explain_unhealthy(ctx: &Ctx, compose: &Compose) {
    if ctx.run.dry_run {
        return;
    }
    let Ok(states) = stack::services(ctx, compose) else {
        return;
    };
    crate::commands::dev::print_states(&states);
    let bad: Vec<String> = states.iter().filter(|s| !s.ok()).map(|s| s.service.clone()).collect();
    if !bad.is_empty() {
        let mut args = vec!["logs".to_string(), "--no-color".into(), "--tail".into(), "60".into()];
        args.extend(bad);
        let _ = ctx.run.run(&compose.cmd(args));
    }
}

/// `up --scale service=replicas` that touches nothing else: no dependencies, no recreation of running
/// replicas, no build or pull (scaling and rolling deploys use images that already exist).
pub fn scale_cmd(compose: &Compose, service: &str, replicas: usize, extra: &[&str]) -> Cmd {
    let scale = format!("{service}={replicas}");
    compose
        .cmd([
            "up",
            "--detach",
            "--no-deps",
            "--no-recreate",
            "--no-build",
            "--pull",
            "never",
            "--scale",
            &scale,
        ])
        .args(extra.iter().copied())
        .arg(service)
}

/// The compose invocation for commands that only look at or stop the stack (tags from the deploy state).
/// `Ctx::stack(Env::Prod)` returns this, so health, shells and backups address prod the same way: it supplies
/// the image tags and the (empty) password variables the base file interpolates.
pub fn current_compose(ctx: &Ctx) -> Result<Compose> {
    let project = ctx.compose(Env::Prod)?.project;
    let state = DeployState::load(ctx, &project)?;
    let (image_tag, api_tag) = match state {
        Some(s) => (s.image_tag, s.api_tag),
        None => {
            let t = head_tag(ctx).unwrap_or_else(|_| "dev".into());
            (t.clone(), t)
        }
    };
    prod_compose(ctx, &image_tag, &api_tag)
}

pub fn down(ctx: &Ctx, args: &DownArgs) -> Result<()> {
    let compose = current_compose(ctx)?;
    let mut cmd = vec![
        "--profile",
        "monitoring",
        "--profile",
        "grafana",
        "down",
        "--remove-orphans",
    ];
    if args.volumes {
        ctx.confirm(&format!(
            "stop the production stack `{}` and DELETE its volumes (all production PostgreSQL, Redis and Prometheus data)",
            compose.project
        ))?;
        cmd.push("--volumes");
    } else {
        ctx.confirm(&format!(
            "stop the production stack `{}` (the site goes offline)",
            compose.project
        ))?;
    }
    ctx.run.run(&compose.cmd(cmd))?;
    Ok(())
}

pub fn ps(ctx: &Ctx, json: bool) -> Result<()> {
    let compose = current_compose(ctx)?;
    let states = stack::services(ctx, &compose)?;
    let live = if ctx.run.dry_run {
        Vec::new()
    } else {
        live_containers(ctx, &compose.project)?
    };
    if json {
        let rows: Vec<Value> = states
            .iter()
            .map(|s| {
                let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("live".into(), Value::Bool(live.iter().any(|n| n == &s.name)));
                }
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if states.is_empty() && !ctx.run.dry_run {
        println!("the production stack is not running (start it with `cargo xtask prod-up`)");
    } else {
        crate::commands::dev::print_states(&states);
        if !live.is_empty() {
            println!("\nreceiving traffic ({LIVE_ALIAS}): {}", live.join(", "));
        }
    }
    Ok(())
}

pub fn logs(ctx: &Ctx, args: &LogsArgs) -> Result<()> {
    crate::commands::dev::logs_of(ctx, &current_compose(ctx)?, &["--profile", "*"], args)
}

pub fn scale(ctx: &Ctx, args: &ProdScaleArgs) -> Result<()> {
    let s = &ctx.config.services;
    if ![s.api.as_str(), s.frontend.as_str()].contains(&args.service.as_str()) {
        bail!(
            "`{}` cannot be scaled: only `{}` and `{}` are stateless replicas (the databases hold data; the proxy owns the published ports)\n  fix: cargo xtask prod-scale {} <n>",
            args.service,
            s.api,
            s.frontend,
            s.api
        );
    }
    if args.replicas == 0 {
        bail!(
            "0 replicas would take `{}` offline\n  fix: use prod-down to stop the stack, or at least 1",
            args.service
        );
    }
    let compose = current_compose(ctx)?;
    let project = compose.project.clone();
    let before = container_ids(ctx, &project, &args.service)?;
    let timeout = args.timeout.to_string();
    ctx.say(&format!(
        "scaling {} from {} to {} replica(s)",
        args.service,
        before.len(),
        args.replicas
    ));
    ctx.run.run(&scale_cmd(
        &compose,
        &args.service,
        args.replicas as usize,
        &["--wait", "--wait-timeout", &timeout],
    ))?;
    if args.service == s.api {
        let now = container_ids(ctx, &project, &s.api)?;
        for id in now.iter().filter(|id| !before.contains(id)) {
            promote(ctx, &project, id)?;
        }
    }
    if !ctx.run.dry_run {
        let n = container_ids(ctx, &project, &args.service)?.len();
        ctx.say(&format!("{} now runs {n} healthy replica(s)", args.service));
    }
    Ok(())
}

/// Running containers of a compose service (full ids, oldest first). Empty in a dry run.
pub fn container_ids(ctx: &Ctx, project: &str, service: &str) -> Result<Vec<String>> {
    if ctx.run.dry_run {
        return Ok(Vec::new());
    }
    let out = ctx.run.read(
        &Cmd::new("docker")
            .args(["ps", "--no-trunc", "--format", "{{.ID}} {{.CreatedAt}}"])
            .arg("--filter")
            .arg(format!("label=com.docker.compose.project={project}"))
            .arg("--filter")
            .arg(format!("label=com.docker.compose.service={service}"))
            .arg("--filter")
            .arg("label=com.docker.compose.oneoff=False"),
    )?;
    let mut rows: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, created)| (created.to_string(), id.to_string()))
        .collect();
    rows.sort();
    Ok(rows.into_iter().map(|(_, id)| id).collect())
}

/// What the deploy logic needs to know about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    pub id: String,
    pub name: String,
    pub status: String,
    pub health: String,
    pub restarts: u64,
    pub image: String,
    /// network name -> aliases
    pub aliases: BTreeMap<String, Vec<String>>,
}

impl ContainerState {
    /// Parses one element of `docker inspect` output.
    pub fn from_inspect(v: &Value) -> ContainerState {
        let s = |ptr: &str| v.pointer(ptr).and_then(Value::as_str).unwrap_or_default().to_string();
        let aliases = v
            .pointer("/NetworkSettings/Networks")
            .and_then(Value::as_object)
            .map(|nets| {
                nets.iter()
                    .map(|(name, n)| {
                        let a = n
                            .get("Aliases")
                            .and_then(Value::as_array)
                            .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
                            .unwrap_or_default();
                        (name.clone(), a)
                    })
                    .collect()
            })
            .unwrap_or_default();
        ContainerState {
            id: s("/Id"),
            name: s("/Name").trim_start_matches('/').to_string(),
            status: s("/State/Status"),
            health: s("/State/Health/Status"),
            restarts: v.get("RestartCount").and_then(Value::as_u64).unwrap_or(0),
            image: s("/Config/Image"),
            aliases,
        }
    }
}

pub fn inspect(ctx: &Ctx, ids: &[String]) -> Result<Vec<ContainerState>> {
    if ids.is_empty() || ctx.run.dry_run {
        return Ok(Vec::new());
    }
    let probe = ctx
        .run
        .probe(&Cmd::new("docker").arg("inspect").args(ids.iter().cloned()));
    let Some(probe) = probe else { return Ok(Vec::new()) };
    // A container removed meanwhile makes inspect fail for it but still print the others.
    let values: Vec<Value> = serde_json::from_str(probe.stdout.trim()).unwrap_or_default();
    Ok(values.iter().map(ContainerState::from_inspect).collect())
}

/// Names of the containers that currently carry the live alias.
pub fn live_containers(ctx: &Ctx, project: &str) -> Result<Vec<String>> {
    let ids = container_ids(ctx, project, &ctx.config.services.api)?;
    let net = format!("{project}_{FRONTEND_NETWORK}");
    Ok(inspect(ctx, &ids)?
        .into_iter()
        .filter(|c| c.aliases.get(&net).is_some_and(|a| a.iter().any(|x| x == LIVE_ALIAS)))
        .map(|c| c.name)
        .collect())
}

/// Lets the proxy route to a (healthy) API container: reconnects it to the frontend network with the live
/// alias, keeping its other aliases. Only ever done to containers that receive no traffic yet.
pub fn promote(ctx: &Ctx, project: &str, id: &str) -> Result<()> {
    let net = format!("{project}_{FRONTEND_NETWORK}");
    let short = &id[..id.len().min(12)];
    let mut aliases: Vec<String> = Vec::new();
    if !ctx.run.dry_run {
        let state = inspect(ctx, &[id.to_string()])?.into_iter().next();
        let Some(state) = state else {
            bail!("container {short} disappeared before it could be promoted")
        };
        let current = state.aliases.get(&net).cloned().unwrap_or_default();
        if current.iter().any(|a| a == LIVE_ALIAS) {
            return Ok(());
        }
        aliases = current
            .into_iter()
            .filter(|a| a != short && !id.starts_with(a.as_str()))
            .collect();
    }
    if !aliases.iter().any(|a| a == &ctx.config.services.api) {
        aliases.push(ctx.config.services.api.clone());
    }
    aliases.push(LIVE_ALIAS.to_string());
    ctx.run
        .run(&Cmd::new("docker").args(["network", "disconnect", &net, id]))?;
    let mut connect = Cmd::new("docker").args(["network", "connect"]);
    for a in &aliases {
        connect = connect.arg("--alias").arg(a.clone());
    }
    ctx.run.run(&connect.arg(&net).arg(id))?;
    Ok(())
}

/// Waits until every container is running and healthy. Fails early when one exits, restarts or is reported
/// unhealthy, and at the deadline.
pub fn wait_healthy(ctx: &Ctx, ids: &[String], timeout: Duration) -> Result<()> {
    if ctx.run.dry_run || ids.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let states = inspect(ctx, ids)?;
        if states.len() < ids.len() {
            bail!("{} of the new container(s) disappeared", ids.len() - states.len());
        }
        for c in &states {
            if c.status != "running" && c.status != "created" {
                bail!("{} is {} (it crashed: see `docker logs {}`)", c.name, c.status, c.name);
            }
            if c.restarts > 0 {
                bail!(
                    "{} restarted {} time(s): it crashes (see `docker logs {}`)",
                    c.name,
                    c.restarts,
                    c.name
                );
            }
            if c.health == "unhealthy" {
                bail!("{} is unhealthy (its healthcheck keeps failing)", c.name);
            }
        }
        let healthy = states
            .iter()
            .filter(|c| c.status == "running" && c.health == "healthy")
            .count();
        if healthy == ids.len() {
            return Ok(());
        }
        let line = format!("{healthy}/{} new replica(s) healthy", ids.len());
        if line != last {
            ctx.say(&line);
            last = line;
        }
        if started.elapsed() > timeout {
            bail!(
                "only {healthy} of {} new replica(s) became healthy within {} s",
                ids.len(),
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ` (UTC), without a date crate.
pub fn utc_now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

pub fn rfc3339(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn env_file_parsing() {
        let env = parse_env_file("# c\nPOSTGRES_PASSWORD=drydock-dev-password\nexport A=\"q v\"\n\nB='x'\n");
        assert_eq!(env["POSTGRES_PASSWORD"], "drydock-dev-password");
        assert_eq!(env["A"], "q v");
        assert_eq!(env["B"], "x");
    }

    #[test]
    fn secrets_are_judged() {
        let examples = vec!["drydock-dev-password".to_string()];
        assert!(
            secret_problem("drydock-dev-password", &examples)
                .unwrap()
                .contains("example")
        );
        assert!(secret_problem("", &examples).unwrap().contains("empty"));
        assert!(secret_problem("Password", &examples).unwrap().contains("default"));
        assert!(secret_problem("short1", &examples).unwrap().contains("shorter"));
        assert!(secret_problem("with space inside it!!", &examples).is_some());
        assert!(secret_problem("a$dollar-sign-password", &examples).is_some());
        assert_eq!(secret_problem("Zq8v2LmN4pR7sT1wX9yB3cD5", &examples), None);
    }

    #[test]
    fn random_secrets_are_strong_and_different() {
        let a = random_secret().unwrap();
        let b = random_secret().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert_eq!(secret_problem(&a, &[]), None);
    }

    #[test]
    fn tags_are_validated() {
        assert!(check_tag("sha-1a2b3c4").is_ok());
        assert!(check_tag("staging").is_ok());
        assert!(check_tag("-bad").is_err());
        assert!(check_tag("a/b").is_err());
        assert!(check_tag("").is_err());
    }

    #[test]
    fn inspect_output_is_read() {
        let v: Value = serde_json::from_str(
            r#"{"Id":"abcdef0123456789","Name":"/drydock-prod-api-1","RestartCount":2,
                "State":{"Status":"running","Health":{"Status":"healthy"}},"Config":{"Image":"drydock/api:sha-1"},
                "NetworkSettings":{"Networks":{"drydock-prod_frontend":{"Aliases":["api","api-live","abcdef012345"]}}}}"#,
        )
        .unwrap();
        let c = ContainerState::from_inspect(&v);
        assert_eq!(c.name, "drydock-prod-api-1");
        assert_eq!(
            (c.status.as_str(), c.health.as_str(), c.restarts),
            ("running", "healthy", 2)
        );
        assert!(c.aliases["drydock-prod_frontend"].contains(&LIVE_ALIAS.to_string()));
    }
}
