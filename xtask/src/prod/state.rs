//! What is deployed, remembered between commands: `.drydock/deploy-<project>.json` (git-ignored).

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::context::Ctx;
use crate::files;
use crate::time::Timestamp;

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
    /// The registry the Swarm nodes pulled the last deploy's images from (`--registry`): a later deploy or
    /// rollback of the stack uses it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
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
        ctx.root
            .join(".drydock")
            .join(format!("deploy-{}.json", ctx.engine.key(project)))
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
        files::replace(
            &Self::path(ctx, project),
            (serde_json::to_string_pretty(self)? + "\n").as_bytes(),
            0o644,
        )
    }

    /// After a successful deploy, rollback or start: the API now runs `api_tag` (the one it ran before becomes
    /// what `prod-rollback` returns to), the other images `image_tag`; recorded and saved.
    pub fn deployed(&mut self, ctx: &Ctx, project: &str, action: &str, image_tag: &str, api_tag: &str) -> Result<()> {
        if self.api_tag != api_tag {
            self.previous_api_tag = (!self.api_tag.is_empty()).then(|| self.api_tag.clone());
        }
        self.image_tag = image_tag.to_string();
        self.api_tag = api_tag.to_string();
        self.record(action, api_tag, "ok");
        self.save(ctx, project)
    }

    pub fn record(&mut self, action: &str, api_tag: &str, result: &str) {
        self.history.push(HistoryEntry {
            at: Timestamp::now().rfc3339(),
            action: action.to_string(),
            api_tag: api_tag.to_string(),
            result: result.to_string(),
        });
    }
}
