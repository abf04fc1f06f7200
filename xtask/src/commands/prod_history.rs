//! `cargo xtask prod-history`: what happened to a production target (the audit log: who, where, what, result,
//! how long) and the API versions it ran, with whether each image is still on this engine (what
//! `prod-rollback --to <tag>` can return to).

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use crate::context::Ctx;
use crate::images;
use crate::prod::audit::{self, Entry};
use crate::prod::state::DeployState;
use crate::prod::tags::image;

#[derive(Debug, Clone, Args)]
pub struct ProdHistoryArgs {
    /// The Swarm stack instead of the compose stack.
    #[arg(long)]
    pub swarm: bool,
    /// Print machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// One API version the target ran.
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    pub tag: String,
    pub last_at: String,
    pub current: bool,
    /// The image `<prefix>/api:<tag>` is on this engine (so a rollback to it can run).
    pub image_present: bool,
}

impl ProdHistoryArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let target = crate::prod::stack_name(ctx, self.swarm)?;
        let entries = audit::read(ctx, &target)?;
        let state = DeployState::load(ctx, &target)?.unwrap_or_default();
        let versions = versions(&state, |tag| {
            !ctx.run.dry_run && images::exists(ctx, &image(ctx, "api", tag))
        });
        if self.json {
            let out = serde_json::json!({"target": target, "audit": entries, "versions": versions});
            println!("{}", serde_json::to_string_pretty(&out)?);
            return Ok(());
        }
        print_entries(&target, &entries, &audit::path(ctx, &target).display().to_string());
        println!("\nAPI versions of `{target}` (newest first):");
        if versions.is_empty() {
            println!("  none recorded yet");
        }
        for v in &versions {
            println!(
                "  {:<24} last {:<20} {:<9} {}",
                v.tag,
                v.last_at,
                if v.current { "current" } else { "" },
                if v.image_present {
                    "image present"
                } else {
                    "image gone (cannot roll back to it)"
                }
            );
        }
        Ok(())
    }
}

fn print_entries(target: &str, entries: &[Entry], path: &str) {
    println!("audit log of `{target}` ({path}):");
    if entries.is_empty() {
        println!("  empty: no deploy, rollback or scaling recorded yet");
    }
    for e in entries {
        println!(
            "  {}  {:<14} {:<20} {:>7.1} s  {} ({}) from {} on {}  {}",
            e.at, e.command, e.tag, e.seconds, e.who.user, e.who.git, e.who.machine, e.engine, e.result
        );
        if let Some(why) = &e.message {
            println!("      why: {why}");
        }
    }
}

/// The API tags of the deploy state's history, newest first, each once, with the current one marked.
pub fn versions(state: &DeployState, present: impl Fn(&str) -> bool) -> Vec<Version> {
    let mut out: Vec<Version> = Vec::new();
    for h in state.history.iter().rev() {
        if h.api_tag.is_empty() || h.result != "ok" || out.iter().any(|v| v.tag == h.api_tag) {
            continue;
        }
        out.push(Version {
            tag: h.api_tag.clone(),
            last_at: h.at.clone(),
            current: h.api_tag == state.api_tag,
            image_present: present(&h.api_tag),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prod::state::HistoryEntry;

    #[test]
    fn versions_are_newest_first_once_each_with_presence() {
        let entry = |at: &str, tag: &str, result: &str| HistoryEntry {
            at: at.into(),
            action: "prod-deploy".into(),
            api_tag: tag.into(),
            result: result.into(),
        };
        let state = DeployState {
            image_tag: "v1".into(),
            api_tag: "v2".into(),
            previous_api_tag: Some("v1".into()),
            registry: None,
            history: vec![
                entry("2026-01-01T00:00:00Z", "v1", "ok"),
                entry("2026-01-02T00:00:00Z", "v2", "ok"),
                entry("2026-01-03T00:00:00Z", "broken", "rolled back: unhealthy"),
                entry("2026-01-04T00:00:00Z", "v2", "ok"),
            ],
        };
        let v = versions(&state, |tag| tag != "v1");
        let got: Vec<(&str, &str, bool, bool)> = v
            .iter()
            .map(|v| (v.tag.as_str(), v.last_at.as_str(), v.current, v.image_present))
            .collect();
        assert_eq!(
            got,
            [
                ("v2", "2026-01-04T00:00:00Z", true, true),
                ("v1", "2026-01-01T00:00:00Z", false, false)
            ]
        );
    }
}
