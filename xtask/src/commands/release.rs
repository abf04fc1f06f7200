//! Release images: `build` (immutable `sha-<commit>` tags, optional `staging`/`latest`, OCI labels checked,
//! sizes recorded) and `push --registry <host>`.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde::Serialize;
use serde_json::Value;

use crate::commands::prod::{check_tag, head_tag, image, prod_compose, require_images, utc_now_rfc3339};
use crate::compose::git_revision;
use crate::context::Ctx;
use crate::process::{Cmd, Style};

/// The images a release consists of (compose services with a build section).
pub const RELEASE_IMAGES: &[&str] = &["api", "frontend", "proxy"];

/// OCI labels every release image must carry (`org.opencontainers.image.<name>`).
pub const REQUIRED_LABELS: &[&str] = &["source", "revision", "created", "title", "description", "version"];

/// Moving tags a release can also get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExtraTag {
    Staging,
    Latest,
}

impl ExtraTag {
    pub fn name(self) -> &'static str {
        match self {
            ExtraTag::Staging => "staging",
            ExtraTag::Latest => "latest",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ReleaseBuildArgs {
    /// Also tag the images `staging` or `latest` (repeatable). The `sha-<commit>` tag is always set.
    #[arg(long = "tag", value_enum, value_name = "staging|latest")]
    pub tags: Vec<ExtraTag>,
    /// Build without the layer cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Which images (default: api, frontend, proxy).
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(RELEASE_IMAGES))]
    pub images: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// The registry to push to, as `host[:port]` (e.g. registry.example.com, 127.0.0.1:5000).
    #[arg(long, value_name = "HOST")]
    pub registry: String,
    /// The tag to push (default: `sha-<HEAD>`); `staging`/`latest` are pushed too when they point to it.
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
    /// Which images (default: api, frontend, proxy).
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(RELEASE_IMAGES))]
    pub images: Vec<String>,
}

/// One built image as recorded in `artifacts/images/<tag>.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Built {
    pub image: String,
    pub id: String,
    pub size_bytes: u64,
    pub tags: Vec<String>,
    pub labels: serde_json::Map<String, Value>,
}

fn selected(images: &[String]) -> Vec<String> {
    if images.is_empty() {
        RELEASE_IMAGES.iter().map(|s| s.to_string()).collect()
    } else {
        images.to_vec()
    }
}

pub fn build(ctx: &Ctx, args: &ReleaseBuildArgs) -> Result<()> {
    crate::provision::preflight(ctx)?;
    let tag = head_tag(ctx)?;
    let revision = git_revision(ctx).unwrap_or_default();
    let names = selected(&args.images);
    if !ctx.run.dry_run && worktree_dirty(ctx) {
        ctx.say(&format!(
            "warning: the worktree has uncommitted changes: {tag} will not exactly describe these images (commit first for a reproducible release)"
        ));
    }
    crate::images::ensure(ctx)?;
    let mut compose = prod_compose(ctx, &tag, &tag)?;
    let created = utc_now_rfc3339();
    compose.env.push(("GIT_SHA".into(), revision.clone()));
    compose.env.push(("BUILD_DATE".into(), created.clone()));
    compose
        .env
        .push(("VERSION".into(), format!("{}+{tag}", env!("CARGO_PKG_VERSION"))));
    let mut cmd: Vec<String> = vec!["build".into()];
    if args.no_cache {
        cmd.push("--no-cache".into());
    }
    cmd.extend(names.iter().cloned());
    ctx.say(&format!("building release images {} as {tag}", names.join(", ")));
    let started = Instant::now();
    ctx.run.run(&compose.cmd(cmd))?;
    let mut extra: Vec<String> = args.tags.iter().map(|t| t.name().to_string()).collect();
    extra.dedup();
    for name in &names {
        for t in &extra {
            ctx.run
                .run(&Cmd::new("docker").args(["tag", &image(ctx, name, &tag), &image(ctx, name, t)]))?;
        }
    }
    if ctx.run.dry_run {
        return Ok(());
    }
    let mut built = Vec::new();
    for name in &names {
        let b = describe(ctx, &image(ctx, name, &tag))?;
        check_labels(&b, &revision)?;
        let mut b = b;
        b.tags = std::iter::once(tag.clone()).chain(extra.iter().cloned()).collect();
        built.push(b);
    }
    let record = ctx.root.join("artifacts/images").join(format!("{tag}.json"));
    std::fs::create_dir_all(record.parent().expect("has a parent"))?;
    let doc = serde_json::json!({ "tag": tag, "revision": revision, "created": created, "images": built });
    std::fs::write(&record, serde_json::to_string_pretty(&doc)? + "\n")
        .with_context(|| format!("writing {}", record.display()))?;
    let style = Style::stdout();
    println!("{:<34} {:>10}  tags", "image", "size");
    for b in &built {
        println!("{:<34} {:>10}  {}", b.image, human(b.size_bytes), b.tags.join(", "));
    }
    ctx.say(&format!(
        "built in {:.0} s; OCI labels checked; sizes recorded in {}",
        started.elapsed().as_secs_f64(),
        record.strip_prefix(&ctx.root).unwrap_or(&record).display()
    ));
    println!("{}", style.dim(&format!("deploy: cargo xtask prod-deploy --tag {tag}")));
    Ok(())
}

