//! Release images: which there are, their OCI labels, their tags (`sha-<commit>`, `staging`, `latest`), and
//! what `build` recorded about them. `cargo xtask build` and `push` share this.

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use serde::Serialize;
use serde_json::Value;

use crate::cmd::Cmd;
use crate::context::Ctx;

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

/// One built image as recorded in `artifacts/images/<tag>.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Built {
    pub image: String,
    pub id: String,
    pub size_bytes: u64,
    pub tags: Vec<String>,
    pub labels: serde_json::Map<String, Value>,
}

pub fn selected(images: &[String]) -> Vec<String> {
    if images.is_empty() {
        RELEASE_IMAGES.iter().map(|s| s.to_string()).collect()
    } else {
        images.to_vec()
    }
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

pub fn worktree_dirty(ctx: &Ctx) -> bool {
    ctx.run
        .probe(
            &Cmd::new("git")
                .args(["status", "--porcelain", "--untracked-files=no"])
                .cwd(&ctx.root),
        )
        .is_some_and(|p| p.success && !p.stdout.trim().is_empty())
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

#[cfg(test)]
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
