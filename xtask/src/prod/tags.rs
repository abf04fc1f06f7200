//! Release image names and tags: `<prefix>/<name>:<tag>`, `sha-<HEAD>`, tag syntax, presence.

use anyhow::{Context, Result, bail};

use crate::compose::git_revision;
use crate::context::Ctx;
use crate::images;
use crate::prod::state::DeployState;

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

/// `--tag` as clap checks it (a bad tag is a usage error, exit 2, before anything runs).
pub fn parse_tag(tag: &str) -> Result<String, String> {
    check_tag(tag).map(|()| tag.to_string()).map_err(|e| format!("{e:#}"))
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
    // A remote engine gets the ones it lacks from this machine first.
    crate::prod::remote::ship_images(ctx, wanted)?;
    let missing: Vec<&String> = wanted.iter().filter(|i| !images::exists(ctx, i)).collect();
    if !missing.is_empty() {
        let list = missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
        bail!(
            "missing release image(s): {list}\n  fix: cargo xtask build   (tags sha-<HEAD>), or pass --tag <tag> of images you built or pulled (`cargo xtask images`)"
        );
    }
    Ok(())
}

/// Which tags to run: `--tag`, else the deployed ones, else `sha-<HEAD>`.
pub fn tags_for_up(ctx: &Ctx, project: &str, tag: Option<&str>) -> Result<(String, String)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_validated() {
        assert!(check_tag("sha-1a2b3c4").is_ok());
        assert!(check_tag("staging").is_ok());
        assert!(check_tag("-bad").is_err());
        assert!(check_tag("a/b").is_err());
        assert!(check_tag("").is_err());
    }
}