/// `docker image inspect` reduced to what a release records.
pub fn describe(ctx: &Ctx, image: &str) -> Result<Built> {
    let out = ctx.run.read(&Cmd::new("docker").args(["image", "inspect", image]))?;
    let v: Value = serde_json::from_str(out.trim()).context("parsing `docker image inspect`")?;
    let v = v.get(0).context("docker image inspect returned nothing")?;
    Ok(Built {
        image: image.to_string(),
        id: v.get("Id").and_then(Value::as_str).unwrap_or_default().to_string(),
        size_bytes: v.get("Size").and_then(Value::as_u64).unwrap_or(0),
        tags: Vec::new(),
        labels: v
            .pointer("/Config/Labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
    })
}

/// Every required OCI label is present and non-empty, and the revision is this commit.
pub fn check_labels(b: &Built, revision: &str) -> Result<()> {
    let mut missing = Vec::new();
    for name in REQUIRED_LABELS {
        let key = format!("org.opencontainers.image.{name}");
        let value = b.labels.get(&key).and_then(Value::as_str).unwrap_or("");
        if value.is_empty() || value == "unknown" {
            missing.push(key);
        }
    }
    if !missing.is_empty() {
        bail!(
            "{} lacks OCI label(s) {}\n  fix: add them (LABEL, fed by the GIT_SHA / BUILD_DATE / VERSION build args) at the end of its Dockerfile's final stage",
            b.image,
            missing.join(", ")
        );
    }
    let got = b
        .labels
        .get("org.opencontainers.image.revision")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !revision.is_empty() && got != revision {
        bail!(
            "{} carries revision {got:?}, not {revision:?}\n  fix: pass the GIT_SHA build arg into the final stage's org.opencontainers.image.revision label",
            b.image
        );
    }
    Ok(())
}

fn worktree_dirty(ctx: &Ctx) -> bool {
    ctx.run
        .probe(
            &Cmd::new("git")
                .args(["status", "--porcelain", "--untracked-files=no"])
                .cwd(&ctx.root),
        )
        .is_some_and(|p| p.success && !p.stdout.trim().is_empty())
}

pub fn human(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// Checks `host[:port]`: no scheme, no path.
pub fn check_registry(host: &str) -> Result<()> {
    let ok = !host.is_empty()
        && !host.contains("://")
        && !host.contains('/')
        && host.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    if !ok {
        bail!(
            "--registry {host:?} is not a registry host\n  fix: give host[:port] only, e.g. registry.example.com or 127.0.0.1:5000"
        );
    }
    Ok(())
}

pub fn push(ctx: &Ctx, args: &PushArgs) -> Result<()> {
    check_registry(&args.registry)?;
    let tag = match &args.tag {
        Some(t) => t.clone(),
        None => head_tag(ctx)?,
    };
    check_tag(&tag)?;
    let names = selected(&args.images);
    let sources: Vec<String> = names.iter().map(|n| image(ctx, n, &tag)).collect();
    require_images(ctx, &sources)?;
    for (name, source) in names.iter().zip(&sources) {
        let mut tags = vec![tag.clone()];
        if !ctx.run.dry_run {
            let id = describe(ctx, source)?.id;
            for extra in [ExtraTag::Staging, ExtraTag::Latest] {
                let moving = image(ctx, name, extra.name());
                if crate::images::exists(ctx, &moving) && describe(ctx, &moving)?.id == id {
                    tags.push(extra.name().to_string());
                }
            }
        }
        for t in &tags {
            let target = format!("{}/{}", args.registry, image(ctx, name, t));
            ctx.run.run(&Cmd::new("docker").args(["tag", source, &target]))?;
            ctx.run.run(&Cmd::new("docker").args(["push", &target])).with_context(|| {
                format!(
                    "pushing {target} failed\n  fix: check that {} answers (`curl http://{}/v2/`), that you are logged in (`docker login {}`), and for a plain-HTTP registry other than 127.0.0.1 that it is in the engine's insecure-registries",
                    args.registry, args.registry, args.registry
                )
            })?;
        }
    }
    ctx.say(&format!(
        "pushed {} image(s) as {tag} to {}",
        names.len(),
        args.registry
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(labels: &[(&str, &str)]) -> Built {
        Built {
            image: "drydock/api:sha-1".into(),
            id: "sha256:x".into(),
            size_bytes: 1,
            tags: vec![],
            labels: labels
                .iter()
                .map(|(k, v)| (format!("org.opencontainers.image.{k}"), Value::String(v.to_string())))
                .collect(),
        }
    }

    #[test]
    fn labels_are_required() {
        let all: Vec<(&str, &str)> = REQUIRED_LABELS.iter().map(|l| (*l, "x")).collect();
        let mut ok = all.clone();
        ok.retain(|(k, _)| *k != "revision");
        ok.push(("revision", "abc"));
        assert!(check_labels(&built(&ok), "abc").is_ok());
        assert!(
            check_labels(&built(&ok), "def")
                .unwrap_err()
                .to_string()
                .contains("not \"def\"")
        );
        let err = check_labels(&built(&[("title", "x")]), "abc").unwrap_err().to_string();
        assert!(
            err.contains("org.opencontainers.image.source") && err.contains("fix:"),
            "{err}"
        );
    }

    #[test]
    fn registry_hosts_are_checked() {
        assert!(check_registry("127.0.0.1:5000").is_ok());
        assert!(check_registry("registry.example.com").is_ok());
        assert!(check_registry("https://r.example.com").is_err());
        assert!(check_registry("r.example.com/team").is_err());
    }
}
