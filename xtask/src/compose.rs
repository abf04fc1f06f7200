//! Building `docker compose` invocations for an environment of the stack.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::config::Env;
use crate::context::Ctx;
use crate::images;
use crate::process::Cmd;

/// Compose override that adds the GitHub Actions layer cache to every image build.
pub const GHA_CACHE_FILE: &str = "infra/compose/compose.cache-gha.yaml";

/// `docker compose` bound to one environment: project name, files, env file and image variables.
#[derive(Debug, Clone)]
pub struct Compose {
    pub project: String,
    pub files: Vec<PathBuf>,
    pub env_file: Option<PathBuf>,
    pub env: Vec<(String, String)>,
}

impl Compose {
    pub fn for_env(ctx: &Ctx, env: Env) -> Result<Compose> {
        let mut files = ctx.config.compose_files(&ctx.root, env)?;
        // CI on hosted runners: BuildKit's layer cache lives in the CI's cache service.
        if std::env::var("DRYDOCK_BUILD_CACHE").is_ok_and(|v| v == "gha") {
            files.push(ctx.root.join(GHA_CACHE_FILE));
        }
        let env_file = ctx.path(&ctx.config.compose.env_file);
        let resolved = ctx.images();
        let mut vars = images::compose_env(&ctx.config, resolved.source);
        vars.extend(build_metadata(ctx));
        // DRYDOCK_PROJECT isolates a stack (e.g. `cargo xtask ci` runs on `<name>-ci`).
        let project = match std::env::var("DRYDOCK_PROJECT") {
            Ok(p) if !p.trim().is_empty() => p.trim().to_string(),
            _ => project_name(&ctx.config.project.name, env),
        };
        Ok(Compose {
            project,
            files,
            // In a dry run the file may not exist yet: dev-up would have created it by then.
            env_file: (env_file.is_file() || ctx.run.dry_run).then_some(env_file),
            env: vars,
        })
    }

    /// `docker compose -p <project> -f <file>... [--env-file <file>] <args>`.
    pub fn cmd<I, S>(&self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut cmd = Cmd::new("docker").args(["compose", "-p", &self.project]);
        for file in &self.files {
            cmd = cmd.arg("-f").arg(file.display().to_string());
        }
        if let Some(env_file) = &self.env_file {
            cmd = cmd.arg("--env-file").arg(env_file.display().to_string());
        }
        for (key, value) in &self.env {
            cmd = cmd.env(key, value);
        }
        cmd.args(args)
    }
}

/// Dev keeps the plain project name; prod gets its own so both can live on one machine.
pub fn project_name(name: &str, env: Env) -> String {
    match env {
        Env::Dev => name.to_string(),
        Env::Prod => format!("{name}-prod"),
    }
}

/// Build arguments that end up in the images' OCI labels.
fn build_metadata(ctx: &Ctx) -> Vec<(String, String)> {
    let revision = git_revision(ctx).unwrap_or_else(|| "unknown".to_string());
    vec![
        ("GIT_SHA".to_string(), revision),
        ("VERSION".to_string(), env!("CARGO_PKG_VERSION").to_string()),
    ]
}

/// The current commit, read from `.git` directly (no process: this runs on every compose call).
/// In a linked worktree `.git` is a file (`gitdir: <dir>`): HEAD is read there, branch refs from the
/// main repository's directory (the worktree's `commondir`).
pub fn git_revision(ctx: &Ctx) -> Option<String> {
    let mut git = ctx.root.join(".git");
    let mut common = git.clone();
    if git.is_file() {
        let link = std::fs::read_to_string(&git).ok()?;
        git = ctx.root.join(link.trim().strip_prefix("gitdir:")?.trim());
        common = match std::fs::read_to_string(git.join("commondir")) {
            Ok(dir) => git.join(dir.trim()),
            Err(_) => git.clone(),
        };
    }
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(reference) = head.strip_prefix("ref: ") else {
        return Some(head.to_string());
    };
    for dir in [&git, &common] {
        if let Ok(sha) = std::fs::read_to_string(dir.join(reference)) {
            return Some(sha.trim().to_string());
        }
    }
    let packed = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    packed
        .lines()
        .find_map(|line| line.strip_suffix(reference).map(|sha| sha.trim().to_string()))
        .filter(|sha| !sha.is_empty())
}

/// Creates the env file from the example on first use (dev only; prod must be written by a person).
pub fn ensure_env_file(ctx: &Ctx) -> Result<()> {
    let env_file = ctx.path(&ctx.config.compose.env_file);
    if env_file.exists() {
        return Ok(());
    }
    let example = ctx.path(&ctx.config.compose.env_example);
    ctx.say(&format!(
        "creating {} from {} (development defaults)",
        env_file.display(),
        example.display()
    ));
    if ctx.run.dry_run {
        return Ok(());
    }
    std::fs::copy(&example, &env_file)
        .with_context(|| format!("cannot copy {} to {}", example.display(), env_file.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compose() -> Compose {
        Compose {
            project: "drydock".into(),
            files: vec![
                "/r/infra/compose/compose.yaml".into(),
                "/r/infra/compose/compose.dev.yaml".into(),
            ],
            env_file: Some("/r/.env".into()),
            env: vec![("DRYDOCK_POSTGRES_IMAGE".into(), "drydock/postgres:17".into())],
        }
    }

    #[test]
    fn argv_binds_project_files_and_env_file() {
        let cmd = compose().cmd(["up", "-d", "--wait"]);
        assert_eq!(
            cmd.argv(),
            [
                "docker",
                "compose",
                "-p",
                "drydock",
                "-f",
                "/r/infra/compose/compose.yaml",
                "-f",
                "/r/infra/compose/compose.dev.yaml",
                "--env-file",
                "/r/.env",
                "up",
                "-d",
                "--wait"
            ]
        );
        assert_eq!(
            cmd.env,
            vec![("DRYDOCK_POSTGRES_IMAGE".to_string(), "drydock/postgres:17".to_string())]
        );
    }

    #[test]
    fn prod_has_its_own_project() {
        assert_eq!(project_name("drydock", Env::Prod), "drydock-prod");
        assert_eq!(project_name("drydock", Env::Dev), "drydock");
    }
}
