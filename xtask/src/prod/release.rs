//! Release images: which there are, their OCI labels, their tags (`sha-<commit>`, `staging`, `latest`), and
//! what `build` recorded about them. `cargo xtask build` and `push` share this.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cmd::{Cmd, cmd, shell};
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

/// One image as `docker image inspect` prints it, reduced to what the xtask reads. `Config` is `null` for
/// some imported images and `Config.Labels` is `null` (older engines) or left out (newer ones) when there are
/// none; `Id` and `Size` are always there, so their absence is a changed format and an error.
#[derive(Debug, Clone, Deserialize)]
pub struct Inspected {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Size")]
    pub size: u64,
    #[serde(rename = "Config")]
    pub config: Option<InspectedConfig>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InspectedConfig {
    #[serde(rename = "Labels", default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// `docker image inspect <image>`: the JSON array [`parse_inspect`] reads.
pub fn inspect_cmd(image: &str) -> Cmd {
    let sh = shell();
    Cmd::from(cmd!(sh, "docker image inspect {image}"))
}

/// The one image `docker image inspect <image>` printed (an array of one object). Another shape is an error.
pub fn parse_inspect(text: &str) -> Result<Inspected> {
    let images: Vec<Inspected> =
        serde_json::from_str(text.trim()).context("`docker image inspect` printed JSON of an unexpected shape")?;
    match <[Inspected; 1]>::try_from(images) {
        Ok([image]) => Ok(image),
        Err(images) => bail!(
            "`docker image inspect` of one image described {} image(s)",
            images.len()
        ),
    }
}

/// `docker image inspect` reduced to what a release records.
pub fn describe(ctx: &Ctx, image: &str) -> Result<Built> {
    let cmd = inspect_cmd(image);
    let out = ctx.run.read(&cmd)?;
    let inspected = parse_inspect(&out).with_context(|| format!("reading `{cmd}`"))?;
    Ok(Built {
        image: image.to_string(),
        id: inspected.id,
        size_bytes: inspected.size,
        tags: Vec::new(),
        labels: inspected
            .config
            .and_then(|c| c.labels)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
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
    let sh = shell();
    ctx.run
        .probe(&Cmd::from(cmd!(sh, "git status --porcelain --untracked-files=no")).cwd(&ctx.root))
        .is_some_and(|p| p.success && !p.stdout.trim().is_empty())
}

/// The error of a failed `docker push` to `registry`: the checks that fix it.
pub fn push_failed(registry: &str, target: &str) -> String {
    format!(
        "pushing {target} failed\n  fix: check that {registry} answers (`curl http://{registry}/v2/`), that you are logged in (`docker login {registry}`), and for a plain-HTTP registry other than 127.0.0.1 that it is in the engine's insecure-registries"
    )
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

    /// `docker image inspect drydock/api:sha-1` on Docker Engine 27 (the parts that vary shortened).
    const INSPECT: &str = r#"[
    {
        "Id": "sha256:3f6c8e0d1b2a4c5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6",
        "RepoTags": ["drydock/api:sha-1", "drydock/api:staging"],
        "RepoDigests": [],
        "Parent": "",
        "Comment": "buildkit.dockerfile.v0",
        "Created": "2025-06-02T09:10:11.123456789Z",
        "DockerVersion": "",
        "Author": "",
        "Config": {
            "User": "10001:10001",
            "ExposedPorts": {"8000/tcp": {}},
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Entrypoint": ["/usr/local/bin/api"],
            "Cmd": ["serve"],
            "WorkingDir": "/",
            "Labels": {
                "org.opencontainers.image.revision": "abc",
                "org.opencontainers.image.title": "drydock api"
            }
        },
        "Architecture": "amd64",
        "Os": "linux",
        "Size": 31457280,
        "GraphDriver": {"Data": null, "Name": "overlayfs"},
        "RootFS": {"Type": "layers", "Layers": ["sha256:aa", "sha256:bb"]},
        "Metadata": {"LastTagTime": "2025-06-02T09:10:12.5Z"}
    }
]
"#;

    #[test]
    fn inspect_output_is_read() {
        let image = parse_inspect(INSPECT).unwrap();
        assert_eq!(
            image.id,
            "sha256:3f6c8e0d1b2a4c5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6"
        );
        assert_eq!(image.size, 31_457_280);
        let labels = image.config.and_then(|c| c.labels).unwrap();
        assert_eq!(labels["org.opencontainers.image.title"], "drydock api");
        // An image without labels: `null` (older engines) or no key at all (newer ones).
        let bare = INSPECT.replace(
            r#""Labels": {
                "org.opencontainers.image.revision": "abc",
                "org.opencontainers.image.title": "drydock api"
            }"#,
            r#""Labels": null"#,
        );
        assert!(parse_inspect(&bare).unwrap().config.unwrap().labels.is_none());
        let no_key = parse_inspect(r#"[{"Id":"sha256:x","Size":1,"Config":{"User":""}}]"#).unwrap();
        assert!(no_key.config.unwrap().labels.is_none());
        assert_eq!(
            inspect_cmd("drydock/api:dev").argv(),
            ["docker", "image", "inspect", "drydock/api:dev"]
        );
    }

    #[test]
    fn inspect_of_another_shape_is_an_error() {
        let err = parse_inspect(&INSPECT.replace("\"Id\"", "\"ID\"")).unwrap_err();
        assert!(
            format!("{err:#}").contains("`docker image inspect`") && format!("{err:#}").contains("Id"),
            "{err:#}"
        );
        let err = parse_inspect(&INSPECT.replace("31457280", "\"30MB\"")).unwrap_err();
        assert!(format!("{err:#}").contains("invalid type"), "{err:#}");
        assert!(parse_inspect("[]").unwrap_err().to_string().contains("0 image(s)"));
        assert!(
            parse_inspect(r#"{"Id":"sha256:x","Size":1,"Config":null}"#).is_err(),
            "not an array"
        );
    }
}
